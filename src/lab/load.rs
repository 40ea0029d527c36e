//! `netkit load`: a bounded load generator for the lab components (zen, lab, echo servers and
//! the JSON proxy). N workers each send one request at a time, on a kept connection or a new
//! one per request, optionally paced to a total rate, after opening `--hold` idle
//! connections (the book's denial-of-service demo). Latencies go into an HDR histogram
//! (microseconds, 3 significant digits); errors are counted by kind ([`ErrorKind`]).
//!
//! Bounded always: a run ends at `--duration` (or after `--requests`, capped by a duration
//! too), with at most 10,000 workers and 10,000 held connections, and only loopback targets
//! unless the user names a network namespace to run in.

use std::io::{self, IsTerminal, Write};
use std::net::{IpAddr, SocketAddr, ToSocketAddrs};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use anyhow::{Context, bail};
use hdrhistogram::Histogram;
use serde::Serialize;
use tokio::net::TcpStream;
use tokio::time::{Instant, timeout_at};

use crate::cli::load::{LoadArgs, LoadProtocol};

mod engine;
use crate::commands::{FOUND, NOTHING};
use crate::output::{self, Format};

/// How a request failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    /// connect() refused (nothing listening, or the listen queue overflowed).
    Refused,
    /// Reset, or closed before the whole reply.
    Reset,
    /// No (whole) reply within `--timeout`.
    Timeout,
    /// The reply is not the protocol's answer.
    WrongReply,
    /// Anything else (out of ephemeral ports, out of file descriptors…).
    Other,
}

impl ErrorKind {
    const ALL: [ErrorKind; 5] = [
        ErrorKind::Refused,
        ErrorKind::Reset,
        ErrorKind::Timeout,
        ErrorKind::WrongReply,
        ErrorKind::Other,
    ];

    /// The name in the table and the JSON.
    pub fn name(self) -> &'static str {
        match self {
            ErrorKind::Refused => "refused",
            ErrorKind::Reset => "reset",
            ErrorKind::Timeout => "timeout",
            ErrorKind::WrongReply => "wrong_reply",
            ErrorKind::Other => "other",
        }
    }

    fn of(e: &io::Error) -> ErrorKind {
        match e.kind() {
            io::ErrorKind::ConnectionRefused => ErrorKind::Refused,
            io::ErrorKind::ConnectionReset
            | io::ErrorKind::ConnectionAborted
            | io::ErrorKind::BrokenPipe
            | io::ErrorKind::UnexpectedEof => ErrorKind::Reset,
            io::ErrorKind::TimedOut => ErrorKind::Timeout,
            _ => ErrorKind::Other,
        }
    }
}

/// What one run does.
#[derive(Debug, Clone)]
pub struct Plan {
    /// Where requests go.
    pub target: SocketAddr,
    /// What is sent.
    pub request: Vec<u8>,
    /// What must come back.
    pub expect: Vec<u8>,
    /// Workers.
    pub conns: usize,
    /// A new connection per request.
    pub new_conn: bool,
    /// Idle connections opened first and kept.
    pub hold: usize,
    /// Total requests per second, if paced.
    pub rate: Option<f64>,
    /// Per-request limit.
    pub timeout: Duration,
    /// Run time (the cap with `requests`).
    pub duration: Duration,
    /// Stop after this many requests.
    pub requests: Option<u64>,
    /// OS threads the connections are spread over (each drives its share with one poll).
    pub threads: usize,
}

/// Counters shared by the workers (read by the progress line).
#[derive(Debug, Default)]
struct Shared {
    ok: AtomicU64,
    errors: [AtomicU64; 5],
    unfinished: AtomicU64,
    tickets: AtomicU64,
    rate_slot: AtomicU64,
    first_other: std::sync::Mutex<Option<String>>,
}

impl Shared {
    fn error(&self, k: ErrorKind, e: Option<&io::Error>) {
        self.errors[k as usize].fetch_add(1, Ordering::Relaxed);
        if k == ErrorKind::Other
            && let Some(e) = e
            && let Ok(mut first) = self.first_other.lock()
            && first.is_none()
        {
            *first = Some(e.to_string());
        }
    }

    fn errors_total(&self) -> u64 {
        self.errors.iter().map(|e| e.load(Ordering::Relaxed)).sum()
    }
}

/// The result of a run.
#[derive(Debug, Clone)]
pub struct Outcome {
    /// Requests answered correctly.
    pub ok: u64,
    /// Failed requests by kind: refused, reset, timeout, wrong_reply, other.
    pub errors: [u64; 5],
    /// Requests cut by the end of the run.
    pub unfinished: u64,
    /// Held connections actually open.
    pub held: usize,
    /// Workers that got at least one correct reply (a server that serves one connection at
    /// a time starves the others).
    pub served: usize,
    /// Measured time.
    pub elapsed: Duration,
    /// Latencies of correct replies, microseconds.
    pub hist: Histogram<u64>,
    /// The first "other" error's text.
    pub first_other: Option<String>,
}

impl Outcome {
    /// Failed requests in total.
    pub fn errors_total(&self) -> u64 {
        self.errors.iter().sum()
    }

    /// Correct replies per second.
    pub fn rate(&self) -> f64 {
        self.ok as f64 / self.elapsed.as_secs_f64().max(1e-9)
    }

    /// Latency at quantile `q` in ms (`None` without samples).
    pub fn quantile_ms(&self, q: f64) -> Option<f64> {
        (!self.hist.is_empty()).then(|| self.hist.value_at_quantile(q) as f64 / 1000.0)
    }
}

fn new_hist() -> Histogram<u64> {
    // 1 µs to 1 h at 3 significant digits; these bounds are valid, so this cannot fail.
    Histogram::new_with_bounds(1, 3_600_000_000, 3)
        .unwrap_or_else(|_| Histogram::new(3).expect("3 significant digits are valid"))
}

/// What a request and its reply look like for `p`.
pub fn payload(p: LoadProtocol, new_conn: bool, server: (&str, u16)) -> (Vec<u8>, Vec<u8>) {
    let nl = if new_conn { "" } else { "\n" };
    match p {
        LoadProtocol::Zen => (b"Beautiful is better than?".to_vec(), b"Ugly.".to_vec()),
        LoadProtocol::Lab => (
            format!("tgmr{nl}").into_bytes(),
            format!("DONE{nl}").into_bytes(),
        ),
        LoadProtocol::Echo => {
            let b = b"netkit load echo 0123456789abcd\n".to_vec();
            (b.clone(), b)
        }
        LoadProtocol::ProxyJson => (
            format!(
                "{}{nl}",
                crate::lab::client::request_json(server.0, server.1, "tgmr")
            )
            .into_bytes(),
            format!("DONE{nl}").into_bytes(),
        ),
    }
}

/// Runs the connections spread over `plan.threads` OS threads, each driving its share with
/// one poll of its own ([`engine`]), and returns their histograms. A connection's connect,
/// write and read never wake another thread. A share whose thread cannot be started runs on
/// the calling thread afterwards (the progress line pauses meanwhile).
async fn run_workers(
    plan: &Arc<Plan>,
    shared: &Arc<Shared>,
    start: Instant,
    end: Instant,
) -> Vec<engine::Share> {
    let threads = plan.threads.clamp(1, plan.conns.max(1));
    let (start, end) = (start.into_std(), end.into_std());
    let mut pending = Vec::new();
    let mut local = 0;
    for t in 0..threads {
        let k = plan.conns / threads + usize::from(t < plan.conns % threads);
        let (tx, rx) = tokio::sync::oneshot::channel();
        let (p, sh) = (plan.clone(), shared.clone());
        let spawned = std::thread::Builder::new()
            .name(format!("load-{t}"))
            .spawn(move || {
                let _ = tx.send(engine::run(&p, &sh, k, start, end));
            });
        match spawned {
            Ok(_) => pending.push(rx),
            Err(_) => local += k,
        }
    }
    let mut hists = Vec::with_capacity(threads + 1);
    if local > 0 {
        hists.push(engine::run(plan, shared, local, start, end));
    }
    for rx in pending {
        hists.extend(rx.await.ok());
    }
    hists
}

/// Runs `plan` (inside a tokio runtime), showing a progress line on stderr when it is a
/// terminal.
pub async fn run(plan: Plan, progress: bool) -> Outcome {
    let plan = Arc::new(plan);
    let shared = Arc::new(Shared::default());
    // The held connections come first and stay open until the run is over.
    let mut held = Vec::new();
    let hold_deadline = Instant::now() + plan.timeout;
    for _ in 0..plan.hold {
        match timeout_at(hold_deadline, TcpStream::connect(plan.target)).await {
            Ok(Ok(s)) => held.push(s),
            _ => break,
        }
    }
    // Let a single-mode server accept the held connection before the workers connect.
    if !held.is_empty() {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let start = Instant::now();
    let end = start + plan.duration;
    let bar = progress.then(|| {
        let b = indicatif::ProgressBar::with_draw_target(
            None,
            indicatif::ProgressDrawTarget::stderr_with_hz(4),
        );
        b.set_style(
            indicatif::ProgressStyle::with_template("{spinner} {elapsed:>4} {msg}")
                .unwrap_or_else(|_| indicatif::ProgressStyle::default_spinner()),
        );
        b
    });
    let ticker = bar.clone().map(|b| {
        let shared = shared.clone();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_millis(250));
            loop {
                tick.tick().await;
                let ok = shared.ok.load(Ordering::Relaxed);
                let secs = start.elapsed().as_secs_f64().max(1e-3);
                b.set_message(format!(
                    "{ok} requests, {:.0} req/s, {} errors",
                    ok as f64 / secs,
                    shared.errors_total()
                ));
                b.tick();
            }
        })
    });
    let mut hist = new_hist();
    let mut served = 0;
    for share in run_workers(&plan, &shared, start, end).await {
        served += share.served;
        let _ = hist.add(share.hist);
    }
    let elapsed = start.elapsed().min(plan.duration);
    if let Some(t) = ticker {
        t.abort();
    }
    if let Some(b) = bar {
        b.finish_and_clear();
    }
    let n = held.len();
    drop(held);
    let errors = std::array::from_fn(|i| shared.errors[i].load(Ordering::Relaxed));
    let first_other = shared.first_other.lock().ok().and_then(|g| g.clone());
    Outcome {
        ok: shared.ok.load(Ordering::Relaxed),
        errors,
        unfinished: shared.unfinished.load(Ordering::Relaxed),
        held: n,
        served,
        elapsed,
        hist,
        first_other,
    }
}

/// The `--json` report.
#[derive(Debug, Serialize)]
struct Report {
    schema_version: u32,
    command: &'static str,
    ts: String,
    target_addr: String,
    target_port: u16,
    protocol: &'static str,
    conns: usize,
    conns_served: usize,
    new_conn: bool,
    hold: usize,
    held: usize,
    rate_limit: Option<f64>,
    timeout_s: f64,
    duration_s: f64,
    requests_limit: Option<u64>,
    requests: u64,
    ok: u64,
    errors_total: u64,
    errors: serde_json::Map<String, serde_json::Value>,
    unfinished: u64,
    req_per_s: f64,
    latency_ms: Option<Latency>,
    notes: Vec<String>,
}

#[derive(Debug, Serialize)]
struct Latency {
    p50: f64,
    p90: f64,
    p99: f64,
    p99_9: f64,
    max: f64,
    mean: f64,
}

fn protocol_name(p: LoadProtocol) -> &'static str {
    match p {
        LoadProtocol::Zen => "zen",
        LoadProtocol::Lab => "lab",
        LoadProtocol::Echo => "echo",
        LoadProtocol::ProxyJson => "proxy-json",
    }
}

fn round3(v: f64) -> f64 {
    (v * 1000.0).round() / 1000.0
}

/// Enters the network namespace `name` (/run/netns/NAME) for this thread and every thread
/// it starts afterwards (the runtime's workers).
fn enter_netns(name: &str) -> anyhow::Result<()> {
    if name.is_empty() || name.contains('/') || name == "." || name == ".." {
        bail!("--netns {name:?} is not a namespace name");
    }
    let path = format!("/run/netns/{name}");
    let f = std::fs::File::open(&path)
        .with_context(|| format!("--netns {name}: cannot open {path} (ip netns add {name})"))?;
    // SAFETY: setns on an fd we hold open for the call.
    let rc = unsafe { libc::setns(std::os::fd::AsRawFd::as_raw_fd(&f), libc::CLONE_NEWNET) };
    if rc != 0 {
        let e = io::Error::last_os_error();
        bail!("--netns {name}: setns failed: {e} (needs root / CAP_SYS_ADMIN)");
    }
    Ok(())
}

fn resolve(target: &str) -> anyhow::Result<SocketAddr> {
    let a = target
        .to_socket_addrs()
        .with_context(|| format!("TARGET {target:?} is not HOST:PORT"))?
        .next()
        .with_context(|| format!("TARGET {target:?} has no address"))?;
    if a.port() == 0 {
        bail!("TARGET {target}: port 0 is not a destination");
    }
    Ok(a)
}

fn is_loopback(ip: IpAddr) -> bool {
    ip.to_canonical().is_loopback()
}

/// `netkit load`: returns 0 when every request got the right reply, 1 otherwise.
///
/// # Errors
/// Bad arguments (a non-loopback target without `--netns`), or the runtime cannot start.
pub fn run_cli(a: LoadArgs, format: Format) -> anyhow::Result<i32> {
    if let Some(ns) = &a.netns {
        enter_netns(ns)?;
    }
    let target = resolve(&a.target)?;
    if a.netns.is_none() && !is_loopback(target.ip()) {
        bail!(
            "TARGET {target} is not a loopback address: netkit load only loads 127.0.0.0/8 and ::1, \
             or any address inside a network namespace you name with --netns NAME"
        );
    }
    let (server_host, server_port) =
        crate::lab::client::split_host_port(&a.server).context("--server")?;
    let (request, expect) = payload(a.protocol, a.new_conn, (&server_host, server_port));
    let duration = match (a.duration, a.requests) {
        (Some(d), _) => d,
        (None, Some(_)) => 60.0,
        (None, None) => 5.0,
    };
    let plan = Plan {
        target,
        request,
        expect,
        conns: a.conns as usize,
        new_conn: a.new_conn,
        hold: a.hold as usize,
        rate: a.rate,
        timeout: Duration::from_secs_f64(a.timeout),
        duration: Duration::from_secs_f64(duration),
        requests: a.requests,
        threads: match a.threads {
            0 => std::thread::available_parallelism().map_or(1, |n| n.get()),
            n => n as usize,
        },
    };
    // This runtime only opens the held connections and draws the progress line; the
    // workers have their own (see `run_workers`).
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("cannot start the tokio runtime")?;
    let progress = io::stderr().is_terminal();
    let out = rt.block_on(run(plan.clone(), progress));
    rt.shutdown_timeout(Duration::from_millis(100));

    let mut notes = Vec::new();
    if plan.hold > 0 && out.held < plan.hold {
        notes.push(format!(
            "only {} of {} held connections could be opened",
            out.held, plan.hold
        ));
    }
    if out.served < plan.conns && out.ok > 0 {
        notes.push(format!(
            "only {} of {} connections got a reply: the target served some connections and \
             starved the others (their requests are timeouts or unfinished)",
            out.served, plan.conns
        ));
    }
    if let Some(e) = &out.first_other {
        notes.push(format!("first 'other' error: {e}"));
    }
    if out.errors[ErrorKind::Timeout as usize] > 0 && out.ok == 0 && out.held > 0 {
        notes.push(format!(
            "every request timed out while {} idle connection(s) were held: the target \
                 served no one else meanwhile, as a one-connection-at-a-time server does",
            out.held
        ));
    }
    let latency = (!out.hist.is_empty()).then(|| Latency {
        p50: round3(out.quantile_ms(0.50).unwrap_or(0.0)),
        p90: round3(out.quantile_ms(0.90).unwrap_or(0.0)),
        p99: round3(out.quantile_ms(0.99).unwrap_or(0.0)),
        p99_9: round3(out.quantile_ms(0.999).unwrap_or(0.0)),
        max: round3(out.hist.max() as f64 / 1000.0),
        mean: round3(out.hist.mean() / 1000.0),
    });
    let mut stdout = io::stdout().lock();
    match format {
        Format::Json => {
            let mut errors = serde_json::Map::new();
            for k in ErrorKind::ALL {
                errors.insert(k.name().into(), out.errors[k as usize].into());
            }
            let report = Report {
                schema_version: 1,
                command: "load",
                ts: humantime::format_rfc3339_millis(std::time::SystemTime::now()).to_string(),
                target_addr: target.ip().to_string(),
                target_port: target.port(),
                protocol: protocol_name(a.protocol),
                conns: plan.conns,
                conns_served: out.served,
                new_conn: plan.new_conn,
                hold: plan.hold,
                held: out.held,
                rate_limit: plan.rate,
                timeout_s: plan.timeout.as_secs_f64(),
                duration_s: round3(out.elapsed.as_secs_f64()),
                requests_limit: plan.requests,
                requests: out.ok + out.errors_total(),
                ok: out.ok,
                errors_total: out.errors_total(),
                errors,
                unfinished: out.unfinished,
                req_per_s: (out.rate() * 10.0).round() / 10.0,
                latency_ms: latency,
                notes,
            };
            output::json::write(&report, &mut stdout)?;
        }
        Format::Table => {
            let how = if plan.new_conn {
                "a new connection per request"
            } else {
                "kept connections"
            };
            writeln!(
                stdout,
                "netkit load {target}: {}, {} connection(s) ({} served), {how}{}, {:.2} s",
                protocol_name(a.protocol),
                plan.conns,
                out.served,
                if plan.hold > 0 {
                    format!(", {} of {} held idle", out.held, plan.hold)
                } else {
                    String::new()
                },
                out.elapsed.as_secs_f64()
            )?;
            let ms = |v: Option<f64>| v.map_or_else(|| "-".to_string(), |v| format!("{v:.3}"));
            let header: Vec<String> = [
                "requests", "ok", "errors", "req/s", "p50_ms", "p90_ms", "p99_ms", "p99.9_ms",
                "max_ms",
            ]
            .iter()
            .map(|s| s.to_string())
            .collect();
            let row = vec![
                (out.ok + out.errors_total()).to_string(),
                out.ok.to_string(),
                out.errors_total().to_string(),
                format!("{:.1}", out.rate()),
                ms(latency.as_ref().map(|l| l.p50)),
                ms(latency.as_ref().map(|l| l.p90)),
                ms(latency.as_ref().map(|l| l.p99)),
                ms(latency.as_ref().map(|l| l.p99_9)),
                ms(latency.as_ref().map(|l| l.max)),
            ];
            output::table::write(&header, &[row], output::Layout::detect().width, &mut stdout)?;
            writeln!(stdout)?;
            let header = vec!["error".to_string(), "count".to_string()];
            let mut rows: Vec<Vec<String>> = ErrorKind::ALL
                .iter()
                .map(|&k| vec![k.name().to_string(), out.errors[k as usize].to_string()])
                .collect();
            rows.push(vec!["unfinished".into(), out.unfinished.to_string()]);
            output::table::write(&header, &rows, output::Layout::detect().width, &mut stdout)?;
            drop(stdout);
            for n in &notes {
                eprintln!("note: {n}");
            }
        }
    }
    Ok(if out.errors_total() == 0 && out.ok > 0 {
        FOUND
    } else {
        NOTHING
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn payloads_follow_each_protocols_framing() {
        let s = ("127.0.0.1", 8888);
        assert_eq!(payload(LoadProtocol::Lab, true, s).1, b"DONE");
        assert_eq!(payload(LoadProtocol::Lab, false, s).0, b"tgmr\n");
        assert_eq!(payload(LoadProtocol::Zen, false, s).1, b"Ugly.");
        let (req, rep) = payload(LoadProtocol::ProxyJson, true, s);
        assert!(req.starts_with(b"{") && !req.ends_with(b"\n"));
        assert_eq!(rep, b"DONE");
        let (req, rep) = payload(LoadProtocol::Echo, false, s);
        assert_eq!(req, rep);
    }

    #[test]
    fn error_kinds_from_socket_errors() {
        let e = |k| io::Error::from(k);
        assert_eq!(
            ErrorKind::of(&e(io::ErrorKind::ConnectionRefused)),
            ErrorKind::Refused
        );
        assert_eq!(
            ErrorKind::of(&e(io::ErrorKind::ConnectionReset)),
            ErrorKind::Reset
        );
        assert_eq!(
            ErrorKind::of(&e(io::ErrorKind::BrokenPipe)),
            ErrorKind::Reset
        );
        assert_eq!(
            ErrorKind::of(&e(io::ErrorKind::AddrNotAvailable)),
            ErrorKind::Other
        );
    }

    #[test]
    fn only_loopback_without_a_namespace() {
        assert!(is_loopback("127.0.0.2".parse().unwrap()));
        assert!(is_loopback("::ffff:127.0.0.1".parse().unwrap()));
        assert!(!is_loopback("10.0.0.1".parse().unwrap()));
    }
}
