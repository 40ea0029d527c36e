//! Arguments of explain, wait-free, free-port and sockopt.

use clap::{Args, ValueHint};

use super::port::{PortSpec, bind_port, one_port, parse_port_spec};
use super::wait::seconds;

/// The bind options of the program that fails, shared by explain and wait-free.
#[derive(Debug, Args, Clone, Default)]
pub struct BindOptArgs {
    /// Local address the program binds (default 0.0.0.0).
    #[arg(long, default_value = "0.0.0.0")]
    pub addr: String,
    /// UDP instead of TCP.
    #[arg(short = 'u', long)]
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
    #[arg(required_unless_present_any = ["error", "connect"], value_hint = ValueHint::Other, value_parser = bind_port)]
    pub port: Option<u16>,
    #[command(flatten)]
    pub bind: BindOptArgs,
    /// Run the trial as this user (root only).
    #[arg(long, value_hint = ValueHint::Username)]
    pub as_user: Option<String>,
    /// Decode an error message pasted from Python, Node, Go, Java, Rust, C or Windows.
    #[arg(long, value_name = "TEXT")]
    pub error: Option<String>,
    /// Explain why a connect() to HOST:PORT fails (a real trial connect; exit 0 when it
    /// connects, 1 when not).
    #[arg(long, value_name = "HOST:PORT", conflicts_with_all = ["port", "error"])]
    pub connect: Option<String>,
    /// Seconds each trial connect may take (--connect).
    #[arg(long, default_value_t = 3.0, requires = "connect")]
    pub timeout: f64,
    #[command(flatten)]
    pub ns: super::netns::OneNetnsArgs,
}

/// `netkit wait-free PORT...`.
#[derive(Debug, Args)]
#[command(after_help = "\
Exit status: 0 every port can be bound; 1 timed out; 2 an error waiting cannot fix (EACCES).
A port held by a live process (a listener, a bound socket) frees only when that process exits
or closes it: wait-free says who holds it; `netkit who-owns PORT --kill` stops it.")]
pub struct WaitFreeArgs {
    /// The port(s) to wait for: 6000, 6000/udp, 127.0.0.1:6000, http, 6000-6002, 6000,6001
    /// (a /udp suffix or a host overrides --udp / --addr for that port).
    #[arg(value_name = "PORT", required = true, num_args = 1.., value_delimiter = ',', value_hint = ValueHint::Other, value_parser = parse_port_spec)]
    pub ports: Vec<PortSpec>,
    /// Give up after this many seconds (0: check once).
    #[arg(long, value_name = "S", default_value_t = 90.0, allow_negative_numbers = true, value_parser = seconds)]
    pub timeout: f64,
    #[command(flatten)]
    pub bind: BindOptArgs,
    #[command(flatten)]
    pub ns: super::netns::OneNetnsArgs,
}

/// `netkit free-port`.
#[derive(Debug, Args)]
#[command(after_help = "\
The race: a port printed here was bindable when netkit checked it and is released at once;
another program can take it before yours binds it. Bind port 0 in your own program when you
can; otherwise bind the printed port right away and retry on EADDRINUSE.")]
pub struct FreePortArgs {
    /// How many ports.
    #[arg(long, short = 'n', default_value_t = 1)]
    pub count: usize,
    /// Search this range, A-B (default: outside the ephemeral range).
    #[arg(long, value_name = "A-B")]
    pub range: Option<String>,
    /// UDP instead of TCP.
    #[arg(long, short = 'u', conflicts_with = "both")]
    pub udp: bool,
    /// Only ports bindable for TCP and for UDP at once (as portpicker checks).
    #[arg(long)]
    pub both: bool,
    /// Print this port first when it is bindable (else another one, with a note).
    #[arg(long, value_name = "PORT", value_hint = ValueHint::Other, value_parser = one_port)]
    pub prefer: Option<u16>,
    /// Never print these ports (6000, 6000-6010, http; a list or repeated).
    #[arg(long, value_name = "PORT", value_delimiter = ',', value_hint = ValueHint::Other, value_parser = parse_port_spec)]
    pub exclude: Vec<PortSpec>,
    #[command(flatten)]
    pub ns: super::netns::OneNetnsArgs,
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
