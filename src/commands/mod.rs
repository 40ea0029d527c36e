//! Glue between the CLI and the layers: gather, analyse, emit. The only users of anyhow.

pub mod audit;
pub mod explain;
pub mod exporter;
pub mod filters;
pub mod free_port;
pub mod generate;
pub mod inspect;
pub mod kill;
pub mod listening;
pub mod manual;
pub mod run;
pub mod sockets_report;
pub mod sockopt;
pub mod timewait;
pub mod wait_free;
pub mod wait_listen;
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
    if let Some(spec) = cli.command.netns_spec() {
        // The whole command (trial sockets, dumps, child processes) runs on a thread that
        // entered the namespace; this thread never leaves its own (inspect::netns).
        let path = spec.path();
        return crate::inspect::netns::run_in(&path, move || run_here(cli))?;
    }
    run_here(cli)
}

/// [`run`] in the namespace this thread is in.
fn run_here(cli: Cli) -> anyhow::Result<i32> {
    let format = if cli.output.json {
        Format::Json
    } else {
        Format::Table
    };
    match cli.command {
        Command::WhoOwns(a) if a.kill => {
            if a.view.pids || a.view.watch.watch.is_some() {
                anyhow::bail!("--kill cannot be combined with --pids or --watch");
            }
            kill::run(&a, format)
        }
        Command::WhoOwns(a) => repeat(a.view.watch, format, || {
            let r = who_owns::report(&a)?;
            let found = !r.sockets.is_empty();
            emit_or_pids(&r, a.view.pids, format, found)
        }),
        Command::Listening(a) => repeat(a.view.watch, format, || {
            let r = listening::report(&a)?;
            let found = !r.sockets.is_empty();
            emit_or_pids(&r, a.view.pids, format, found)
        }),
        Command::Inspect(a) => repeat(a.view.watch, format, || {
            let r = inspect::report(&a)?;
            let found = !r.is_empty();
            emit_or_pids(&r, a.view.pids, format, found)
        }),
        Command::Timewait(a) => repeat(a.watch, format, || match timewait::report(&a)? {
            timewait::Timewait::Summary(r) => emit_found(&r, format, r.total > 0),
            timewait::Timewait::All(r) => emit_found(&r, format, !r.sockets.is_empty()),
        }),
        Command::Explain(a) => explain::run(&a, format),
        Command::WaitFree(a) => wait_free::run(&a, format),
        Command::WaitListen(a) => wait_listen::run(&a, format),
        Command::FreePort(a) => free_port::run(&a, format),
        Command::Sockopt(a) => sockopt::run(&a, format),
        Command::Audit(a) => audit::run(&a, format),
        Command::Run(a) => run::run(a, format),
        Command::Load(a) => crate::lab::load::run_cli(a, format),
        Command::Exporter(a) => exporter::run(&a, format),
        Command::Completions(a) => generate::completions(a.shell),
        Command::GenerateMan(a) => generate::man(&a.dir),
    }
}

/// Reports that can say which processes hold their sockets (`--pids`).
pub trait Pids {
    /// Owning PIDs, in any order, repeats allowed.
    fn pids(&self) -> Vec<u32>;
}

impl Pids for sockets_report::SocketsReport {
    fn pids(&self) -> Vec<u32> {
        self.sockets
            .iter()
            .flat_map(|s| s.owners.iter().map(|o| o.pid))
            .collect()
    }
}

impl Pids for inspect::InspectReport {
    fn pids(&self) -> Vec<u32> {
        self.owner_pids()
    }
}

/// The report, or with `--pids` only its owners' PIDs (one per line, each once, no hints:
/// `kill $(netkit who-owns 6000 --pids)`). The exit code is the same either way.
///
/// # Errors
/// `--pids` with `--json`; I/O errors.
pub fn emit_or_pids<R: Report + Pids>(
    r: &R,
    pids: bool,
    format: Format,
    found: bool,
) -> anyhow::Result<i32> {
    if !pids {
        return emit_found(r, format, found);
    }
    if format == Format::Json {
        anyhow::bail!("--pids prints PIDs, not JSON: use one of --pids and --json");
    }
    output::write_pids(r.pids(), output::stdout())?;
    Ok(if found { FOUND } else { NOTHING })
}

/// Runs `once` a single time, or with `--watch SECS` every SECS seconds until Ctrl-C
/// (then exit 0).
///
/// # Errors
/// A bad interval, or the first error of `once`.
pub fn repeat(
    watch: crate::cli::view::Watch,
    format: Format,
    mut once: impl FnMut() -> anyhow::Result<i32>,
) -> anyhow::Result<i32> {
    let Some(secs) = watch.watch else {
        return once();
    };
    let every = output::watch::interval(secs).map_err(anyhow::Error::msg)?;
    let title: Vec<String> = std::env::args().skip(1).collect();
    output::watch::run(every, format, &title.join(" "), || once().map(|_| ()))?;
    Ok(FOUND)
}

/// Emits a report to stdout/stderr and returns FOUND or NOTHING.
///
/// # Errors
/// I/O errors (a broken pipe is handled by `main`).
pub fn emit_found<R: Report>(r: &R, format: Format, found: bool) -> anyhow::Result<i32> {
    output::emit(r, format, output::stdout(), output::stderr())?;
    Ok(if found { FOUND } else { NOTHING })
}
