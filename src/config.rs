//! Configuration: one typed tree, layered as `config/default.toml` (embedded in the binary), then
//! an optional file, then `STOCKWATCH__SECTION__KEY` environment variables. Unknown keys are
//! rejected and every error names the field (and the bad value, unless it is a secret).
//!
//! The one secret, the SASL password, is never part of that tree's layers: it comes only from
//! [`SASL_PASSWORD_ENV`] or from the file named by `kafka.security.sasl_password_file`, and is
//! held in a [`Secret`], which prints as `"***"`. A config file that names it is refused.

use std::collections::BTreeMap;
use std::fmt;
use std::net::{IpAddr, SocketAddr};
use std::path::Path;
use std::sync::OnceLock;
use std::time::Duration;

use figment::providers::{Format, Toml};
use figment::value::{Dict, Map, Value};
use figment::{Figment, Metadata, Profile, Provider};
use rdkafka::config::ClientConfig;
use rdkafka::error::KafkaError;
use serde::de::{self, Deserializer, MapAccess, Visitor};
use serde::{Deserialize, Serialize, Serializer};

use crate::alert::AlertPolicy;
use crate::decode::DecodeLimits;
use crate::engine::EngineConfig;
use crate::event::{EventType, TypeSet};
use crate::model::ModelConfig;

/// The embedded defaults.
pub const DEFAULT_TOML: &str = include_str!("../config/default.toml");

/// Environment variable prefix (`STOCKWATCH__ENGINE__ALLOWED_LATENESS_SECS=600`).
pub const ENV_PREFIX: &str = "STOCKWATCH__";

/// The environment variable that may carry the SASL password (the other place is the file
/// named by `kafka.security.sasl_password_file`).
pub const SASL_PASSWORD_ENV: &str = "STOCKWATCH__KAFKA__SECURITY__SASL_PASSWORD";

/// What a secret prints as.
pub const MASK: &str = "***";

/// What an absent secret prints as in `check-config`.
pub const NOT_SET: &str = "(not set)";

/// The key path of the SASL password, refused in config files.
const SASL_PASSWORD_KEY: &str = "kafka.security.sasl_password";

/// Pass-through maps whose values stay strings when they come from the environment.
const PROPERTY_MAPS: [&str; 2] = ["kafka.consumer.", "kafka.producer."];

/// librdkafka properties that hold secrets: refused in pass-through maps (they would be printed
/// with the configuration) and masked by [`redacted`].
const SECRET_PROPERTIES: [&str; 6] = [
    "sasl.password",
    "ssl.key.password",
    "ssl.keystore.password",
    "ssl.truststore.password",
    "ssl.key.pem",
    "sasl.oauthbearer.client.secret",
];

/// librdkafka properties a pass-through map must not set, and why: typed fields own them, or
/// the service's guarantees depend on their value.
const RESERVED_PROPERTIES: [(&str, &str); 18] = [
    ("bootstrap.servers", "set kafka.bootstrap_servers instead"),
    (
        "metadata.broker.list",
        "set kafka.bootstrap_servers instead",
    ),
    ("group.id", "set kafka.group_id instead"),
    ("group.instance.id", "set service.instance_id instead"),
    ("session.timeout.ms", "set kafka.session_timeout_ms instead"),
    ("security.protocol", "set kafka.security.protocol instead"),
    (
        "sasl.mechanism",
        "set kafka.security.sasl_mechanism instead",
    ),
    (
        "sasl.mechanisms",
        "set kafka.security.sasl_mechanism instead",
    ),
    ("sasl.username", "set kafka.security.sasl_username instead"),
    (
        "ssl.ca.location",
        "set kafka.security.ssl_ca_location instead",
    ),
    (
        "partition.assignment.strategy",
        "it is fixed to `range`: partition p of every input topic must land on one instance \
         (co-partitioning, DESIGN §6)",
    ),
    (
        "enable.auto.commit",
        "it is fixed to false: offsets are committed only after the outputs are acknowledged",
    ),
    (
        "enable.auto.offset.store",
        "it is fixed to false: offsets are stored only after the outputs are acknowledged",
    ),
    (
        "isolation.level",
        "it is fixed to read_committed: records of aborted transactions must stay invisible",
    ),
    (
        "enable.idempotence",
        "it is fixed to true: retries must neither duplicate nor reorder records",
    ),
    (
        "transactional.id",
        "the service sets it itself in exactly_once delivery",
    ),
    (
        "partitioner",
        "it is fixed to murmur2_random: keyed records must land where Kafka's Java clients put \
         them, as the input contract does (DESIGN §2)",
    ),
    (
        "enable.ssl.certificate.verification",
        "TLS certificates are always verified; set kafka.security.ssl_ca_location for a \
         private CA",
    ),
];

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
/// It cannot be deserialized, so no config layer can carry one.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    /// Wraps a secret.
    pub fn new(value: impl Into<String>) -> Self {
        Self(value.into())
    }

    /// The value itself, for the one place that needs it (the Kafka client configuration).
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(MASK)
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(MASK)
    }
}

impl Serialize for Secret {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(MASK)
    }
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
    /// Inventory counts (contract v2).
    pub inventory_counts: String,
    /// Stock adjustments (contract v2).
    pub adjustments: String,
    /// Alerts out.
    pub alerts: String,
    /// Early alerts out (`alerts.early`): provisional, scored on arrival, before the watermark.
    pub early_alerts: String,
    /// Rejected records out, with their reason.
    pub dead_letter: String,
    /// The state changelog (compacted, one partition per input partition number).
    pub changelog: String,
}

/// The most input topics there can be: one per event type.
pub const MAX_INPUTS: usize = EventType::COUNT;

impl TopicsSection {
    /// The topic of each event type, in [`EventType`] code order.
    pub fn by_type(&self) -> [&str; EventType::COUNT] {
        [
            &self.sales,
            &self.shipments,
            &self.receipts,
            &self.availability,
            &self.inventory_counts,
            &self.adjustments,
        ]
    }

    /// The input topics, each once, in the code order of the first type they carry (types may
    /// share a topic). An input's index is its position here.
    pub fn inputs(&self) -> Vec<&str> {
        let mut out: Vec<&str> = Vec::with_capacity(MAX_INPUTS);
        for t in self.by_type() {
            if !out.contains(&t) {
                out.push(t);
            }
        }
        out
    }

    /// The event types each input topic may carry ([`TopicsSection::inputs`] order): the
    /// explicit topic ↔ type rule; a record of another type is refused.
    pub fn input_types(&self) -> Vec<TypeSet> {
        let by_type = self.by_type();
        self.inputs()
            .into_iter()
            .map(|topic| {
                EventType::ALL
                    .into_iter()
                    .zip(by_type)
                    .filter(|(_, t)| *t == topic)
                    .fold(TypeSet::default(), |set, (ty, _)| set.with(ty))
            })
            .collect()
    }
}

/// `kafka.security.protocol`: librdkafka's `security.protocol`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SecurityProtocol {
    /// No encryption, no authentication.
    Plaintext,
    /// TLS.
    Ssl,
    /// SASL authentication without encryption.
    SaslPlaintext,
    /// SASL authentication over TLS.
    SaslSsl,
}

impl SecurityProtocol {
    /// The config and librdkafka spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Plaintext => "plaintext",
            Self::Ssl => "ssl",
            Self::SaslPlaintext => "sasl_plaintext",
            Self::SaslSsl => "sasl_ssl",
        }
    }

    /// Authenticates with SASL (needs a username and a password).
    pub fn uses_sasl(self) -> bool {
        matches!(self, Self::SaslPlaintext | Self::SaslSsl)
    }

    /// Encrypts with TLS.
    pub fn uses_tls(self) -> bool {
        matches!(self, Self::Ssl | Self::SaslSsl)
    }
}

/// `kafka.security.sasl_mechanism`: the username/password mechanisms librdkafka supports.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum SaslMechanism {
    /// `PLAIN`: the password itself goes to the broker (use it over TLS only).
    #[serde(rename = "PLAIN")]
    Plain,
    /// `SCRAM-SHA-256`.
    #[serde(rename = "SCRAM-SHA-256")]
    ScramSha256,
    /// `SCRAM-SHA-512`.
    #[serde(rename = "SCRAM-SHA-512")]
    ScramSha512,
}

impl SaslMechanism {
    /// The config and librdkafka spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Plain => "PLAIN",
            Self::ScramSha256 => "SCRAM-SHA-256",
            Self::ScramSha512 => "SCRAM-SHA-512",
        }
    }

    /// The librdkafka `builtin.features` entry this mechanism needs.
    fn feature(self) -> &'static str {
        match self {
            Self::Plain => "sasl_plain",
            Self::ScramSha256 | Self::ScramSha512 => "sasl_scram",
        }
    }
}

/// `[kafka.security]`: encryption and authentication towards the brokers.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SecuritySection {
    /// `security.protocol`.
    pub protocol: SecurityProtocol,
    /// `sasl.mechanism`, for the `sasl_*` protocols.
    pub sasl_mechanism: SaslMechanism,
    /// `sasl.username`, for the `sasl_*` protocols.
    pub sasl_username: String,
    /// `ssl.ca.location`: CA certificate(s) to verify the brokers with; empty for the system's.
    pub ssl_ca_location: String,
    /// A file holding the SASL password (trailing newline ignored); empty for none.
    pub sasl_password_file: String,
    /// Allow an unencrypted protocol to a broker that is not on this machine.
    pub allow_plaintext_non_loopback: bool,
    /// The SASL password, read by [`Config::load`] from [`SASL_PASSWORD_ENV`] or from
    /// `sasl_password_file`; never from a config layer, never printed.
    #[serde(skip)]
    pub sasl_password: Option<Secret>,
}

impl SecuritySection {
    /// Sets `security.protocol` and, as the protocol needs them, the SASL and TLS properties.
    pub fn apply_to(&self, c: &mut ClientConfig) {
        c.set("security.protocol", self.protocol.as_str());
        if self.protocol.uses_sasl() {
            c.set("sasl.mechanism", self.sasl_mechanism.as_str());
            c.set("sasl.username", &self.sasl_username);
            if let Some(p) = &self.sasl_password {
                c.set("sasl.password", p.expose());
            }
        }
        if self.protocol.uses_tls() {
            // librdkafka's defaults since 2.0, set anyway: they must not depend on the
            // version, and the pass-through maps cannot turn them off (`check_properties`).
            c.set("enable.ssl.certificate.verification", "true")
                .set("ssl.endpoint.identification.algorithm", "https");
            if !self.ssl_ca_location.is_empty() {
                c.set("ssl.ca.location", &self.ssl_ca_location);
            }
        }
    }

    /// Where the SASL password came from, for `check-config`; `None` if there is none.
    pub fn sasl_password_source(&self) -> Option<String> {
        self.sasl_password.as_ref().map(|_| {
            if self.sasl_password_file.is_empty() {
                format!("environment variable {SASL_PASSWORD_ENV}")
            } else {
                "file named by kafka.security.sasl_password_file".to_owned()
            }
        })
    }

    fn validate(&self, bootstrap_servers: &str) -> Result<(), String> {
        let proto = self.protocol.as_str();
        if self.protocol.uses_sasl() {
            if self.sasl_username.trim().is_empty() {
                return Err(format!(
                    "kafka.security.protocol = {proto:?} needs kafka.security.sasl_username, \
                     which is empty"
                ));
            }
            if self.sasl_password.is_none() {
                return Err(format!(
                    "kafka.security.protocol = {proto:?} needs a password: set the environment \
                     variable {SASL_PASSWORD_ENV} or kafka.security.sasl_password_file"
                ));
            }
        } else {
            let unused = [
                (
                    !self.sasl_username.is_empty(),
                    "kafka.security.sasl_username",
                ),
                (self.sasl_password.is_some(), "kafka.security.sasl_password"),
                (
                    !self.sasl_password_file.is_empty(),
                    "kafka.security.sasl_password_file",
                ),
            ];
            if let Some((_, field)) = unused.iter().find(|(set, _)| *set) {
                return Err(format!(
                    "{field} is set but kafka.security.protocol = {proto:?} does not use SASL \
                     (use sasl_ssl, or remove it)"
                ));
            }
        }
        if !self.ssl_ca_location.is_empty() && !self.protocol.uses_tls() {
            return Err(format!(
                "kafka.security.ssl_ca_location is set but kafka.security.protocol = {proto:?} \
                 does not use TLS (use ssl or sasl_ssl, or remove it)"
            ));
        }
        // librdkafka's special value: the system's usual CA locations.
        if self.protocol.uses_tls()
            && !self.ssl_ca_location.is_empty()
            && self.ssl_ca_location != "probe"
            && !Path::new(&self.ssl_ca_location).exists()
        {
            return Err(format!(
                "kafka.security.ssl_ca_location = {:?} does not exist",
                self.ssl_ca_location
            ));
        }
        if !self.protocol.uses_tls() && !self.allow_plaintext_non_loopback {
            if let Some(server) = first_non_loopback(bootstrap_servers) {
                return Err(format!(
                    "kafka.security.protocol = {proto:?} is unencrypted, and \
                     kafka.bootstrap_servers = {bootstrap_servers:?} has {server:?}, which is not \
                     a loopback address: use ssl or sasl_ssl, or set \
                     kafka.security.allow_plaintext_non_loopback = true"
                ));
            }
        }
        self.check_support(librdkafka_features())?;
        if self.protocol.uses_tls() {
            self.check_tls_context()?;
        }
        Ok(())
    }

    /// Whether a librdkafka with these `builtin.features` can speak `protocol` (and
    /// `sasl_mechanism`); the error names the field and the rdkafka feature to build with.
    pub fn check_support(&self, features: &str) -> Result<(), String> {
        let mechanism = self.protocol.uses_sasl().then_some(self.sasl_mechanism);
        support(features, self.protocol, mechanism)
    }

    /// Creates (and drops) a client with the TLS settings alone and no broker, so that a CA
    /// file librdkafka cannot use is reported now, naming the field, rather than when the
    /// service starts. No connection is made.
    fn check_tls_context(&self) -> Result<(), String> {
        let mut c = ClientConfig::new();
        self.apply_to(&mut c);
        // No bootstrap.servers: nothing to connect to. librdkafka wants a SASL password to be
        // set, not the real one. Silent: its "no bootstrap.servers" warning would mislead.
        if self.protocol.uses_sasl() {
            c.set("sasl.password", "unused");
        }
        c.set("log_level", "0")
            .set_log_level(rdkafka::config::RDKafkaLogLevel::Emerg);
        match c.create::<rdkafka::producer::BaseProducer>() {
            Ok(_) => Ok(()),
            Err(e) => {
                let field = if self.ssl_ca_location.is_empty() {
                    "kafka.security.protocol".to_owned()
                } else {
                    format!(
                        "kafka.security.ssl_ca_location = {:?}",
                        self.ssl_ca_location
                    )
                };
                Err(format!(
                    "{field}: librdkafka cannot set up TLS with it ({}): {e}",
                    self.protocol.as_str()
                ))
            }
        }
    }
}

/// The check behind [`SecuritySection::check_support`] and [`check_client_security`].
fn support(
    features: &str,
    protocol: SecurityProtocol,
    mechanism: Option<SaslMechanism>,
) -> Result<(), String> {
    let proto = protocol.as_str();
    let has = |f: &str| features.split(',').any(|x| x.trim() == f);
    if protocol.uses_tls() && !has("ssl") {
        return Err(format!(
            "kafka.security.protocol = {proto:?} needs TLS, which this build's librdkafka lacks \
             (builtin.features = {features:?}): build with rdkafka's `ssl` feature"
        ));
    }
    if let Some(m) = mechanism.filter(|m| !has(m.feature())) {
        return Err(format!(
            "kafka.security.protocol = {proto:?} with kafka.security.sasl_mechanism = {:?} is not \
             supported by this build's librdkafka (builtin.features = {features:?}): build with \
             rdkafka's `ssl` feature",
            m.as_str()
        ));
    }
    Ok(())
}

/// Checks a client's `security.protocol` and `sasl.mechanism` properties against the linked
/// librdkafka, before the client is created: a build without TLS or SCRAM fails with a message
/// naming `kafka.security.protocol` rather than librdkafka's. Values it does not know are left
/// to librdkafka to refuse.
pub fn check_client_security(c: &ClientConfig) -> Result<(), String> {
    check_client_security_with(c, librdkafka_features())
}

fn check_client_security_with(c: &ClientConfig, features: &str) -> Result<(), String> {
    let Some(protocol) = c.get("security.protocol").and_then(|p| {
        [
            SecurityProtocol::Plaintext,
            SecurityProtocol::Ssl,
            SecurityProtocol::SaslPlaintext,
            SecurityProtocol::SaslSsl,
        ]
        .into_iter()
        .find(|x| x.as_str().eq_ignore_ascii_case(p.trim()))
    }) else {
        return Ok(());
    };
    let mechanism = c
        .get("sasl.mechanism")
        .or_else(|| c.get("sasl.mechanisms"))
        .and_then(|m| {
            [
                SaslMechanism::Plain,
                SaslMechanism::ScramSha256,
                SaslMechanism::ScramSha512,
            ]
            .into_iter()
            .find(|x| x.as_str().eq_ignore_ascii_case(m.trim()))
        })
        .filter(|_| protocol.uses_sasl());
    support(features, protocol, mechanism)
}

/// librdkafka's `builtin.features` (e.g. `gzip,snappy,ssl,sasl,…`), read once.
pub fn librdkafka_features() -> &'static str {
    static FEATURES: OnceLock<String> = OnceLock::new();
    FEATURES.get_or_init(|| {
        ClientConfig::new()
            .create_native_config()
            .and_then(|c| c.get("builtin.features"))
            .unwrap_or_default()
    })
}

/// The first entry of a `bootstrap.servers` list whose host is not a loopback address (a name
/// other than `localhost` counts as remote: it is not resolved here).
fn first_non_loopback(servers: &str) -> Option<&str> {
    servers
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .find(|s| !is_loopback_host(host_of(s)))
}

/// The host of `[proto://]host[:port]`, without the brackets of an IPv6 literal.
fn host_of(server: &str) -> &str {
    let s = server.split_once("://").map_or(server, |(_, rest)| rest);
    if let Some(rest) = s.strip_prefix('[') {
        return rest.split_once(']').map_or(rest, |(h, _)| h);
    }
    match s.rsplit_once(':') {
        // One colon: host:port. More: a bare IPv6 address.
        Some((h, _)) if !h.contains(':') => h,
        _ => s,
    }
}

fn is_loopback_host(host: &str) -> bool {
    host.eq_ignore_ascii_case("localhost")
        || host
            .parse::<IpAddr>()
            .is_ok_and(|ip| ip.to_canonical().is_loopback())
}

/// `[kafka]`: the cluster, the group, batching, security, and librdkafka pass-through
/// properties.
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
    /// Largest value republished to the dead-letter topic; a longer record keeps its first
    /// this many bytes, with headers giving its size and checksum.
    pub dead_letter_max_value_bytes: usize,
    /// Events an instance may buffer for the watermark; beyond it, inputs ahead of their
    /// shard's slowest input are paused (backpressure, not drops).
    pub max_pending_events: usize,
    /// An input partition caught up with the broker (read up to the high watermark of the
    /// last fetch) and silent this long stops holding its shard's watermark back (as Kafka
    /// Streams' `max.task.idle.ms` with KIP-695).
    pub input_idle_ms: u64,
    /// `session.timeout.ms`.
    pub session_timeout_ms: u64,
    /// Topic names.
    pub topics: TopicsSection,
    /// Extra librdkafka consumer properties, by their own names. Nested tables are flattened
    /// with dots and numbers and booleans become strings, so `fetch.min.bytes = 1` works
    /// unquoted, and so does `STOCKWATCH__KAFKA__CONSUMER__FETCH__MIN__BYTES=1`.
    #[serde(default, deserialize_with = "de_properties")]
    pub consumer: BTreeMap<String, String>,
    /// Extra librdkafka producer properties, by their own names (as `consumer`).
    #[serde(default, deserialize_with = "de_properties")]
    pub producer: BTreeMap<String, String>,
    /// Encryption and authentication.
    pub security: SecuritySection,
}

impl KafkaSection {
    /// The service's consumer: the group over the input topics, `range` assignment
    /// (co-partitioning), offsets stored and committed by the service only, read_committed,
    /// static membership when `service.instance_id` is set; then security; then
    /// `[kafka.consumer]`.
    pub fn consumer_config(&self, service: &ServiceSection) -> ClientConfig {
        let mut c = ClientConfig::new();
        c.set("bootstrap.servers", &self.bootstrap_servers)
            .set("group.id", &self.group_id)
            .set("partition.assignment.strategy", "range")
            .set("enable.auto.commit", "false")
            .set("enable.auto.offset.store", "false")
            .set("auto.offset.reset", "earliest")
            .set("isolation.level", "read_committed")
            .set("session.timeout.ms", self.session_timeout_ms.to_string())
            // librdkafka stops fetching a partition whose local queue is over its thresholds
            // and by default looks again only after 1 s: a consumer faster than one queue a
            // second sat idle (measured on the load run: ~115 k events/s at 1000 ms, ~280 k at
            // 5 ms; docs/loadtest.md).
            .set("fetch.queue.backoff.ms", "5")
            // Consumer lag per partition comes from librdkafka's statistics.
            .set("statistics.interval.ms", "5000");
        if let (Some(id), true) = (service.instance_id(), service.static_membership) {
            c.set("group.instance.id", id);
        }
        self.security.apply_to(&mut c);
        for (k, v) in &self.consumer {
            c.set(k, v);
        }
        c
    }

    /// The service's producer (alerts, dead letters): idempotent, partitioned as Kafka's Java
    /// clients do, lz4, 5 ms linger; then security; then `[kafka.producer]`.
    pub fn producer_config(&self) -> ClientConfig {
        let mut c = ClientConfig::new();
        c.set("bootstrap.servers", &self.bootstrap_servers)
            .set("enable.idempotence", "true")
            .set("partitioner", "murmur2_random")
            .set("compression.type", "lz4")
            .set("linger.ms", "5");
        self.security.apply_to(&mut c);
        for (k, v) in &self.producer {
            c.set(k, v);
        }
        c
    }

    fn validate(&self) -> Result<(), String> {
        if self.bootstrap_servers.trim().is_empty() {
            return Err("kafka.bootstrap_servers must not be empty".into());
        }
        if self.group_id.trim().is_empty() {
            return Err("kafka.group_id must not be empty".into());
        }
        if self.poll_max_messages == 0 {
            return Err("kafka.poll_max_messages must be > 0, got 0".into());
        }
        if self.dead_letter_max_value_bytes == 0 {
            return Err("kafka.dead_letter_max_value_bytes must be > 0, got 0".into());
        }
        if self.max_pending_events < self.poll_max_messages {
            return Err(format!(
                "kafka.max_pending_events = {} must be >= kafka.poll_max_messages = {}",
                self.max_pending_events, self.poll_max_messages
            ));
        }
        if self.session_timeout_ms == 0 {
            return Err("kafka.session_timeout_ms must be > 0, got 0".into());
        }
        let t = &self.topics;
        let names = [
            ("kafka.topics.sales", &t.sales),
            ("kafka.topics.shipments", &t.shipments),
            ("kafka.topics.receipts", &t.receipts),
            ("kafka.topics.availability", &t.availability),
            ("kafka.topics.inventory_counts", &t.inventory_counts),
            ("kafka.topics.adjustments", &t.adjustments),
            ("kafka.topics.alerts", &t.alerts),
            ("kafka.topics.early_alerts", &t.early_alerts),
            ("kafka.topics.dead_letter", &t.dead_letter),
            ("kafka.topics.changelog", &t.changelog),
        ];
        for (i, (a, x)) in names.iter().enumerate() {
            if x.is_empty() {
                return Err(format!("{a} must not be empty"));
            }
            // Kafka's own rule for topic names.
            let legal = |c: char| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-');
            if x.len() > 249 || !x.chars().all(legal) || x.as_str() == "." || x.as_str() == ".." {
                return Err(format!(
                    "{a} = {x:?} is not a Kafka topic name (1-249 of a-z A-Z 0-9 . _ -)"
                ));
            }
            // Input types may share a topic (its allowed types are theirs); any other topic
            // must be a topic of its own.
            let inputs = EventType::COUNT;
            if let Some((_, (b, _))) = names
                .iter()
                .enumerate()
                .skip(i + 1)
                .find(|(j, (_, y))| y == x && !(i < inputs && *j < inputs))
            {
                return Err(format!(
                    "{a} and {b} are both {x:?}: input topics may be shared by event types, \
                     every other topic must differ"
                ));
            }
        }
        self.security.validate(&self.bootstrap_servers)?;
        check_properties("kafka.consumer", &self.consumer)?;
        check_properties("kafka.producer", &self.producer)
    }
}

/// Refuses secrets and reserved properties in a pass-through map, then lets librdkafka check
/// the names and values of the rest.
fn check_properties(map: &str, props: &BTreeMap<String, String>) -> Result<(), String> {
    for (key, value) in props {
        let k = key.trim().to_ascii_lowercase();
        if SECRET_PROPERTIES.contains(&k.as_str()) {
            return Err(secret_property_error(map, key));
        }
        // Setting them to what the service sets anyway is harmless; anything else would turn
        // verification off (librdkafka reads these values case-insensitively: "NONE" too).
        let value = value.trim();
        if k == "ssl.endpoint.identification.algorithm" {
            if value.eq_ignore_ascii_case("https") {
                continue;
            }
            return Err(format!(
                "{map}.{key:?} = {value:?} is not allowed: broker host names are always \
                 verified against their certificates (https)"
            ));
        }
        if k == "enable.ssl.certificate.verification" && value.eq_ignore_ascii_case("true") {
            continue;
        }
        if let Some((_, why)) = RESERVED_PROPERTIES.iter().find(|(p, _)| *p == k) {
            return Err(format!("{map}.{key:?} is not allowed: {why}"));
        }
        if k.starts_with("sasl.") {
            return Err(format!(
                "{map}.{key:?} is not allowed: SASL is configured by [kafka.security] \
                 (PLAIN and SCRAM; the password from {SASL_PASSWORD_ENV} or \
                 kafka.security.sasl_password_file)"
            ));
        }
    }
    let mut c = ClientConfig::new();
    for (k, v) in props {
        c.set(k, v);
    }
    match c.create_native_config() {
        Ok(_) => Ok(()),
        Err(KafkaError::ClientConfig(_, desc, key, value)) => Err(format!(
            "{map}.{key:?} = {value:?} is rejected by librdkafka: {desc}"
        )),
        Err(e) => Err(format!("{map}: librdkafka rejects the properties: {e}")),
    }
}

fn secret_property_error(map: &str, key: &str) -> String {
    format!(
        "{map}.{key:?} is a secret and must not be in the configuration: the only secret \
         accepted is the SASL password, from the environment variable {SASL_PASSWORD_ENV} or \
         the file named by kafka.security.sasl_password_file"
    )
}

/// librdkafka properties with the values of secrets replaced by [`MASK`], for logs and
/// `check-config`. (`ClientConfig`'s own `Debug` drops them; this keeps the keys visible.)
pub fn redacted(c: &ClientConfig) -> BTreeMap<String, String> {
    c.config_map()
        .into_iter()
        .map(|(k, v)| {
            let v = if SECRET_PROPERTIES.contains(&k) || c.get(k) != Some(v) {
                MASK
            } else {
                v
            };
            (k.to_owned(), v.to_owned())
        })
        .collect()
}

/// Deserializes a pass-through property map: nested tables flatten to dotted names, numbers
/// and booleans become strings.
fn de_properties<'de, D: Deserializer<'de>>(d: D) -> Result<BTreeMap<String, String>, D::Error> {
    enum Prop {
        Leaf(String),
        Table(BTreeMap<String, Prop>),
    }
    struct PropVisitor;
    impl<'de> Visitor<'de> for PropVisitor {
        type Value = Prop;
        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("a string, number or boolean")
        }
        fn visit_str<E: de::Error>(self, v: &str) -> Result<Prop, E> {
            Ok(Prop::Leaf(v.to_owned()))
        }
        fn visit_bool<E: de::Error>(self, v: bool) -> Result<Prop, E> {
            Ok(Prop::Leaf(v.to_string()))
        }
        fn visit_i64<E: de::Error>(self, v: i64) -> Result<Prop, E> {
            Ok(Prop::Leaf(v.to_string()))
        }
        fn visit_u64<E: de::Error>(self, v: u64) -> Result<Prop, E> {
            Ok(Prop::Leaf(v.to_string()))
        }
        fn visit_f64<E: de::Error>(self, v: f64) -> Result<Prop, E> {
            Ok(Prop::Leaf(v.to_string()))
        }
        fn visit_map<A: MapAccess<'de>>(self, mut m: A) -> Result<Prop, A::Error> {
            let mut t = BTreeMap::new();
            while let Some((k, v)) = m.next_entry::<String, Prop>()? {
                t.insert(k, v);
            }
            Ok(Prop::Table(t))
        }
    }
    impl<'de> Deserialize<'de> for Prop {
        fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Prop, D::Error> {
            d.deserialize_any(PropVisitor)
        }
    }
    fn flatten<E: de::Error>(
        prefix: &str,
        t: BTreeMap<String, Prop>,
        out: &mut BTreeMap<String, String>,
    ) -> Result<(), E> {
        for (k, v) in t {
            let name = if prefix.is_empty() {
                k
            } else {
                format!("{prefix}.{k}")
            };
            match v {
                Prop::Leaf(s) => {
                    if out.insert(name.clone(), s).is_some() {
                        return Err(E::custom(format!("property {name:?} is set twice")));
                    }
                }
                Prop::Table(t) => flatten(&name, t, out)?,
            }
        }
        Ok(())
    }
    let top = BTreeMap::<String, Prop>::deserialize(d)?;
    let mut out = BTreeMap::new();
    flatten::<D::Error>("", top, &mut out)?;
    Ok(out)
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
}

impl HttpSection {
    /// `request_timeout_ms`.
    pub fn request_timeout(&self) -> Duration {
        Duration::from_millis(self.request_timeout_ms)
    }

    fn validate(&self) -> Result<(), String> {
        if !self.allow_non_loopback && !self.listen.ip().to_canonical().is_loopback() {
            return Err(format!(
                "http.listen = \"{}\" is not a loopback address: metrics and state would be \
                 reachable from other machines; set http.allow_non_loopback = true to allow it",
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

/// One environment variable as a figment layer, so an error names the variable.
struct EnvVar {
    name: String,
    key: String,
    value: Value,
}

impl Provider for EnvVar {
    fn metadata(&self) -> Metadata {
        Metadata::named(format!("environment variable {}", self.name))
            .interpolater(|_, keys| keys.join("."))
    }

    fn data(&self) -> Result<Map<Profile, Dict>, figment::Error> {
        let dict = figment::util::nest(&self.key, self.value.clone())
            .into_dict()
            .unwrap_or_default();
        Ok(Profile::Default.collect(dict))
    }
}

impl Config {
    /// Defaults, then `file` if given, then the environment.
    pub fn load(file: Option<&Path>) -> Result<Config, ConfigError> {
        let mut vars = Vec::new();
        for (k, v) in std::env::vars_os() {
            let Some(k) = k.to_str() else { continue };
            if !starts_with_ignore_case(k, ENV_PREFIX) {
                continue;
            }
            let v = v.into_string().map_err(|_| {
                ConfigError::Invalid(format!("environment variable {k} is not valid UTF-8"))
            })?;
            vars.push((k.to_owned(), v));
        }
        Self::load_with_env(file, vars)
    }

    /// [`Config::load`] with the given environment instead of the process's (variables without
    /// the [`ENV_PREFIX`] are ignored).
    pub fn load_with_env<I>(file: Option<&Path>, vars: I) -> Result<Config, ConfigError>
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
        let mut vars: Vec<(String, String)> = vars
            .into_iter()
            .filter(|(k, _)| starts_with_ignore_case(k, ENV_PREFIX))
            .collect();
        vars.sort();
        let mut password = None;
        for (name, raw) in vars {
            if name.eq_ignore_ascii_case(SASL_PASSWORD_ENV) {
                password = Some(raw);
                continue;
            }
            let key = name[ENV_PREFIX.len()..]
                .split("__")
                .collect::<Vec<_>>()
                .join(".")
                .to_ascii_lowercase();
            if key.split('.').any(|s| s.trim().is_empty()) {
                continue;
            }
            // The defaults' type decides: a string key keeps the raw text ("007" stays
            // "007", "0" is a valid instance id); anything else is parsed (600, true, ...).
            let raw_string = PROPERTY_MAPS.iter().any(|p| key.starts_with(p))
                || matches!(defaults.find_value(&key), Ok(Value::String(..)));
            let value = if raw_string {
                Value::from(raw)
            } else {
                raw.parse::<Value>().unwrap_or_else(|e| match e {})
            };
            fig = fig.merge(EnvVar { name, key, value });
        }
        let mut cfg: Config = fig.extract().map_err(Box::new)?;
        cfg.kafka.security.sasl_password = read_sasl_password(&cfg.kafka.security, password)?;
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

fn starts_with_ignore_case(s: &str, prefix: &str) -> bool {
    s.len() >= prefix.len()
        && s.is_char_boundary(prefix.len())
        && s[..prefix.len()].eq_ignore_ascii_case(prefix)
}

/// A key of a TOML text that names a secret (`sasl_password`, or a secret librdkafka
/// property), found line by line without parsing.
fn secret_key_in_toml(text: &str) -> Option<&'static str> {
    for line in text.lines() {
        let Some((key, _)) = line.split_once('=') else {
            continue;
        };
        let key: String = key
            .chars()
            .filter(|c| !matches!(c, '"' | '\'' | ' ' | '\t'))
            .collect::<String>()
            .to_ascii_lowercase();
        if key.starts_with('#') {
            continue;
        }
        let names = |k: &str| key == k || key.ends_with(&format!(".{k}"));
        if names("sasl_password") {
            return Some(SASL_PASSWORD_KEY);
        }
        if let Some(p) = SECRET_PROPERTIES.iter().find(|p| names(p)) {
            return Some(p);
        }
    }
    None
}

fn secret_in_file_error(key: &str, file: &Path) -> String {
    if key == SASL_PASSWORD_KEY {
        format!(
            "{key} must not be in a config file ({}): it is a secret. Put it in the environment \
             variable {SASL_PASSWORD_ENV}, or in a file named by kafka.security.sasl_password_file",
            file.display()
        )
    } else {
        format!(
            "{key:?} must not be in a config file ({}): it is a secret, and the only secret \
             accepted is the SASL password, from the environment variable {SASL_PASSWORD_ENV} or \
             the file named by kafka.security.sasl_password_file",
            file.display()
        )
    }
}

/// The SASL password from the environment or from `sasl_password_file` (not both).
fn read_sasl_password(
    sec: &SecuritySection,
    from_env: Option<String>,
) -> Result<Option<Secret>, ConfigError> {
    let bad = |m: String| Err(ConfigError::Invalid(m));
    match (from_env, sec.sasl_password_file.as_str()) {
        (Some(_), f) if !f.is_empty() => bad(format!(
            "the SASL password is given twice, by {SASL_PASSWORD_ENV} and by \
             kafka.security.sasl_password_file = {f:?}: keep one"
        )),
        (Some(p), _) if p.is_empty() => bad(format!("{SASL_PASSWORD_ENV} is set but empty")),
        (Some(p), _) => Ok(Some(Secret::new(p))),
        (None, "") => Ok(None),
        (None, f) => {
            let text = std::fs::read_to_string(f).map_err(|e| {
                ConfigError::Invalid(format!(
                    "kafka.security.sasl_password_file = {f:?} cannot be read: {e}"
                ))
            })?;
            let p = text
                .strip_suffix('\n')
                .map_or(text.as_str(), |t| t.strip_suffix('\r').unwrap_or(t));
            if p.is_empty() {
                return bad(format!(
                    "kafka.security.sasl_password_file = {f:?} is empty"
                ));
            }
            Ok(Some(Secret::new(p)))
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

    const CANARY: &str = "canary-Zq7-do-not-print";

    fn env(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    /// Loads `toml` as a config file with the given environment.
    fn load(toml: &str, vars: &[(&str, &str)]) -> Result<Config, ConfigError> {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("c.toml");
        std::fs::write(&p, toml).unwrap();
        Config::load_with_env(Some(&p), env(vars))
    }

    fn load_err(toml: &str, vars: &[(&str, &str)]) -> String {
        let e = load(toml, vars).unwrap_err().to_string();
        assert!(!e.contains(CANARY), "secret in error: {e}");
        e
    }

    fn assert_names(e: &str, parts: &[&str]) {
        for p in parts {
            assert!(e.contains(p), "{p:?} not in: {e}");
        }
    }

    const SASL: &str = "[kafka.security]\nprotocol = \"sasl_plaintext\"\n\
                        sasl_mechanism = \"PLAIN\"\nsasl_username = \"svc\"\n";

    #[test]
    fn defaults_round_trip_through_toml() {
        let d = Config::defaults();
        let text = d.to_toml().unwrap();
        assert_eq!(toml::from_str::<Config>(&text).unwrap(), d);
        assert_eq!(load(&text, &[]).unwrap(), d);
        assert_eq!(Config::load_with_env(None, Vec::new()).unwrap(), d);
    }

    #[test]
    fn env_overrides_keep_string_keys_raw() {
        let c = Config::load_with_env(
            None,
            env(&[
                ("STOCKWATCH__ENGINE__ALLOWED_LATENESS_SECS", "600"),
                ("STOCKWATCH__KAFKA__TOPICS__ALERTS", "x"),
                ("STOCKWATCH__SERVICE__INSTANCE_ID", "007"),
                ("stockwatch__log__level", "warn"),
                ("STOCKWATCH__KAFKA__CONSUMER__FETCH__MIN__BYTES", "1"),
                ("OTHER__ENGINE__ALLOWED_LATENESS_SECS", "not even a number"),
            ]),
        )
        .unwrap();
        assert_eq!(c.engine.allowed_lateness_secs, 600);
        assert_eq!(c.kafka.topics.alerts, "x");
        assert_eq!(c.service.instance_id(), Some("007"));
        assert_eq!(c.log.level, "warn");
        assert_eq!(c.kafka.consumer["fetch.min.bytes"], "1");
    }

    #[test]
    fn env_error_names_the_variable() {
        let e = Config::load_with_env(
            None,
            env(&[("STOCKWATCH__ENGINE__ALLOWED_LATENESS_SECS", "soon")]),
        )
        .unwrap_err()
        .to_string();
        assert_names(
            &e,
            &[
                "engine.allowed_lateness_secs",
                "\"soon\"",
                "STOCKWATCH__ENGINE__ALLOWED_LATENESS_SECS",
            ],
        );
    }

    #[test]
    fn client_configs_have_the_fixed_properties_then_pass_through() {
        let c = load(
            "[service]\ninstance_id = \"pod-0\"\n[kafka.consumer]\n\
             auto.offset.reset = \"latest\"\n\"fetch.min.bytes\" = 1\n\
             [kafka.producer]\nlinger.ms = 20\n",
            &[],
        )
        .unwrap();
        let k = &c.kafka;
        let cc = k.consumer_config(&c.service);
        for (p, v) in [
            ("bootstrap.servers", "127.0.0.1:9092"),
            ("group.id", "stockwatch"),
            ("group.instance.id", "pod-0"),
            ("partition.assignment.strategy", "range"),
            ("enable.auto.commit", "false"),
            ("enable.auto.offset.store", "false"),
            ("isolation.level", "read_committed"),
            ("session.timeout.ms", "10000"),
            ("security.protocol", "plaintext"),
            ("auto.offset.reset", "latest"),
            ("fetch.min.bytes", "1"),
        ] {
            assert_eq!(cc.get(p), Some(v), "{p}");
        }
        let pc = k.producer_config();
        for (p, v) in [
            ("enable.idempotence", "true"),
            ("partitioner", "murmur2_random"),
            ("compression.type", "lz4"),
            ("linger.ms", "20"),
        ] {
            assert_eq!(pc.get(p), Some(v), "{p}");
        }
        assert_eq!(pc.get("group.id"), None);
        let plain = Config::defaults();
        let cc = plain.kafka.consumer_config(&plain.service);
        assert_eq!(cc.get("group.instance.id"), None);
        assert_eq!(cc.get("sasl.username"), None);
    }

    #[test]
    fn sasl_password_from_env_is_used_and_never_shown() {
        let c = load(SASL, &[(SASL_PASSWORD_ENV, CANARY)]).unwrap();
        let cc = c.kafka.consumer_config(&c.service);
        let pc = c.kafka.producer_config();
        assert_eq!(cc.get("sasl.password"), Some(CANARY));
        assert_eq!(pc.get("sasl.password"), Some(CANARY));
        assert_eq!(cc.get("sasl.mechanism"), Some("PLAIN"));
        assert_eq!(cc.get("sasl.username"), Some("svc"));
        let shown = [
            format!("{c:?}"),
            format!("{c:#?}"),
            format!("{cc:?}"),
            format!("{:?}", redacted(&cc)),
            format!("{:?}", redacted(&pc)),
            c.to_toml().unwrap(),
            serde_json::to_string(&c).unwrap(),
        ];
        for s in shown {
            assert!(!s.contains(CANARY), "secret shown: {s}");
        }
        assert_eq!(redacted(&cc)["sasl.password"], MASK);
        let secret = c.kafka.security.sasl_password.as_ref().unwrap();
        assert_eq!(format!("{secret} {secret:?}"), "*** ***");
        assert_eq!(serde_json::to_string(secret).unwrap(), "\"***\"");
        assert_eq!(
            c.kafka.security.sasl_password_source().unwrap(),
            format!("environment variable {SASL_PASSWORD_ENV}")
        );
    }

    #[test]
    fn sasl_password_from_file_drops_one_trailing_newline() {
        let dir = tempfile::tempdir().unwrap();
        for (content, want) in [
            (format!("{CANARY}\n"), CANARY.to_owned()),
            (format!("{CANARY}\r\n"), CANARY.to_owned()),
            (format!(" {CANARY} \n\n"), format!(" {CANARY} \n")),
        ] {
            let pw = dir.path().join("pw");
            std::fs::write(&pw, content).unwrap();
            let c = load(
                &format!("{SASL}sasl_password_file = {:?}\n", pw.to_str().unwrap()),
                &[],
            )
            .unwrap();
            let secret = c.kafka.security.sasl_password.as_ref().unwrap();
            assert_eq!(secret.expose(), want);
            assert!(!format!("{c:?}").contains(CANARY));
        }
    }

    #[test]
    fn sasl_password_errors_name_the_field_and_hide_the_value() {
        let dir = tempfile::tempdir().unwrap();
        let pw = dir.path().join("pw");
        std::fs::write(&pw, CANARY).unwrap();
        let with_file = format!("{SASL}sasl_password_file = {:?}\n", pw.to_str().unwrap());
        let e = load_err(&with_file, &[(SASL_PASSWORD_ENV, CANARY)]);
        assert_names(
            &e,
            &[SASL_PASSWORD_ENV, "kafka.security.sasl_password_file"],
        );
        let missing = format!("{SASL}sasl_password_file = \"/nonexistent/pw\"\n");
        assert_names(
            &load_err(&missing, &[]),
            &["sasl_password_file", "/nonexistent/pw"],
        );
        let e = load_err("", &[(SASL_PASSWORD_ENV, CANARY)]);
        assert_names(
            &e,
            &["kafka.security.sasl_password", "kafka.security.protocol"],
        );
        let e = load_err(SASL, &[]);
        assert_names(&e, &[SASL_PASSWORD_ENV, "sasl_password_file"]);
        let no_user = SASL.replace("sasl_username = \"svc\"", "");
        let e = load_err(&no_user, &[(SASL_PASSWORD_ENV, CANARY)]);
        assert_names(&e, &["kafka.security.sasl_username"]);
    }

    #[test]
    fn sasl_password_in_a_config_file_is_refused() {
        for file in [
            format!("[kafka.security]\nsasl_password = \"{CANARY}\"\n"),
            // A syntax error must not quote the line.
            format!("[kafka.security]\nsasl_password = {CANARY}\n"),
            format!("[kafka]\nsecurity.sasl_password = \"{CANARY}\"\n"),
            format!("[kafka]\nsecurity = {{ sasl_password = \"{CANARY}\" }}\n"),
        ] {
            let e = load_err(&file, &[]);
            assert_names(
                &e,
                &[
                    "kafka.security.sasl_password",
                    SASL_PASSWORD_ENV,
                    "kafka.security.sasl_password_file",
                ],
            );
        }
        let e = load_err(
            &format!("[kafka.producer]\n\"ssl.key.password\" = \"{CANARY}\"\n"),
            &[],
        );
        assert_names(&e, &["ssl.key.password"]);
        let e = load_err(
            "",
            &[("STOCKWATCH__KAFKA__CONSUMER__SASL__PASSWORD", CANARY)],
        );
        assert_names(&e, &["kafka.consumer", "sasl.password"]);
    }

    #[test]
    fn plaintext_to_a_remote_broker_needs_the_allow_flag() {
        for servers in ["10.1.2.3:9092", "127.0.0.1:9092,kafka.example:9092"] {
            let f = format!("[kafka]\nbootstrap_servers = {servers:?}\n");
            let e = load_err(&f, &[]);
            assert_names(
                &e,
                &[
                    "kafka.bootstrap_servers",
                    "kafka.security.allow_plaintext_non_loopback",
                    servers.split(',').next_back().unwrap(),
                ],
            );
            let allowed = format!("{f}[kafka.security]\nallow_plaintext_non_loopback = true\n");
            load(&allowed, &[]).unwrap();
        }
        let sasl_remote = format!("{SASL}[kafka]\nbootstrap_servers = \"10.1.2.3:9092\"\n");
        let e = load_err(&sasl_remote, &[(SASL_PASSWORD_ENV, CANARY)]);
        assert_names(&e, &["\"sasl_plaintext\"", "allow_plaintext_non_loopback"]);
        let local = "localhost:9092, 127.0.0.2:1,[::1]:9092,PLAINTEXT://127.0.0.1:9,::1";
        load(&format!("[kafka]\nbootstrap_servers = {local:?}\n"), &[]).unwrap();
    }

    #[test]
    fn bootstrap_hosts_are_parsed() {
        assert_eq!(host_of("10.1.2.3:9092"), "10.1.2.3");
        assert_eq!(host_of("[::1]:9092"), "::1");
        assert_eq!(host_of("::1"), "::1");
        assert_eq!(host_of("SASL_SSL://broker-1:9093"), "broker-1");
        assert_eq!(host_of("broker"), "broker");
        assert!(is_loopback_host("::ffff:127.0.0.1"));
        assert!(!is_loopback_host("0.0.0.0"));
        assert_eq!(
            first_non_loopback("127.0.0.1:1, 10.0.0.1:2"),
            Some("10.0.0.1:2")
        );
    }

    #[test]
    fn pass_through_properties_are_checked() {
        for (file, parts) in [
            (
                "[kafka.consumer]\n\"group.id\" = \"x\"\n",
                &["kafka.consumer", "\"group.id\"", "kafka.group_id"][..],
            ),
            (
                "[kafka.producer]\nbootstrap.servers = \"x:1\"\n",
                &[
                    "kafka.producer",
                    "bootstrap.servers",
                    "kafka.bootstrap_servers",
                ],
            ),
            (
                "[kafka.consumer]\npartition.assignment.strategy = \"roundrobin\"\n",
                &["partition.assignment.strategy", "range"],
            ),
            (
                "[kafka.consumer]\nfetch.min.byte = 1\n",
                &["kafka.consumer", "fetch.min.byte"],
            ),
            (
                "[kafka.consumer]\n\"fetch.min.bytes\" = \"lots\"\n",
                &["fetch.min.bytes", "lots"],
            ),
            (
                "[kafka.consumer]\nssl.endpoint.identification.algorithm = \"none\"\n",
                &["ssl.endpoint.identification.algorithm"],
            ),
            (
                "[kafka.consumer]\nfetch.min.bytes = [1]\n",
                &["kafka.consumer", "sequence"],
            ),
        ] {
            assert_names(&load_err(file, &[]), parts);
        }
    }

    #[test]
    fn http_section_is_checked() {
        let e = load_err("[http]\nlisten = \"localhost:9464\"\n", &[]);
        assert_names(&e, &["http.listen", "\"localhost:9464\""]);
        let e = load_err("[http]\nlisten = \"0.0.0.0:9464\"\n", &[]);
        assert_names(
            &e,
            &["http.listen", "0.0.0.0:9464", "http.allow_non_loopback"],
        );
        let c = load(
            "[http]\nlisten = \"0.0.0.0:9464\"\nallow_non_loopback = true\n",
            &[],
        )
        .unwrap();
        assert_eq!(c.http.listen.port(), 9464);
        load("[http]\nlisten = \"[::1]:0\"\n", &[]).unwrap();
        let e = load_err("[http]\nmax_concurrent_requests = 0\n", &[]);
        assert_names(&e, &["http.max_concurrent_requests"]);
        assert_eq!(
            Config::defaults().http.request_timeout(),
            Duration::from_secs(10)
        );
    }

    #[test]
    fn service_and_log_sections_are_checked() {
        let e = load_err("[service]\ndelivery = \"exactly_twice\"\n", &[]);
        assert_names(&e, &["service.delivery", "exactly_twice", "at_least_once"]);
        let c = load("[service]\ndelivery = \"exactly_once\"\n", &[]).unwrap();
        assert_eq!(c.service.delivery, Delivery::ExactlyOnce);
        assert_eq!(c.service.shutdown_deadline(), Duration::from_secs(30));
        let e = load_err("[service]\ninstance_id = \"pod 0\"\n", &[]);
        assert_names(&e, &["service.instance_id", "pod 0"]);
        let e = load_err("[log]\nformat = \"xml\"\n", &[]);
        assert_names(&e, &["log.format", "xml"]);
        for bad in ["infoo", "info,stockwatch=loud", ""] {
            let e = load_err(&format!("[log]\nlevel = {bad:?}\n"), &[]);
            assert_names(&e, &["log.level"]);
        }
        for good in ["debug", "info,stockwatch=debug,rdkafka=warn", "OFF"] {
            let c = load(
                &format!("[log]\nlevel = {good:?}\nformat = \"json\"\n"),
                &[],
            )
            .unwrap();
            c.log.env_filter().unwrap();
            assert_eq!(c.log.format, LogFormat::Json);
        }
    }

    #[test]
    fn tls_needs_a_librdkafka_with_ssl() {
        let r = load("[kafka.security]\nprotocol = \"ssl\"\n", &[]);
        if librdkafka_features().split(',').any(|f| f == "ssl") {
            r.unwrap();
        } else {
            assert_names(
                &r.unwrap_err().to_string(),
                &["kafka.security.protocol", "`ssl`"],
            );
        }
        let e = load_err("[kafka.security]\nssl_ca_location = \"/etc/ca.pem\"\n", &[]);
        assert_names(
            &e,
            &["kafka.security.ssl_ca_location", "kafka.security.protocol"],
        );
    }

    /// librdkafka 2.12.1's `builtin.features` as rdkafka builds it without the `ssl` feature.
    const WITHOUT_SSL: &str = "gzip,snappy,sasl,regex,lz4,sasl_plain,plugins";

    fn test_ca() -> String {
        format!("{}/tests/fixtures/test-ca.pem", env!("CARGO_MANIFEST_DIR"))
    }

    fn sasl_ssl(ca: &str) -> String {
        format!(
            "[kafka.security]\nprotocol = \"sasl_ssl\"\nsasl_mechanism = \"SCRAM-SHA-512\"\n\
             sasl_username = \"svc\"\nssl_ca_location = {ca:?}\n"
        )
    }

    #[test]
    fn this_build_speaks_tls_and_scram() {
        let f = librdkafka_features();
        for needed in ["ssl", "sasl_scram", "sasl_plain"] {
            assert!(f.split(',').any(|x| x == needed), "{needed} not in {f}");
        }
    }

    #[test]
    fn sasl_ssl_with_scram_and_a_ca_file_reaches_librdkafka() {
        let c = load(&sasl_ssl(&test_ca()), &[(SASL_PASSWORD_ENV, CANARY)]).unwrap();
        let configs = [
            c.kafka.consumer_config(&c.service),
            c.kafka.producer_config(),
        ];
        for cc in &configs {
            // As librdkafka holds them, not only as we wrote them.
            let native = cc.create_native_config().unwrap();
            for (p, v) in [
                ("security.protocol", "sasl_ssl"),
                ("sasl.mechanisms", "SCRAM-SHA-512"),
                ("sasl.username", "svc"),
                ("ssl.ca.location", test_ca().as_str()),
                ("enable.ssl.certificate.verification", "true"),
                ("ssl.endpoint.identification.algorithm", "https"),
            ] {
                assert_eq!(native.get(p).unwrap(), v, "{p}");
            }
        }
        // Client creation loads the CA file into an OpenSSL context; no broker is contacted
        // before the first request (the clients are dropped at once).
        let consumer: rdkafka::consumer::BaseConsumer = configs[0].create().unwrap();
        let producer: rdkafka::producer::BaseProducer = configs[1].create().unwrap();
        drop((consumer, producer));
        check_client_security(&configs[0]).unwrap();
    }

    #[test]
    fn a_ca_file_librdkafka_cannot_use_names_the_field() {
        let e = load_err(
            &sasl_ssl("/nonexistent/ca.pem"),
            &[(SASL_PASSWORD_ENV, CANARY)],
        );
        assert_names(
            &e,
            &["kafka.security.ssl_ca_location", "/nonexistent/ca.pem"],
        );
        // Exists, but is no certificate: librdkafka refuses it when the client is created.
        let dir = tempfile::tempdir().unwrap();
        let junk = dir.path().join("ca.pem");
        std::fs::write(&junk, "not a certificate\n").unwrap();
        let junk = junk.to_str().unwrap();
        for (toml, vars) in [
            (sasl_ssl(junk), &[(SASL_PASSWORD_ENV, CANARY)][..]),
            (
                format!("[kafka.security]\nprotocol = \"ssl\"\nssl_ca_location = {junk:?}\n"),
                &[],
            ),
        ] {
            let e = load_err(&toml, vars);
            assert_names(&e, &["kafka.security.ssl_ca_location", junk, "TLS"]);
        }
    }

    #[test]
    fn a_librdkafka_without_tls_or_scram_is_refused_naming_the_protocol() {
        let c = load(&sasl_ssl(&test_ca()), &[(SASL_PASSWORD_ENV, CANARY)]).unwrap();
        let mut sec = c.kafka.security.clone();
        let e = sec.check_support(WITHOUT_SSL).unwrap_err();
        assert_names(&e, &["kafka.security.protocol", "\"sasl_ssl\"", "`ssl`"]);
        sec.protocol = SecurityProtocol::SaslPlaintext;
        let e = sec.check_support(WITHOUT_SSL).unwrap_err();
        assert_names(
            &e,
            &[
                "kafka.security.protocol",
                "kafka.security.sasl_mechanism",
                "SCRAM-SHA-512",
                "`ssl`",
            ],
        );
        sec.sasl_mechanism = SaslMechanism::Plain;
        sec.check_support(WITHOUT_SSL).unwrap();
        // The same check on the properties a client is created with.
        let pc = c.kafka.producer_config();
        let e = check_client_security_with(&pc, WITHOUT_SSL).unwrap_err();
        assert_names(&e, &["kafka.security.protocol", "`ssl`"]);
        let mut plain = ClientConfig::new();
        plain.set("security.protocol", "SASL_PLAINTEXT");
        plain.set("sasl.mechanisms", "SCRAM-SHA-256");
        let e = check_client_security_with(&plain, WITHOUT_SSL).unwrap_err();
        assert_names(&e, &["kafka.security.protocol", "SCRAM-SHA-256"]);
        plain.set("sasl.mechanisms", "PLAIN");
        check_client_security_with(&plain, WITHOUT_SSL).unwrap();
        check_client_security_with(&ClientConfig::new(), WITHOUT_SSL).unwrap();
    }

    #[test]
    fn pass_through_cannot_turn_tls_verification_off() {
        for (map, prop, value) in [
            ("consumer", "ssl.endpoint.identification.algorithm", "none"),
            ("producer", "ssl.endpoint.identification.algorithm", "NONE"),
            (
                "consumer",
                "ssl.endpoint.identification.algorithm",
                " None ",
            ),
            ("producer", "ssl.endpoint.identification.algorithm", ""),
            ("consumer", "enable.ssl.certificate.verification", "false"),
            ("producer", "enable.ssl.certificate.verification", "0"),
            ("consumer", "enable.ssl.certificate.verification", "f"),
            ("consumer", "sasl.oauthbearer.config", "principal=x"),
            ("producer", "sasl.kerberos.service.name", "kafka"),
        ] {
            let toml = format!("[kafka.{map}]\n{prop:?} = {value:?}\n");
            let e = load_err(&toml, &[]);
            assert_names(&e, &[&format!("kafka.{map}"), prop]);
        }
        // Setting what the service sets anyway, and librdkafka's debug log, are allowed.
        let c = load(
            &format!(
                "{}[kafka.consumer]\nssl.endpoint.identification.algorithm = \"HTTPS\"\n\
                 enable.ssl.certificate.verification = true\ndebug = \"all\"\n\
                 [kafka.producer]\ndebug = \"all\"\n",
                sasl_ssl(&test_ca())
            ),
            &[(SASL_PASSWORD_ENV, CANARY)],
        )
        .unwrap();
        assert_eq!(c.kafka.consumer["debug"], "all");
        assert_eq!(c.kafka.producer["debug"], "all");
    }
}
