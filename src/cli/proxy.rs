//! Arguments of `netkit run proxy`.

use clap::Args;

use super::sockopts::SockOptArgs;

/// `netkit run proxy`.
#[derive(Debug, Args)]
#[command(after_help = "\
The blocklist starts with the lab's 127.0.0.1:7777; --no-default-block clears it (then only your \
--block entries apply). A --block entry naming an address of this host blocks that port on every \
local address (127.0.0.2, ::1, 0.0.0.0 reach the same wildcard listener). Targets are checked \
after parsing the way inet_aton(3) does (127.1, 0x7f.0.0.1, 2130706433 and 0177.0.0.1 are \
127.0.0.1; ::ffff:127.0.0.1 is 127.0.0.1; 0.0.0.0 and :: are loopback) and after resolving \
hostnames; the address checked is the address connected to. IPv6 zone ids are refused.

Replies to refused or failed requests: 'Error, not allowed address', 'Error, bad request: REASON', \
'Error, server unreachable: REASON'. A request followed by a newline gets a newline-terminated \
reply; 'Error, busy' when the buffer budget is spent. With --json, every event (listening, \
request, relay, at_capacity, stopped) is one JSON object per line.

Admission: at --max-conns the connection idle longest (least recent byte received) is closed for \
a newcomer, so clients that connect and send nothing (or one byte) cannot starve the others; a \
client address holds at most --max-conns-per-client connections; the first request must arrive \
whole within --first-request-timeout. Relay connections are never evicted.")]
pub struct ProxyArgs {
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1:6000")]
    pub listen: String,
    /// Refuse requests to this target: IP:PORT, PORT, IP or CIDR (repeatable; the lab's
    /// 127.0.0.1:7777 is always included unless --no-default-block).
    #[arg(long, value_name = "TARGET")]
    pub block: Vec<String>,
    /// Start with an empty blocklist (drops the default 127.0.0.1:7777).
    #[arg(long)]
    pub no_default_block: bool,
    /// Also forward to targets in this CIDR (default: loopback only, so the proxy is not an
    /// open relay).
    #[arg(long, value_name = "CIDR")]
    pub allow: Vec<String>,
    /// Relay mode: forward raw bytes both ways to HOST:PORT (resolved once at start).
    #[arg(long, value_name = "HOST:PORT")]
    pub relay: Option<String>,
    /// Relay mode: refuse clients from this CIDR (repeatable).
    #[arg(long, value_name = "CIDR", requires = "relay")]
    pub deny_client: Vec<String>,
    /// Relay mode: move bulk streams with splice(2) through a pipe instead of the copy loop
    /// (the copy loop's growing buffer measured faster on loopback; see README)
    #[arg(long, requires = "relay", conflicts_with = "no_splice")]
    pub splice: bool,
    /// Relay mode: copy through a buffer (the default; kept for scripts written when splice(2)
    /// was)
    #[arg(long, requires = "relay")]
    pub no_splice: bool,
    /// Largest accepted message (and server reply), bytes (at most 16 MiB). A request may
    /// take this plus 4 KiB as sent, JSON escapes included.
    #[arg(long, default_value_t = 65536, value_name = "BYTES")]
    pub max_message: usize,
    /// Seconds to wait for the target to accept (also bounds hostname resolution).
    #[arg(long, default_value_t = 3.0, value_name = "S")]
    pub connect_timeout: f64,
    /// Close connections idle for this many seconds; a request must arrive whole within it.
    #[arg(long, default_value_t = 60.0, value_name = "S")]
    pub idle_timeout: f64,
    /// Most connections served at once. At the cap the connection idle longest is closed
    /// for a newcomer; connections waiting for their target are never closed (newcomers then
    /// wait in the listen queue).
    #[arg(long, default_value_t = 1024, value_name = "N", value_parser = clap::value_parser!(u32).range(1..))]
    pub max_conns: u32,
    /// Connections one client address may hold (default: half of --max-conns, at least 64); another one
    /// from that address closes its own idlest connection.
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..))]
    pub max_conns_per_client: Option<u32>,
    /// Seconds a new connection has to send its first whole request (separate from
    /// --idle-timeout).
    #[arg(long, default_value_t = 5.0, value_name = "S")]
    pub first_request_timeout: f64,
    /// Bytes all connections together may hold in request buffers beyond 4 KiB each;
    /// past it a request gets 'Error, busy'.
    #[arg(long, default_value_t = 64 << 20, value_name = "BYTES")]
    pub buffer_budget: usize,
    /// Seconds to let in-flight requests finish after SIGINT/SIGTERM.
    #[arg(long, default_value_t = 5.0, value_name = "S")]
    pub drain: f64,
    /// Threads serving connections, each with its own event loop (default: one per CPU).
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..=256))]
    pub threads: Option<u32>,
    /// JSON mode: set TCP_DEFER_ACCEPT so a connection is handed over only when its request
    /// bytes arrive (less work per request; silent clients then wait in the kernel, not in
    /// the proxy, and are not seen by --idle-timeout or the shutdown drain).
    #[arg(long, conflicts_with = "relay")]
    pub defer_accept: bool,
    /// Do not print a line per request (errors and start-up lines are still printed).
    #[arg(long, short = 'q')]
    pub quiet: bool,
    #[command(flatten)]
    pub sock: SockOptArgs,
}
