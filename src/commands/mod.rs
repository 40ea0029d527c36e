//! Glue between the CLI and the layers: gather, analyse, emit. The only users of anyhow.

pub mod audit;
pub mod explain;
pub mod exporter;
pub mod filters;
pub mod generate;
pub mod inspect;
pub mod kill;
pub mod listening;
pub mod run;
pub mod sockets_report;
pub mod sockopt;
pub mod timewait;
pub mod who_owns;

use crate::cli::{Cli, Command};
use crate::output::{self, Format, Report};

pub use crate::exit::{ERROR, FOUND, NOTHING};

/// Runs the command and returns the exit code.
///
/// # Errors
/// Any failure, for `main` to print as one line (exit 2).
pub fn run(cli: Cli) -> anyhow::Result<i32> {
    output::set_wide(cli.output.wide);
    let format = if cli.output.json {
        Format::Json
    } else {
        Format::Table
    };
    match cli.command {
        Command::WhoOwns(a) if a.kill => kill::run(&a, format),
        Command::WhoOwns(a) => {
            let r = who_owns::report(&a)?;
            emit_found(&r, format, !r.sockets.is_empty())
        }
        Command::Listening(a) => {
            let r = listening::report(&a)?;
            emit_found(&r, format, !r.sockets.is_empty())
        }
        Command::Inspect(a) => {
            let r = inspect::report(&a)?;
            emit_found(&r, format, !r.is_empty())
        }
        Command::Timewait(a) => match timewait::report(&a)? {
            timewait::Timewait::Summary(r) => emit_found(&r, format, r.total > 0),
            timewait::Timewait::All(r) => emit_found(&r, format, !r.sockets.is_empty()),
        },
        Command::Explain(a) => explain::run(&a, format),
        Command::WaitFree(a) => explain::wait_free(&a, format),
        Command::FreePort(a) => explain::free_port(&a, format),
        Command::Sockopt(a) => sockopt::run(&a, format),
        Command::Audit(a) => audit::run(&a, format),
        Command::Run(a) => run::run(a, format),
        Command::Load(a) => crate::lab::load::run_cli(a, format),
        Command::Exporter(a) => exporter::run(&a),
        Command::Completions(a) => generate::completions(a.shell),
        Command::GenerateMan(a) => generate::man(&a.dir),
    }
}

/// Emits a report to stdout/stderr and returns FOUND or NOTHING.
///
/// # Errors
/// I/O errors (a broken pipe is handled by `main`).
pub fn emit_found<R: Report>(r: &R, format: Format, found: bool) -> anyhow::Result<i32> {
    output::emit(r, format, output::stdout(), output::stderr())?;
    Ok(if found { FOUND } else { NOTHING })
}
