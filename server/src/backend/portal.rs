//! The portal's side of `ServerBackend`: a company's jobs and one job's visits and files, only ever for the
//! session's company.

use std::collections::HashMap;

use app::error::AppError;
use app::portal::api::PortalBackend;
use app::portal::model::{PortalCompany, PortalJobDetail, PortalOverview};

use app::access::{Access, Role};
use app::directory::model::OneTimeLink;
use app::objects::{ATTACHMENT, JOB_ACTIVITY};

use super::{portal_views, unavailable, ServerBackend};
use crate::auth::{random_token, token_hash};
use crate::store::mirror::text_field;
use crate::store::{millis_to_rfc3339, now_millis, CompanyOf, Store, StoreError};

/// The longest a portal link made from the dashboard or the API may stay usable.
const MAX_PORTAL_LINK_DAYS: u32 = 90;

#[async_trait::async_trait]
impl PortalBackend for ServerBackend {
    async fn portal_session_company(&self, session: &str) -> Result<Option<PortalCompany>, AppError> {
        let found = self
            .store
            .portal_session_company(&token_hash(session), now_millis())
            .await
            .map_err(unavailable)?;
        // A disabled account's portal is closed too.
        Ok(found
            .filter(|company| {
                self.accounts
                    .get(&company.account)
                    .is_some_and(|account| !account.disabled)
            })
            .map(|company| PortalCompany {
                account: company.account,
                company_uuid: company.company_uuid,
            }))
    }

    async fn portal_sign_out(&self, session: &str) -> Result<(), AppError> {
        self.store
            .delete_portal_session(&token_hash(session))
            .await
            .map_err(unavailable)
    }

    async fn portal_overview(&self, company: &PortalCompany) -> Result<PortalOverview, AppError> {
        let (account, company_uuid) = (company.account.as_str(), company.company_uuid.as_str());
        let records = self
            .store
            .company_jobs(account, company_uuid)
            .await
            .map_err(unavailable)?;
        Ok(PortalOverview {
            company_uuid: company_uuid.to_owned(),
            company_name: self.company_name(account, company_uuid).await?,
            jobs: records.iter().filter_map(portal_views::job_view).collect(),
        })
    }

    async fn portal_job(&self, company: &PortalCompany, job_uuid: &str) -> Result<PortalJobDetail, AppError> {
        let (account, company_uuid) = (company.account.as_str(), company.company_uuid.as_str());
        // Another company's job answers exactly like a missing one: its existence is not theirs to learn.
        let not_found = || AppError::NotFound(format!("no job {job_uuid}"));
        let record = self
            .store
            .mirror_record(account, "job", job_uuid)
            .await
            .map_err(unavailable)?
            .ok_or_else(not_found)?;
        if text_field(&record, "company_uuid").as_deref() != Some(company_uuid) || !portal_views::is_active(&record) {
            return Err(not_found());
        }
        let job = portal_views::job_view(&record).ok_or_else(not_found)?;
        let activity_records = self
            .store
            .job_children(account, &JOB_ACTIVITY, job_uuid)
            .await
            .map_err(unavailable)?;
        let mut staff: HashMap<String, Option<serde_json::Value>> = HashMap::new();
        let mut activities = Vec::with_capacity(activity_records.len());
        for record in &activity_records {
            let member = match text_field(record, "staff_uuid") {
                Some(uuid) => match staff.get(&uuid) {
                    Some(member) => member.clone(),
                    None => {
                        let member = self
                            .store
                            .mirror_record(account, "staff", &uuid)
                            .await
                            .map_err(unavailable)?;
                        staff.insert(uuid, member.clone());
                        member
                    }
                },
                None => None,
            };
            activities.extend(portal_views::activity_view(record, member.as_ref()));
        }
        // Visits in the order they happen; those without a time yet last.
        activities
            .sort_by(|a, b| (a.start_date.is_none(), &a.start_date).cmp(&(b.start_date.is_none(), &b.start_date)));
        let attachments = self
            .store
            .job_children(account, &ATTACHMENT, job_uuid)
            .await
            .map_err(unavailable)?;
        Ok(PortalJobDetail {
            company_uuid: company_uuid.to_owned(),
            company_name: self.company_name(account, company_uuid).await?,
            job,
            activities,
            attachments: attachments.iter().filter_map(portal_views::attachment_view).collect(),
        })
    }

    fn secure_cookies(&self) -> bool {
        self.settings.secure_cookies
    }
}

impl ServerBackend {
    /// A one-time portal link for a company of the caller's account (admins and owners), audited.
    pub(super) async fn mint_portal_link(
        &self,
        access: &Access,
        company_uuid: &str,
        ttl_days: u32,
    ) -> Result<OneTimeLink, AppError> {
        self.require(access, Role::Admin, "create_portal_link").await?;
        let company_uuid = company_uuid.trim();
        let minted = if company_uuid.is_empty() {
            Err(AppError::InvalidInput(
                "a portal link needs the uuid of a ServiceM8 company".into(),
            ))
        } else if !(1..=MAX_PORTAL_LINK_DAYS).contains(&ttl_days) {
            Err(AppError::InvalidInput(format!(
                "a portal link lasts 1 to {MAX_PORTAL_LINK_DAYS} days"
            )))
        } else {
            let company = CompanyOf {
                account: access.account.clone(),
                company_uuid: company_uuid.to_owned(),
            };
            let ttl_ms = i64::from(ttl_days) * 24 * 60 * 60 * 1000;
            create_link(
                self.store.as_ref(),
                &company,
                ttl_ms,
                &self.settings.public_url,
                now_millis(),
            )
            .await
            .map(|link| OneTimeLink {
                url: link.url,
                expires_at: millis_to_rfc3339(link.expires_at),
            })
            .map_err(unavailable)
        };
        let detail = serde_json::json!({ "ttl_days": ttl_days });
        self.audited(access, "create_portal_link", Some(company_uuid), Some(detail), minted)
            .await
    }

    async fn company_name(&self, account: &str, company_uuid: &str) -> Result<Option<String>, AppError> {
        let company = self
            .store
            .mirror_record(account, "company", company_uuid)
            .await
            .map_err(unavailable)?;
        Ok(company.and_then(|company| text_field(&company, "name")))
    }
}

/// A stored portal link.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PortalLink {
    /// `{public_url}/portal/enter?token=...`
    pub url: String,
    pub token: String,
    /// Unix milliseconds.
    pub expires_at: i64,
}

/// Stores a new one-time link for a company of an account, valid for `ttl_ms` from `now`.
pub async fn create_link(
    store: &dyn Store,
    company: &CompanyOf,
    ttl_ms: i64,
    public_url: &str,
    now: i64,
) -> Result<PortalLink, StoreError> {
    let token = random_token();
    let expires_at = now.saturating_add(ttl_ms);
    store
        .create_portal_link(&token_hash(&token), company, expires_at)
        .await?;
    Ok(PortalLink {
        url: format!("{}/portal/enter?token={token}", public_url.trim_end_matches('/')),
        token,
        expires_at,
    })
}
