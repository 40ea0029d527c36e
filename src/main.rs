//! The netkit binary: parse, run, print the error and pick the exit code.

use std::io::Write as _;
use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    netkit::inspect::trace::note("main starts");
    let cli = match netkit::cli::Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) if !e.use_stderr() => {
            // --help and --version: clap's own output, exit 0.
            let _ = e.print();
            return ExitCode::SUCCESS;
        }
        Err(e) => {
            // Usage errors: one line (and at most one `try:` line), exit 2.
            let argv: Vec<String> = std::env::args().skip(1).collect();
            eprintln!("{}", netkit::cli::usage::one_line(&e, &argv));
            return ExitCode::from(2);
        }
    };
    let result = netkit::commands::run(cli);
    netkit::inspect::trace::note("command done (output written)");
    match result {
        Ok(code) => ExitCode::from(u8::try_from(code).unwrap_or(2)),
        Err(err) => {
            if is_broken_pipe(&err) {
                return ExitCode::SUCCESS;
            }
            // Not eprintln!: it panics when stderr itself is a closed pipe.
            let _ = writeln!(std::io::stderr(), "netkit: {err:#}");
            ExitCode::from(2)
        }
    }
}

/// Only a write to netkit's own stdout/stderr whose reader left (`| head -n1`) is a success;
/// an `EPIPE` from a socket is a real error (`output::is_output_closed`).
fn is_broken_pipe(err: &anyhow::Error) -> bool {
    err.chain().any(netkit::output::is_output_closed)
}
