//! Arguments of the inventory commands: who-owns, listening, timewait, inspect.

use clap::{Args, ValueHint};

use super::port::{PortSet, PortSpec, parse_port_spec};
use super::signal::{Signal, SignalParser};
use super::state::StateFilter;

/// Protocol and family filters shared by the inventory commands.
#[derive(Debug, Args, Clone, Copy, Default)]
pub struct ProtoFilter {
    /// Only TCP sockets.
    #[arg(short = 't', long)]
    pub tcp: bool,
    /// Only UDP sockets.
    #[arg(short = 'u', long)]
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
    /// The local port(s): `6000`, `:6000`, `6000/tcp`, `127.0.0.1:6000`, `[::1]:6000`, `ssh`,
    /// `6000-6010`; several as `6000,6001` or as several arguments.
    #[arg(
        help = "The local port(s): 6000, :6000, 6000/tcp, 127.0.0.1:6000, [::1]:6000, ssh, 6000-6010; several as 6000,6001 or as several arguments"
    )]
    #[arg(value_name = "PORT", required = true, num_args = 1.., value_delimiter = ',', value_hint = ValueHint::Other, value_parser = parse_port_spec)]
    pub ports: Vec<PortSpec>,
    #[command(flatten)]
    pub filter: ProtoFilter,
    /// Only listening and bound sockets (LISTEN, BOUND, UNCONN), as ss -l.
    #[arg(short = 'l', long)]
    pub listening: bool,
    /// Only sockets held by this process.
    #[arg(long, value_hint = ValueHint::Other)]
    pub pid: Option<u32>,
    /// Only sockets of this user (name or uid).
    #[arg(long, value_hint = ValueHint::Username)]
    pub user: Option<String>,
    /// Stop the processes that hold PORT as a listener or bound socket (never connected
    /// clients), signalled through a pidfd opened before the prompt; then wait up to 5 s for the
    /// port. Exit 0 freed, 1 nothing to stop or declined, 3 signalled but still held.
    #[arg(long)]
    pub kill: bool,
    /// Signal to send with --kill: a name (TERM, INT, KILL, HUP, QUIT, USR1, USR2) or a number.
    #[arg(long, default_value = "TERM", requires = "kill", value_parser = SignalParser)]
    pub signal: Signal,
    /// Do not ask before --kill.
    #[arg(long, short = 'y', requires = "kill")]
    pub yes: bool,
    #[command(flatten)]
    pub ns: super::netns::NetnsArgs,
    /// Only this network namespace: when nothing holds the port here, do not look into the
    /// other namespaces (containers) before saying so.
    #[arg(long, conflicts_with_all = ["netns", "all_netns"])]
    pub here: bool,
    #[command(flatten)]
    pub view: super::view::View,
}

/// `netkit listening`.
#[derive(Debug, Args)]
pub struct ListeningArgs {
    #[command(flatten)]
    pub filter: ProtoFilter,
    /// Only these LOCAL ports (6000, 6000/tcp, 127.0.0.1:6000, ssh, 6000-6010, 6000,6001).
    #[arg(long, short = 'p', value_name = "PORT", value_delimiter = ',', value_hint = ValueHint::Other, value_parser = parse_port_spec)]
    pub port: Vec<PortSpec>,
    /// Only sockets held by this process.
    #[arg(long, value_hint = ValueHint::Other)]
    pub pid: Option<u32>,
    /// Only sockets of this user (name or uid).
    #[arg(long, value_hint = ValueHint::Username)]
    pub user: Option<String>,
    #[command(flatten)]
    pub ns: super::netns::NetnsArgs,
    #[command(flatten)]
    pub view: super::view::View,
}

/// `netkit timewait`.
#[derive(Debug, Args)]
pub struct TimewaitArgs {
    /// List every TIME_WAIT socket instead of the per-port summary.
    #[arg(long)]
    pub all: bool,
    /// Only these LOCAL ports (6000, :6000, 127.0.0.1:6000, http, 6000-6010, 6000,6001).
    #[arg(long, short = 'p', value_name = "PORT", value_delimiter = ',', value_hint = ValueHint::Other, value_parser = parse_port_spec)]
    pub port: Vec<PortSpec>,
    /// Summary rows to print, most entries first (0 = all; --json always has all).
    #[arg(long, default_value_t = 25)]
    pub limit: usize,
    #[command(flatten)]
    pub ns: super::netns::NetnsArgs,
    #[command(flatten)]
    pub watch: super::view::Watch,
}

/// `netkit inspect`.
#[derive(Debug, Args)]
pub struct InspectArgs {
    #[command(flatten)]
    pub filter: ProtoFilter,
    /// Only sockets in these states or ss state groups (several: --state a,b or repeated;
    /// kernel spellings such as TIME_WAIT work too).
    #[arg(
        long,
        value_name = "STATE",
        value_enum,
        ignore_case = true,
        value_delimiter = ','
    )]
    pub state: Vec<StateFilter>,
    /// Only listening and bound sockets (LISTEN, BOUND, UNCONN), as ss -l.
    #[arg(short = 'l', long)]
    pub listening: bool,
    /// Only sockets with these LOCAL ports (6000, 6000/tcp, 127.0.0.1:6000, ssh, 6000-6010);
    /// `--sport` as in ss.
    #[arg(long, short = 'p', visible_alias = "sport", value_name = "PORT", value_delimiter = ',', value_hint = ValueHint::Other, value_parser = parse_port_spec)]
    pub port: Vec<PortSpec>,
    /// Only connections whose REMOTE end is one of these (6000, 127.0.0.1:6000, http);
    /// `--dport` as in ss.
    #[arg(long, visible_alias = "dport", value_name = "PORT", value_delimiter = ',', value_hint = ValueHint::Other, value_parser = parse_port_spec)]
    pub remote_port: Vec<PortSpec>,
    /// Only sockets held by this process.
    #[arg(long, value_hint = ValueHint::Other)]
    pub pid: Option<u32>,
    /// Only sockets of this user (name or uid).
    #[arg(long, value_hint = ValueHint::Username)]
    pub user: Option<String>,
    #[command(flatten)]
    pub ns: super::netns::NetnsArgs,
    #[command(flatten)]
    pub view: super::view::View,
}

impl TimewaitArgs {
    /// The --port arguments (empty: every port).
    pub fn port_set(&self) -> PortSet {
        PortSet(self.port.clone())
    }
}

impl WhoOwnsArgs {
    /// The port arguments.
    pub fn port_set(&self) -> PortSet {
        PortSet(self.ports.clone())
    }
}

impl ListeningArgs {
    /// The --port arguments (empty: every port).
    pub fn port_set(&self) -> PortSet {
        PortSet(self.port.clone())
    }
}

impl InspectArgs {
    /// The --port arguments (empty: every port).
    pub fn port_set(&self) -> PortSet {
        PortSet(self.port.clone())
    }

    /// The --remote-port arguments (empty: every peer).
    pub fn remote_set(&self) -> PortSet {
        PortSet(self.remote_port.clone())
    }
}
