//! The consumer's ceiling on a broker, without the engine: reads every partition of the given
//! topics from the beginning with a plain `BaseConsumer` (assigned, no group) and reports
//! records per second, and the latency from each record's timestamp to its arrival here (p50,
//! p99, max; records produced before it started are left out). Used by the load run to tell
//! broker-bound from service-bound, and how much of the produce-to-alert latency is the
//! broker's and the clients'.
//!
//! `cargo run --release --example drain -- BOOTSTRAP EXPECTED TOPIC... [-X prop=value]...`

use std::time::{Duration, Instant};

use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::Message;
use rdkafka::{Offset, TopicPartitionList};

fn main() -> anyhow::Result<()> {
    let mut args: Vec<String> = std::env::args().skip(1).collect();
    let mut props = Vec::new();
    while let Some(i) = args.iter().position(|a| a == "-X") {
        let kv = args.remove(i + 1);
        args.remove(i);
        let (k, v) = kv
            .split_once('=')
            .ok_or_else(|| anyhow::anyhow!("-X {kv}: want k=v"))?;
        props.push((k.to_owned(), v.to_owned()));
    }
    let [bootstrap, expected, topics @ ..] = args.as_slice() else {
        anyhow::bail!("usage: drain BOOTSTRAP EXPECTED TOPIC... [-X prop=value]...");
    };
    let expected: u64 = expected.parse()?;
    let mut cfg = ClientConfig::new();
    cfg.set("bootstrap.servers", bootstrap)
        .set("group.id", "drain")
        .set("enable.auto.commit", "false");
    for (k, v) in &props {
        cfg.set(k, v);
    }
    let consumer: BaseConsumer = cfg.create()?;
    let mut tpl = TopicPartitionList::new();
    for t in topics {
        let md = consumer.fetch_metadata(Some(t), Duration::from_secs(10))?;
        for p in md.topics().iter().flat_map(|t| t.partitions()) {
            tpl.add_partition_offset(t, p.id(), Offset::Beginning)?;
        }
    }
    consumer.assign(&tpl)?;
    let (mut n, mut first, mut last) = (0u64, None, Instant::now());
    let deadline = Instant::now() + Duration::from_secs(600);
    let started_ms = chrono::Utc::now().timestamp_millis();
    let mut latencies: Vec<i64> = Vec::new();
    while n < expected && Instant::now() < deadline {
        if let Some(Ok(m)) = consumer.poll(Duration::from_millis(100)) {
            first.get_or_insert_with(Instant::now);
            n += 1;
            last = Instant::now();
            if let Some(ts) = m.timestamp().to_millis().filter(|&t| t > started_ms) {
                latencies.push(chrono::Utc::now().timestamp_millis() - ts);
            }
        }
    }
    latencies.sort_unstable();
    let q = |p: f64| {
        latencies
            .get(((latencies.len() as f64 - 1.0) * p).round() as usize)
            .copied()
            .unwrap_or(0)
    };
    println!(
        "record timestamp -> consumed: p50 {} ms, p99 {} ms, max {} ms ({} records produced after the start)",
        q(0.5),
        q(0.99),
        q(1.0),
        latencies.len()
    );
    let secs = first.map_or(0.0, |f| (last - f).as_secs_f64());
    println!(
        "{n} records in {secs:.2} s: {:.0} records/s ({} partitions, {:?})",
        n as f64 / secs.max(1e-9),
        tpl.count(),
        props
    );
    Ok(())
}
