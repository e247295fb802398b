//! The crmscore binary: parse the command line, set up logging, run the command.

use std::process::ExitCode;

use clap::Parser;
use crmscore::config::{Cli, Command};

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    let cli = Cli::parse();
    crmscore::telemetry::init_logging(cli.log_format);
    match cli.command {
        Command::Serve(config) => match crmscore::start(*config).map(|server| server.wait()) {
            Ok(Ok(())) => ExitCode::SUCCESS,
            Ok(Err(e)) => fail(&format!("HTTP server failed: {e}")),
            Err(e) => fail(&e.to_string()),
        },
        Command::InspectModel(args) => match crmscore::inspect::run(&args) {
            Ok(true) => ExitCode::SUCCESS,
            Ok(false) => ExitCode::FAILURE,
            Err(e) => fail(&e.to_string()),
        },
        Command::CheckSnapshot(args) => {
            match crmscore::snapshot::check::model_columns(&args.models) {
                Ok((columns, owned)) => {
                    let (report, ok) = crmscore::snapshot::check::check(
                        &args.path,
                        &columns,
                        owned.as_deref(),
                        args.against.as_deref(),
                        args.max_psi,
                    );
                    print!("{report}");
                    if ok {
                        ExitCode::SUCCESS
                    } else {
                        ExitCode::FAILURE
                    }
                }
                Err(e) => fail(&e.to_string()),
            }
        }
        Command::Erase(args) => match crmscore::erasure::offline::run(&args) {
            Ok(report) => {
                print!("{report}");
                ExitCode::SUCCESS
            }
            Err(e) => fail(&e.to_string()),
        },
        Command::CheckPolicy(args) => {
            match crmscore::engagement::check::model_vocabulary(&args.models) {
                Ok((vocab, notes)) => {
                    let (report, ok) =
                        crmscore::engagement::check::check(&args.file, &vocab, &notes);
                    print!("{report}");
                    if ok {
                        ExitCode::SUCCESS
                    } else {
                        ExitCode::FAILURE
                    }
                }
                Err(e) => fail(&e),
            }
        }
        Command::Report(args) => match crmscore::report::run(&args) {
            Ok(report) => {
                print!("{report}");
                ExitCode::SUCCESS
            }
            Err(e) => fail(&e.to_string()),
        },
        Command::ScoreBatch(args) => match crmscore::batch::run(&args) {
            Ok(summary) => {
                println!("{summary}");
                ExitCode::SUCCESS
            }
            Err(e) => fail(&e.to_string()),
        },
    }
}

fn fail(message: &str) -> ExitCode {
    eprintln!("error: {message}");
    ExitCode::FAILURE
}
