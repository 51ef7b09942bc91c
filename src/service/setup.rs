//! Starting the service: the producer (transactional in `exactly_once`), the output topics
//! (created co-partitioned with the inputs where missing), the changelog reader.

use std::collections::BTreeMap;
use std::ffi::CString;
use std::time::{Duration, Instant};

use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};

use super::observe::Observe;
use super::{changelog, Config, Core, Delivery, RunStats, Service, ServiceError, QUERY_TIMEOUT};
use crate::decode::{Decoder, KeyPolicy};
use crate::sink::kafka::{EventProducer, ProducerSettings};
use crate::source::kafka::{subscribe, GroupConsumer};

impl Service {
    /// Connects (lazily) and subscribes; in `exactly_once`, registers the transactional id
    /// (aborting what a predecessor with the same `service.instance_id` left open).
    pub fn new(cfg: Config) -> Result<Self, ServiceError> {
        let engine = cfg.engine_config();
        let consumer = subscribe(&cfg)?;
        let mut ps = ProducerSettings::new(cfg.kafka.bootstrap_servers.clone());
        let mut props = producer_properties(&cfg);
        props.sort();
        let exactly_once = cfg.service.delivery == Delivery::ExactlyOnce;
        if exactly_once {
            props.push(("transactional.id".into(), transactional_id(&cfg)));
            props.push((
                "transaction.timeout.ms".into(),
                cfg.service.transaction_timeout_ms.to_string(),
            ));
        }
        ps.properties = props;
        let producer = EventProducer::new(ps)?;
        // Output topics get the input topics' partition count (keyed the same way).
        let partitions = input_partitions(&consumer, &cfg)?;
        let t = &cfg.kafka.topics;
        for (topic, configs) in [
            (t.alerts.as_str(), &[][..]),
            (t.early_alerts.as_str(), &[][..]),
            (t.dead_letter.as_str(), &[][..]),
            (t.changelog.as_str(), &[("cleanup.policy", "compact")][..]),
            (t.open_alerts.as_str(), &[("cleanup.policy", "compact")][..]),
        ] {
            match topic_partitions(&consumer, topic)? {
                0 => {
                    producer.ensure_topics_with(&[topic], partitions, 1, configs, QUERY_TIMEOUT)?;
                }
                n if n as u32 == partitions => {}
                // Partition p of the table holds shard p's keys: a consumer of input
                // partition p finds its rows there only if the counts match.
                n if topic == t.changelog || topic == t.open_alerts => {
                    return Err(ServiceError::Inputs(format!(
                        "the topic {topic} has {n} partitions but the inputs have \
                         {partitions}: partition p of it holds shard p"
                    )))
                }
                n => tracing::warn!(
                    topic,
                    partitions = n,
                    "output topic is not co-partitioned with the inputs"
                ),
            }
        }
        if exactly_once {
            producer.init_transactions(init_timeout(&cfg))?;
        }
        let reader = changelog_reader(&cfg)?;
        let master = super::master::MasterTables::start(&cfg).map_err(ServiceError::MasterData)?;
        let input_cstrs = cfg
            .kafka
            .topics
            .inputs()
            .iter()
            .map(|t| CString::new(*t).map_err(|_| ServiceError::Inputs(format!("{t:?}: NUL"))))
            .collect::<Result<Vec<_>, _>>()?;
        let topic_types = cfg.kafka.topics.input_types();
        // Not served until [`Service::observe`]: the handles exist either way.
        let (observe, _unserved) = Observe::new()?;
        consumer.context().set_metrics(observe.metrics.clone());
        Ok(Service {
            consumer,
            core: Core {
                observe,
                decoder: Decoder::new(engine.limits, KeyPolicy::Require),
                topic_types,
                source_name: format!("stockwatch/{}", cfg.kafka.group_id),
                abort_loop: super::abort::AbortLoop::new(cfg.service.max_identical_aborts),
                not_assigned_warned: false,
                cfg,
                engine,
                producer,
                slots: BTreeMap::new(),
                input_cstrs,
                stats: RunStats::default(),
                reader,
                writer: changelog::Writer::default(),
                blocked: Default::default(),
                in_transaction: false,
                latencies: Vec::new(),
                acked: Vec::new(),
                publishing: Default::default(),
                last_commit: Instant::now(),
                commits: Default::default(),
                acks_waiting_since: None,
                acks_stalled: false,
                held: None,
                master,
                master_loading: None,
            },
        })
    }
}

/// `exactly_once`: how long registering the transactional id may take (it waits for the
/// coordinator to end what an earlier producer with the id left open).
pub(super) fn init_timeout(cfg: &Config) -> Duration {
    Duration::from_millis(cfg.service.transaction_timeout_ms.max(10_000))
}

/// The configuration of a consumer that reads partitions it assigns itself, outside the
/// consumer group (no auto-commit): `group_id`, `isolation` (`read_committed` or
/// `read_uncommitted`), `fetch.wait.max.ms`, and the cluster's security settings.
pub(super) fn reader_config(
    cfg: &Config,
    group_id: &str,
    isolation: &str,
    fetch_wait_ms: &str,
) -> ClientConfig {
    let mut rc = ClientConfig::new();
    rc.set("bootstrap.servers", &cfg.kafka.bootstrap_servers)
        .set("group.id", group_id)
        .set("enable.auto.commit", "false")
        .set("isolation.level", isolation)
        .set("fetch.wait.max.ms", fetch_wait_ms);
    cfg.kafka.security.apply_to(&mut rc);
    rc
}

/// The reader of changelog partitions on restore: outside the group, manual offsets.
fn changelog_reader(cfg: &Config) -> Result<BaseConsumer, ServiceError> {
    // Uncommitted records too: restore ignores every batch that did not commit by its
    // stamps, and a dead instance's open transaction must not hold the restore up.
    let group = format!("{}-changelog-reader", cfg.kafka.group_id);
    reader_config(cfg, &group, "read_uncommitted", "10")
        .set("fetch.queue.backoff.ms", "5")
        .create()
        .map_err(ServiceError::Reader)
}

/// Everything `[kafka]` says about producing (security, then `[kafka.producer]`) as
/// properties for [`ProducerSettings`], bootstrap servers apart. The values come through `get`:
/// `config_map` replaces secrets (sasl.password) with a placeholder, which the producer would
/// then send to the broker as the password.
pub(crate) fn producer_properties(cfg: &Config) -> Vec<(String, String)> {
    let c = cfg.kafka.producer_config();
    c.config_map()
        .into_keys()
        .filter(|k| *k != "bootstrap.servers")
        .filter_map(|k| Some((k.to_owned(), c.get(k)?.to_owned())))
        .collect()
}

/// `transactional.id`: stable per instance (`service.instance_id`, e.g. the pod name), so a
/// restarted instance aborts what its predecessor left open at once; without one, a random
/// suffix (an open transaction of a crashed instance then ends after
/// `service.transaction_timeout_ms`).
fn transactional_id(cfg: &Config) -> String {
    match cfg.service.instance_id() {
        Some(id) => format!("{}-{id}", cfg.kafka.group_id),
        None => format!("{}-{:016x}", cfg.kafka.group_id, rand::random::<u64>()),
    }
}

/// The partition count shared by the four input topics (they must be co-partitioned).
fn input_partitions(consumer: &GroupConsumer, cfg: &Config) -> Result<u32, ServiceError> {
    let mut counts = Vec::new();
    for topic in cfg.kafka.topics.inputs() {
        let n = topic_partitions(consumer, topic)?;
        if n == 0 {
            return Err(ServiceError::Inputs(format!(
                "topic {topic} does not exist (kafka.topics)"
            )));
        }
        counts.push((topic, n));
    }
    let n = counts[0].1;
    if let Some((t, m)) = counts.iter().find(|(_, m)| *m != n) {
        return Err(ServiceError::Inputs(format!(
            "{} has {n} partitions but {t} has {m}: the input topics must be co-partitioned",
            counts[0].0
        )));
    }
    Ok(n as u32)
}

/// librdkafka's texts of the first errors queued for the consumer (at most three), as
/// ` (librdkafka: …; …)`, or nothing: a failed TLS handshake (`certificate verify failed`) or
/// SASL login says why there, while the metadata request fails with a bare `Broker transport
/// failure`. Only on the way to a failed start: it polls the consumer, and nothing it might
/// read is kept.
fn connection_errors(consumer: &GroupConsumer) -> String {
    let mut texts: Vec<String> = Vec::new();
    let started = Instant::now();
    while texts.len() < 3 && started.elapsed() < Duration::from_millis(500) {
        match consumer.poll(Duration::from_millis(50)) {
            Some(Err(_)) => {
                if let Some(t) = consumer.context().take_error_text() {
                    if !texts.contains(&t) {
                        texts.push(t);
                    }
                }
            }
            Some(Ok(_)) => {}
            None => break,
        }
    }
    if texts.is_empty() {
        String::new()
    } else {
        format!(" (librdkafka: {})", texts.join("; "))
    }
}

/// Partitions of `topic` (0 if it does not exist).
fn topic_partitions(consumer: &GroupConsumer, topic: &str) -> Result<usize, ServiceError> {
    let md = consumer
        .fetch_metadata(Some(topic), QUERY_TIMEOUT)
        .map_err(|e| {
            let cause = connection_errors(consumer);
            ServiceError::Inputs(format!("metadata of {topic}: {e}{cause}"))
        })?;
    Ok(md
        .topics()
        .iter()
        .find(|t| t.name() == topic)
        .filter(|t| t.error().is_none())
        .map_or(0, |t| t.partitions().len()))
}
