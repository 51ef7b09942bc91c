//! The alerts topic unavailable for minutes on a real broker, every other topic served, in
//! both delivery modes, two ways:
//!
//! - **Leaderless** (run): the broker advertises a Kafka-protocol proxy
//!   (`support::proxy::LeaderProxy`) whose Metadata responses give every partition of the
//!   alerts topic `LEADER_NOT_AVAILABLE` and no leader for [`LEADERLESS`], while input flows. The
//!   topic keeps its records: in the end every alert of `replay` is on it, none extra, the
//!   instance's memory stayed bounded, `/healthz` answered 200 while it ran, and it never
//!   ended: it recovered by itself (were it to end, the test restarts it as an orchestrator
//!   would, to report what was lost, and fails).
//! - **Deleted** and recreated [`OUTAGE`] later (below).
//!
//! **The deleted-topic tests are ignored: they fail on tansu, the only broker of the test
//! harness.** tansu (0.6.0) deletes
//! the topic but then acknowledges every record produced to it and keeps none, where Kafka
//! answers `UNKNOWN_TOPIC_OR_PARTITION`: the service sees no error and the alerts raised while
//! the topic was gone are lost at the broker (measured, docs/reliability.md). Kept to
//! reproduce that (`cargo test --test kafka alerts_topic:: -- --ignored --nocapture`) and for a
//! broker that refuses such records.
//!
//! What "no loss" can mean when the topic's data is deleted with it: the instance is frozen
//! (SIGSTOP, well under its session and transaction timeouts) while the test reads the alerts
//! topic to its end and deletes it, so nothing commits between the last read and the deletion.
//! The alerts read before the deletion (`before`) and those on the recreated topic (`after`)
//! together must then equal `replay`'s, none missing and none extra: whatever the service
//! could not deliver while the topic was gone it delivered once the topic was back (in
//! `exactly_once`: its transactions aborted and were redone; in `at_least_once`: nothing
//! committed before it was acknowledged). An alert in both, or twice in `after`, is a
//! duplicate: refused in `exactly_once` where the broker hides aborted transactions from
//! `read_committed` readers (probed first, as in the zombie tests; tansu does not), counted and
//! printed otherwise and in `at_least_once`.
//!
//! The instance may stay up or end (non-zero, naming the cause) during the outage; if it ends
//! the test restarts it after [`RESTART_BACKOFF`], as an orchestrator does. Asserted either
//! way: `/healthz` answers 200 while it runs, no panic, its memory stays bounded (see
//! [`RSS_BOUND`]), and it recovers by itself: ready with every partition and the alerts
//! complete after the topic is back.

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use rdkafka::admin::{AdminClient, AdminOptions};
use rdkafka::client::DefaultClientContext;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};

use super::failover::{
    create_topics, distinct_ids, expected, partitions_of, probe_fencing, sim_args, stop_gracefully,
    ALL, PARTITIONS, WAIT,
};
use super::outage::{rss_of, MAX_PENDING, QUEUE_KB, RSS_BOUND};
use crate::support::broker::Broker;
use crate::support::consume::Tail;
use crate::support::proxy::{self, LeaderProxy};
use crate::support::service::{topics, Instance, Producer};

/// How long the alerts topic stays deleted: past every bound of the service's own (the 5 s
/// stall report; in `exactly_once` the 10 s `transaction.timeout.ms` and the abort backoffs;
/// librdkafka's 30 s `topic.metadata.propagation.max.ms`).
const OUTAGE: Duration = Duration::from_secs(60);
/// How long the alerts topic stays leaderless: past the bounds of [`OUTAGE`], and long enough that in
/// `exactly_once` the input ends (~55 s in) and the batches that read nothing more (inputs
/// idle, the watermark applying what waited) abort at least twice in a row (one every ~12 s):
/// a restore that took the aborted one for the committed one (the broker keeps no commit
/// metadata) lost their alerts and left the instance silent, measured with 180 s.
const LEADERLESS: Duration = Duration::from_secs(120);
/// The changelog reader's prefetch bound: librdkafka's default `queued.max.messages.kbytes`.
const RESTORE_READER_QUEUE: u64 = 64 * 1024 * 1024;
/// An orchestrator's wait before restarting an instance that ended (Kubernetes' first
/// crash-loop backoff).
const RESTART_BACKOFF: Duration = Duration::from_secs(10);

/// The instance's settings for an outage: `delivery`, the small queues and reorder buffers
/// the memory bound is derived from ([`RSS_BOUND`]), and `extra`.
fn bounded_env(
    delivery: &'static str,
    extra: &[(&'static str, &str)],
) -> Vec<(&'static str, String)> {
    let mut env = vec![
        ("STOCKWATCH__SERVICE__DELIVERY", delivery.to_owned()),
        (
            "STOCKWATCH__KAFKA__MAX_PENDING_EVENTS",
            MAX_PENDING.to_string(),
        ),
        (
            "STOCKWATCH__KAFKA__PRODUCER__QUEUE__BUFFERING__MAX__KBYTES",
            QUEUE_KB.to_string(),
        ),
        (
            "STOCKWATCH__KAFKA__CONSUMER__QUEUED__MAX__MESSAGES__KBYTES",
            QUEUE_KB.to_string(),
        ),
    ];
    env.extend(extra.iter().map(|&(k, v)| (k, v.to_owned())));
    env
}

fn delete_topic(bootstrap: &str, topic: &str) {
    let admin: AdminClient<DefaultClientContext> = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .create()
        .expect("admin client");
    let opts = AdminOptions::new().operation_timeout(Some(Duration::from_secs(10)));
    let results =
        futures_executor::block_on(admin.delete_topics(&[topic], &opts)).expect("delete topics");
    for r in results {
        r.unwrap_or_else(|(t, e)| panic!("deleting {t}: {e}"));
    }
}

/// Whether the broker's metadata lists `topic` with every partition.
fn topic_exists(probe: &BaseConsumer, topic: &str) -> bool {
    probe
        .fetch_metadata(Some(topic), Duration::from_secs(5))
        .ok()
        .and_then(|m| {
            m.topics()
                .first()
                .map(|t| t.error().is_none() && t.partitions().len() == PARTITIONS as usize)
        })
        .unwrap_or(false)
}

fn alerts_topic_deleted(prefix: &str, group: &str, seed: &str, delivery: &'static str) {
    let t0 = Instant::now();
    let broker = Broker::start();
    let bootstrap = broker.bootstrap();
    let dir = tempfile::tempdir().unwrap();
    let t = topics(prefix);
    let alerts_topic = t[4].clone();
    let want = expected(dir.path(), seed);
    let want_ids: BTreeSet<String> = want.alerts.keys().cloned().collect();
    create_topics(&bootstrap, prefix);
    let eos = delivery == "exactly_once";
    let hides_aborted = eos && probe_fencing(&bootstrap, &format!("{prefix}probe")).aborted_hidden;
    // ~60 s of production (30 000 events at 500 a second): before, through and after the
    // deletion.
    let mut args = sim_args(seed);
    args.extend(["--rate", "500"]);
    let mut producer = Producer::start(&bootstrap, prefix, PARTITIONS, &args);
    let env = bounded_env(delivery, &[]);
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let start = |n: usize| {
        Instance::start(
            &format!("A{n}"),
            &bootstrap,
            prefix,
            group,
            dir.path(),
            &env,
        )
    };
    let mut sup = Supervised::new(start(0));
    (sup.a).wait_ready(WAIT, |r| partitions_of(r) == ALL && r["ready"] == true);
    // Alerts flow before the deletion.
    let mut tail = Tail::new(&bootstrap, &t[4..5], PARTITIONS as i32);
    assert!(
        tail.poll_until(WAIT, Duration::ZERO, |r| r.len() >= 20),
        "no alerts before the deletion:\n{}",
        sup.a.log()
    );
    assert!(
        producer.is_running(),
        "production ended before the deletion"
    );
    // Frozen, nothing commits: what the topic holds now is all it will ever have held.
    sup.a.freeze();
    tail.poll_for(Duration::from_secs(2));
    let before = distinct_ids(&tail.records);
    let before_raw = tail.records.len();
    drop(tail);
    let rss_at_delete = rss_of(sup.a.pid()).expect("rss");
    sup.max_rss = rss_at_delete;
    delete_topic(&bootstrap, &alerts_topic);
    let deleted = Instant::now();
    sup.a.thaw();
    let probe: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", &bootstrap)
        .create()
        .expect("metadata probe");
    let mut topic_back: Option<(f64, &str)> = None;
    let mut last_topic_check = Instant::now();
    while deleted.elapsed() < OUTAGE || !topic_exists(&probe, &alerts_topic) {
        if deleted.elapsed() >= OUTAGE && topic_back.is_none() {
            create_topics(&bootstrap, prefix);
            topic_back = Some((deleted.elapsed().as_secs_f64(), "the test"));
            continue;
        }
        sup.watch(&start, deleted);
        if topic_back.is_none() && last_topic_check.elapsed() >= Duration::from_secs(1) {
            last_topic_check = Instant::now();
            if topic_exists(&probe, &alerts_topic) {
                topic_back = Some((deleted.elapsed().as_secs_f64(), "the service"));
            }
        }
        std::thread::sleep(Duration::from_millis(250));
    }
    let back = Instant::now();
    if !sup.a.is_running() {
        // Ended as the topic came back: the orchestrator restarts it.
        sup.restarts += 1;
        sup.exits.push((
            deleted.elapsed().as_secs_f64(),
            sup.a.exit_status(),
            String::new(),
        ));
        sup.a = start(sup.restarts);
    }
    sup.a.wait_ready(Duration::from_secs(120), |r| {
        partitions_of(r) == ALL && r["ready"] == true
    });
    let ready_after = back.elapsed();
    producer.wait(Duration::from_secs(120));
    let need: BTreeSet<String> = want_ids.difference(&before).cloned().collect();
    let mut after = Tail::new(&bootstrap, &t[4..5], PARTITIONS as i32);
    let complete = after.poll_until(Duration::from_secs(90), Duration::from_secs(3), |r| {
        distinct_ids(r).is_superset(&need)
    });
    let complete_after = back.elapsed();
    let log = sup.a.log();
    stop_gracefully(&mut sup.a, Duration::from_secs(30));
    after.poll_for(Duration::from_secs(1));
    let Supervised {
        exits,
        restarts,
        max_rss,
        samples,
        healthz_not_ok,
        waiting_after,
        ..
    } = sup;
    let waiting_seen = waiting_after.is_some();
    let after_ids = distinct_ids(&after.records);
    let all: BTreeSet<String> = before.union(&after_ids).cloned().collect();
    let missing: Vec<&String> = want_ids.difference(&all).collect();
    let extra: Vec<&String> = all.difference(&want_ids).collect();
    let both = before.intersection(&after_ids).count();
    let raw_dups = after.records.len() - after_ids.len();
    eprintln!(
        "alerts topic deleted ({delivery}) for {:.0} s, back by {:?}: exits {exits:?}, {restarts} restarts; /healthz non-200 {healthz_not_ok} of {samples} samples, waiting_for_brokers seen: {waiting_seen}; RSS {:.1} MiB at the deletion, max {:.1} MiB (bound +{:.0} MiB); ready {:.1} s after the topic was back, alerts complete {:.1} s after; alerts: {} expected, {} read before the deletion ({before_raw} raw), {} after ({} raw), {raw_dups} raw duplicates after, {both} in both, {} missing, {} extra; broker hides aborted: {hides_aborted}; total {:.1} s",
        OUTAGE.as_secs_f64(),
        topic_back,
        rss_at_delete as f64 / 1048576.0,
        max_rss as f64 / 1048576.0,
        RSS_BOUND as f64 / 1048576.0,
        ready_after.as_secs_f64(),
        complete_after.as_secs_f64(),
        want_ids.len(),
        before.len(),
        after_ids.len(),
        after.records.len(),
        missing.len(),
        extra.len(),
        t0.elapsed().as_secs_f64()
    );
    assert!(!before.is_empty(), "no alert before the deletion");
    assert!(
        complete && missing.is_empty() && extra.is_empty(),
        "alerts lost or extra: missing e.g. {:?}, extra e.g. {:?}\n{log}",
        &missing[..missing.len().min(5)],
        &extra[..extra.len().min(5)]
    );
    assert_eq!(healthz_not_ok, 0, "/healthz not 200 while the instance ran");
    assert!(!log.contains("panicked"), "panicked:\n{log}");
    for (at, status, _) in &exits {
        assert!(
            status.is_some_and(|s| !s.success()),
            "an instance ended {at:.1} s into the outage with {status:?}"
        );
    }
    assert!(
        max_rss <= rss_at_delete + RSS_BOUND,
        "memory grew {:.1} MiB during the outage, over the {:.0} MiB bound",
        (max_rss - rss_at_delete) as f64 / 1048576.0,
        RSS_BOUND as f64 / 1048576.0
    );
    if hides_aborted {
        assert_eq!(
            (both, raw_dups),
            (0, 0),
            "alerts published twice across the deletion"
        );
    }
    drop(broker);
}

#[test]
#[ignore = "fails on tansu: it acknowledges and drops records produced to a deleted topic"]
fn alerts_topic_deleted_for_a_minute_exactly_once_loses_and_doubles_nothing() {
    let _one_at_a_time = crate::support::one_at_a_time();
    alerts_topic_deleted("at-deleted-eos.", "alerts-topic-eos", "41", "exactly_once");
}

#[test]
#[ignore = "fails on tansu: it acknowledges and drops records produced to a deleted topic"]
fn alerts_topic_deleted_for_a_minute_at_least_once_loses_nothing() {
    let _one_at_a_time = crate::support::one_at_a_time();
    alerts_topic_deleted("at-deleted-alo.", "alerts-topic-alo", "43", "at_least_once");
}

/// An instance watched through an outage: while it runs, its resident set, `/healthz` and
/// `/readyz`; once it ends, restarted [`RESTART_BACKOFF`] later as an orchestrator does, each
/// end noted (seconds from the outage's start, exit status, its last error line). A panic fails
/// the test.
struct Supervised {
    a: Instance,
    exits: Vec<(f64, Option<std::process::ExitStatus>, String)>,
    restarts: usize,
    ended_at: Option<Instant>,
    /// Largest resident set seen (set to the size at the outage's start first).
    max_rss: u64,
    /// `/healthz` samples, and those that were not 200.
    samples: usize,
    healthz_not_ok: usize,
    /// When `/readyz` first said `waiting_for_brokers`, seconds into the outage.
    waiting_after: Option<f64>,
}

impl Supervised {
    fn new(a: Instance) -> Self {
        Supervised {
            a,
            exits: Vec::new(),
            restarts: 0,
            ended_at: None,
            max_rss: 0,
            samples: 0,
            healthz_not_ok: 0,
            waiting_after: None,
        }
    }

    /// One look at the instance, `since` the outage began.
    fn watch(&mut self, start: &dyn Fn(usize) -> Instance, since: Instant) {
        if self.a.is_running() {
            if let Some(rss) = rss_of(self.a.pid()) {
                self.max_rss = self.max_rss.max(rss);
            }
            self.samples += 1;
            match self.a.get("/healthz") {
                Some((200, _)) => {}
                Some(_) => self.healthz_not_ok += 1,
                None => {} // not listening yet (a restart) or already gone
            }
            if (self.a.readiness()).is_some_and(|r| r["waiting_for_brokers"] == true) {
                (self.waiting_after).get_or_insert(since.elapsed().as_secs_f64());
            }
        }
        self.restart_if_ended(start, since);
    }

    fn restart_if_ended(&mut self, start: &dyn Fn(usize) -> Instance, since: Instant) {
        if self.a.is_running() {
            return;
        }
        let at = *self.ended_at.get_or_insert_with(Instant::now);
        if at.elapsed() < RESTART_BACKOFF {
            return;
        }
        let log = self.a.log();
        assert!(
            !log.contains("panicked"),
            "{} panicked:\n{log}",
            self.a.name
        );
        self.exits.push((
            at.duration_since(since).as_secs_f64(),
            self.a.exit_status(),
            (log.lines().rev())
                .find(|l| l.to_lowercase().contains("error"))
                .unwrap_or("")
                .to_owned(),
        ));
        self.restarts += 1;
        self.a = start(self.restarts);
        self.ended_at = None;
    }
}

/// The alerts topic without a leader for [`LEADERLESS`] on the real broker, every other topic
/// served: the broker advertises a Kafka-protocol proxy ([`LeaderProxy`]) whose Metadata
/// responses then give every partition of the alerts topic `LEADER_NOT_AVAILABLE` and no
/// leader, while input flows. Unlike a deleted topic its records stay: every alert of
/// `replay` must be on it in the end, none extra, and the instance must not have ended
/// (were it to end, it is restarted after [`RESTART_BACKOFF`] as an orchestrator would, so
/// that the failure also says what was lost).
fn alerts_topic_leaderless(prefix: &str, group: &str, seed: &str, delivery: &'static str) {
    let t0 = Instant::now();
    let listener = proxy::listener();
    let proxy_port = listener.local_addr().expect("proxy address").port();
    let broker = Broker::start_behind(proxy_port);
    let dir = tempfile::tempdir().unwrap();
    let t = topics(prefix);
    let proxy = LeaderProxy::start(listener, broker.port(), &t[4]);
    let bootstrap = proxy.bootstrap();
    let want = expected(dir.path(), seed);
    let want_ids: BTreeSet<String> = want.alerts.keys().cloned().collect();
    create_topics(&bootstrap, prefix);
    let eos = delivery == "exactly_once";
    let hides_aborted = eos && probe_fencing(&bootstrap, &format!("{prefix}probe")).aborted_hidden;
    // ~60 s of production (30 000 events at 500 a second): before, through and after.
    let mut args = sim_args(seed);
    args.extend(["--rate", "500"]);
    let mut producer = Producer::start(&bootstrap, prefix, PARTITIONS, &args);
    // The proxy cannot refuse records the way a broker that lost leadership does (which
    // makes a client ask for metadata again): the producer asks every second instead of
    // every 5 minutes, and learns of the outage from that.
    // at_least_once waits for acknowledgements through the outage without reading: a poll
    // interval shorter than the outage shows that the member stays in the group meanwhile
    // (before, it left the group when the acknowledgements resumed, and its partitions were
    // revoked and restored). exactly_once keeps the default: its abort waits up to 30 s.
    let max_poll = if eos { "300000" } else { "20000" };
    let env = bounded_env(
        delivery,
        &[
            (
                "STOCKWATCH__KAFKA__PRODUCER__TOPIC__METADATA__REFRESH__INTERVAL__MS",
                "1000",
            ),
            (
                "STOCKWATCH__KAFKA__CONSUMER__MAX__POLL__INTERVAL__MS",
                max_poll,
            ),
        ],
    );
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let start = |n: usize| {
        Instance::start(
            &format!("A{n}"),
            &bootstrap,
            prefix,
            group,
            dir.path(),
            &env,
        )
    };
    let mut sup = Supervised::new(start(0));
    (sup.a).wait_ready(WAIT, |r| partitions_of(r) == ALL && r["ready"] == true);
    let mut tail = Tail::new(&bootstrap, &t[4..5], PARTITIONS as i32);
    assert!(
        tail.poll_until(WAIT, Duration::ZERO, |r| r.len() >= 20),
        "no alerts before the outage:\n{}",
        sup.a.log()
    );
    drop(tail);
    assert!(producer.is_running(), "production ended before the outage");
    let rss_at_down = rss_of(sup.a.pid()).expect("rss");
    proxy.set_leaderless(true);
    let down = Instant::now();
    sup.max_rss = rss_at_down;
    // The resident set every 10 s of the outage, MiB over its size when the leaders went.
    let mut rss_every_10s: Vec<f64> = Vec::new();
    while down.elapsed() < LEADERLESS {
        sup.watch(&start, down);
        if down.elapsed().as_secs() >= 10 * rss_every_10s.len() as u64 {
            if let Some(rss) = rss_of(sup.a.pid()).filter(|_| sup.a.is_running()) {
                rss_every_10s.push((rss as f64 - rss_at_down as f64) / 1048576.0);
            }
        }
        std::thread::sleep(Duration::from_millis(250));
    }
    // `exactly_once` also restores every shard after each abort: the changelog reader's
    // prefetch (librdkafka's `queued.max.messages.kbytes`, 64 MiB: the reader takes no
    // `[kafka.consumer]` setting) comes on top of the queues of the bound.
    let bound = RSS_BOUND + if eos { RESTORE_READER_QUEUE } else { 0 };
    let (patched, unparsed) = (proxy.patched(), proxy.unparsed());
    let restarts_in_outage = sup.restarts;
    proxy.set_leaderless(false);
    let back = Instant::now();
    // Every alert of replay on the topic, the instance restarted whenever it ends.
    producer.wait(Duration::from_secs(120));
    let mut all = Tail::new(&bootstrap, &t[4..5], PARTITIONS as i32);
    let mut complete = false;
    while !complete && back.elapsed() < Duration::from_secs(240) {
        sup.restart_if_ended(&start, down);
        complete = all.poll_until(Duration::from_secs(1), Duration::ZERO, |r| {
            distinct_ids(r).is_superset(&want_ids)
        });
    }
    let complete_after = back.elapsed();
    sup.a.wait_ready(Duration::from_secs(60), |r| {
        partitions_of(r) == ALL && r["ready"] == true
    });
    let renewals = sup.a.metric("stockwatch_producer_renewals_total");
    let log = sup.a.log();
    stop_gracefully(&mut sup.a, Duration::from_secs(30));
    all.poll_for(Duration::from_secs(1));
    let got = distinct_ids(&all.records);
    let missing: Vec<&String> = want_ids.difference(&got).collect();
    let extra: Vec<&String> = got.difference(&want_ids).collect();
    let raw_dups = all.records.len() - got.len();
    let Supervised {
        exits,
        restarts,
        max_rss,
        samples,
        healthz_not_ok,
        waiting_after,
        ..
    } = sup;
    eprintln!(
        "alerts topic leaderless ({delivery}) for {:.0} s ({patched} metadata responses patched, {unparsed} unparsed): exits {exits:?} (s from the outage's start, status, last error line), {} restarts ({restarts_in_outage} during the outage), producer renewals {renewals:?}; /healthz non-200 {healthz_not_ok} of {samples} samples; waiting_for_brokers {waiting_after:?} s into it; RSS {:.1} MiB at the start, max {:.1} MiB (bound +{:.0} MiB; every 10 s: {rss_every_10s:.1?} MiB over the start); alerts complete {:.1} s after the leaders returned; alerts: {} expected, {} distinct, {} raw, {raw_dups} raw duplicates, {} missing, {} extra; broker hides aborted: {hides_aborted}; total {:.1} s",
        LEADERLESS.as_secs_f64(),
        restarts,
        rss_at_down as f64 / 1048576.0,
        max_rss as f64 / 1048576.0,
        bound as f64 / 1048576.0,
        complete_after.as_secs_f64(),
        want_ids.len(),
        got.len(),
        all.records.len(),
        missing.len(),
        extra.len(),
        t0.elapsed().as_secs_f64()
    );
    assert!(patched > 0, "no Metadata response named the alerts topic");
    assert!(
        complete && missing.is_empty() && extra.is_empty(),
        "alerts lost or extra: missing e.g. {:?}, extra e.g. {:?}\n{log}",
        &missing[..missing.len().min(5)],
        &extra[..extra.len().min(5)]
    );
    assert_eq!(healthz_not_ok, 0, "/healthz not 200 while the instance ran");
    // Recovery by itself, without a restart: at_least_once waits the outage out;
    // exactly_once aborts and redoes its batches, and replaces its producer where an abort
    // cannot complete (on tansu: after the outage, the epoch bump that
    // OUT_OF_ORDER_SEQUENCE_NUMBER asks for is never granted).
    assert!(
        exits.is_empty(),
        "the instance ended (s from the outage's start, status, last error line): {exits:?}\n{log}"
    );
    assert!(
        !log.contains("partition revoked") && !log.contains("maximum poll interval"),
        "the instance left the group during the outage:\n{log}"
    );
    assert!(
        max_rss <= rss_at_down + bound,
        "memory grew {:.1} MiB during the outage, over the {:.0} MiB bound",
        (max_rss - rss_at_down) as f64 / 1048576.0,
        bound as f64 / 1048576.0
    );
    if hides_aborted {
        assert_eq!(raw_dups, 0, "alerts published twice");
    }
    drop(proxy);
    drop(broker);
}

#[test]
fn alerts_topic_leaderless_for_two_minutes_exactly_once_loses_nothing() {
    let _one_at_a_time = crate::support::one_at_a_time();
    alerts_topic_leaderless(
        "at-leaderless-eos.",
        "alerts-leaderless-eos",
        "47",
        "exactly_once",
    );
}

#[test]
fn alerts_topic_leaderless_for_two_minutes_at_least_once_loses_nothing() {
    let _one_at_a_time = crate::support::one_at_a_time();
    alerts_topic_leaderless(
        "at-leaderless-alo.",
        "alerts-leaderless-alo",
        "53",
        "at_least_once",
    );
}
