//! Configuration: one typed tree, layered as `config/default.toml` (embedded in the binary), then
//! an optional file, then `STOCKWATCH__SECTION__KEY` environment variables. Unknown keys are
//! rejected and every error names the field.

use std::path::Path;

use figment::providers::{Env, Format, Toml};
use figment::Figment;
use serde::{Deserialize, Serialize};

use crate::alert::AlertPolicy;
use crate::decode::DecodeLimits;
use crate::engine::EngineConfig;
use crate::model::ModelConfig;

/// The embedded defaults.
pub const DEFAULT_TOML: &str = include_str!("../config/default.toml");

/// Environment variable prefix (`STOCKWATCH__ENGINE__ALLOWED_LATENESS_SECS=600`).
pub const ENV_PREFIX: &str = "STOCKWATCH__";

/// A configuration error; the message names the field and the bad value.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// Parsing or type error from a layer.
    #[error("configuration error: {0}")]
    Layer(#[from] Box<figment::Error>),
    /// A value or combination of values is not allowed.
    #[error("configuration error: {0}")]
    Invalid(String),
}

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

/// `[kafka.topics]`: topic names.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TopicsSection {
    /// Sale events.
    pub sales: String,
    /// Shipment events.
    pub shipments: String,
    /// Receipt events.
    pub receipts: String,
    /// Availability observations.
    pub availability: String,
    /// Alerts out.
    pub alerts: String,
    /// Rejected records out, with their reason.
    pub dead_letter: String,
}

impl TopicsSection {
    /// The four input topics, in [`crate::event::EventType`] code order.
    pub fn inputs(&self) -> [&str; 4] {
        [
            &self.sales,
            &self.shipments,
            &self.receipts,
            &self.availability,
        ]
    }
}

/// `[kafka]`: the cluster, the group, batching, and librdkafka pass-through properties.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KafkaSection {
    /// `bootstrap.servers`.
    pub bootstrap_servers: String,
    /// Consumer group id.
    pub group_id: String,
    /// Messages per micro-batch at most.
    pub poll_max_messages: usize,
    /// Milliseconds a micro-batch waits for messages at most.
    pub poll_max_ms: u64,
    /// `session.timeout.ms`.
    pub session_timeout_ms: u64,
    /// Topic names.
    pub topics: TopicsSection,
    /// Extra librdkafka consumer properties, by their own names.
    #[serde(default)]
    pub consumer: std::collections::BTreeMap<String, String>,
    /// Extra librdkafka producer properties, by their own names.
    #[serde(default)]
    pub producer: std::collections::BTreeMap<String, String>,
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
}

impl Config {
    /// Defaults, then `file` if given, then the environment.
    pub fn load(file: Option<&Path>) -> Result<Config, ConfigError> {
        let mut fig = Figment::from(Toml::string(DEFAULT_TOML));
        if let Some(f) = file {
            if !f.exists() {
                return Err(ConfigError::Invalid(format!(
                    "config file {} does not exist",
                    f.display()
                )));
            }
            fig = fig.merge(Toml::file(f));
        }
        fig = fig.merge(Env::prefixed(ENV_PREFIX).split("__"));
        let cfg: Config = fig.extract().map_err(Box::new)?;
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
        let k = &self.kafka;
        if k.poll_max_messages == 0 {
            return bad("kafka.poll_max_messages must be > 0, got 0".into());
        }
        let t = &k.topics;
        let names = [
            ("kafka.topics.sales", &t.sales),
            ("kafka.topics.shipments", &t.shipments),
            ("kafka.topics.receipts", &t.receipts),
            ("kafka.topics.availability", &t.availability),
            ("kafka.topics.alerts", &t.alerts),
            ("kafka.topics.dead_letter", &t.dead_letter),
        ];
        for (i, (a, x)) in names.iter().enumerate() {
            if x.is_empty() {
                return bad(format!("{a} must not be empty"));
            }
            if let Some((b, _)) = names[i + 1..].iter().find(|(_, y)| y == x) {
                return bad(format!(
                    "{a} and {b} are both {x:?}: every topic must differ"
                ));
            }
        }
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_valid_and_match_code_defaults() {
        let c = Config::defaults();
        c.validate().unwrap();
        assert_eq!(c.engine_config(), EngineConfig::default());
    }

    #[test]
    fn unknown_key_is_named() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("c.toml");
        std::fs::write(&p, "[engine]\nallowed_lateness_sec = 5\n").unwrap();
        let e = Config::load(Some(&p)).unwrap_err().to_string();
        assert!(e.contains("allowed_lateness_sec"), "{e}");
    }

    #[test]
    fn cross_field_error_names_both_fields() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("c.toml");
        std::fs::write(&p, "[engine]\ndedupe_ttl_secs = 10\n").unwrap();
        let e = Config::load(Some(&p)).unwrap_err().to_string();
        assert!(
            e.contains("engine.dedupe_ttl_secs") && e.contains("engine.allowed_lateness_secs"),
            "{e}"
        );
    }

    #[test]
    fn wrong_type_is_named() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("c.toml");
        std::fs::write(&p, "[alerts]\nraise_threshold = \"high\"\n").unwrap();
        let e = Config::load(Some(&p)).unwrap_err().to_string();
        assert!(e.contains("raise_threshold"), "{e}");
    }
}
