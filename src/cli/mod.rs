//! The `stockwatch` command line. Each subcommand is one file; `anyhow` lives here, at the edge.

pub mod check_config;
pub mod demo;
pub mod evaluate;
pub mod load_master;
pub mod load_positions;
pub mod progress;
pub mod replay;
pub mod reset_state;
pub mod run;
pub mod simulate;

use clap::{Parser, Subcommand};

/// Streaming stockout-risk detection for retail inventory.
///
/// Consumes sale, shipment, receipt and availability events, keeps windowed inventory state per
/// (SKU, location), scores the risk of a stockout with an online model and publishes alerts.
#[derive(Debug, Parser)]
#[command(name = "stockwatch", version, about, long_about = None)]
pub struct Cli {
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// Subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Generate a deterministic stream of store-network events: to a JSON-lines file, or
    /// produced to the input topics of a Kafka cluster.
    Simulate(simulate::SimulateArgs),
    /// Run the engine over an event file: alerts, rejects, final state and a report.
    Replay(replay::ReplayArgs),
    /// Evaluate the model prequentially on real data against baselines: report, table, plots.
    Evaluate(evaluate::EvaluateArgs),
    /// Turn an on-hand snapshot (location, sku, on_hand, as_of; CSV or Parquet) into
    /// `inventory_count` events: to a JSON-lines file, or produced to the inventory-count topic.
    /// The first step of a real deployment.
    LoadPositions(load_positions::LoadPositionsArgs),
    /// Load the master-data CSV files (locations, items) onto the service's compacted
    /// locations and items topics.
    LoadMaster(load_master::LoadMasterArgs),
    /// Run the whole pipeline on an embedded broker: simulator, service, live alerts, summary.
    Demo(demo::DemoArgs),
    /// Run the service: consume the input topics, publish alerts and dead letters.
    Run(run::RunArgs),
    /// Resolve a partition whose changelog and committed offsets disagree (`/readyz` reason
    /// changelog_missing, changelog_truncated or offsets_missing): adopt the changelog's state,
    /// or start empty from the earliest or the committed input offsets. Every instance of the
    /// group must be stopped.
    ResetState(reset_state::ResetStateArgs),
    /// Print the effective configuration (defaults, file, environment) with secrets masked, or
    /// the error that names the bad field and value.
    CheckConfig(check_config::CheckConfigArgs),
}

/// Runs the parsed command line.
pub fn run(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        Command::Simulate(a) => simulate::run(a),
        Command::Replay(a) => replay::run(a),
        Command::Evaluate(a) => evaluate::run(a),
        Command::LoadPositions(a) => load_positions::run(a),
        Command::LoadMaster(a) => load_master::run(a),
        Command::Demo(a) => demo::run(a),
        Command::Run(a) => run::run(a),
        Command::CheckConfig(a) => check_config::run(a),
        Command::ResetState(a) => reset_state::run(a),
    }
}
