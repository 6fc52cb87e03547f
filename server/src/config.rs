//! Settings of `serve` and the commands that share its parts: flags, environment variables and `.env`.

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::Args;

use crate::ingest::IngestArgs;
use crate::listen::ListenArgs;
use crate::processor::ProcessorArgs;
use crate::secret::Secret;
use crate::servicem8::client::ServiceM8Args;
use crate::store::DatabaseArgs;
use crate::telemetry::LogFormat;
use crate::tls::TlsArgs;

#[derive(Debug, Clone, Args)]
pub struct ServeArgs {
    /// Address to listen on.
    #[arg(long, env = "BIND", default_value = "127.0.0.1:3000")]
    pub bind: SocketAddr,

    #[command(flatten)]
    pub listen: ListenArgs,

    #[command(flatten)]
    pub tls: TlsArgs,

    #[command(flatten)]
    pub database: DatabaseArgs,

    #[command(flatten)]
    pub ingest: IngestArgs,

    #[command(flatten)]
    pub servicem8: ServiceM8Args,

    #[command(flatten)]
    pub processor: ProcessorArgs,

    #[command(flatten)]
    pub deliveries: crate::deliveries::DeliveryArgs,

    #[command(flatten)]
    pub alerts: crate::alerts::AlertArgs,

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

    /// Origin under which users reach this server, for links and cookie security (default http://BIND, or
    /// https://BIND with TLS_CERT).
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

    /// `PUBLIC_URL`, or this server's own address: https when it serves TLS itself.
    pub fn public_url(&self) -> String {
        self.public_url_at(self.bind)
    }

    /// `PUBLIC_URL`, or `bound`, the address the listener got (with `--bind …:0`, the port it was given).
    pub fn public_url_at(&self, bound: SocketAddr) -> String {
        self.public_url
            .clone()
            .unwrap_or_else(|| format!("{}://{}", self.scheme(), bound))
            .trim_end_matches('/')
            .to_owned()
    }

    /// The scheme the listener speaks.
    pub fn scheme(&self) -> &'static str {
        if self.tls.enabled() {
            "https"
        } else {
            "http"
        }
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
        let any_port = ServeArgs::new("127.0.0.1:0".parse().unwrap(), "sqlite::memory:");
        assert_eq!(
            any_port.public_url_at("127.0.0.1:41234".parse().unwrap()),
            "http://127.0.0.1:41234",
            "links name the port the listener got"
        );
    }

    #[test]
    fn with_tls_the_public_url_defaults_to_https_so_cookies_are_secure() {
        let mut args = ServeArgs::new("127.0.0.1:3000".parse().unwrap(), "sqlite::memory:");
        args.tls.tls_cert = Some("cert.pem".into());
        args.tls.tls_key = Some("key.pem".into());
        assert_eq!(args.public_url(), "https://127.0.0.1:3000");
        args.public_url = Some("https://hooks.example.com/".into());
        assert_eq!(args.public_url(), "https://hooks.example.com");
    }

    #[test]
    fn the_listener_settings_have_defaults_and_trusted_proxies_are_parsed_from_one_list() {
        use clap::Parser;

        #[derive(Parser)]
        struct Command {
            #[command(flatten)]
            serve: ServeArgs,
        }
        let defaults = ServeArgs::new("127.0.0.1:3000".parse().unwrap(), "sqlite::memory:");
        assert_eq!(defaults.listen.http_header_read_timeout_seconds, 10);
        assert_eq!(defaults.listen.http_body_read_timeout_seconds, 30);
        assert_eq!(defaults.listen.http_idle_timeout_seconds, 75);
        assert!(
            defaults.listen.trusted_proxies.is_empty(),
            "no proxy is trusted by default"
        );
        assert_eq!(defaults.tls.tls_reload_interval_seconds, 5);

        let parsed = Command::try_parse_from(["serve", "--trusted-proxies", "10.0.0.0/8, 192.0.2.1"]).unwrap();
        assert!(parsed
            .serve
            .listen
            .trusted_proxies
            .contains("192.0.2.1".parse().unwrap()));
        assert!(parsed
            .serve
            .listen
            .trusted_proxies
            .contains("10.1.2.3".parse().unwrap()));
        let refused = Command::try_parse_from(["serve", "--trusted-proxies", "10.0.0.0/8,proxy"]);
        assert!(refused.err().unwrap().to_string().contains("`proxy` is neither"));
        assert!(Command::try_parse_from(["serve", "--http-idle-timeout-seconds", "0"]).is_err());
    }
}
