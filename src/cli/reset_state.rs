//! `stockwatch reset-state`: resolves a partition the service reports as `changelog_missing`,
//! `changelog_truncated` or `offsets_missing` (see [`crate::service::reset`]).

use std::path::PathBuf;

use anyhow::Context;
use clap::Args;

use crate::config::Config;
use crate::service::reset::{reset_state, ResetFrom};

/// Arguments of `reset-state`.
#[derive(Debug, Args)]
#[command(after_long_help = "\
What each choice means for the state of the partition:
  changelog  the changelog's last state (on hand, open alerts, model) is kept; the group's input
             offsets are set to the ones it reflects. For offsets_missing (expired offsets).
  earliest   empty state; the inputs are read again from the earliest offset each partition
             still holds. Once caught up the state equals `replay` of those records; their
             alerts are published again (same alert_id). For changelog_missing/_truncated when
             the inputs are retained from the start.
  committed  empty state from the committed offsets: nothing is read again; every key's on hand
             is unknown until its next event (run `load-positions` with a fresh snapshot).
             For changelog_missing/_truncated when the inputs are not retained.

Every instance of the consumer group must be stopped first (e.g. scale the deployment to 0):
the command refuses while the group has members. Start the instances again afterwards.

Examples:
  stockwatch reset-state --config prod.toml --partition 3 --from changelog
  stockwatch reset-state --config prod.toml --partition 1 --partition 2 --from earliest

Exit status: 0 with one line per partition reset (its offsets and the keys its next restore
brings back); 1 with the error.")]
pub struct ResetStateArgs {
    /// Configuration file of the service (layered like `run`'s: the group, the topics and
    /// the brokers come from it).
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Partition to reset (repeat for several). Required unless `--all-partitions`.
    #[arg(
        long = "partition",
        value_name = "P",
        required_unless_present = "all_partitions"
    )]
    pub partitions: Vec<i32>,
    /// Reset every partition of the input topics.
    #[arg(long, conflicts_with = "partitions")]
    pub all_partitions: bool,
    /// Where the state and the inputs start: see below.
    #[arg(long, value_enum, value_name = "FROM")]
    pub from: ResetFrom,
}

/// Runs `reset-state`.
pub fn run(a: ResetStateArgs) -> anyhow::Result<()> {
    let cfg = Config::load(a.config.as_deref())?;
    let done = reset_state(&cfg, &a.partitions, a.from)
        .with_context(|| format!("reset-state of group {}", cfg.kafka.group_id))?;
    let inputs = cfg.kafka.topics.inputs();
    for r in done {
        let offsets: Vec<String> = inputs
            .iter()
            .zip(&r.offsets)
            .map(|(t, o)| format!("{t}={o}"))
            .collect();
        println!(
            "partition {}: reset from {}: {} keys, inputs from {}, restore point {}:{}",
            r.partition,
            a.from.as_str(),
            r.keys,
            offsets.join(" "),
            r.batch.0,
            r.batch.1
        );
    }
    Ok(())
}
