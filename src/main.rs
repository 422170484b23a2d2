//! The `redpush` binary: parses the command line and hands over.

use std::io::IsTerminal;
use std::process::ExitCode;

use clap::Parser;
use redpush::cli::{Cli, Command, WalCommand};
use redpush::config::Settings;
use redpush::once::EXIT_CONFIG;
use tracing_subscriber::EnvFilter;

fn main() -> ExitCode {
    let cli = Cli::parse();
    // Logs go to stderr; `once` keeps stdout for the exposition text and is
    // quiet unless something goes wrong.
    let default_level = match cli.command {
        Some(Command::Once) => "warn",
        _ => "info",
    };
    tracing_subscriber::fmt()
        .with_env_filter(
            EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default_level)),
        )
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .init();

    let overrides = cli.options.overrides();
    let settings = match Settings::load(&overrides) {
        Ok(settings) => settings,
        Err(e) => {
            eprintln!("redpush: {e}");
            return ExitCode::from(EXIT_CONFIG);
        }
    };
    match &cli.command {
        Some(Command::CheckConfig) => {
            print!("{settings}");
            return ExitCode::SUCCESS;
        }
        Some(Command::Wal {
            command: WalCommand::Inspect,
        }) => {
            return match redpush::wal::inspect(&settings.state_dir.join("wal")) {
                Ok(text) => {
                    print!("{text}");
                    ExitCode::SUCCESS
                }
                Err(e) => {
                    eprintln!("redpush: {e}");
                    ExitCode::FAILURE
                }
            };
        }
        _ => {}
    }

    let runtime = match tokio::runtime::Builder::new_multi_thread()
        // Sampling and sending are I/O-bound; two workers are plenty and keep
        // the footprint small.
        .worker_threads(2)
        // Queue appends run in `block_in_place` (write + fsync), and each one
        // hands its worker to a fresh thread: with hundreds of targets the
        // default cap of 512 let the process grow to over a hundred threads,
        // each with its own malloc arena. A small cap queues them instead.
        .max_blocking_threads(8)
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("redpush: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let result = match cli.command {
        Some(Command::Once) => runtime.block_on(redpush::once::run(settings)),
        _ => runtime
            .block_on(redpush::agent::run(settings, overrides))
            .map(|()| ExitCode::SUCCESS),
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("redpush: {e:#}");
            ExitCode::FAILURE
        }
    }
}
