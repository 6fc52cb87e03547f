//! Settings of `serve` and the commands that share its parts: flags, environment variables and `.env`.

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::Args;

use crate::ingest::IngestArgs;
use crate::processor::ProcessorArgs;
use crate::secret::Secret;
use crate::servicem8::client::ServiceM8Args;
use crate::store::DatabaseArgs;
use crate::telemetry::LogFormat;

#[derive(Debug, Clone, Args)]
pub struct ServeArgs {
    /// Address to listen on.
    #[arg(long, env = "BIND", default_value = "127.0.0.1:3000")]
    pub bind: SocketAddr,

    #[command(flatten)]
    pub database: DatabaseArgs,

    #[command(flatten)]
    pub ingest: IngestArgs,

    #[command(flatten)]
    pub servicem8: ServiceM8Args,

    #[command(flatten)]
    pub processor: ProcessorArgs,

    #[command(flatten)]
    pub realtime: crate::realtime::RealtimeArgs,

    #[command(flatten)]
    pub accounts: crate::accounts::AccountArgs,

    #[command(flatten)]
    pub oauth: crate::servicem8::oauth::OAuthArgs,

    /// Token for the management API and the dashboard sign-in; generated once and kept in the database when unset.
    #[arg(long, env = "ADMIN_TOKEN", hide_env_values = true)]
    pub admin_token: Option<Secret>,

    /// Token Prometheus must send as `Authorization: Bearer ...` to read /metrics; without it /metrics is open.
    #[arg(long, env = "METRICS_TOKEN", hide_env_values = true)]
    pub metrics_token: Option<Secret>,

    /// Folder holding the browser bundle (pkg/) and static assets; found beside the binary when relative.
    #[arg(long, env = "LEPTOS_SITE_ROOT", default_value = "target/site")]
    pub site_root: PathBuf,

    /// Origin under which users reach this server, for links and cookie security (default http://BIND).
    #[arg(long, env = "PUBLIC_URL")]
    pub public_url: Option<String>,

    /// Log format.
    #[arg(long, env = "LOG_FORMAT", value_enum, default_value = "text")]
    pub log_format: LogFormat,
}

impl ServeArgs {
    /// Settings for a server on `bind` with the given database and otherwise defaults; used by tests and tools.
    pub fn new(bind: SocketAddr, database_url: impl Into<String>) -> Self {
        ServeArgs {
            bind,
            database: DatabaseArgs {
                database_url: database_url.into(),
            },
            ..crate::flags::defaults()
        }
    }

    pub fn public_url(&self) -> String {
        self.public_url
            .clone()
            .unwrap_or_else(|| format!("http://{}", self.bind))
            .trim_end_matches('/')
            .to_owned()
    }

    /// The site folder: as given when it exists or is absolute, else `../site` beside the binary
    /// (`target/release/sm8-webhooks` finds `target/site` from any working directory).
    pub fn resolved_site_root(&self) -> PathBuf {
        if self.site_root.is_absolute() || self.site_root.exists() {
            return self.site_root.clone();
        }
        std::env::current_exe()
            .ok()
            .and_then(|exe| exe.parent()?.parent().map(|target| target.join("site")))
            .filter(|candidate| candidate.exists())
            .unwrap_or_else(|| self.site_root.clone())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn public_url_defaults_to_the_bind_address() {
        let args = ServeArgs::new("127.0.0.1:3000".parse().unwrap(), "sqlite::memory:");
        assert_eq!(args.public_url(), "http://127.0.0.1:3000");
    }
}
