//! `stockwatch reset-state`: the operator's way out of a partition whose changelog and
//! committed input offsets disagree ([`changelog::Inconsistency`]). It writes a new restore
//! point and commits the group's input offsets naming it, so the next restore of the
//! partition is consistent again:
//!
//! - [`ResetFrom::Changelog`]: adopt the changelog's last shard record. Nothing is written to
//!   the changelog; the group's offsets become the ones that state reflects. The state (on
//!   hand, open alerts, model) is what it was; the inputs resume right after it.
//! - [`ResetFrom::Earliest`]: an empty state, and the inputs read again from the earliest
//!   offset each input partition still holds. Once caught up, the state is what `replay` of
//!   those records gives: with inputs retained since the first event, the state it had; alerts
//!   are published again (same `alert_id`s: consumers deduplicate).
//! - [`ResetFrom::Committed`]: an empty state from the committed offsets (the earliest held
//!   where none is committed): nothing is read again. Every key starts unknown, as on a first
//!   deployment, until its next event — `load-positions` gives every key its on hand.
//!
//! The group must have no members: a running instance would commit over the reset, and its
//! restored shard would not see it until its next rebalance. The command refuses otherwise.

use std::time::Duration;

use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer};
use rdkafka::topic_partition_list::{Offset, TopicPartitionList};

use super::changelog::{self, Lineage, RestoreError, BATCH_METADATA};
use crate::config::{Config, MAX_INPUTS};
use crate::engine::Shard;
use crate::sink::kafka::{EventProducer, ProduceError, ProducerSettings};

/// Bound on each broker query of the command.
const TIMEOUT: Duration = Duration::from_secs(10);

/// Where a reset partition's state and inputs start.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum ResetFrom {
    /// Empty state; inputs from the earliest offset held (everything retained is read again).
    Earliest,
    /// Empty state; inputs from the committed offsets (nothing read again).
    Committed,
    /// The changelog's last state; inputs from the offsets it reflects.
    Changelog,
}

impl ResetFrom {
    /// The command-line word.
    pub fn as_str(self) -> &'static str {
        match self {
            ResetFrom::Earliest => "earliest",
            ResetFrom::Committed => "committed",
            ResetFrom::Changelog => "changelog",
        }
    }
}

/// Errors of `reset-state`.
#[derive(Debug, thiserror::Error)]
pub enum ResetError {
    /// A Kafka client call failed.
    #[error("{what}: {error}")]
    Kafka {
        /// What was being done.
        what: &'static str,
        /// The error.
        error: rdkafka::error::KafkaError,
    },
    /// Instances of the group are running.
    #[error("consumer group {group} has {} running member(s) ({}): stop every instance (e.g. scale the deployment to 0) before resetting state", members.len(), members.join(", "))]
    GroupActive {
        /// The group.
        group: String,
        /// Its members' client ids and hosts.
        members: Vec<String>,
    },
    /// The partition does not exist in the input topics.
    #[error("partition {partition}: the input topics have {partitions} partitions")]
    NoPartition {
        /// The partition asked for.
        partition: i32,
        /// The input topics' partition count.
        partitions: usize,
    },
    /// `--from changelog` on a partition whose changelog holds no state.
    #[error("partition {0}: the changelog holds no state to adopt: use --from earliest or --from committed")]
    NoChangelogState(i32),
    /// Writing the restore point failed.
    #[error(transparent)]
    Produce(#[from] ProduceError),
    /// Reading the changelog, or the check after the reset, failed.
    #[error(transparent)]
    Restore(#[from] RestoreError),
}

/// What a reset did to one partition.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResetOutcome {
    /// The partition.
    pub partition: i32,
    /// Committed now: per input topic (config order), the offset to read next.
    pub offsets: Vec<i64>,
    /// The restore point the commit names, `(epoch, seq)`.
    pub batch: (u64, u64),
    /// Keys of the state the next restore brings back.
    pub keys: usize,
}

/// Resets `partitions` (all input partitions when empty) of the group in `cfg` as `from`
/// says; see the module doc. Refuses while the group has members.
pub fn reset_state(
    cfg: &Config,
    partitions: &[i32],
    from: ResetFrom,
) -> Result<Vec<ResetOutcome>, ResetError> {
    let kafka = |what| move |error| ResetError::Kafka { what, error };
    // The changelog as the service's transactions left it: aborted batches excluded.
    let consumer: BaseConsumer =
        super::setup::reader_config(cfg, &cfg.kafka.group_id, "read_committed", "10")
            .create()
            .map_err(kafka("creating the consumer"))?;
    refuse_if_active(&consumer, &cfg.kafka.group_id)?;
    let mut ps = ProducerSettings::new(cfg.kafka.bootstrap_servers.clone());
    ps.properties = super::setup::producer_properties(cfg);
    let mut producer = EventProducer::new(ps)?;
    let inputs = cfg.kafka.topics.inputs();
    let topic = &cfg.kafka.topics.changelog;
    let count = consumer
        .fetch_metadata(Some(inputs[0]), TIMEOUT)
        .map_err(kafka("reading the input topics' metadata"))?
        .topics()
        .first()
        .map_or(0, |t| t.partitions().len());
    let all: Vec<i32> = (0..count as i32).collect();
    let partitions = if partitions.is_empty() {
        &all[..]
    } else {
        partitions
    };
    let mut commit = TopicPartitionList::new();
    let mut points = Vec::new();
    for &p in partitions {
        if p < 0 || p as usize >= count {
            return Err(ResetError::NoPartition {
                partition: p,
                partitions: count,
            });
        }
        let mut tpl = TopicPartitionList::new();
        for t in &inputs {
            tpl.add_partition(t, p);
        }
        let committed = changelog::committed_of(
            &consumer
                .committed_offsets(tpl, TIMEOUT)
                .map_err(kafka("reading the committed offsets"))?,
            &inputs,
        );
        let mut offsets = [0i64; MAX_INPUTS];
        let lineage = match from {
            ResetFrom::Changelog => {
                let (lineage, at) =
                    changelog::last_shard_record(&consumer, &mut producer, topic, p)?
                        .ok_or(ResetError::NoChangelogState(p))?;
                offsets = at;
                lineage
            }
            ResetFrom::Earliest | ResetFrom::Committed => {
                for (i, t) in inputs.iter().enumerate().take(MAX_INPUTS) {
                    let (low, _) = consumer
                        .fetch_watermarks(t, p, TIMEOUT)
                        .map_err(kafka("reading the input offsets"))?;
                    offsets[i] = match (from, committed.offsets[i]) {
                        (ResetFrom::Committed, Some(o)) => o.max(low),
                        _ => low.max(0),
                    };
                }
                // A restore point of its own: an empty shard reflecting `offsets`, in a new
                // lineage (no record of an earlier one counts in it).
                let mut shard = Shard::new(cfg.engine_config());
                shard.resize_inputs(inputs.len());
                shard.track_changes(true);
                let mut lineage = Lineage::fresh();
                lineage.committed = true;
                changelog::Writer::default().write(
                    &mut producer,
                    topic,
                    p,
                    &mut shard,
                    &mut lineage,
                    offsets,
                )?;
                producer.flush(Duration::from_secs(30))?;
                lineage
            }
        };
        let id = format!("{BATCH_METADATA}{}:{}", lineage.epoch, lineage.seq);
        for (i, t) in inputs.iter().enumerate().take(MAX_INPUTS) {
            commit
                .add_partition_offset(t, p, Offset::Offset(offsets[i]))
                .map_err(kafka("building the commit"))?;
            if let Some(mut e) = commit.find_partition(t, p) {
                e.set_metadata(id.clone());
            }
        }
        points.push((p, offsets, lineage));
    }
    // Checked again right before the commit: an instance started meanwhile would not see it.
    refuse_if_active(&consumer, &cfg.kafka.group_id)?;
    commit_outside(&consumer, &cfg.kafka.group_id, &commit)?;
    let mut out = Vec::new();
    for (p, offsets, lineage) in points {
        // The check: the restore the service will do now finds a consistent state.
        let mut check = TopicPartitionList::new();
        for t in &inputs {
            check.add_partition(t, p);
        }
        let now = changelog::committed_of(
            &consumer
                .committed_offsets(check, TIMEOUT)
                .map_err(kafka("reading the committed offsets back"))?,
            &inputs,
        );
        let restored = changelog::restore(
            &consumer,
            &mut producer,
            false,
            topic,
            p,
            now,
            cfg.engine_config(),
            &mut || false,
        )?;
        out.push(ResetOutcome {
            partition: p,
            offsets: offsets[..inputs.len()].to_vec(),
            batch: (lineage.epoch, lineage.seq),
            keys: restored.shard.keys(),
        });
    }
    Ok(out)
}

/// Commits `tpl` for the group from outside it (no member id, generation -1). A broker refuses
/// that while the group has members (`UNKNOWN_MEMBER_ID`, `ILLEGAL_GENERATION`, a rebalance in
/// progress): the second check that no instance runs, for brokers whose group description
/// lists no members.
fn commit_outside(
    consumer: &BaseConsumer,
    group: &str,
    tpl: &TopicPartitionList,
) -> Result<(), ResetError> {
    use rdkafka::types::RDKafkaErrorCode as C;
    match consumer.commit(tpl, CommitMode::Sync) {
        Ok(()) => Ok(()),
        Err(e)
            if matches!(
                e.rdkafka_error_code(),
                Some(C::UnknownMemberId | C::IllegalGeneration | C::RebalanceInProgress)
            ) =>
        {
            Err(ResetError::GroupActive {
                group: group.to_owned(),
                members: vec![format!("the broker refused the commit: {e}")],
            })
        }
        Err(error) => Err(ResetError::Kafka {
            what: "committing the offsets",
            error,
        }),
    }
}

/// Refuses while consumer group `group` has members.
fn refuse_if_active(consumer: &BaseConsumer, group: &str) -> Result<(), ResetError> {
    let list = consumer
        .fetch_group_list(Some(group), TIMEOUT)
        .map_err(|error| ResetError::Kafka {
            what: "describing the consumer group (is every instance stopped?)",
            error,
        })?;
    let members: Vec<String> = list
        .groups()
        .iter()
        .filter(|g| g.name() == group)
        .flat_map(|g| g.members())
        .map(|m| format!("{}@{}", m.client_id(), m.client_host()))
        .collect();
    if members.is_empty() {
        Ok(())
    } else {
        Err(ResetError::GroupActive {
            group: group.to_owned(),
            members,
        })
    }
}
