//! Configuration: one typed tree, layered as `config/default.toml` (embedded in the binary), then
//! an optional file, then `STOCKWATCH__SECTION__KEY` environment variables. Unknown keys are
//! rejected and every error names the field (and the bad value, unless it is a secret).
//!
//! The one secret, the SASL password, is never part of that tree's layers: it comes only from
//! [`SASL_PASSWORD_ENV`] or from the file named by `kafka.security.sasl_password_file`, and is
//! held in a [`Secret`], which prints as `"***"`. A config file that names it is refused.

pub mod env;
pub mod kafka;
pub mod secret;
pub mod security;
#[cfg(test)]
mod tests;

pub use env::ENV_PREFIX;
pub use kafka::{KafkaSection, TopicsSection, MAX_INPUTS};
pub use secret::{redacted, Secret, MASK, NOT_SET, SASL_PASSWORD_ENV};
pub use security::{SaslMechanism, SecurityProtocol, SecuritySection};

use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use figment::providers::{Format, Toml};
use figment::Figment;
use serde::de::{self, Deserializer};
use serde::{Deserialize, Serialize};

use crate::alert::AlertPolicy;
use crate::decode::DecodeLimits;
use crate::engine::EngineConfig;
use crate::model::ModelConfig;
use secret::{read_sasl_password, secret_in_file_error, secret_key_in_toml, SASL_PASSWORD_KEY};

/// The embedded defaults.
pub const DEFAULT_TOML: &str = include_str!("../../config/default.toml");

/// A configuration error; the message names the field and the bad value (never a secret).
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// Parsing or type error from a layer.
    #[error("configuration error: {}", describe_layer_error(.0))]
    Layer(Box<figment::Error>),
    /// A value or combination of values is not allowed.
    #[error("configuration error: {0}")]
    Invalid(String),
    /// The configuration could not be rendered as TOML.
    #[error("configuration error: cannot render as TOML: {0}")]
    Render(toml::ser::Error),
}

// By hand rather than `#[from]`: a `source()` would make `{:#}` repeat the message.
impl From<Box<figment::Error>> for ConfigError {
    fn from(e: Box<figment::Error>) -> Self {
        Self::Layer(e)
    }
}

impl From<toml::ser::Error> for ConfigError {
    fn from(e: toml::ser::Error) -> Self {
        Self::Render(e)
    }
}

/// `field.path: what is wrong (from which layer)` for each error figment collected.
fn describe_layer_error(e: &figment::Error) -> String {
    let mut out = Vec::new();
    for e in e.clone() {
        let path = e.path.join(".");
        let from = match &e.metadata {
            Some(md) => match &md.source {
                Some(src) => format!(" (from {} {src})", md.name),
                None => format!(" (from {})", md.name),
            },
            None => String::new(),
        };
        if path.is_empty() {
            out.push(format!("{}{from}", e.kind));
        } else {
            out.push(format!("{path}: {}{from}", e.kind));
        }
    }
    out.join("; ")
}

/// A secret value: `Debug`, `Display` and `Serialize` print [`MASK`], never the value.
/// `[engine]`: decoding limits and event-time handling.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EngineSection {
    /// Largest accepted message in bytes.
    pub max_payload_bytes: usize,
    /// How far event_time may be ahead of the processing clock.
    pub future_skew_secs: u64,
    /// How far event_time may be behind the processing clock.
    pub max_event_age_days: u64,
    /// How far a shipment's eta may be after its event_time.
    pub max_eta_ahead_days: u64,
    /// Allowed lateness behind the max event time seen.
    pub allowed_lateness_secs: u64,
    /// Dedupe memory in event time.
    pub dedupe_ttl_secs: u64,
    /// Messages per micro-batch.
    pub batch_max_messages: usize,
}

/// `[http]`: the metrics, probe and state endpoints.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HttpSection {
    /// Address to listen on (`IP:PORT`).
    #[serde(deserialize_with = "de_socket_addr")]
    pub listen: SocketAddr,
    /// Allow `listen` to be reachable from other machines.
    pub allow_non_loopback: bool,
    /// A request (headers included) that takes longer is cut off.
    pub request_timeout_ms: u64,
    /// Requests served at once at most.
    pub max_concurrent_requests: usize,
    /// File holding the bearer token `/v1/*` requires (e.g. a mounted Kubernetes Secret);
    /// required when `listen` is not a loopback address. Empty: none.
    pub token_file: String,
}

impl HttpSection {
    /// `request_timeout_ms`.
    pub fn request_timeout(&self) -> Duration {
        Duration::from_millis(self.request_timeout_ms)
    }

    /// The bearer token `/v1/*` requires: the contents of `token_file` without surrounding
    /// whitespace (a Secret mounted as a file often ends in a newline); `None` without a
    /// `token_file`. An unreadable or empty file is an error naming the field.
    pub fn read_token(&self) -> Result<Option<Secret>, ConfigError> {
        let path = self.token_file.trim();
        if path.is_empty() {
            return Ok(None);
        }
        let text = std::fs::read_to_string(path).map_err(|e| {
            ConfigError::Invalid(format!("http.token_file = {path:?}: cannot read it: {e}"))
        })?;
        let token = text.trim();
        if token.is_empty() {
            return Err(ConfigError::Invalid(format!(
                "http.token_file = {path:?} is empty: it must hold the bearer token"
            )));
        }
        Ok(Some(Secret::new(token)))
    }

    fn validate(&self) -> Result<(), String> {
        if !self.allow_non_loopback && !self.listen.ip().to_canonical().is_loopback() {
            return Err(format!(
                "http.listen = \"{}\" is not a loopback address: metrics and state would be \
                 reachable from other machines; set http.allow_non_loopback = true to allow it",
                self.listen
            ));
        }
        if !self.listen.ip().to_canonical().is_loopback() && self.token_file.trim().is_empty() {
            return Err(format!(
                "http.listen = \"{}\" is not a loopback address: /v1/* (every key's inventory \
                 position) would be open to the network; set http.token_file to a file holding \
                 the bearer token clients must send",
                self.listen
            ));
        }
        if self.request_timeout_ms == 0 {
            return Err("http.request_timeout_ms must be > 0, got 0".into());
        }
        if self.max_concurrent_requests == 0 {
            return Err("http.max_concurrent_requests must be > 0, got 0".into());
        }
        Ok(())
    }
}

fn de_socket_addr<'de, D: Deserializer<'de>>(d: D) -> Result<SocketAddr, D::Error> {
    let s = String::deserialize(d)?;
    s.trim().parse().map_err(|_| {
        de::Error::custom(format!(
            "{s:?} is not an IP:PORT address (e.g. \"127.0.0.1:9464\" or \"[::1]:9464\")"
        ))
    })
}

/// `service.delivery`: how outputs and input offsets are tied together.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Delivery {
    /// Offsets committed after the outputs are acknowledged; a crash may repeat outputs
    /// (alert ids are deterministic, so consumers can dedupe).
    AtLeastOnce,
    /// Outputs and offsets in one Kafka transaction per batch.
    ExactlyOnce,
}

impl Delivery {
    /// The config spelling, for logs.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::AtLeastOnce => "at_least_once",
            Self::ExactlyOnce => "exactly_once",
        }
    }
}

/// The longest a partition's restore from its changelog may take before the service gives up
/// (seconds): the watchdog's stall must be longer.
pub const RESTORE_DEADLINE_SECS: u64 = 600;

/// `[service]`: the `run` loop.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServiceSection {
    /// Delivery guarantee.
    pub delivery: Delivery,
    /// After SIGTERM, exit within this many seconds.
    pub shutdown_deadline_secs: u64,
    /// `group.instance.id` (static membership) when not empty.
    pub instance_id: String,
    /// `transaction.timeout.ms` of the exactly-once producer.
    pub transaction_timeout_ms: u64,
    /// Changelog records and input offsets are written at most this often (changes in
    /// between are coalesced per key).
    pub commit_interval_ms: u64,
    /// Use `instance_id` as `group.instance.id` (static membership); it is the transactional
    /// id's suffix either way.
    pub static_membership: bool,
    /// `exactly_once`: consecutive aborted transactions with the same cause (no commit
    /// between them) after which the service exits non-zero naming the cause.
    pub max_identical_aborts: u32,
    /// `/healthz` fails once the run loop has made no progress this long (a hung process:
    /// Kubernetes restarts it). Above the longest legitimate pause, a partition's restore
    /// (600 s at most).
    pub watchdog_stall_secs: u64,
}

impl ServiceSection {
    /// `instance_id`, if set.
    pub fn instance_id(&self) -> Option<&str> {
        Some(self.instance_id.as_str()).filter(|s| !s.is_empty())
    }

    /// `shutdown_deadline_secs`.
    pub fn shutdown_deadline(&self) -> Duration {
        Duration::from_secs(self.shutdown_deadline_secs)
    }

    fn validate(&self) -> Result<(), String> {
        if self.shutdown_deadline_secs == 0 {
            return Err("service.shutdown_deadline_secs must be > 0, got 0".into());
        }
        if self.commit_interval_ms > 60_000 {
            return Err(format!(
                "service.commit_interval_ms must be <= 60000, got {}",
                self.commit_interval_ms
            ));
        }
        if !(1000..=900_000).contains(&self.transaction_timeout_ms) {
            return Err(format!(
                "service.transaction_timeout_ms must be within 1000..=900000 (the broker's \
                 transaction.max.timeout.ms is 900000 by default), got {}",
                self.transaction_timeout_ms
            ));
        }
        if self.max_identical_aborts == 0 {
            return Err("service.max_identical_aborts must be >= 1, got 0".into());
        }
        if self.watchdog_stall_secs <= RESTORE_DEADLINE_SECS {
            return Err(format!(
                "service.watchdog_stall_secs must be > {} (a partition's restore may take that \
                 long without another sign of progress), got {}",
                RESTORE_DEADLINE_SECS, self.watchdog_stall_secs
            ));
        }
        if self
            .instance_id
            .chars()
            .any(|c| c.is_whitespace() || c.is_control())
        {
            return Err(format!(
                "service.instance_id = {:?} must not contain whitespace or control characters",
                self.instance_id
            ));
        }
        Ok(())
    }
}

/// `log.format`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LogFormat {
    /// Human-readable lines.
    Text,
    /// One JSON object per line.
    Json,
}

/// `[log]`: structured logs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LogSection {
    /// Line format.
    pub format: LogFormat,
    /// A `tracing_subscriber::EnvFilter` directive: `info`, `warn,stockwatch=debug`, ...
    pub level: String,
}

impl LogSection {
    /// The filter `level` describes.
    pub fn env_filter(&self) -> Result<tracing_subscriber::EnvFilter, ConfigError> {
        tracing_subscriber::EnvFilter::builder()
            .parse(&self.level)
            .map_err(|e| {
                ConfigError::Invalid(format!(
                    "log.level = {:?} is not a valid filter: {e}",
                    self.level
                ))
            })
    }

    fn validate(&self) -> Result<(), String> {
        if self.level.trim().is_empty() {
            return Err("log.level must not be empty (e.g. \"info\")".into());
        }
        self.env_filter().map_err(|e| match e {
            ConfigError::Invalid(m) => m,
            e => e.to_string(),
        })?;
        // EnvFilter reads a bare word as a target to log at every level, so a misspelt level
        // ("infoo") would silently turn logging off: require TARGET=LEVEL for targets.
        for d in self.level.split(',').map(str::trim) {
            if d.is_empty() || d.contains('=') || d.contains('[') {
                continue;
            }
            if d.parse::<tracing_subscriber::filter::LevelFilter>()
                .is_err()
            {
                return Err(format!(
                    "log.level = {:?}: {d:?} is not a level (trace, debug, info, warn, error, \
                     off); write TARGET=LEVEL for one target, e.g. \"info,stockwatch=debug\"",
                    self.level
                ));
            }
        }
        Ok(())
    }
}

/// The whole configuration.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// `[engine]`.
    pub engine: EngineSection,
    /// `[model]`.
    pub model: ModelConfig,
    /// `[alerts]`.
    pub alerts: AlertPolicy,
    /// `[kafka]`.
    pub kafka: KafkaSection,
    /// `[service]`.
    pub service: ServiceSection,
    /// `[http]`.
    pub http: HttpSection,
    /// `[log]`.
    pub log: LogSection,
}

impl Config {
    /// Defaults, then `file` if given, then the environment.
    pub fn load(file: Option<&Path>) -> Result<Config, ConfigError> {
        Self::load_with_env(file, env::process_vars()?)
    }

    /// [`Config::load`] with the given environment instead of the process's (variables without
    /// the [`ENV_PREFIX`] are ignored).
    pub fn load_with_env<I>(file: Option<&Path>, vars: I) -> Result<Config, ConfigError>
    where
        I: IntoIterator<Item = (String, String)>,
    {
        Self::load_inner(file, vars, |_| {})
    }

    /// [`Config::load`], with `adjust` applied before the checks: a command's own flags that
    /// override settings (`evaluate --horizon-hours`) are checked with the rest, as if they had
    /// been in the file.
    pub fn load_adjusted(
        file: Option<&Path>,
        adjust: impl FnOnce(&mut Config),
    ) -> Result<Config, ConfigError> {
        Self::load_inner(file, env::process_vars()?, adjust)
    }

    fn load_inner<I>(
        file: Option<&Path>,
        vars: I,
        adjust: impl FnOnce(&mut Config),
    ) -> Result<Config, ConfigError>
    where
        I: IntoIterator<Item = (String, String)>,
    {
        let defaults = Figment::from(Toml::string(DEFAULT_TOML));
        let mut fig = defaults.clone();
        if let Some(f) = file {
            if !f.exists() {
                return Err(ConfigError::Invalid(format!(
                    "config file {} does not exist",
                    f.display()
                )));
            }
            let text = std::fs::read_to_string(f)
                .map_err(|e| ConfigError::Invalid(format!("config file {}: {e}", f.display())))?;
            // Before parsing: a syntax error would quote the line, secret and all.
            if let Some(secret) = secret_key_in_toml(&text) {
                return Err(ConfigError::Invalid(secret_in_file_error(secret, f)));
            }
            fig = fig.merge(Toml::file(f));
            if fig.find_value(SASL_PASSWORD_KEY).is_ok() {
                return Err(ConfigError::Invalid(secret_in_file_error(
                    SASL_PASSWORD_KEY,
                    f,
                )));
            }
        }
        let (fig, password) = env::merge_vars(fig, &defaults, vars);
        let mut cfg: Config = fig.extract().map_err(Box::new)?;
        cfg.kafka.security.sasl_password = read_sasl_password(&cfg.kafka.security, password)?;
        adjust(&mut cfg);
        cfg.validate()?;
        Ok(cfg)
    }

    /// The defaults alone.
    pub fn defaults() -> Config {
        // The embedded file is tested to parse and validate.
        Figment::from(Toml::string(DEFAULT_TOML))
            .extract()
            .expect("embedded config/default.toml is valid")
    }

    /// The configuration as TOML that loads back as a config file: the SASL password is left
    /// out (see [`SecuritySection::sasl_password_source`]).
    pub fn to_toml(&self) -> Result<String, ConfigError> {
        Ok(toml::to_string_pretty(self)?)
    }

    /// Cross-field and range checks.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let e = &self.engine;
        let bad = |m: String| Err(ConfigError::Invalid(m));
        if e.max_payload_bytes < 64 {
            return bad(format!(
                "engine.max_payload_bytes must be >= 64, got {}",
                e.max_payload_bytes
            ));
        }
        if e.dedupe_ttl_secs < e.allowed_lateness_secs {
            return bad(format!(
                "engine.dedupe_ttl_secs ({}) must be >= engine.allowed_lateness_secs ({}): \
                 otherwise a late duplicate could be applied twice",
                e.dedupe_ttl_secs, e.allowed_lateness_secs
            ));
        }
        if e.batch_max_messages == 0 {
            return bad("engine.batch_max_messages must be > 0, got 0".into());
        }
        let m = &self.model;
        if m.horizon_hours == 0 || m.horizon_hours > 24 * 28 {
            return bad(format!(
                "model.horizon_hours must be in 1..=672, got {}",
                m.horizon_hours
            ));
        }
        if m.label_sample_hours == 0 {
            return bad("model.label_sample_hours must be > 0, got 0".into());
        }
        if !(m.learner.learning_rate > 0.0 && m.learner.learning_rate.is_finite()) {
            return bad(format!(
                "model.learner.learning_rate must be > 0, got {}",
                m.learner.learning_rate
            ));
        }
        if !(m.learner.l2 >= 0.0 && m.learner.l2.is_finite()) {
            return bad(format!(
                "model.learner.l2 must be >= 0, got {}",
                m.learner.l2
            ));
        }
        let floor = m.learner.learning_rate_floor;
        if !(floor >= 0.0 && floor <= m.learner.learning_rate) {
            return bad(format!(
                "model.learner.learning_rate_floor must be within 0..=model.learner.learning_rate \
                 ({}), got {floor}",
                m.learner.learning_rate
            ));
        }
        let rate = m.learner.calibration_rate;
        if !(rate > 0.0 && rate.is_finite()) {
            return bad(format!(
                "model.learner.calibration_rate must be > 0, got {rate}"
            ));
        }
        m.check()
            .map_err(|e| ConfigError::Invalid(format!("model.initial: {e}")))?;
        m.check_challenger()
            .map_err(|e| ConfigError::Invalid(format!("model.challenger: {e}")))?;
        self.kafka.validate().map_err(ConfigError::Invalid)?;
        self.service.validate().map_err(ConfigError::Invalid)?;
        self.http.validate().map_err(ConfigError::Invalid)?;
        self.log.validate().map_err(ConfigError::Invalid)?;
        self.alerts.validate().map_err(ConfigError::Invalid)
    }

    /// The engine's view of the configuration.
    pub fn engine_config(&self) -> EngineConfig {
        let e = &self.engine;
        let secs = |s: u64| i64::try_from(s.saturating_mul(1000)).unwrap_or(i64::MAX);
        EngineConfig {
            limits: DecodeLimits {
                max_payload_bytes: e.max_payload_bytes,
                future_skew_ms: secs(e.future_skew_secs),
                max_event_age_ms: secs(e.max_event_age_days.saturating_mul(86_400)),
                max_eta_ahead_ms: secs(e.max_eta_ahead_days.saturating_mul(86_400)),
            },
            allowed_lateness_ms: secs(e.allowed_lateness_secs),
            dedupe_ttl_ms: secs(e.dedupe_ttl_secs),
            model: self.model,
            alerts: self.alerts,
        }
    }
}
