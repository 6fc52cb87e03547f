//! `AnalyticsBackend` for the analytics page and the management API: any member of the account reads its
//! reports; an export, which takes the data away, is audited.

use app::access::{Access, Role};
use app::analytics::api::AnalyticsBackend;
use app::analytics::model::{AnalyticsQuery, AnalyticsReport};
use app::error::AppError;
use serde_json::json;

use super::{unavailable, ServerBackend};
use crate::analytics::report::{self, ReportError};
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
}
