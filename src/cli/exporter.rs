//! Arguments of `netkit exporter`.

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::Args;

/// `netkit exporter`.
#[derive(Debug, Args)]
#[command(
    after_help = "Metrics (each documented in the README): netkit_port_sockets, netkit_listener_info, \
netkit_listener_accept_queue/_backlog, netkit_timewait_sockets, netkit_timewait_remaining_seconds, \
netkit_bound_sockets, netkit_ephemeral_ports*, netkit_close_wait_sockets, netkit_exporter_*.\n\
Owners (process, pid, unit, container labels) need root or CAP_SYS_PTRACE + CAP_DAC_READ_SEARCH."
)]
pub struct ExporterArgs {
    /// Address and port to serve /metrics on.
    #[arg(long, default_value = "127.0.0.1:9765", value_name = "ADDR:PORT")]
    pub listen: SocketAddr,
    /// A local port that always gets its own series, listening or not (repeatable).
    #[arg(long = "port", short = 'p', value_name = "PORT")]
    pub ports: Vec<u16>,
    /// Busiest listening ports given their own series; the rest are summed as port="other".
    #[arg(long, default_value_t = 50, value_name = "N")]
    pub max_ports: usize,
    /// Busiest destinations of outgoing connections given their own series.
    #[arg(long, default_value_t = 50, value_name = "N")]
    pub max_destinations: usize,
    /// Every network namespace of the host (named ones, every process's), each with its own
    /// series, labelled netns (the namespace inode) and netns_name (the ip netns name or the
    /// container, where known). Needs root (entering a namespace needs CAP_SYS_ADMIN).
    #[arg(long)]
    pub all_netns: bool,
    /// Print one exposition to stdout and exit.
    #[arg(long, conflicts_with = "textfile")]
    pub once: bool,
    /// With --once: print OpenMetrics instead of the Prometheus text format.
    #[arg(long, requires = "once")]
    pub openmetrics: bool,
    /// Write the exposition to PATH atomically (for node_exporter's textfile collector) and exit.
    #[arg(long, value_name = "PATH")]
    pub textfile: Option<PathBuf>,
    /// With --textfile: rewrite it every S seconds until stopped.
    #[arg(long, requires = "textfile", value_name = "S", value_parser = clap::value_parser!(u64).range(1..))]
    pub interval: Option<u64>,
    /// HTTP connections served at once; more get 503 and are closed.
    #[arg(long, default_value_t = 64, value_name = "N", value_parser = clap::value_parser!(u64).range(1..=100_000))]
    pub max_connections: u64,
    /// Seconds a client has to send its request headers (also the keep-alive idle limit).
    #[arg(long, default_value_t = 10, value_name = "S", value_parser = clap::value_parser!(u64).range(1..=3600))]
    pub header_timeout: u64,
}
