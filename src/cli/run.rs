//! `stockwatch run`: the Kafka service.

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use anyhow::Context;
use clap::Args;

use crate::config::Config;

/// Arguments of `run`.
#[derive(Debug, Args)]
pub struct RunArgs {
    /// Configuration file (layered over the embedded defaults; `STOCKWATCH__SECTION__KEY`
    /// environment variables override both). `stockwatch check-config` shows the result.
    #[arg(long)]
    pub config: Option<PathBuf>,
}

/// Runs the service until SIGTERM or SIGINT: the first signal stops polling, finishes the
/// batch, flushes and commits, within `service.shutdown_deadline_secs` (past it: exit 1); a
/// second signal exits at once (130).
pub fn run(a: RunArgs) -> anyhow::Result<()> {
    let cfg = Config::load(a.config.as_deref())?;
    init_logs(&cfg.log);
    let stop = Arc::new(AtomicBool::new(false));
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .context("starting the runtime for signals")?;
    let flag = stop.clone();
    let deadline = cfg.service.shutdown_deadline();
    rt.spawn(async move {
        signal().await;
        tracing::info!(
            deadline_secs = deadline.as_secs_f64(),
            "signal received: finishing the batch, then exiting"
        );
        flag.store(true, Ordering::Relaxed);
        tokio::select! {
            _ = signal() => {
                tracing::warn!("second signal: exiting now");
                std::process::exit(130);
            }
            _ = tokio::time::sleep(deadline) => {
                // The broker is not answering (flush or commit cannot complete): exit anyway,
                // non-zero; what was not committed is read again after the restart.
                tracing::error!("service.shutdown_deadline_secs exceeded: exiting without a final commit");
                std::process::exit(1);
            }
        }
    });
    let mut service = crate::service::Service::new(cfg.clone()).context("starting the service")?;
    let http = start_http(&rt, &cfg, &mut service)?;
    tracing::info!(
        delivery = cfg.service.delivery.as_str(),
        topics = ?cfg.kafka.topics.inputs(),
        "stockwatch running"
    );
    let stats = service.run(&stop).context("the service stopped")?;
    http.stop(&rt, cfg.service.shutdown_deadline());
    eprintln!(
        "stockwatch stopped: {} messages in {} batches, {} alerts published, {} dead letters, {} changelog records, {} commits, {} aborted transactions, {} rebalances",
        stats.messages,
        stats.batches,
        stats.alerts_published,
        stats.dead_letters,
        stats.changelog_records,
        stats.commits,
        stats.aborts,
        stats.rebalances
    );
    Ok(())
}

/// The HTTP endpoints of a running service (`/metrics`, `/healthz`, `/readyz`, `/v1/...`).
pub(crate) struct Http {
    server: Option<crate::telemetry::HttpServer>,
    token: tokio_util::sync::CancellationToken,
}

/// Starts the HTTP server on `http.listen` and connects it to the service.
pub(crate) fn start_http(
    rt: &tokio::runtime::Runtime,
    cfg: &Config,
    service: &mut crate::service::Service,
) -> anyhow::Result<Http> {
    let (observe, query) = crate::service::observe::Observe::new()?;
    let state =
        crate::telemetry::AppState::new(observe.metrics.clone(), observe.health.clone(), query)
            .with_token(cfg.http.read_token()?);
    service.observe(observe);
    let token = tokio_util::sync::CancellationToken::new();
    let server = rt
        .block_on(crate::telemetry::serve_with(
            cfg.http.listen,
            state,
            crate::telemetry::HttpLimits::from_config(&cfg.http),
            token.clone(),
        ))
        .with_context(|| format!("serving HTTP on http.listen = {}", cfg.http.listen))?;
    tracing::info!(
        addr = %server.local_addr(),
        v1_token = cfg.http.token_file.trim() != "",
        "serving /metrics /healthz /readyz /v1/state/{{location}}/{{sku}} /v1/risks/top /v1/alerts/open"
    );
    Ok(Http {
        server: Some(server),
        token,
    })
}

impl Http {
    /// Stops accepting, waits for requests in flight (bounded by `deadline`).
    pub(crate) fn stop(mut self, rt: &tokio::runtime::Runtime, deadline: std::time::Duration) {
        self.token.cancel();
        if let Some(server) = self.server.take() {
            let _ = rt.block_on(async { tokio::time::timeout(deadline, server.wait()).await });
        }
    }
}

async fn signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = term.recv() => {}
                    _ = tokio::signal::ctrl_c() => {}
                }
            }
            Err(_) => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}

/// Logs to stderr: `log.format` (text or JSON) at `log.level`; `STOCKWATCH_LOG` (an
/// EnvFilter directive) overrides the level.
pub(crate) fn init_logs(log: &crate::config::LogSection) {
    use std::io::IsTerminal;
    let filter = tracing_subscriber::EnvFilter::try_from_env("STOCKWATCH_LOG")
        .ok()
        .or_else(|| log.env_filter().ok())
        .unwrap_or_else(|| tracing_subscriber::EnvFilter::new("info"));
    let b = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    let _ = match log.format {
        crate::config::LogFormat::Json => b.json().try_init(),
        crate::config::LogFormat::Text => b.with_ansi(std::io::stderr().is_terminal()).try_init(),
    };
}
