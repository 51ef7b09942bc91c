//! Reading topics back in tests: assign partitions directly (no group join to wait for) and
//! stop by counting, not by high watermarks (tansu's are not reliable).

use std::time::{Duration, Instant};

use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::{Message, Offset, TopicPartitionList};

/// Consuming 20 000 records from a local broker takes about a second; this bounds a hang.
pub const CONSUME_DEADLINE: Duration = Duration::from_secs(60);
/// After the expected count, keep polling this long to catch extra (duplicated) records.
pub const QUIET_PERIOD: Duration = Duration::from_millis(500);

/// One consumed record.
#[derive(Debug)]
pub struct Consumed {
    pub topic: String,
    pub partition: i32,
    pub key: Vec<u8>,
    pub value: Vec<u8>,
    /// Names decoded lossily (a name that is not UTF-8 gets U+FFFD).
    pub headers: Vec<(String, Vec<u8>)>,
    /// Names and values as they are on the topic (`None`: a null value).
    pub raw_headers: Vec<(Vec<u8>, Option<Vec<u8>>)>,
}

impl Consumed {
    fn from_message(m: &rdkafka::message::BorrowedMessage<'_>) -> Self {
        // Not `Headers::get`: rdkafka 0.39 panics on a name that is not UTF-8.
        let raw = stockwatch::source::kafka::raw_headers(m);
        Consumed {
            topic: m.topic().to_owned(),
            partition: m.partition(),
            key: m.key().unwrap_or_default().to_vec(),
            value: m.payload().unwrap_or_default().to_vec(),
            headers: raw
                .iter()
                .map(|h| {
                    let name = String::from_utf8_lossy(h.name).into_owned();
                    (name, h.value.unwrap_or_default().to_vec())
                })
                .collect(),
            raw_headers: raw
                .iter()
                .map(|h| (h.name.to_vec(), h.value.map(<[u8]>::to_vec)))
                .collect(),
        }
    }

    /// The value of header `name`, if present.
    pub fn header(&self, name: &str) -> Option<&[u8]> {
        self.headers
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_slice())
    }
}

/// A consumer with every partition of `topics` assigned from the beginning (no group join to
/// wait for; `group` only names it).
fn from_beginning(
    bootstrap: &str,
    group: &str,
    topics: &[String],
    partitions: i32,
) -> BaseConsumer {
    from_beginning_with(bootstrap, group, topics, partitions, "read_committed")
}

fn from_beginning_with(
    bootstrap: &str,
    group: &str,
    topics: &[String],
    partitions: i32,
    isolation: &str,
) -> BaseConsumer {
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("group.id", group)
        .set("isolation.level", isolation)
        .set("auto.offset.reset", "earliest")
        .set("enable.auto.commit", "false")
        .set("session.timeout.ms", "6000")
        .create()
        .expect("consumer");
    let mut tpl = TopicPartitionList::new();
    for t in topics {
        for p in 0..partitions {
            tpl.add_partition_offset(t, p, Offset::Beginning)
                .expect("partition");
        }
    }
    consumer.assign(&tpl).expect("assign");
    consumer
}

/// Reads `topics` (each with `partitions` partitions) from the beginning until `expected`
/// records arrived and then a quiet period passed, or the deadline. Partitions are assigned
/// directly (no group join to wait for) and the end is found by counting: tansu's high
/// watermarks are not reliable.
pub fn consume(
    bootstrap: &str,
    topics: &[String],
    partitions: i32,
    expected: usize,
) -> Vec<Consumed> {
    consume_until(bootstrap, topics, partitions, expected, CONSUME_DEADLINE)
}

/// [`consume`] with its own deadline.
pub fn consume_until(
    bootstrap: &str,
    topics: &[String],
    partitions: i32,
    expected: usize,
    deadline: Duration,
) -> Vec<Consumed> {
    consume_isolated(
        bootstrap,
        topics,
        partitions,
        expected,
        deadline,
        "read_committed",
    )
}

/// [`consume_until`] with `isolation.level` = `isolation`: `read_uncommitted` reads
/// uncommitted records too, for outputs written without transactions (`at_least_once`), where
/// it reads the same records.
pub fn consume_isolated(
    bootstrap: &str,
    topics: &[String],
    partitions: i32,
    expected: usize,
    deadline: Duration,
    isolation: &str,
) -> Vec<Consumed> {
    let group = format!("kafka-simulate-test-{isolation}-{}", std::process::id());
    let consumer = from_beginning_with(bootstrap, &group, topics, partitions, isolation);
    read_until(consumer, expected, deadline)
}

fn read_until(consumer: BaseConsumer, expected: usize, deadline: Duration) -> Vec<Consumed> {
    let started = Instant::now();
    let mut got = Vec::with_capacity(expected);
    let mut complete_at: Option<Instant> = None;
    while started.elapsed() < deadline {
        if complete_at.is_some_and(|t| t.elapsed() > QUIET_PERIOD) {
            break;
        }
        match consumer.poll(Duration::from_millis(100)) {
            Some(Ok(m)) => {
                got.push(Consumed::from_message(&m));
                if got.len() >= expected && complete_at.is_none() {
                    complete_at = Some(Instant::now());
                }
            }
            Some(Err(e)) => panic!("consume: {e}"),
            None => {}
        }
    }
    eprintln!(
        "consumed {} records in {:.2} s",
        got.len(),
        started.elapsed().as_secs_f64()
    );
    got
}

/// A reader that follows `topics` from the beginning for the whole test, keeping every record
/// (duplicates included) in arrival order: for tests that watch output while the service runs.
pub struct Tail {
    consumer: BaseConsumer,
    /// Everything read so far.
    pub records: Vec<Consumed>,
}

impl Tail {
    /// Assigns every partition of `topics` from the beginning (no group join).
    pub fn new(bootstrap: &str, topics: &[String], partitions: i32) -> Tail {
        static N: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
        let n = N.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let group = format!("test-tail-{}-{n}", std::process::id());
        let consumer = from_beginning(bootstrap, &group, topics, partitions);
        Tail {
            consumer,
            records: Vec::new(),
        }
    }

    /// Reads whatever arrives within `d`; returns how many records that was.
    pub fn poll_for(&mut self, d: Duration) -> usize {
        let started = Instant::now();
        let before = self.records.len();
        loop {
            let left = d.saturating_sub(started.elapsed());
            if left.is_zero() {
                break;
            }
            match self.consumer.poll(left.min(Duration::from_millis(100))) {
                Some(Ok(m)) => self.records.push(Consumed::from_message(&m)),
                Some(Err(e)) => panic!("consume: {e}"),
                None => {}
            }
        }
        self.records.len() - before
    }

    /// Reads until `done(records)` holds and then nothing arrived for `quiet`, or until
    /// `deadline` passed. Returns whether `done` held.
    pub fn poll_until(
        &mut self,
        deadline: Duration,
        quiet: Duration,
        mut done: impl FnMut(&[Consumed]) -> bool,
    ) -> bool {
        let started = Instant::now();
        let mut ok = done(&self.records);
        let mut last = Instant::now();
        while started.elapsed() < deadline {
            if ok && last.elapsed() >= quiet {
                break;
            }
            match self.consumer.poll(Duration::from_millis(50)) {
                Some(Ok(m)) => {
                    self.records.push(Consumed::from_message(&m));
                    last = Instant::now();
                    if !ok {
                        ok = done(&self.records);
                    }
                }
                Some(Err(e)) => panic!("consume: {e}"),
                None => {}
            }
        }
        ok
    }
}

/// The end offset (last offset + 1) of every partition of `topics` that holds records, found
/// by reading them to a quiet period: tansu's high watermarks are not reliable. For topics
/// whose producer has finished.
pub fn ends(
    bootstrap: &str,
    topics: &[String],
    partitions: i32,
) -> std::collections::BTreeMap<(String, i32), i64> {
    let group = format!("test-ends-{}", std::process::id());
    let consumer = from_beginning(bootstrap, &group, topics, partitions);
    let started = Instant::now();
    let mut last = Instant::now();
    let mut ends = std::collections::BTreeMap::new();
    while started.elapsed() < CONSUME_DEADLINE && last.elapsed() < Duration::from_secs(2) {
        match consumer.poll(Duration::from_millis(100)) {
            Some(Ok(m)) => {
                last = Instant::now();
                let e = ends
                    .entry((m.topic().to_owned(), m.partition()))
                    .or_insert(0);
                *e = (*e).max(m.offset() + 1);
            }
            Some(Err(e)) => panic!("consume: {e}"),
            None => {}
        }
    }
    ends
}

/// The partitions of `ends` that `group` has not committed to their end: `(topic, partition,
/// committed, end)`; empty once the group has read and committed everything.
pub fn behind(
    bootstrap: &str,
    group: &str,
    ends: &std::collections::BTreeMap<(String, i32), i64>,
) -> Vec<(String, i32, Option<i64>, i64)> {
    let c: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("group.id", group)
        .set("enable.auto.commit", "false")
        .create()
        .expect("consumer");
    let mut tpl = TopicPartitionList::new();
    for (t, p) in ends.keys() {
        tpl.add_partition(t, *p);
    }
    let committed = c
        .committed_offsets(tpl, Duration::from_secs(10))
        .unwrap_or_default();
    let mut out = Vec::new();
    for ((t, p), &end) in ends {
        let at = committed
            .find_partition(t, *p)
            .and_then(|e| match e.offset() {
                Offset::Offset(o) => Some(o),
                _ => None,
            });
        if at != Some(end) {
            out.push((t.clone(), *p, at, end));
        }
    }
    out
}
