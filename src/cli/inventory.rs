//! Arguments of the inventory commands: who-owns, listening, timewait, inspect.

use clap::Args;

/// Protocol and family filters shared by the inventory commands.
#[derive(Debug, Args, Clone, Copy, Default)]
pub struct ProtoFilter {
    /// Only TCP sockets.
    #[arg(long)]
    pub tcp: bool,
    /// Only UDP sockets.
    #[arg(long)]
    pub udp: bool,
    /// Only IPv4 sockets.
    #[arg(short = '4', long = "ipv4")]
    pub v4: bool,
    /// Only IPv6 sockets.
    #[arg(short = '6', long = "ipv6")]
    pub v6: bool,
}

/// `netkit who-owns PORT`.
#[derive(Debug, Args)]
pub struct WhoOwnsArgs {
    /// The local port.
    pub port: u16,
    #[command(flatten)]
    pub filter: ProtoFilter,
    /// Stop the processes that hold PORT as a listener or bound socket (never connected clients).
    #[arg(long)]
    pub kill: bool,
    /// Signal to send with --kill (TERM, INT, KILL, HUP or a number).
    #[arg(long, default_value = "TERM", requires = "kill")]
    pub signal: String,
    /// Do not ask before --kill.
    #[arg(long, short = 'y', requires = "kill")]
    pub yes: bool,
}

/// `netkit listening`.
#[derive(Debug, Args)]
pub struct ListeningArgs {
    #[command(flatten)]
    pub filter: ProtoFilter,
    /// Only this local port.
    #[arg(long, short = 'p')]
    pub port: Option<u16>,
    /// Only sockets held by this process.
    #[arg(long)]
    pub pid: Option<u32>,
    /// Only sockets of this user (name or uid).
    #[arg(long)]
    pub user: Option<String>,
}

/// `netkit timewait`.
#[derive(Debug, Args)]
pub struct TimewaitArgs {
    /// List every TIME_WAIT socket instead of the per-port summary.
    #[arg(long)]
    pub all: bool,
    /// Only this local port.
    #[arg(long, short = 'p')]
    pub port: Option<u16>,
    /// Summary rows to print, most entries first (0 = all; --json always has all).
    #[arg(long, default_value_t = 25)]
    pub limit: usize,
}

/// `netkit inspect`.
#[derive(Debug, Args)]
pub struct InspectArgs {
    #[command(flatten)]
    pub filter: ProtoFilter,
    /// Only sockets in this state (LISTEN, ESTABLISHED, TIME_WAIT, BOUND, UNCONN, ...; `ss` spellings work).
    #[arg(long)]
    pub state: Option<String>,
    /// Only sockets with this port, local or remote.
    #[arg(long, short = 'p')]
    pub port: Option<u16>,
    /// Only sockets held by this process.
    #[arg(long)]
    pub pid: Option<u32>,
    /// Only sockets of this user (name or uid).
    #[arg(long)]
    pub user: Option<String>,
}
