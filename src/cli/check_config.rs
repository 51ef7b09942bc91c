//! `stockwatch check-config`: the effective configuration, secrets masked — or the first error.

use std::io::Write;
use std::path::PathBuf;

use clap::Args;

use crate::config::{redacted, Config, MASK, NOT_SET, SASL_PASSWORD_ENV};

/// Arguments of `check-config`.
#[derive(Debug, Args)]
#[command(after_long_help = "\
Layers, later ones win: the embedded config/default.toml, then --config FILE, then environment
variables STOCKWATCH__SECTION__KEY (e.g. STOCKWATCH__ENGINE__ALLOWED_LATENESS_SECS=600,
STOCKWATCH__KAFKA__TOPICS__ALERTS=alerts). Unknown keys are errors.

The SASL password is taken only from STOCKWATCH__KAFKA__SECURITY__SASL_PASSWORD or from the file
named by kafka.security.sasl_password_file, and is shown as \"***\" (or \"(not set)\") in a
comment, so the output loads back as a config file.

Exit status: 0 with the configuration on stdout; 1 with `error: ...` on stderr naming the field
and the bad value.")]
pub struct CheckConfigArgs {
    /// Configuration file (layered over the embedded defaults; env overrides both).
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Also list, as comments, the librdkafka properties the consumer and the producer get
    /// (secrets masked).
    #[arg(long)]
    pub client_properties: bool,
}

/// Loads the configuration as `run` would and prints it.
pub fn run(a: CheckConfigArgs) -> anyhow::Result<()> {
    let cfg = Config::load(a.config.as_deref())?;
    let mut out = String::new();
    out.push_str(
        "# Effective stockwatch configuration: embedded defaults, then --config, then \
         STOCKWATCH__* environment.\n\n",
    );
    out.push_str(&cfg.to_toml()?);
    let sec = &cfg.kafka.security;
    let password = match sec.sasl_password_source() {
        Some(from) => format!("{MASK:?}  # from the {from}"),
        None => format!("{NOT_SET:?}  # {SASL_PASSWORD_ENV} or kafka.security.sasl_password_file"),
    };
    out.push_str(&format!(
        "\n# Secrets, never printed:\n# kafka.security.sasl_password = {password}\n"
    ));
    if a.client_properties {
        let clients = [
            ("consumer", cfg.kafka.consumer_config(&cfg.service)),
            ("producer", cfg.kafka.producer_config()),
        ];
        for (name, c) in clients {
            out.push_str(&format!("\n# librdkafka {name} properties:\n"));
            for (k, v) in redacted(&c) {
                out.push_str(&format!("#   {k} = {v}\n"));
            }
        }
    }
    std::io::stdout().lock().write_all(out.as_bytes())?;
    Ok(())
}
