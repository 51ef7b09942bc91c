//! `[kafka]`: the cluster, the group, batching, topics and librdkafka pass-through properties.

use std::collections::BTreeMap;
use std::fmt;

use rdkafka::config::ClientConfig;
use rdkafka::error::KafkaError;
use serde::de::{self, Deserializer, MapAccess, Visitor};
use serde::{Deserialize, Serialize};

use super::secret::{secret_property_error, SECRET_PROPERTIES};
use super::{SecuritySection, ServiceSection, SASL_PASSWORD_ENV};
use crate::decode::TopicTypes;
use crate::event::EventType;

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
         (co-partitioning, docs/architecture.md#partitioning)",
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
         them, as the input contract does (docs/architecture.md#partitioning)",
    ),
    (
        "enable.ssl.certificate.verification",
        "TLS certificates are always verified; set kafka.security.ssl_ca_location for a \
         private CA",
    ),
];
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
    /// The open-alerts table (compacted, co-partitioned with the inputs): the latest confirmed
    /// alert per `"{location}|{sku}|{kind}"`, a tombstone when it resolves. Derived output only.
    pub open_alerts: String,
    /// Master data in: the locations table (compacted, keyed by location id), read in full by
    /// every instance (src/service/master.rs).
    pub locations: String,
    /// Master data in: the items table (compacted, keyed by SKU), read like `locations`.
    pub items: String,
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

    /// The event types each input topic may carry, in [`TopicsSection::inputs`] order: the
    /// explicit topic ↔ type rule (a record of another type is refused).
    pub fn input_types(&self) -> Vec<TopicTypes> {
        let by_type = self.by_type();
        self.inputs()
            .into_iter()
            .map(|topic| {
                let types: Vec<EventType> = EventType::ALL
                    .into_iter()
                    .zip(by_type)
                    .filter(|(_, t)| *t == topic)
                    .map(|(ty, _)| ty)
                    .collect();
                TopicTypes::of(&types)
            })
            .collect()
    }
}

/// librdkafka's default `message.max.bytes` (producer).
const DEFAULT_MESSAGE_MAX_BYTES: usize = 1_000_000;
/// Room kept in a dead letter for the headers stockwatch adds (Connect's error headers, the
/// reason and its detail, truncation headers) and the record's framing.
const DEAD_LETTER_OWN_BYTES: usize = 65_536;

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
    /// Most bytes of a rejected record's own headers (names and values) its dead letter
    /// carries; over it, the dead letter goes without them, with headers giving their count
    /// and size.
    pub dead_letter_max_header_bytes: usize,
    /// Events an instance may buffer for the watermark; beyond it, inputs ahead of their
    /// shard's slowest input are paused (backpressure, not drops).
    pub max_pending_events: usize,
    /// An input partition caught up with the broker (read up to the high watermark of the
    /// last fetch) and silent this long stops holding its shard's watermark back (as Kafka
    /// Streams' `max.task.idle.ms` with KIP-695).
    pub input_idle_ms: u64,
    /// `session.timeout.ms`.
    pub session_timeout_ms: u64,
    /// Subscribed this many session timeouts without an assignment, the instance reports
    /// `not_assigned` (`/readyz` reason, a warning naming the group state).
    pub not_assigned_session_timeouts: u32,
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

    pub(super) fn validate(&self) -> Result<(), String> {
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
        // Room for stockwatch's own headers (reason, Connect's error headers) under the
        // producer's `message.max.bytes`: a dead letter too big to send stops the service.
        let max_message = self
            .producer
            .get("message.max.bytes")
            .and_then(|v| v.parse::<usize>().ok())
            .unwrap_or(DEFAULT_MESSAGE_MAX_BYTES);
        let need = self
            .dead_letter_max_value_bytes
            .saturating_add(self.dead_letter_max_header_bytes)
            .saturating_add(DEAD_LETTER_OWN_BYTES);
        if need > max_message {
            return Err(format!(
                "kafka.dead_letter_max_value_bytes = {} + kafka.dead_letter_max_header_bytes = {} \
                 (+ {DEAD_LETTER_OWN_BYTES} for stockwatch's own headers) must fit in the \
                 producer's message.max.bytes = {max_message} (kafka.producer)",
                self.dead_letter_max_value_bytes, self.dead_letter_max_header_bytes
            ));
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
        if self.not_assigned_session_timeouts == 0 {
            return Err("kafka.not_assigned_session_timeouts must be >= 1, got 0".into());
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
            ("kafka.topics.open_alerts", &t.open_alerts),
            ("kafka.topics.locations", &t.locations),
            ("kafka.topics.items", &t.items),
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
            // Input types may share a topic (it carries all of them); any other topic must be
            // a topic of its own.
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
