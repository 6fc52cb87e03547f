//! Who may do what: roles in an account, who is acting, and `Access`, the proof the backend hands out that one
//! actor holds a role in one account. Every backend method that reads or changes an account's data takes an
//! `Access` and checks the role it needs (`Access::require`), so the dashboard, its server functions and the REST
//! API enforce the same rules in one place.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::error::AppError;

/// A role in one account, weakest first: each can do what the ones before it can.
#[cfg_attr(feature = "ssr", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// Reads everything of the account.
    Viewer,
    /// Also retries, cleans up, sends test events, changes rules and destinations.
    Admin,
    /// Also changes the account's settings, credentials and users.
    Owner,
}

impl Role {
    pub const ALL: [Role; 3] = [Role::Viewer, Role::Admin, Role::Owner];

    pub fn as_str(self) -> &'static str {
        match self {
            Role::Viewer => "viewer",
            Role::Admin => "admin",
            Role::Owner => "owner",
        }
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Role {
    type Err = AppError;

    fn from_str(value: &str) -> Result<Self, AppError> {
        Role::ALL
            .into_iter()
            .find(|role| role.as_str() == value)
            .ok_or_else(|| AppError::InvalidInput(format!("unknown role {value:?}: expected owner, admin or viewer")))
    }
}

/// Who is acting, as the audit log names them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Actor {
    /// A user signed in to the dashboard.
    User { id: String, email: String },
    /// A user's personal API token.
    ApiToken {
        id: String,
        name: String,
        user_email: String,
    },
    /// The instance-wide `ADMIN_TOKEN`.
    AdminToken,
    /// The server itself (start-up, schedules).
    System,
    /// Nobody known yet (a failed sign-in, a setup link).
    Anonymous,
}

impl Actor {
    /// The audit log's `actor_kind`.
    pub fn kind(&self) -> &'static str {
        match self {
            Actor::User { .. } => "user",
            Actor::ApiToken { .. } => "api_token",
            Actor::AdminToken => "admin_token",
            Actor::System => "system",
            Actor::Anonymous => "anonymous",
        }
    }

    /// The audit log's `actor`: an email, a token's name, or nothing.
    pub fn label(&self) -> Option<String> {
        match self {
            Actor::User { email, .. } => Some(email.clone()),
            Actor::ApiToken { name, user_email, .. } => Some(format!("{name} ({user_email})")),
            Actor::AdminToken | Actor::System | Actor::Anonymous => None,
        }
    }

    /// The user behind the actor, if one is.
    pub fn user_id(&self) -> Option<&str> {
        match self {
            Actor::User { id, .. } => Some(id),
            Actor::ApiToken { .. } | Actor::AdminToken | Actor::System | Actor::Anonymous => None,
        }
    }
}

/// The client's address as the server saw it (after trusted proxies), in a request's extensions for the audit
/// log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientAddress(pub String);

/// One actor's role in one account, established by the backend from a session or a token.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Access {
    pub account: String,
    pub role: Role,
    pub actor: Actor,
    /// Instance owners and `ADMIN_TOKEN` may create accounts and see every account.
    pub instance_owner: bool,
    /// The client's address, for the audit log.
    pub client_address: Option<String>,
}

impl Access {
    /// Refuses unless the role is at least `needed`: `Forbidden`, which answers 403.
    pub fn require(&self, needed: Role) -> Result<(), AppError> {
        if self.role >= needed {
            Ok(())
        } else {
            Err(AppError::Forbidden(format!(
                "this needs the {needed} role in account {}; yours is {}",
                self.account, self.role
            )))
        }
    }

    /// Refuses unless the actor is an instance owner.
    pub fn require_instance_owner(&self) -> Result<(), AppError> {
        if self.instance_owner {
            Ok(())
        } else {
            Err(AppError::Forbidden("only an instance owner may do this".into()))
        }
    }

    pub fn may(&self, needed: Role) -> bool {
        self.role >= needed
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn access(role: Role) -> Access {
        Access {
            account: "acme".into(),
            role,
            actor: Actor::AdminToken,
            instance_owner: false,
            client_address: None,
        }
    }

    #[test]
    fn each_role_can_do_what_the_weaker_ones_can() {
        assert!(access(Role::Owner).require(Role::Admin).is_ok());
        assert!(access(Role::Admin).require(Role::Viewer).is_ok());
        let refused = access(Role::Viewer).require(Role::Admin).unwrap_err();
        assert_eq!(refused.status(), 403);
        assert!(refused.to_string().contains("admin role in account acme"), "{refused}");
        assert!(access(Role::Owner).require_instance_owner().is_err());
    }

    #[test]
    fn roles_read_back_from_their_names() {
        for role in Role::ALL {
            assert_eq!(role.as_str().parse::<Role>().unwrap(), role);
        }
        assert_eq!("root".parse::<Role>().unwrap_err().status(), 400);
    }
}
