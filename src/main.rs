//! The `stockwatch` binary: a thin wrapper over [`stockwatch::cli`].

use clap::Parser;

fn main() -> std::process::ExitCode {
    // Test builds only: crash points named by `FAILPOINTS` (see `stockwatch::failpoint`).
    #[cfg(feature = "failpoints")]
    let _failpoints = stockwatch::failpoint::setup();
    let cli = stockwatch::cli::Cli::parse();
    match stockwatch::cli::run(cli) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}
