//! Restore speed of the state changelog, against a real broker: a shard with `--keys` keys is
//! written to a changelog partition (every key changed), offsets are committed for a group,
//! then the shard is restored exactly as the service does on assignment (marker, two passes,
//! rebuild) and compared with the original.
//!
//! ```sh
//! scripts/broker.sh start   # or any Kafka-protocol broker
//! cargo run --release --example restore_speed -- --bootstrap 127.0.0.1:9092 --keys 1000000
//! ```

use std::time::{Duration, Instant};

use anyhow::{ensure, Context};
use clap::Parser;
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer};
use rdkafka::topic_partition_list::{Offset, TopicPartitionList};
use rdkafka::ClientConfig;
use stockwatch::config::Config;
use stockwatch::decode::{DecodeLimits, Decoder, KeyPolicy, MessageRef};
use stockwatch::engine::persist;
use stockwatch::engine::Shard;
use stockwatch::service::changelog::{read_state, Lineage, Writer};
use stockwatch::sink::kafka::{EventProducer, ProducerSettings};

#[derive(Parser)]
#[command(about = "Measures restoring a shard from the state changelog on a real broker")]
struct Args {
    /// Broker address.
    #[arg(long, default_value = "127.0.0.1:9092")]
    bootstrap: String,
    /// Keys in the shard.
    #[arg(long, default_value_t = 1_000_000)]
    keys: usize,
}

fn main() -> anyhow::Result<()> {
    let a = Args::parse();
    let run = format!("restore-bench-{:08x}", rand::random::<u32>());
    let vars = [
        ("STOCKWATCH__KAFKA__BOOTSTRAP_SERVERS", a.bootstrap.clone()),
        ("STOCKWATCH__KAFKA__GROUP_ID", run.clone()),
        ("STOCKWATCH__KAFKA__TOPICS__SALES", format!("{run}.sales")),
        (
            "STOCKWATCH__KAFKA__TOPICS__SHIPMENTS",
            format!("{run}.shipments"),
        ),
        (
            "STOCKWATCH__KAFKA__TOPICS__RECEIPTS",
            format!("{run}.receipts"),
        ),
        (
            "STOCKWATCH__KAFKA__TOPICS__AVAILABILITY",
            format!("{run}.availability"),
        ),
        (
            "STOCKWATCH__KAFKA__TOPICS__CHANGELOG",
            format!("{run}.changelog"),
        ),
    ];
    let cfg = Config::load_with_env(None, vars.iter().map(|(k, v)| (k.to_string(), v.clone())))?;
    let t = &cfg.kafka.topics;

    // A shard with `keys` keys: a receipt and a sale for each (on hand known, demand seen).
    let started = Instant::now();
    let mut shard = Shard::new(cfg.engine_config());
    shard.set_inputs(4);
    shard.track_changes(true);
    let mut dec = Decoder::new(DecodeLimits::default(), KeyPolicy::Derive);
    let (mut alerts, mut rejects) = (Vec::new(), Vec::new());
    let t0 = 1_767_225_600_000i64;
    let now = t0 + 86_400_000;
    for chunk in (0..a.keys).collect::<Vec<_>>().chunks(4096) {
        let msgs: Vec<String> = chunk
            .iter()
            .flat_map(|&i| {
                let ts = stockwatch::alert::rfc3339_ms(t0 + (i as i64 % 3_600_000));
                [
                    format!(r#"{{"event_id":"r{i}","type":"receipt","sku":"K{}","location":"L{}","qty":20,"event_time":"{ts}"}}"#, i % 1000, i / 1000),
                    format!(r#"{{"event_id":"s{i}","type":"sale","sku":"K{}","location":"L{}","qty":1,"event_time":"{ts}"}}"#, i % 1000, i / 1000),
                ]
            })
            .collect();
        let b = dec.decode(
            msgs.iter().map(|m| MessageRef {
                key: None,
                value: m.as_bytes(),
            }),
            now,
            &mut rejects,
        );
        let rows: Vec<u32> = (0..b.len() as u32).collect();
        shard.ingest_rows(&b, &rows, 0, u64::from, &mut rejects);
        shard.advance(false, None, &mut alerts);
    }
    for i in 1..4 {
        shard.set_idle(i, true);
    }
    shard.advance(false, None, &mut alerts);
    ensure!(rejects.is_empty(), "{} rejects", rejects.len());
    eprintln!(
        "built a shard of {} keys ({} pending events) in {:.1} s",
        shard.keys(),
        shard.pending_events(),
        started.elapsed().as_secs_f64()
    );

    // Topics, then the changelog of every key.
    let mut ps = ProducerSettings::new(a.bootstrap.clone());
    ps.linger_ms = 20;
    let mut producer = EventProducer::new(ps)?;
    let inputs = t.inputs();
    producer.ensure_topics(&inputs, 1, 1, Duration::from_secs(20))?;
    producer.ensure_topics_with(
        &[t.changelog.as_str()],
        1,
        1,
        &[("cleanup.policy", "compact")],
        Duration::from_secs(20),
    )?;
    let before = persist::shard_to_batch(&shard, 0)?;
    let started = Instant::now();
    let mut lineage = Lineage::fresh();
    let written = Writer::default().write(
        &mut producer,
        &t.changelog,
        0,
        &mut shard,
        &mut lineage,
        [0; stockwatch::config::MAX_INPUTS],
    )?;
    producer.flush(Duration::from_secs(300))?;
    let write_secs = started.elapsed().as_secs_f64();
    let [keys, journals, _, _] = written.records;
    eprintln!(
        "wrote {keys} key records and {journals} journal records ({} bytes) in {write_secs:.1} s ({:.0} keys/s)",
        written.bytes.iter().sum::<u64>(),
        keys as f64 / write_secs
    );

    // The group's committed offsets: where the state ends.
    let c: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", &a.bootstrap)
        .set("group.id", &run)
        .set("enable.auto.commit", "false")
        .create()?;
    let mut tpl = TopicPartitionList::new();
    for topic in inputs {
        tpl.add_partition_offset(topic, 0, Offset::Offset(0))?;
    }
    c.commit(&tpl, CommitMode::Sync)
        .context("committing offsets")?;

    let started = Instant::now();
    let mut restored = read_state(&cfg, &[0])?;
    let secs = started.elapsed().as_secs_f64();
    let (_, r) = restored.remove(0);
    let equal = persist::shard_to_batch(&r.shard, 0)? == before;
    println!(
        "restore: {} keys from {} changelog records (two passes) in {secs:.2} s = {:.0} keys/s; equal to the original: {equal}",
        r.shard.keys(),
        r.records_read,
        r.shard.keys() as f64 / secs
    );
    ensure!(equal, "the restored shard differs from the original");
    Ok(())
}
