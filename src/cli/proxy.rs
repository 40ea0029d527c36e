//! Arguments of `netkit run proxy`.

use clap::Args;

use super::sockopts::SockOptArgs;

/// `netkit run proxy`.
#[derive(Debug, Args)]
pub struct ProxyArgs {
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1:6000")]
    pub listen: String,
    /// Refuse requests to this target: IP:PORT, PORT, IP or CIDR (default 127.0.0.1:7777).
    #[arg(long)]
    pub block: Vec<String>,
    /// Start with an empty blocklist.
    #[arg(long)]
    pub no_default_block: bool,
    /// Also forward to targets in this CIDR (default: loopback only).
    #[arg(long)]
    pub allow: Vec<String>,
    /// Relay mode: forward raw bytes to HOST:PORT.
    #[arg(long, value_name = "HOST:PORT")]
    pub relay: Option<String>,
    /// Relay mode: refuse clients from this CIDR.
    #[arg(long)]
    pub deny_client: Vec<String>,
    /// Largest accepted message, bytes.
    #[arg(long, default_value_t = 65536)]
    pub max_message: usize,
    /// Seconds to wait for the target to accept.
    #[arg(long, default_value_t = 3.0)]
    pub connect_timeout: f64,
    /// Close connections idle for this many seconds.
    #[arg(long, default_value_t = 60)]
    pub idle_timeout: u64,
    /// Most connections served at once.
    #[arg(long, default_value_t = 1024)]
    pub max_conns: usize,
    /// Seconds to let in-flight requests finish after SIGINT/SIGTERM.
    #[arg(long, default_value_t = 5)]
    pub drain: u64,
    #[command(flatten)]
    pub sock: SockOptArgs,
}
