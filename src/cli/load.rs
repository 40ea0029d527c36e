//! Arguments of `netkit load`.

use clap::{Args, ValueEnum};

/// What `netkit load` speaks to its target.
#[derive(Debug, Clone, Copy, ValueEnum, PartialEq, Eq)]
pub enum LoadProtocol {
    /// The book's zen question `Beautiful is better than?`, answer `Ugly.`.
    Zen,
    /// The lab message `tgmr`, reply `DONE` (bare on a new connection, newline-terminated
    /// on a kept one).
    Lab,
    /// 32 bytes, expected back unchanged.
    Echo,
    /// The proxy lab's JSON request naming --server, reply `DONE`.
    ProxyJson,
}

/// `netkit load TARGET`.
#[derive(Debug, Args)]
#[command(after_help = "\
Every run is bounded: --duration (default 5 s, at most 3600) or --requests (at most 10,000,000, \
and then --duration caps the time, default 60 s), at most 10,000 connections and 10,000 held ones. \
Targets must be loopback (127.0.0.0/8, ::1) unless --netns NAME runs the load inside that network \
namespace (ip netns; needs root).

Latency is measured per request (with --new-conn from the connect() call) into an HDR histogram. \
Errors by kind: refused (connect refused), reset (reset or closed before the whole reply), \
timeout (no reply within --timeout), wrong_reply (the reply is not the protocol's answer). \
Requests still in flight when the run ends are counted as unfinished, not as errors.

Without --new-conn each connection carries request after request: zen and echo as they are, \
lab and proxy-json newline-terminated (the servers' line mode). --hold N first opens N \
connections that never send (the book's denial-of-service demo: against \
`run server --mode single` every request then times out; against async none does).

Exit status: 0 when every request got the right reply, 1 when any failed, 2 on bad arguments.")]
pub struct LoadArgs {
    /// HOST:PORT to load (loopback, or any address inside --netns).
    pub target: String,
    /// What to send and expect back.
    #[arg(long, value_enum, default_value_t = LoadProtocol::Zen)]
    pub protocol: LoadProtocol,
    /// Concurrent connections (workers), each one request at a time.
    #[arg(long, value_name = "N", default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..=10_000))]
    pub conns: u32,
    /// Seconds to run (with --requests: the time cap, default 60).
    #[arg(long, value_name = "S", value_parser = positive_seconds)]
    pub duration: Option<f64>,
    /// Stop after this many requests (successful or not).
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u64).range(1..=10_000_000))]
    pub requests: Option<u64>,
    /// A new connection per request (else each worker keeps its connection).
    #[arg(long)]
    pub new_conn: bool,
    /// Open N idle connections first and keep them open for the whole run.
    #[arg(long, value_name = "N", default_value_t = 0, value_parser = clap::value_parser!(u32).range(0..=10_000))]
    pub hold: u32,
    /// At most R requests per second in total (default: as fast as replies come).
    #[arg(long, value_name = "R", value_parser = rate)]
    pub rate: Option<f64>,
    /// Seconds a request (connect included with --new-conn) may take before it is a timeout.
    #[arg(long, value_name = "S", default_value_t = 1.0, value_parser = positive_seconds)]
    pub timeout: f64,
    /// proxy-json: the server the JSON request names.
    #[arg(long, value_name = "HOST:PORT", default_value = "127.0.0.1:8888")]
    pub server: String,
    /// Run inside this network namespace (/run/netns/NAME, as `ip netns add` makes).
    #[arg(long, value_name = "NAME")]
    pub netns: Option<String>,
    /// Threads of the load generator, each running its share of the connections (0 = one per CPU).
    #[arg(long, value_name = "N", default_value_t = 0, value_parser = clap::value_parser!(u32).range(0..=256))]
    pub threads: u32,
}

/// A positive number of seconds, at most an hour.
fn positive_seconds(s: &str) -> Result<f64, String> {
    match s.parse::<f64>() {
        Ok(v) if v > 0.0 && v <= 3600.0 => Ok(v),
        _ => Err(format!(
            "{s:?} is not a number of seconds above 0 and at most 3600"
        )),
    }
}

/// A positive request rate, at most ten million per second.
fn rate(s: &str) -> Result<f64, String> {
    match s.parse::<f64>() {
        Ok(v) if v > 0.0 && v <= 10_000_000.0 => Ok(v),
        _ => Err(format!(
            "{s:?} is not a rate above 0 and at most 10000000 per second"
        )),
    }
}
