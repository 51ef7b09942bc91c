//! The producer itself: settings, sending with backpressure, delivery accounting, flush and
//! checkpoints.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use rdkafka::client::ClientContext;
use rdkafka::config::ClientConfig;
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::{Header, OwnedHeaders};
use rdkafka::producer::{BaseProducer, BaseRecord, DeliveryResult, Producer, ProducerContext};

use super::ProduceError;

/// Producer settings that are not left to librdkafka's defaults. [`ProducerSettings::new`]
/// gives the defaults of the input topics' producers; `properties` passes any other librdkafka
/// property through by its own name (and overrides the fields above it).
#[derive(Clone, PartialEq)]
pub struct ProducerSettings {
    /// `bootstrap.servers`: `host:port[,host:port…]`.
    pub bootstrap_servers: String,
    /// `client.id`, as the brokers' logs and quotas see it.
    pub client_id: String,
    /// `linger.ms`: how long to wait to fill a batch.
    pub linger_ms: u32,
    /// `compression.type`: `none`, `gzip`, `snappy`, `lz4` or `zstd`.
    pub compression: String,
    /// Extra librdkafka properties (security, timeouts, …), applied last, in order.
    pub properties: Vec<(String, String)>,
}

impl std::fmt::Debug for ProducerSettings {
    /// Values of properties that hold credentials are masked.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let props: Vec<(&str, &str)> = self
            .properties
            .iter()
            .map(|(k, v)| {
                let secret = k.contains("password") || k.contains("secret");
                (k.as_str(), if secret { "****" } else { v.as_str() })
            })
            .collect();
        f.debug_struct("ProducerSettings")
            .field("bootstrap_servers", &self.bootstrap_servers)
            .field("client_id", &self.client_id)
            .field("linger_ms", &self.linger_ms)
            .field("compression", &self.compression)
            .field("properties", &props)
            .finish()
    }
}

impl ProducerSettings {
    /// The input topics' producer: 5 ms linger, lz4.
    pub fn new(bootstrap_servers: impl Into<String>) -> Self {
        Self {
            bootstrap_servers: bootstrap_servers.into(),
            client_id: "stockwatch".to_owned(),
            linger_ms: 5,
            compression: "lz4".to_owned(),
            properties: Vec::new(),
        }
    }

    /// Connection-level settings only (for the admin client): no producer tuning, no
    /// idempotence (which would make the admin client ask the cluster for a producer id).
    pub(super) fn admin_config(&self) -> ClientConfig {
        let mut c = ClientConfig::new();
        c.set("bootstrap.servers", &self.bootstrap_servers)
            .set("client.id", format!("{}-admin", self.client_id));
        for (k, v) in &self.properties {
            c.set(k, v);
        }
        c
    }

    fn producer_config(&self) -> ClientConfig {
        let mut c = ClientConfig::new();
        c.set("bootstrap.servers", &self.bootstrap_servers)
            .set("client.id", &self.client_id)
            // Kafka's Java default: the partition is a function of the key alone, the same in
            // every producer and in `replay --partitions`.
            .set("partitioner", "murmur2_random")
            .set("enable.idempotence", "true")
            .set("linger.ms", self.linger_ms.to_string())
            .set("compression.type", &self.compression)
            // Topics are created on purpose (`ensure_topics`), never by a typo.
            .set("allow.auto.create.topics", "false");
        for (k, v) in &self.properties {
            c.set(k, v);
        }
        c
    }
}

/// Delivery accounting, shared between the producer and its delivery callback.
#[derive(Debug, Default)]
pub(super) struct Deliveries {
    delivered: AtomicU64,
    pub(super) failed: AtomicU64,
    pub(super) first_failure: Mutex<Option<String>>,
    /// `first_failure` is a purge (a later failure of another kind replaces it).
    first_purged: std::sync::atomic::AtomicBool,
    /// A delivery refused because a newer producer owns the `transactional.id`: fatal for
    /// this one, although librdkafka raises it as abortable when it arrives on a
    /// ProduceRequest ([`EventProducer::fatal`]).
    fenced: Mutex<Option<(RDKafkaErrorCode, String)>>,
    last_client_error: Mutex<Option<String>>,
    /// `(tag, acknowledged at, ms)` of delivered records sent with a non-zero tag.
    acked: Mutex<Vec<(usize, i64)>>,
    /// Records in flight per generation slot ([`EventProducer::checkpoint`]).
    in_flight: [AtomicU64; GENERATIONS],
}

/// Generation slots: at most `GENERATIONS - 1` closed generations wait for their
/// acknowledgements besides the open one.
const GENERATIONS: usize = 16;
/// A record's delivery opaque: the caller's tag below this bit, its generation slot from it.
const SLOT_SHIFT: u32 = TAG_BITS;
/// Bits of a caller's tag ([`EventProducer::send_tagged`]): a tag is below `1 << TAG_BITS`.
pub const TAG_BITS: u32 = 58;
/// The caller's part of a delivery opaque.
const TAG_MASK: usize = (1 << SLOT_SHIFT) - 1;

impl ClientContext for Deliveries {
    // Transient errors (a broker down, a timeout) are retried by librdkafka; keep the last one
    // to explain a timeout instead of logging each.
    fn error(&self, error: KafkaError, reason: &str) {
        if let Ok(mut last) = self.last_client_error.lock() {
            *last = Some(format!("{error}: {reason}"));
        }
    }
}

impl ProducerContext for Deliveries {
    /// A caller's tag ([`EventProducer::send_tagged`]); 0: none.
    type DeliveryOpaque = usize;

    fn delivery(&self, result: &DeliveryResult<'_>, opaque: usize) {
        let (tag, slot) = (opaque & TAG_MASK, opaque >> SLOT_SHIFT);
        if let Some(n) = self.in_flight.get(slot) {
            n.fetch_sub(1, Ordering::Relaxed);
        }
        match result {
            Ok(_) => {
                self.delivered.fetch_add(1, Ordering::Relaxed);
                if tag != 0 {
                    let now = chrono::Utc::now().timestamp_millis();
                    if let Ok(mut acked) = self.acked.lock() {
                        acked.push((tag, now));
                    }
                }
            }
            Err((e, _)) => {
                self.failed.fetch_add(1, Ordering::Relaxed);
                // The cause, not the records librdkafka purged because of it (a failed
                // transaction purges its queue; their reports may come first): a purge is
                // the first failure only until another one arrives.
                let code = e.rdkafka_error_code();
                if let Some(c @ (RDKafkaErrorCode::ProducerFenced | RDKafkaErrorCode::Fenced)) =
                    code
                {
                    if let Ok(mut f) = self.fenced.lock() {
                        f.get_or_insert_with(|| (c, e.to_string()));
                    }
                }
                let purged = matches!(
                    code,
                    Some(RDKafkaErrorCode::PurgeQueue | RDKafkaErrorCode::PurgeInflight)
                );
                if let Ok(mut first) = self.first_failure.lock() {
                    let replace = match &*first {
                        None => true,
                        Some(_) => !purged && self.first_purged.load(Ordering::Relaxed),
                    };
                    if replace {
                        *first = Some(e.to_string());
                        self.first_purged.store(purged, Ordering::Relaxed);
                    }
                }
            }
        }
    }
}

impl Deliveries {
    fn last_error(&self) -> Option<String> {
        self.last_client_error.lock().ok().and_then(|e| e.clone())
    }
}

/// Counts of a producer's records.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct DeliveryStats {
    /// Records enqueued by `send`.
    pub sent: u64,
    /// Records acknowledged by the cluster.
    pub delivered: u64,
    /// Records that failed for good.
    pub failed: u64,
}

/// A topic made or found by [`EventProducer::ensure_topics`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TopicStatus {
    /// The topic.
    pub name: String,
    /// Whether this call created it (otherwise it existed with the right partition count).
    pub created: bool,
}

/// A keyed-record producer (see the module doc).
pub struct EventProducer {
    pub(super) settings: ProducerSettings,
    pub(super) producer: BaseProducer<Deliveries>,
    sent: u64,
    stall: Option<QueueStall>,
    /// The open generation (records sent now belong to it); the first is 1.
    generation: u64,
    /// Closed generations with records still in flight, oldest first.
    closed: VecDeque<u64>,
    /// Every generation up to this one is acknowledged (0: none yet).
    acknowledged: u64,
    /// `exactly_once`: `commit_transaction` timed out this many times in a row, and librdkafka
    /// keeps the commit as the call to resume (`None`: no commit pending).
    pub(super) commit_resumes: Option<u32>,
    /// `exactly_once`: when the open transaction began (`None`: none open).
    pub(super) began: Option<Instant>,
    /// `exactly_once`: the `transaction.timeout.ms` of the settings.
    pub(super) transaction_timeout: Option<Duration>,
}

/// What [`EventProducer::on_queue_stall`] set up.
pub(super) struct QueueStall {
    after: Duration,
    report: Box<dyn Fn(bool) + Send + Sync>,
}

impl std::fmt::Debug for EventProducer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EventProducer")
            .field("bootstrap_servers", &self.settings.bootstrap_servers)
            .field("stats", &self.stats())
            .finish()
    }
}

/// How long `send` waits for the local queue to drain a little when it is full.
const QUEUE_FULL_POLL: Duration = Duration::from_millis(1);
/// Slice in which [`EventProducer::flush`] serves delivery reports (rdkafka's `poll` always
/// waits out its timeout, so this is also the flush's granularity).
const FLUSH_STEP: Duration = Duration::from_millis(1);
/// A record refused because the transaction must be aborted: how long to serve delivery
/// reports for the failure that caused it.
const STATE_CAUSE_WAIT: Duration = Duration::from_secs(5);
/// Bound on the polls of one [`EventProducer::serve_reports`] (a step never starves).
const MAX_REPORT_POLLS: usize = 4096;
/// Interval between metadata checks while waiting for created topics.
pub(super) const METADATA_RETRY: Duration = Duration::from_millis(200);

impl EventProducer {
    /// A producer for `settings`. Connects lazily: an unreachable cluster shows up in
    /// [`EventProducer::ensure_topics`] or at flush.
    pub fn new(settings: ProducerSettings) -> Result<Self, ProduceError> {
        let config = settings.producer_config();
        crate::kafka::check_client_security(&config).map_err(ProduceError::Unsupported)?;
        let producer = config
            .create_with_context(Deliveries::default())
            .map_err(ProduceError::Config)?;
        let transaction_timeout = settings
            .properties
            .iter()
            .find(|(k, _)| k == "transaction.timeout.ms")
            .and_then(|(_, v)| v.parse().ok())
            .map(Duration::from_millis);
        Ok(Self {
            settings,
            producer,
            sent: 0,
            stall: None,
            generation: 1,
            closed: VecDeque::new(),
            acknowledged: 0,
            commit_resumes: None,
            began: None,
            transaction_timeout,
        })
    }

    /// The settings it was made with.
    pub fn settings(&self) -> &ProducerSettings {
        &self.settings
    }

    /// Replaces the librdkafka client with a new one made from the same settings, the old one
    /// destroyed first (what it still holds purged, its threads ended). Delivery accounting
    /// starts over, and closed generations are forgotten: their records went with the old
    /// client. A transactional client registers its id only at `init_transactions`, so the
    /// two never hold it at once.
    pub(super) fn replace_client(&mut self) -> Result<(), ProduceError> {
        let fresh = self
            .settings
            .producer_config()
            .create_with_context(Deliveries::default())
            .map_err(ProduceError::Config)?;
        drop(std::mem::replace(&mut self.producer, fresh));
        self.closed.clear();
        self.acknowledged = self.generation.saturating_sub(1);
        self.commit_resumes = None;
        self.began = None;
        Ok(())
    }
}

impl EventProducer {
    /// Enqueues one record for `topic`, partitioned by `key`. When librdkafka's local queue is
    /// full it serves delivery reports until there is room (backpressure: this call blocks,
    /// memory does not grow). Fails on the first delivery failure or fatal error seen so far.
    pub fn send(&mut self, topic: &str, key: &[u8], value: &[u8]) -> Result<(), ProduceError> {
        self.enqueue(BaseRecord::with_opaque_to(topic, 0).key(key).payload(value))
    }

    /// [`EventProducer::send`] with headers (e.g. CloudEvents `ce_*` attributes, or the
    /// reason code of a dead letter).
    pub fn send_with_headers(
        &mut self,
        topic: &str,
        key: &[u8],
        value: &[u8],
        headers: &[(&str, &[u8])],
    ) -> Result<(), ProduceError> {
        self.send_tagged(topic, key, value, headers, 0)
    }

    /// [`EventProducer::send_with_headers`] with a non-zero `tag`: once the record is
    /// acknowledged, `(tag, acknowledgement time)` is kept for
    /// [`EventProducer::take_acknowledged`] (e.g. to measure end-to-end latency at the ack).
    /// Tag 0 keeps nothing.
    pub fn send_tagged(
        &mut self,
        topic: &str,
        key: &[u8],
        value: &[u8],
        headers: &[(&str, &[u8])],
        tag: usize,
    ) -> Result<(), ProduceError> {
        self.enqueue(
            BaseRecord::with_opaque_to(topic, tag)
                .key(key)
                .payload(value)
                .headers(owned_headers(headers)),
        )
    }

    /// [`EventProducer::send_with_headers`] after `base`: headers copied from elsewhere (a
    /// consumed record's, byte for byte: their names need not be UTF-8).
    pub fn send_after_headers(
        &mut self,
        topic: &str,
        key: &[u8],
        value: &[u8],
        base: OwnedHeaders,
        headers: &[(&str, &[u8])],
    ) -> Result<(), ProduceError> {
        self.enqueue(
            BaseRecord::with_opaque_to(topic, 0)
                .key(key)
                .payload(value)
                .headers(append_headers(base, headers)),
        )
    }

    /// Moves the `(tag, acknowledged at ms)` of the tagged records acknowledged so far into
    /// `out`. Acknowledgements are served by `send`, [`EventProducer::poll`] and
    /// [`EventProducer::flush`].
    pub fn take_acknowledged(&self, out: &mut Vec<(usize, i64)>) {
        if let Ok(mut acked) = self.producer.context().acked.lock() {
            out.append(&mut acked);
        }
    }

    /// Calls `report(true)` when a `send` has waited `after` for room in the full local queue
    /// (the brokers take no records: unreachable or stalled), and `report(false)` once that
    /// send went through. A batch can stall here, before it reaches its flush: readiness must
    /// say so all the same.
    pub fn on_queue_stall(
        &mut self,
        after: Duration,
        report: impl Fn(bool) + Send + Sync + 'static,
    ) {
        self.stall = Some(QueueStall {
            after,
            report: Box::new(report),
        });
    }

    fn enqueue(
        &mut self,
        mut record: BaseRecord<'_, [u8], [u8], usize>,
    ) -> Result<(), ProduceError> {
        self.check()?;
        debug_assert!(record.delivery_opaque <= TAG_MASK, "tag too large");
        let slot = (self.generation % GENERATIONS as u64) as usize;
        record.delivery_opaque = (record.delivery_opaque & TAG_MASK) | slot << SLOT_SHIFT;
        let in_flight = &self.producer.context().in_flight[slot];
        in_flight.fetch_add(1, Ordering::Relaxed);
        let mut full_since: Option<Instant> = None;
        let mut reported = false;
        loop {
            match self.producer.send(record) {
                Ok(()) => {
                    self.sent += 1;
                    if let (true, Some(s)) = (reported, &self.stall) {
                        tracing::info!(
                            waited_secs = full_since.map_or(0, |t| t.elapsed().as_secs()),
                            "the producer queue has room again"
                        );
                        (s.report)(false);
                    }
                    return Ok(());
                }
                Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), r)) => {
                    record = r;
                    let since = *full_since.get_or_insert_with(Instant::now);
                    if let (false, Some(s)) = (reported, &self.stall) {
                        if since.elapsed() >= s.after {
                            tracing::warn!(
                                queued = self.producer.in_flight_count(),
                                waited_secs = since.elapsed().as_secs(),
                                "the producer queue is full and the brokers take no records; consumption paused until they do"
                            );
                            (s.report)(true);
                            reported = true;
                        }
                    }
                    self.producer.poll(QUEUE_FULL_POLL);
                    self.check()?;
                }
                Err((error, r)) => {
                    in_flight.fetch_sub(1, Ordering::Relaxed);
                    // A transaction that must be aborted refuses new records (`State`): the
                    // delivery failure behind it is the cause to report (the same cause every
                    // time it repeats), once its report is served.
                    if matches!(
                        error,
                        KafkaError::MessageProduction(RDKafkaErrorCode::State)
                    ) {
                        let waiting = Instant::now();
                        while self.producer.in_flight_count() > 0
                            && waiting.elapsed() < STATE_CAUSE_WAIT
                        {
                            self.producer.poll(FLUSH_STEP);
                            self.check()?;
                        }
                    }
                    self.producer.poll(Duration::ZERO);
                    self.check()?;
                    return Err(ProduceError::Send {
                        topic: r.topic.to_owned(),
                        error,
                    });
                }
            }
        }
    }

    /// Enqueues one record for partition `partition` of `topic` (the changelog: partition `p`
    /// holds the state of shard `p`, whatever the key hashes to).
    pub fn send_to_partition(
        &mut self,
        topic: &str,
        partition: i32,
        key: &[u8],
        value: &[u8],
        headers: &[(&str, &[u8])],
    ) -> Result<(), ProduceError> {
        self.enqueue(
            BaseRecord::with_opaque_to(topic, 0)
                .partition(partition)
                .key(key)
                .payload(value)
                .headers(owned_headers(headers)),
        )
    }

    /// Enqueues a tombstone (a record with a null value) for `key` on partition `partition` of
    /// `topic`, with `headers`: on a compacted topic it deletes the key (the open-alerts
    /// table's `resolved`, the changelog's spent journal records).
    pub fn send_tombstone_to_partition(
        &mut self,
        topic: &str,
        partition: i32,
        key: &[u8],
        headers: &[(&str, &[u8])],
    ) -> Result<(), ProduceError> {
        let record = BaseRecord::<[u8], [u8], usize>::with_opaque_to(topic, 0)
            .partition(partition)
            .key(key);
        self.enqueue(if headers.is_empty() {
            record
        } else {
            record.headers(owned_headers(headers))
        })
    }

    /// Serves delivery reports, waiting up to `timeout` for one (use it instead of sleeping,
    /// e.g. while rate limiting).
    pub fn poll(&self, timeout: Duration) {
        self.producer.poll(timeout);
    }

    /// Waits until every enqueued record is delivered or failed, at most `deadline`; then
    /// fails if any record was not delivered.
    ///
    /// Not `BaseProducer::flush`: rdkafka 0.39 serves delivery reports there with
    /// `poll(100 ms)`, and its `poll` waits out its whole timeout, so every flush with a record
    /// in flight took at least 100 ms. Here reports are served in [`FLUSH_STEP`] slices until
    /// nothing is in flight (the out-queue length counts unserved delivery reports too).
    pub fn flush(&mut self, deadline: Duration) -> Result<DeliveryStats, ProduceError> {
        let start = Instant::now();
        while self.producer.in_flight_count() > 0 {
            // A fatal producer (fenced) never delivers what it still holds: no point waiting.
            if let Some(e) = self.fatal() {
                return Err(e);
            }
            if start.elapsed() >= deadline {
                self.check()?;
                return Err(ProduceError::FlushTimeout {
                    in_flight: self.producer.in_flight_count(),
                    deadline,
                    last_broker_error: self.last_broker_error(),
                });
            }
            self.producer.poll(FLUSH_STEP);
        }
        self.check()?;
        Ok(self.stats())
    }

    /// Closes the open generation: records sent from now on belong to the next one. Returns
    /// the closed generation's number, for [`EventProducer::acknowledged`]; `None` (nothing
    /// closed) while `GENERATIONS - 1` closed generations still wait for acknowledgements:
    /// the caller tries again later, so a slow cluster bounds the checkpoints in flight.
    pub fn checkpoint(&mut self) -> Option<u64> {
        if !self.can_checkpoint() {
            return None;
        }
        let g = self.generation;
        self.closed.push_back(g);
        self.generation += 1;
        Some(g)
    }

    /// Whether [`EventProducer::checkpoint`] would close a generation now.
    pub fn can_checkpoint(&mut self) -> bool {
        let _ = self.acknowledged();
        self.closed.len() + 1 < GENERATIONS
    }

    /// The latest generation `g` such that every record sent before checkpoint `g` (and so
    /// every earlier one) is acknowledged; 0 if none. Serves no reports itself
    /// ([`EventProducer::serve_reports`] does). Fails on a failed delivery or a fatal error:
    /// the records of a failed generation are not all delivered, and never will be.
    pub fn acknowledged(&mut self) -> Result<u64, ProduceError> {
        self.check()?;
        let ctx = self.producer.context();
        while let Some(&g) = self.closed.front() {
            let slot = (g % GENERATIONS as u64) as usize;
            if ctx.in_flight[slot].load(Ordering::Relaxed) != 0 {
                break;
            }
            self.closed.pop_front();
            self.acknowledged = g;
        }
        Ok(self.acknowledged)
    }

    /// Serves the delivery reports that have arrived, without waiting.
    pub fn serve_reports(&self) {
        // One poll serves one event (the reports of one produce response): poll until one
        // serves nothing. Reports left waiting would delay the acknowledgements that commits
        // and latencies wait for, and hold their records' memory.
        let ctx = self.producer.context();
        let served = || ctx.delivered.load(Ordering::Relaxed) + ctx.failed.load(Ordering::Relaxed);
        for _ in 0..MAX_REPORT_POLLS {
            let before = served();
            self.producer.poll(Duration::ZERO);
            if served() == before {
                break;
            }
        }
    }

    /// Records sent, delivered and failed so far.
    pub fn stats(&self) -> DeliveryStats {
        let ctx = self.producer.context();
        DeliveryStats {
            sent: self.sent,
            delivered: ctx.delivered.load(Ordering::Relaxed),
            failed: ctx.failed.load(Ordering::Relaxed),
        }
    }

    /// Records enqueued and not yet delivered or failed.
    pub fn in_flight(&self) -> i32 {
        self.producer.in_flight_count()
    }

    /// The last connection-level error librdkafka reported. Errors arrive as events through
    /// `poll`, and a zero-timeout poll serves only one event: this error path polls a little
    /// longer to drain what is pending.
    pub(super) fn last_broker_error(&self) -> Option<String> {
        self.producer.poll(Duration::from_millis(100));
        self.producer.context().last_error()
    }

    /// The fatal error librdkafka raised, if any (e.g. fenced: another producer initialised
    /// the same `transactional.id`): nothing this producer sends, commits or aborts can
    /// succeed any more, so nothing should wait for it. A delivery refused as fenced counts
    /// too: librdkafka raises the fence as abortable when it arrives on a ProduceRequest, and
    /// its abort then retries bumping the epoch of an id another instance owns until the
    /// deadline.
    pub fn fatal(&self) -> Option<ProduceError> {
        let (code, reason) = self.producer.client().fatal_error().or_else(|| {
            let fenced = self.producer.context().fenced.lock().ok()?;
            fenced.clone()
        })?;
        Some(ProduceError::Fatal { code, reason })
    }

    /// Fails on a fatal error or a failed delivery.
    pub(super) fn check(&self) -> Result<(), ProduceError> {
        if let Some(e) = self.fatal() {
            return Err(e);
        }
        let ctx = self.producer.context();
        let failed = ctx.failed.load(Ordering::Relaxed);
        if failed > 0 {
            let first = ctx
                .first_failure
                .lock()
                .ok()
                .and_then(|f| f.clone())
                .unwrap_or_default();
            return Err(ProduceError::Delivery { failed, first });
        }
        Ok(())
    }
}

pub(super) fn owned_headers(headers: &[(&str, &[u8])]) -> OwnedHeaders {
    append_headers(OwnedHeaders::new_with_capacity(headers.len()), headers)
}

fn append_headers(base: OwnedHeaders, headers: &[(&str, &[u8])]) -> OwnedHeaders {
    headers.iter().fold(base, |h, (k, v)| {
        h.insert(Header {
            key: k,
            value: Some(*v),
        })
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn settings_pass_properties_through_last() {
        let mut s = ProducerSettings::new("127.0.0.1:9092");
        s.properties.push(("linger.ms".to_owned(), "50".to_owned()));
        let c = s.producer_config();
        assert_eq!(c.get("linger.ms"), Some("50"));
        assert_eq!(c.get("partitioner"), Some("murmur2_random"));
        assert_eq!(c.get("enable.idempotence"), Some("true"));
        assert_eq!(c.get("compression.type"), Some("lz4"));
        let a = s.admin_config();
        assert_eq!(a.get("enable.idempotence"), None);
        assert_eq!(a.get("bootstrap.servers"), Some("127.0.0.1:9092"));
    }

    #[test]
    fn debug_masks_credentials() {
        let mut s = ProducerSettings::new("127.0.0.1:9092");
        s.properties
            .push(("sasl.password".to_owned(), "hunter2".to_owned()));
        s.properties
            .push(("sasl.username".to_owned(), "svc".to_owned()));
        let d = format!("{s:?}");
        assert!(!d.contains("hunter2"), "{d}");
        assert!(d.contains("svc") && d.contains("****"), "{d}");
    }

    #[test]
    fn bad_property_is_a_config_error() {
        let mut s = ProducerSettings::new("127.0.0.1:9092");
        s.properties
            .push(("no.such.property".to_owned(), "1".to_owned()));
        let e = EventProducer::new(s).unwrap_err();
        assert!(matches!(e, ProduceError::Config(_)), "{e}");
        assert!(e.to_string().contains("no.such.property"), "{e}");
    }

    /// With nothing listening, the admin request times out with a typed error and the
    /// producer's last connection error.
    #[test]
    fn unreachable_cluster_fails_within_the_timeout() {
        // A port nothing listens on: bind one, then drop the listener.
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let p = EventProducer::new(ProducerSettings::new(format!("127.0.0.1:{port}"))).unwrap();
        let started = Instant::now();
        let e = p
            .ensure_topics(&["t"], 1, 1, Duration::from_millis(1500))
            .unwrap_err();
        assert!(started.elapsed() < Duration::from_secs(10));
        assert!(
            matches!(
                e,
                ProduceError::Admin { .. } | ProduceError::TopicUnavailable { .. }
            ),
            "{e}"
        );
    }

    /// A checkpoint is acknowledged once every record sent before it is, and not before:
    /// with the (mock) broker down nothing is, and at most `GENERATIONS - 1` checkpoints wait.
    #[test]
    fn checkpoints_are_acknowledged_in_order_once_their_records_are() {
        let cluster = rdkafka::mocking::MockCluster::new(1).unwrap();
        cluster.create_topic("t", 2, 1).unwrap();
        let mut p = EventProducer::new(ProducerSettings::new(cluster.bootstrap_servers())).unwrap();
        p.send("t", b"k", b"v").unwrap();
        p.flush(Duration::from_secs(10)).unwrap();
        assert_eq!(p.acknowledged().unwrap(), 0, "nothing closed yet");
        let g1 = p.checkpoint().unwrap();
        assert_eq!(
            p.acknowledged().unwrap(),
            g1,
            "its records were acknowledged"
        );

        cluster.broker_down(-1).unwrap();
        p.send("t", b"k1", b"v").unwrap();
        let g2 = p.checkpoint().unwrap();
        p.send("t", b"k2", b"v").unwrap();
        let mut more = Vec::new();
        while let Some(g) = p.checkpoint() {
            more.push(g);
        }
        assert_eq!(more.len(), GENERATIONS - 2, "bounded: {more:?}");
        p.poll(Duration::from_millis(200));
        assert_eq!(p.acknowledged().unwrap(), g1, "the broker is down");

        cluster.broker_up(-1).unwrap();
        p.flush(Duration::from_secs(30)).unwrap();
        let last = *more.last().unwrap();
        assert!(last > g2);
        assert_eq!(p.acknowledged().unwrap(), last);
        assert!(p.checkpoint().is_some(), "room again");
    }
}
