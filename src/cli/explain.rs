//! Arguments of explain, wait-free, free-port and sockopt.

use clap::Args;

use super::port::{bind_port, one_port};

/// The bind options of the program that fails, shared by explain and wait-free.
#[derive(Debug, Args, Clone, Default)]
pub struct BindOptArgs {
    /// Local address the program binds (default 0.0.0.0).
    #[arg(long, default_value = "0.0.0.0")]
    pub addr: String,
    /// UDP instead of TCP.
    #[arg(long)]
    pub udp: bool,
    /// The program sets SO_REUSEADDR.
    #[arg(long)]
    pub reuseaddr: bool,
    /// The program sets SO_REUSEPORT.
    #[arg(long)]
    pub reuseport: bool,
    /// The IPv6 socket sets IPV6_V6ONLY=1.
    #[arg(long, conflicts_with = "dual_stack")]
    pub v6only: bool,
    /// The IPv6 socket sets IPV6_V6ONLY=0 (dual-stack).
    #[arg(long)]
    pub dual_stack: bool,
}

/// `netkit explain PORT`.
#[derive(Debug, Args)]
pub struct ExplainArgs {
    /// The port that fails to bind (6000, :6000 or a service name such as http; 0 asks whether
    /// the kernel can pick an ephemeral port, as bind() to port 0 does).
    #[arg(required_unless_present = "error", value_parser = bind_port)]
    pub port: Option<u16>,
    #[command(flatten)]
    pub bind: BindOptArgs,
    /// Run the trial as this user (root only).
    #[arg(long)]
    pub as_user: Option<String>,
    /// Decode an error message pasted from Python, Node, Go, Java, Rust, C or Windows.
    #[arg(long, value_name = "TEXT")]
    pub error: Option<String>,
}

/// `netkit wait-free PORT`.
#[derive(Debug, Args)]
pub struct WaitFreeArgs {
    /// The port to wait for (6000, :6000 or a service name such as http).
    #[arg(value_parser = one_port)]
    pub port: u16,
    /// Give up after this many seconds.
    #[arg(long, default_value_t = 90.0)]
    pub timeout: f64,
    #[command(flatten)]
    pub bind: BindOptArgs,
}

/// `netkit free-port`.
#[derive(Debug, Args)]
pub struct FreePortArgs {
    /// How many ports.
    #[arg(long, short = 'n', default_value_t = 1)]
    pub count: usize,
    /// Search this range, A-B (default: outside the ephemeral range).
    #[arg(long)]
    pub range: Option<String>,
    /// UDP instead of TCP.
    #[arg(long)]
    pub udp: bool,
}

/// `netkit sockopt PID`.
#[derive(Debug, Args)]
pub struct SockoptArgs {
    /// The process.
    pub pid: u32,
    /// Only this file descriptor.
    #[arg(long, conflicts_with = "port")]
    pub fd: Option<i32>,
    /// Only sockets with this local port (6000, :6000 or a service name).
    #[arg(long, value_parser = one_port)]
    pub port: Option<u16>,
    /// Every TCP socket of the process (with --set).
    #[arg(long, conflicts_with_all = ["fd", "port"], requires = "set")]
    pub all: bool,
    /// Change an option on the live socket: keepalive=on|off, keepidle=S, keepintvl=S,
    /// keepcnt=N, sndbuf=BYTES, rcvbuf=BYTES, nodelay=on|off, user-timeout=MS, linger=off|S
    /// (repeatable; needs --fd, --port or --all).
    #[arg(long, value_name = "NAME=VALUE")]
    pub set: Vec<String>,
    /// With --set: show what would change, change nothing.
    #[arg(long, requires = "set")]
    pub dry_run: bool,
}
