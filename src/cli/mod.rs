//! The command line, as clap derive types. No I/O here: `commands` acts on these.

pub mod audit;
pub mod explain;
pub mod exporter;
pub mod inventory;
pub mod load;
pub mod netns;
pub mod port;
pub mod proxy;
pub mod run;
pub mod services;
pub mod signal;
pub mod sockopts;
pub mod state;
pub mod usage;
pub mod view;
pub mod wait;

use clap::{Args, Parser, Subcommand};

/// Who holds a port, why bind() fails, and lab sockets to practise on.
#[derive(Debug, Parser)]
#[command(name = "netkit", version, about, long_about = None, propagate_version = true)]
pub struct Cli {
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
    /// Output options shared by every command.
    #[command(flatten)]
    pub output: OutputArgs,
}

/// Output flags.
#[derive(Debug, Args, Clone, Copy, Default)]
pub struct OutputArgs {
    /// Print one JSON object instead of a table (stable field names; see README).
    #[arg(long, global = true)]
    pub json: bool,
    /// On a terminal, show every table cell in full instead of fitting the table to its
    /// width (piped output is never cut).
    #[arg(short = 'w', long, global = true)]
    pub wide: bool,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Every socket whose local port is PORT (TCP and UDP, any state) and who holds it.
    WhoOwns(inventory::WhoOwnsArgs),
    /// Listening TCP sockets, bound-only TCP sockets and bound UDP sockets, with owners.
    Listening(inventory::ListeningArgs),
    /// TIME_WAIT sockets: a summary per local address:port, or every one with --all.
    Timewait(inventory::TimewaitArgs),
    /// The full socket table, like `ss -tuanp` or `lsof -i`.
    Inspect(inventory::InspectArgs),
    /// Why PORT can't be (re)bound with your options, and what will fix it.
    Explain(explain::ExplainArgs),
    /// Wait until PORT can be bound with the given options.
    WaitFree(explain::WaitFreeArgs),
    /// Wait until something accepts on PORT(s), then run a command.
    WaitListen(wait::WaitListenArgs),
    /// Print ports that can be bound right now.
    FreePort(explain::FreePortArgs),
    /// Show the socket options of another process's sockets, or change them live (--set).
    Sockopt(explain::SockoptArgs),
    /// What on this host can be hijacked, shadowed or exhausted (exit 1 on findings).
    Audit(audit::AuditArgs),
    /// Run a lab component: server, client, proxy, udp-server, udp-client.
    Run(run::RunArgs),
    /// Load a lab server or proxy: req/s, latency percentiles, errors by kind (bounded runs).
    Load(load::LoadArgs),
    /// Serve socket metrics for Prometheus (/metrics), or print/write them once.
    Exporter(exporter::ExporterArgs),
    /// Print a shell completion script.
    Completions(CompletionsArgs),
    /// Write the man pages into a directory (used to refresh man/).
    #[command(hide = true)]
    GenerateMan(GenerateManArgs),
}

impl Command {
    /// The one namespace the command should run in (`--netns`), if it was given. The whole
    /// command then runs on a thread that entered it; `--all-netns` is handled by the
    /// commands themselves.
    pub fn netns_spec(&self) -> Option<&crate::inspect::netns::NetnsSpec> {
        match self {
            Command::WhoOwns(a) => a.ns.netns.as_ref(),
            Command::Listening(a) => a.ns.netns.as_ref(),
            Command::Inspect(a) => a.ns.netns.as_ref(),
            Command::Timewait(a) => a.ns.netns.as_ref(),
            Command::Explain(a) => a.ns.netns.as_ref(),
            Command::WaitFree(a) => a.ns.netns.as_ref(),
            Command::FreePort(a) => a.ns.netns.as_ref(),
            Command::WaitListen(a) => a.ns.netns.as_ref(),
            _ => None,
        }
    }
}

/// `netkit completions SHELL`.
#[derive(Debug, Args)]
pub struct CompletionsArgs {
    /// The shell.
    #[arg(value_enum)]
    pub shell: clap_complete::Shell,
}

/// `netkit generate-man DIR`.
#[derive(Debug, Args)]
pub struct GenerateManArgs {
    /// Directory to write netkit.1, netkit-who-owns.1, ... into.
    pub dir: std::path::PathBuf,
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn cli_definition_is_consistent() {
        Cli::command().debug_assert();
    }
}
