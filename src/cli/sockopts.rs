//! The socket-option flags every lab component takes; `sockopt::SockOpts` is built from them.

use clap::Args;

/// Options applied to every managed socket (listener, accepted, outgoing).
#[derive(Debug, Args, Clone, Default)]
pub struct SockOptArgs {
    /// Turn on SO_KEEPALIVE and set TCP_KEEPIDLE to IDLE_S seconds.
    #[arg(long, value_name = "IDLE_S", value_parser = clap::value_parser!(u32).range(1..=32767))]
    pub keepalive: Option<u32>,
    /// TCP_KEEPINTVL in seconds (default 75 when --keepalive is on).
    #[arg(long, value_name = "S", requires = "keepalive", value_parser = clap::value_parser!(u32).range(1..=32767))]
    pub keepintvl: Option<u32>,
    /// TCP_KEEPCNT: probes before the connection is dropped.
    #[arg(long, value_name = "N", requires = "keepalive", value_parser = clap::value_parser!(u32).range(1..=127))]
    pub keepcnt: Option<u32>,
    /// SO_SNDBUF in bytes (the kernel doubles it; the value read back is shown).
    #[arg(long, value_name = "BYTES")]
    pub sndbuf: Option<u32>,
    /// SO_RCVBUF in bytes (the kernel doubles it; the value read back is shown).
    #[arg(long, value_name = "BYTES")]
    pub rcvbuf: Option<u32>,
    /// Set SO_REUSEADDR (default on for listeners).
    #[arg(long, overrides_with = "no_reuseaddr")]
    pub reuseaddr: bool,
    /// Do not set SO_REUSEADDR.
    #[arg(long)]
    pub no_reuseaddr: bool,
    /// Set SO_REUSEPORT.
    #[arg(long)]
    pub reuseport: bool,
    /// Set TCP_NODELAY.
    #[arg(long)]
    pub nodelay: bool,
    /// Set IPV6_V6ONLY on IPv6 sockets.
    #[arg(long)]
    pub v6only: bool,
}
