//! Arguments of `netkit run server|client|udp-server|udp-client|proxy`.

use clap::{Args, Subcommand, ValueEnum};

use super::proxy::ProxyArgs;
use super::sockopts::SockOptArgs;

/// `netkit run COMPONENT`.
#[derive(Debug, Args)]
pub struct RunArgs {
    /// Which component.
    #[command(subcommand)]
    pub component: Component,
}

/// The lab components.
#[derive(Debug, Subcommand)]
pub enum Component {
    /// A TCP server (lab, zen or echo protocol) in single, threaded or async mode.
    Server(ServerArgs),
    /// The lab client: sends a JSON request to the proxy (or straight to the server).
    Client(ClientArgs),
    /// The lab proxy: JSON forwarding with a blocklist, or a transparent TCP relay.
    Proxy(ProxyArgs),
    /// A UDP server that can share its port with a client (SO_REUSEADDR/SO_REUSEPORT).
    UdpServer(UdpServerArgs),
    /// A UDP client bound to a chosen local port, connected to its peer.
    UdpClient(UdpClientArgs),
}

/// Server architecture.
#[derive(Debug, Clone, Copy, ValueEnum, PartialEq, Eq)]
pub enum Mode {
    /// One connection at a time, blocking: the book's design (one idle client stalls everyone).
    Single,
    /// A thread per connection, bounded by --max-conns.
    Threaded,
    /// tokio tasks.
    Async,
}

/// Wire protocol of the server.
#[derive(Debug, Clone, Copy, ValueEnum, PartialEq, Eq)]
pub enum Protocol {
    /// Reply DONE to each message (seed 003 lab).
    Lab,
    /// Zen-of-Python question/answer (the book's server).
    Zen,
    /// Echo bytes back.
    Echo,
}

/// `netkit run server`.
#[derive(Debug, Args)]
#[command(after_help = "\
Lab protocol framing: a newline ends a message (reply DONE plus a newline; the connection \
stays open for more lines). Before any newline, a bare message is what one read returns: the \
server answers DONE (no newline) at once and closes its side, as the lab's Python server \
answers after one recv(). Only bytes that start a JSON object or array ({ or [) and are not \
complete JSON yet wait for more. A client that writes a bare message in pieces is answered for \
its first piece, and the connection is logged as an error with the number of bytes that came \
after: send a bare message in one write, or end it with a newline.

Zen protocol: a request ends with '?' (split or pipelined requests are fine); a request cut by \
the client closing is logged as an error ('received b'...' then socket closed').

Admission (threaded and async modes): at --max-conns connections the one idle longest (least \
recent byte received) is closed to make room for a newcomer, so clients that connect and send \
nothing cannot starve the others; one client address holds at most --max-conns-per-client \
connections (its own idlest gives way); a new connection must complete its first request \
within --first-request-timeout. single mode keeps the book's design: one connection at a \
time, so one idle client blocks everyone until --idle-timeout closes it.")]
pub struct ServerArgs {
    /// Interface to listen on ('' or 0.0.0.0 or :: for all).
    #[arg(default_value = "127.0.0.1")]
    pub host: String,
    /// Port (default 8888 for lab, 1060 for zen and echo).
    #[arg(short = 'p', long)]
    pub port: Option<u16>,
    /// Architecture.
    #[arg(long, value_enum, default_value_t = Mode::Async)]
    pub mode: Mode,
    /// Protocol.
    #[arg(long, value_enum, default_value_t = Protocol::Lab)]
    pub protocol: Protocol,
    /// Close connections idle for this many seconds (every mode; in single mode an idle
    /// client still stalls everyone until then).
    #[arg(long, value_name = "S", default_value_t = 60, value_parser = clap::value_parser!(u64).range(1..))]
    pub idle_timeout: u64,
    /// Most connections served at once (threaded, async); more wait in the listen queue.
    #[arg(long, value_name = "N", default_value_t = 1024, value_parser = clap::builder::RangedU64ValueParser::<usize>::new().range(1..=1_000_000))]
    pub max_conns: usize,
    /// Connections one client address may hold (threaded, async; default: half of
    /// --max-conns). Another one from that address closes its own idlest connection.
    #[arg(long, value_name = "N", value_parser = clap::builder::RangedU64ValueParser::<usize>::new().range(1..=1_000_000))]
    pub max_conns_per_client: Option<usize>,
    /// Seconds a new connection has to complete its first request (threaded, async),
    /// separate from --idle-timeout.
    #[arg(long, value_name = "S", default_value_t = 5.0, value_parser = seconds)]
    pub first_request_timeout: f64,
    /// Seconds to let in-flight requests finish after SIGINT/SIGTERM.
    #[arg(long, value_name = "S", default_value_t = 5.0, value_parser = seconds)]
    pub drain: f64,
    /// Async mode: threads serving connections, each an event loop (0 = half the CPUs, at least one).
    #[arg(long, value_name = "N", default_value_t = 0, value_parser = clap::builder::RangedU64ValueParser::<usize>::new().range(0..=1024))]
    pub workers: usize,
    #[command(flatten)]
    pub sock: SockOptArgs,
}

/// Parses a non-negative number of seconds (at most a day).
fn seconds(s: &str) -> Result<f64, String> {
    match s.parse::<f64>() {
        Ok(v) if (0.0..=86_400.0).contains(&v) => Ok(v),
        _ => Err(format!(
            "{s:?} is not a number of seconds between 0 and 86400"
        )),
    }
}

/// `netkit run client`.
#[derive(Debug, Args)]
pub struct ClientArgs {
    /// The proxy to send the JSON request to.
    #[arg(long, default_value = "127.0.0.1:6000")]
    pub proxy: String,
    /// The server the proxy should forward to.
    #[arg(long, default_value = "127.0.0.1:8888")]
    pub server: String,
    /// The message (default: a random 4-letter word).
    #[arg(long)]
    pub message: Option<String>,
    /// Target the blocked port 7777, as the lab's block test does.
    #[arg(long)]
    pub block: bool,
    /// Talk to the server directly, without the proxy.
    #[arg(long)]
    pub direct: bool,
    /// Send this many requests.
    #[arg(long, default_value_t = 1)]
    pub count: u32,
    /// Keep one connection for all requests (newline-delimited).
    #[arg(long)]
    pub persistent: bool,
    /// Bind the client's source port (0 lets the kernel choose).
    #[arg(long)]
    pub bind_port: Option<u16>,
    /// Seconds to wait for the connection and for each reply.
    #[arg(long, value_name = "S", default_value_t = 5.0, value_parser = seconds)]
    pub timeout: f64,
    #[command(flatten)]
    pub sock: SockOptArgs,
}

/// `netkit run udp-server`.
#[derive(Debug, Args)]
pub struct UdpServerArgs {
    /// Local port.
    #[arg(long, short = 'p')]
    pub port: u16,
    /// Local address.
    #[arg(long, default_value = "127.0.0.1")]
    pub addr: String,
    /// Join this multicast group (IP_ADD_MEMBERSHIP).
    #[arg(long)]
    pub multicast: Option<String>,
    /// Set SO_REUSEADDR and SO_REUSEPORT (Twisted's listenMultiple).
    #[arg(long)]
    pub listen_multiple: bool,
    /// Only print datagrams; do not echo them back.
    #[arg(long)]
    pub no_reply: bool,
    #[command(flatten)]
    pub sock: SockOptArgs,
}

/// `netkit run udp-client`.
#[derive(Debug, Args)]
pub struct UdpClientArgs {
    /// Local port to bind (shared with a udp-server).
    #[arg(long, short = 'p')]
    pub port: u16,
    /// Local address.
    #[arg(long, default_value = "127.0.0.1")]
    pub addr: String,
    /// The peer to connect to and send to.
    #[arg(long)]
    pub to: String,
    /// The message to send.
    #[arg(long, default_value = "hello")]
    pub message: String,
    /// Messages to send.
    #[arg(long, default_value_t = 1)]
    pub count: u32,
    /// Seconds to wait for each reply (0: send only).
    #[arg(long, value_name = "S", default_value_t = 2.0, value_parser = seconds)]
    pub wait: f64,
    /// Set SO_REUSEADDR and SO_REUSEPORT (Twisted's listenMultiple).
    #[arg(long)]
    pub listen_multiple: bool,
    #[command(flatten)]
    pub sock: SockOptArgs,
}
