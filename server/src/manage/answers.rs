//! What the management API answers: one shape per action. A read (`GET ?action=`) and a change (`POST`) each
//! answer one of a set of shapes, documented as `anyOf` (several shapes share fields, so `oneOf` would be
//! ambiguous).

use app::access::Role;
use app::alerts::model::{AlertHistoryPage, AlertView};
use app::directory::model::{
    AccountOverview, AccountView, AuditPage, CreatedAccount, CreatedToken, MemberView, OneTimeLink, ShownOnce,
    SubscriptionView, TokenView,
};
use app::model::{EventDetail, EventPage, MinuteBucket, PipelineHealth, Stats};
use app::outbound::model::{
    CreatedDestination, DeliveryDetail, DeliveryPage, DestinationView, RuleTest, RuleView, TestSendReport,
};
use serde::Serialize;
use utoipa::openapi::schema::AnyOfBuilder;
use utoipa::openapi::{Ref, RefOr, Schema};
use utoipa::{PartialSchema, ToSchema};

/// `action=throughput`: the last hour, minute by minute.
#[derive(Serialize, ToSchema)]
pub struct Minutes {
    pub minutes: Vec<MinuteBucket>,
}

/// `action=accounts`.
#[derive(Serialize, ToSchema)]
pub struct Accounts {
    pub accounts: Vec<AccountOverview>,
}

/// `action=members`.
#[derive(Serialize, ToSchema)]
pub struct Members {
    pub members: Vec<MemberView>,
}

/// `action=tokens`.
#[derive(Serialize, ToSchema)]
pub struct Tokens {
    pub tokens: Vec<TokenView>,
}

/// `action=subscriptions`, and what `subscribe` and `unsubscribe` leave.
#[derive(Serialize, ToSchema)]
pub struct Subscriptions {
    pub subscriptions: Vec<SubscriptionView>,
}

/// `action=rules`, and what `reorder_rules` leaves.
#[derive(Serialize, ToSchema)]
pub struct Rules {
    pub rules: Vec<RuleView>,
}

/// `action=destinations`.
#[derive(Serialize, ToSchema)]
pub struct Destinations {
    pub destinations: Vec<DestinationView>,
}

/// `action=alerts`: every alert of the account with where it stands.
#[derive(Serialize, ToSchema)]
pub struct AlertList {
    pub alerts: Vec<AlertView>,
}

/// A change that answers nothing but that it was done (a deletion, a retry): what it was done to.
#[derive(Serialize, ToSchema)]
pub struct Done {
    pub success: bool,
    pub id: String,
}

/// `retry_destination_deliveries`: how many failed deliveries were queued again.
#[derive(Serialize, ToSchema)]
pub struct RetriedDeliveries {
    pub success: bool,
    pub retried: u64,
}

/// `retry_event`: the event is queued again.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Requeued {
    pub success: bool,
    pub event_id: String,
    pub status: &'static str,
}

/// `retry_failed_events`: how many failed events were queued again, or with `dryRun` would be.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct RetriedFailed {
    pub success: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub dry_run: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub would_retry: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub retried: Option<u64>,
}

/// `cleanup`: events deleted.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct CleanedUp {
    pub success: bool,
    pub deleted: u64,
    pub older_than_days: i64,
}

/// `send_test_event`: the stored test event.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct TestEventSent {
    pub success: bool,
    pub event_id: String,
}

/// `set_role`.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct RoleSet {
    pub success: bool,
    pub user_id: String,
    pub role: Role,
}

/// `remove_member`.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct MemberRemoved {
    pub success: bool,
    pub user_id: String,
}

/// `revoke_token`.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct TokenRevoked {
    pub success: bool,
    pub token_id: String,
}

/// Declares an answer enum serialized as the shape it holds, and documented as `anyOf` those shapes.
macro_rules! any_of_answers {
    ($(#[$meta:meta])* $name:ident { $($variant:ident($shape:ty)),+ $(,)? }) => {
        $(#[$meta])*
        #[derive(Serialize)]
        #[serde(untagged)]
        pub enum $name {
            $($variant($shape)),+
        }

        impl PartialSchema for $name {
            fn schema() -> RefOr<Schema> {
                AnyOfBuilder::new()
                    $(.item(Ref::from_schema_name(<$shape as ToSchema>::name())))+
                    .into()
            }
        }

        impl ToSchema for $name {
            fn schemas(schemas: &mut Vec<(String, RefOr<Schema>)>) {
                $(
                    schemas.push((<$shape as ToSchema>::name().into_owned(), <$shape as PartialSchema>::schema()));
                    <$shape as ToSchema>::schemas(schemas);
                )+
            }
        }
    };
}

any_of_answers! {
    /// What `GET ?action=` answers, by action.
    ReadAnswer {
        Stats(Stats),
        Health(PipelineHealth),
        Throughput(Minutes),
        Events(EventPage),
        Event(EventDetail),
        Audit(AuditPage),
        Accounts(Accounts),
        Account(AccountView),
        Members(Members),
        Tokens(Tokens),
        Subscriptions(Subscriptions),
        Rules(Rules),
        Destinations(Destinations),
        Deliveries(DeliveryPage),
        Delivery(DeliveryDetail),
        Alerts(AlertList),
        AlertHistory(AlertHistoryPage),
    }
}

any_of_answers! {
    /// What `POST {"action": …}` answers, by action.
    ChangeAnswer {
        Requeued(Requeued),
        RetriedFailed(RetriedFailed),
        CleanedUp(CleanedUp),
        TestEventSent(TestEventSent),
        CreatedAccount(CreatedAccount),
        Account(AccountView),
        SecretShown(ShownOnce),
        Link(OneTimeLink),
        RoleSet(RoleSet),
        MemberRemoved(MemberRemoved),
        CreatedToken(CreatedToken),
        TokenRevoked(TokenRevoked),
        Subscriptions(Subscriptions),
        CreatedDestination(CreatedDestination),
        Destination(DestinationView),
        TestSent(TestSendReport),
        Rule(RuleView),
        Rules(Rules),
        RuleTest(RuleTest),
        Done(Done),
        RetriedDeliveries(RetriedDeliveries),
        Alert(AlertView),
    }
}
