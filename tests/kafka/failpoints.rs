//! Crashes at named points (`stockwatch::failpoint`, the `fail` crate: `cargo test` builds the
//! binary with the `failpoints` feature), in both delivery modes, against tansu: an instance
//! reads a backlog with `FAILPOINTS` naming one point and aborts there (as SIGKILL would:
//! nothing flushed, nothing committed); an instance without it then restores from the
//! changelog and reads to the end. Then:
//!
//! - the distinct alert ids (and bodies but `emitted_at`) equal `replay`'s, every alert valid
//!   against the schema;
//! - the dead letters, deduplicated by source (topic, partition, offset), equal `replay`'s
//!   rejects;
//! - `exactly_once`: nothing visible after the crash (the tails read `read_committed`,
//!   librdkafka's default) is published again. Records of the transaction the crash left open
//!   may appear twice: tansu 0.6 hands an aborted transaction's records to `read_committed`
//!   readers (a real Kafka broker does not), so "no raw duplicate" cannot be asserted here;
//! - the state rebuilt from the changelog equals `replay --flush --state-out`.
//!
//! Each test prints its figures (`-- --nocapture`): when the crash came, how many alerts were
//! visible then, how long the recovering instance took to be ready and to publish everything.

use std::collections::BTreeSet;
use std::os::unix::process::ExitStatusExt;
use std::time::{Duration, Instant};

use stockwatch::failpoint;

use super::failover::{
    changelog_state_equals_replay, check_alerts, check_dead_letters, create_topics,
    dead_letter_source, distinct_ids, expected, partitions_of, sim_args, stop_gracefully, ALL,
    PARTITIONS, WAIT,
};
use crate::support::broker::Broker;
use crate::support::consume::Tail;
use crate::support::service::{topics, Instance, Producer};

/// A dead letter's source: (topic, partition, offset).
type Source = (String, String, String);

/// The items that occur more than once.
fn repeated<T: Ord>(items: impl Iterator<Item = T>) -> BTreeSet<T> {
    let mut seen = BTreeSet::new();
    let mut twice = BTreeSet::new();
    for i in items {
        if let Some(i) = seen.replace(i) {
            twice.insert(i);
        }
    }
    twice
}

/// How long an instance may take to reach its crash point.
const CRASH_WAIT: Duration = Duration::from_secs(90);

/// One instance that must abort at a crash point.
struct Crash {
    /// `FAILPOINTS` for it, e.g. `before_offsets_commit=5*off->return`.
    failpoints: String,
    /// The point it must abort at.
    point: &'static str,
    /// `kafka.poll_max_messages` for it.
    batch: &'static str,
}

impl Crash {
    /// Aborts at the `n + 1`-th pass through `point`, reading batches of at most 500 messages
    /// (many batches on the backlog, not a few large ones).
    fn after(point: &'static str, n: u32) -> Crash {
        Crash {
            failpoints: format!("{point}={n}*off->return"),
            point,
            batch: "500",
        }
    }

    /// With the default batches (4 096 messages: several rejects per input partition).
    fn large_batches(self) -> Crash {
        Crash {
            batch: "4096",
            ..self
        }
    }
}

/// Runs `crashes` one after the other on a backlog of the stream of `seed` (each instance must
/// abort at its point), then a recovering instance without failpoints, and checks what the
/// topics and the changelog hold against `replay`.
fn crash_and_recover(name: &str, exactly_once: bool, seed: &str, crashes: &[Crash]) {
    let t0 = Instant::now();
    let broker = Broker::start();
    let bootstrap = broker.bootstrap();
    let dir = tempfile::tempdir().unwrap();
    let mode = if exactly_once {
        "exactly_once"
    } else {
        "at_least_once"
    };
    let prefix = format!("fp-{name}.");
    let group = format!("fp-{name}");
    let t = topics(&prefix);
    let want = expected(dir.path(), seed);
    let want_dead: usize = want.by_reason.values().sum();

    create_topics(&bootstrap, &prefix);
    // The whole stream first: the instances start on a backlog (large batches, several
    // dead letters per input partition and batch), so each crash comes mid-stream.
    let mut producer = Producer::start(&bootstrap, &prefix, PARTITIONS, &sim_args(seed));
    producer.wait(Duration::from_secs(120));
    let mut alerts = Tail::new(&bootstrap, &t[4..5], PARTITIONS as i32);
    let mut dead = Tail::new(&bootstrap, &t[5..6], PARTITIONS as i32);

    let mut env: Vec<(&str, &str)> = vec![("STOCKWATCH__SERVICE__DELIVERY", mode)];
    if exactly_once {
        // The same transactional id across restarts: each aborts its predecessor's open
        // transaction.
        env.push(("STOCKWATCH__SERVICE__INSTANCE_ID", "fp-0"));
    }
    let mut first_visible: Option<(BTreeSet<String>, BTreeSet<Source>)> = None;
    for (i, c) in crashes.iter().enumerate() {
        let mut with = env.clone();
        with.push(("FAILPOINTS", &c.failpoints));
        with.push(("STOCKWATCH__KAFKA__POLL_MAX_MESSAGES", c.batch));
        // A commit (point) every 50 ms, not every second: the backlog takes a few seconds,
        // and the crash must come after several commits, mid-stream.
        with.push(("STOCKWATCH__SERVICE__COMMIT_INTERVAL_MS", "50"));
        let mut inst = Instance::start(
            &format!("crash{i}"),
            &bootstrap,
            &prefix,
            &group,
            dir.path(),
            &with,
        );
        let Some(status) = inst.wait_exit(CRASH_WAIT) else {
            panic!(
                "{name}: instance {} did not reach {} within {CRASH_WAIT:?}:\n{}",
                inst.name,
                c.failpoints,
                inst.log()
            );
        };
        let log = inst.log();
        assert_eq!(
            status.signal(),
            Some(libc::SIGABRT),
            "{name}: instance {} should have aborted at {} ({status}):\n{log}",
            inst.name,
            c.point
        );
        assert!(
            log.contains(&format!("failpoint {}: aborting the process", c.point)),
            "{name}: instance {} aborted elsewhere than at {}:\n{log}",
            inst.name,
            c.point
        );
        alerts.poll_for(Duration::from_millis(500));
        dead.poll_for(Duration::from_millis(200));
        if i == 0 {
            // What the first crash left committed (exactly_once: the open transaction is not
            // visible yet; the next instance's init aborts it).
            first_visible = Some((
                distinct_ids(&alerts.records),
                dead.records.iter().map(dead_letter_source).collect(),
            ));
        }
        eprintln!(
            "{name} ({mode}): instance {} aborted at {} after {:.1} s; visible so far: {} alerts ({} distinct), {} dead letters",
            inst.name,
            c.point,
            inst.started.elapsed().as_secs_f64(),
            alerts.records.len(),
            distinct_ids(&alerts.records).len(),
            dead.records.len(),
        );
    }
    let visible_at_crash = distinct_ids(&alerts.records).len();
    let mut r = Instance::start("recover", &bootstrap, &prefix, &group, dir.path(), &env);
    r.wait_ready(WAIT, |rep| {
        partitions_of(rep) == ALL && rep["ready"] == true
    });
    let t_ready = r.started.elapsed();
    let want_ids: BTreeSet<String> = want.alerts.keys().cloned().collect();
    let complete = alerts.poll_until(Duration::from_secs(90), Duration::from_secs(1), |recs| {
        distinct_ids(recs).is_superset(&want_ids)
    });
    let dead_complete = dead.poll_until(WAIT, Duration::from_secs(1), |recs| {
        recs.iter()
            .map(dead_letter_source)
            .collect::<BTreeSet<_>>()
            .len()
            >= want_dead
    });
    let t_complete = r.started.elapsed();
    stop_gracefully(&mut r, Duration::from_secs(20));
    alerts.poll_for(Duration::from_millis(500));
    dead.poll_for(Duration::from_millis(500));

    let (alerts_before, dead_before) = first_visible.unwrap_or_default();
    let repeated_alerts = repeated(alerts.records.iter().filter_map(|m| {
        m.header("ce_id")
            .map(|id| String::from_utf8_lossy(id).into_owned())
    }));
    let repeated_dead = repeated(dead.records.iter().map(dead_letter_source));
    // exactly_once: what was committed before the crash is never published again. Records of
    // the transaction the crash left open may show up twice: tansu 0.6 hands an aborted
    // transaction's records to read_committed readers (docs/reliability.md).
    let alerts_again: Vec<&String> = repeated_alerts.intersection(&alerts_before).collect();
    let dead_again: Vec<&Source> = repeated_dead.intersection(&dead_before).collect();
    eprintln!(
        "{name} ({mode}): visible after the first crash: {} alerts, {} dead letters; \
         published twice in the end: {} alerts ({} of them visible after the first crash), \
         {} dead letters ({} of them visible after the first crash)",
        alerts_before.len(),
        dead_before.len(),
        repeated_alerts.len(),
        alerts_again.len(),
        repeated_dead.len(),
        dead_again.len(),
    );
    let f = check_alerts(&alerts.records, &want);
    let d = check_dead_letters(&dead.records, &prefix, &want);
    let state_equal = changelog_state_equals_replay(&bootstrap, &prefix, &group, dir.path());
    eprintln!(
        "{name} ({mode}): recovery ready after {:.1} s, everything published {:.1} s after its start; \
         alerts: {} expected, {} visible at the last crash, {} distinct, {} raw ({} duplicates); \
         dead letters: {want_dead} expected, {} distinct sources, {} raw; \
         state from the changelog equals replay: {state_equal}; total {:.1} s",
        t_ready.as_secs_f64(),
        t_complete.as_secs_f64(),
        want.alerts.len(),
        visible_at_crash,
        f.distinct,
        f.raw,
        f.duplicates,
        d.distinct,
        d.raw,
        t0.elapsed().as_secs_f64(),
    );
    assert!(
        visible_at_crash < want.alerts.len(),
        "{name}: every alert was published before the crash: the crash was not mid-stream"
    );
    f.assert_equal_to_replay(want.alerts.len());
    d.assert_equal_to_replay(&want);
    assert!(complete && dead_complete, "{name}: output incomplete");
    if exactly_once {
        assert!(
            alerts_again.is_empty() && dead_again.is_empty(),
            "{name}: committed before the crash and published again: alerts {alerts_again:?}, dead letters {dead_again:?}"
        );
    }
    assert!(
        state_equal,
        "{name}: the state rebuilt from the changelog differs from replay's"
    );
    drop(broker);
}

/// A crash at the second commit, once every record before it is acknowledged.
fn before_offsets_commit(exactly_once: bool, seed: &str) {
    let name = if exactly_once { "commit-eos" } else { "commit" };
    let crash = Crash::after(failpoint::BEFORE_OFFSETS_COMMIT, 1);
    crash_and_recover(name, exactly_once, seed, &[crash]);
}

/// A first crash leaves committed state mid-stream; the next instance aborts during its
/// restore, after the restore point is found and before the keys are read.
fn restore_between_passes(exactly_once: bool, seed: &str) {
    let name = if exactly_once {
        "restore-eos"
    } else {
        "restore"
    };
    let crashes = [
        Crash::after(failpoint::BEFORE_OFFSETS_COMMIT, 1),
        Crash::after(failpoint::RESTORE_BETWEEN_PASSES, 0),
    ];
    crash_and_recover(name, exactly_once, seed, &crashes);
}

/// A crash between two dead letters of one input partition's rejects in a batch.
fn dead_letter_batch_middle(exactly_once: bool, seed: &str) {
    let name = if exactly_once { "dead-eos" } else { "dead" };
    let crash = Crash::after(failpoint::DEAD_LETTER_BATCH_MIDDLE, 3).large_batches();
    crash_and_recover(name, exactly_once, seed, &[crash]);
}

#[test]
fn at_least_once_crash_before_the_offsets_commit() {
    let _one_at_a_time = crate::support::one_at_a_time();
    before_offsets_commit(false, "41");
}

#[test]
fn exactly_once_crash_before_the_offsets_are_sent_to_the_transaction() {
    let _one_at_a_time = crate::support::one_at_a_time();
    before_offsets_commit(true, "42");
}

#[test]
fn exactly_once_crash_between_send_offsets_and_commit() {
    let _one_at_a_time = crate::support::one_at_a_time();
    let crash = Crash::after(failpoint::BETWEEN_SEND_OFFSETS_AND_COMMIT, 1);
    crash_and_recover("sent-eos", true, "43", &[crash]);
}

#[test]
fn at_least_once_crash_between_the_two_restore_passes() {
    let _one_at_a_time = crate::support::one_at_a_time();
    restore_between_passes(false, "44");
}

#[test]
fn exactly_once_crash_between_the_two_restore_passes() {
    let _one_at_a_time = crate::support::one_at_a_time();
    restore_between_passes(true, "45");
}

#[test]
fn at_least_once_crash_in_the_middle_of_a_dead_letter_batch() {
    let _one_at_a_time = crate::support::one_at_a_time();
    dead_letter_batch_middle(false, "46");
}

#[test]
fn exactly_once_crash_in_the_middle_of_a_dead_letter_batch() {
    let _one_at_a_time = crate::support::one_at_a_time();
    dead_letter_batch_middle(true, "47");
}
