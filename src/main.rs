//! The `stockwatch` binary: a thin wrapper over [`stockwatch::cli`].

use clap::Parser;

fn main() -> std::process::ExitCode {
    let cli = stockwatch::cli::Cli::parse();
    match stockwatch::cli::run(cli) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}
