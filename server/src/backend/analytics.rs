//! `AnalyticsBackend` for the analytics page and the management API: any member of the account reads its
//! reports and digest; an export, which takes the data away, is audited, and so is every change to the digest,
//! which admins make.

use app::access::{Access, Role};
use app::analytics::api::AnalyticsBackend;
use app::analytics::model::{AnalyticsDigest, AnalyticsQuery, AnalyticsReport, DigestCadence};
use app::error::AppError;
use serde_json::json;

use super::{unavailable, ServerBackend};
use crate::analytics::report::{self, ReportError};
use crate::store::analytics::{Cadence, DigestRow};
use crate::store::now_millis;

/// The format of an export.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExportFormat {
    Csv,
    Json,
}

impl ExportFormat {
    pub fn as_str(self) -> &'static str {
        match self {
            ExportFormat::Csv => "csv",
            ExportFormat::Json => "json",
        }
    }
}

impl ServerBackend {
    /// The report `query` asks for, as the file of `format`: the report as JSON, or its buckets as CSV.
    pub async fn export_analytics(
        &self,
        access: &Access,
        query: &AnalyticsQuery,
        format: ExportFormat,
    ) -> Result<String, AppError> {
        let exported = self
            .analytics_report(access, query)
            .await
            .and_then(|report| match format {
                ExportFormat::Csv => Ok(report::to_csv(&report)),
                ExportFormat::Json => serde_json::to_string_pretty(&report)
                    .map_err(|error| AppError::Unavailable(format!("the report did not serialize: {error}"))),
            });
        let detail = json!({
            "format": format.as_str(),
            "range": query.range.as_str(),
            "dimension": query.dimension.as_str(),
            "from": query.from,
            "to": query.to,
        });
        self.audited(access, "export_analytics", None, Some(detail), exported)
            .await
    }
}

#[async_trait::async_trait]
impl AnalyticsBackend for ServerBackend {
    async fn analytics_report(&self, access: &Access, query: &AnalyticsQuery) -> Result<AnalyticsReport, AppError> {
        access.require(Role::Viewer)?;
        report::report(self.store.as_ref(), &access.account, query, now_millis())
            .await
            .map_err(|error| match error {
                ReportError::InvalidQuery(reason) => AppError::InvalidInput(reason),
                ReportError::Store(error) => unavailable(error),
            })
    }

    async fn analytics_digest(&self, access: &Access) -> Result<Option<AnalyticsDigest>, AppError> {
        access.require(Role::Viewer)?;
        let digest = self
            .store
            .analytics_digest(&access.account)
            .await
            .map_err(unavailable)?;
        Ok(digest.map(digest_view))
    }

    async fn set_analytics_digest(
        &self,
        access: &Access,
        digest: Option<AnalyticsDigest>,
    ) -> Result<Option<AnalyticsDigest>, AppError> {
        let detail = json!({
            "destination_id": digest.as_ref().map(|digest| &digest.destination_id),
            "cadence": digest.as_ref().map(|digest| digest.cadence.as_str()),
        });
        let set = self.save_digest(access, digest).await;
        self.audited(access, "set_analytics_digest", None, Some(detail), set)
            .await
    }
}

impl ServerBackend {
    async fn save_digest(
        &self,
        access: &Access,
        digest: Option<AnalyticsDigest>,
    ) -> Result<Option<AnalyticsDigest>, AppError> {
        access.require(Role::Admin)?;
        if let Some(digest) = &digest {
            let destination = self
                .store
                .destination(&access.account, &digest.destination_id)
                .await
                .map_err(unavailable)?;
            if destination.is_none() {
                return Err(AppError::InvalidInput(format!(
                    "the account has no destination {}",
                    digest.destination_id
                )));
            }
        }
        let stored = digest.as_ref().map(|digest| {
            let cadence = match digest.cadence {
                DigestCadence::Daily => Cadence::Daily,
                DigestCadence::Weekly => Cadence::Weekly,
            };
            (digest.destination_id.as_str(), cadence)
        });
        self.store
            .set_analytics_digest(&access.account, stored, now_millis())
            .await
            .map_err(unavailable)?;
        Ok(digest)
    }
}

fn digest_view(row: DigestRow) -> AnalyticsDigest {
    AnalyticsDigest {
        destination_id: row.destination_id,
        cadence: match row.cadence {
            Cadence::Daily => DigestCadence::Daily,
            Cadence::Weekly => DigestCadence::Weekly,
        },
    }
}
