//! `sip-blf-sync`: carry PBX line state (SIP BLF) into Microsoft Teams presence.

use std::io::Read as _;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

use sip_blf_sync::test_notify;

/// Carry PBX line state (SIP BLF, RFC 4235) into Microsoft Teams presence.
#[derive(Parser)]
#[command(name = "sip-blf-sync", version, about, long_about = None)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Show what a NOTIFY means: its dialogs, the line state and the presence it maps to.
    ///
    /// Reads a bare XML body or a whole SIP NOTIFY (headers and body; its
    /// Content-Type picks the parser). Exit status 0 when the body was understood.
    TestNotify {
        /// The file to read; `-` or nothing for standard input.
        file: Option<PathBuf>,
        /// Print one JSON object instead of text.
        #[arg(long)]
        json: bool,
        /// A mapping file (line state = "Availability/Activity" | "clear" | "keep").
        #[arg(long, value_name = "FILE")]
        mapping: Option<PathBuf>,
        /// Treat the input as this content type (overrides the message's Content-Type).
        #[arg(long, value_name = "TYPE")]
        content_type: Option<String>,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::TestNotify {
            file,
            json,
            mapping,
            content_type,
        } => run_test_notify(file, json, mapping, content_type),
    }
}

fn fail(message: impl std::fmt::Display) -> ExitCode {
    eprintln!("sip-blf-sync: {message}");
    ExitCode::FAILURE
}

fn run_test_notify(
    file: Option<PathBuf>,
    json: bool,
    mapping: Option<PathBuf>,
    content_type: Option<String>,
) -> ExitCode {
    let mapping = match mapping {
        None => blf::Mapping::default(),
        Some(path) => match blf::Mapping::load(&path) {
            Ok(m) => m,
            Err(e) => return fail(e),
        },
    };
    let (name, data) = match file.filter(|f| f.as_os_str() != "-") {
        Some(path) => match std::fs::read(&path) {
            Ok(d) => (path.display().to_string(), d),
            Err(e) => return fail(format!("{}: {e}", path.display())),
        },
        None => {
            let mut d = Vec::new();
            if let Err(e) = std::io::stdin().read_to_end(&mut d) {
                return fail(format!("standard input: {e}"));
            }
            ("standard input".to_string(), d)
        }
    };
    let report = test_notify::read_input(&data, content_type.as_deref())
        .and_then(|input| test_notify::examine(input, &mapping));
    match report {
        Err(e) => fail(format!("{name}: {e}")),
        Ok(report) if json => {
            println!("{}", report.to_json());
            ExitCode::SUCCESS
        }
        Ok(report) => {
            print!("{}", report.to_text());
            ExitCode::SUCCESS
        }
    }
}
