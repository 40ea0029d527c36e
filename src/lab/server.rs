//! The lab TCP server (`netkit run server`): lab, zen or echo protocol ([`super::protocol`])
//! in one of three architectures.
//!
//! - `single`: the book's iterative server, kept deliberately: one blocking connection at a
//!   time, so a client that connects and sends nothing stalls every other client until it
//!   leaves or the idle timeout closes it. The others wait in the kernel's listen queue (their
//!   handshake completes, nobody answers).
//! - `threaded`: a thread per connection, at most `--max-conns`.
//! - `async` (default): event loops (`mio`, edge-triggered, a state machine per connection;
//!   see `src/lab/server/evloop.rs`), `--workers` threads, at most `--max-conns` connections.
//!
//! At the cap the server stops calling accept() (back-pressure: new clients wait in the listen
//! queue instead of being refused). When accept() fails for lack of file descriptors
//! (EMFILE/ENFILE) or memory it logs once, backs off (10 ms doubling to 1 s) and retries;
//! it never exits for that. On shutdown ([`Shutdown`]) it closes the listener, lets every
//! connection finish the request it is in the middle of (a connection with no partial request
//! is closed at once), waits up to `--drain` and returns.
//!
//! [`serve`] takes an already-bound listener (mini-redis style) so tests and benches bind
//! `127.0.0.1:0`; [`run_cli`] binds with [`sockopt::listen`] and installs the signal handlers.

mod blocking;
mod evloop;

use std::io;
use std::net::{IpAddr, Ipv4Addr, SocketAddr, ToSocketAddrs};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use anyhow::Context;

use super::admission::{self, Admission, Limits, Refused};
use super::diagnose;
use super::protocol::{Kind, py_bytes};
use super::shutdown::{self, Shutdown};
use super::status::{Status, StatusLog};
use crate::cli::run::{Mode, Protocol, ServerArgs};
use crate::output::Format;
use crate::sockopt::{self, SockOpts};

/// listen() backlog: clients beyond `--max-conns` (or behind a busy `single` server) wait here.
pub const BACKLOG: i32 = 1024;

/// Everything [`serve`] needs besides the listener.
#[derive(Debug, Clone)]
pub struct ServeOpts {
    /// Architecture.
    pub mode: Mode,
    /// Wire protocol.
    pub protocol: Kind,
    /// Close a connection after this long without a byte from the client.
    pub idle_timeout: Duration,
    /// Most connections served at once (`threaded`, `async`).
    pub max_conns: usize,
    /// Async mode: event-loop threads that serve connections (0: half the CPUs, at least
    /// one); the caller's thread only waits for the shutdown signal.
    pub threads: usize,
    /// Connections per client address (`None`: half of `max_conns`); see [`admission`].
    pub per_client: Option<usize>,
    /// A new connection's first request must be complete within this (`threaded`, `async`).
    pub first_request: Duration,
    /// How long in-flight requests get after shutdown is requested.
    pub drain: Duration,
    /// Options applied to every accepted socket (the listener already has them).
    pub sock: SockOpts,
    /// Where status lines go.
    pub log: StatusLog,
}

impl ServeOpts {
    /// The CLI's defaults for `protocol` in `mode`, silent.
    pub fn new(protocol: Kind, mode: Mode) -> ServeOpts {
        ServeOpts {
            mode,
            protocol,
            idle_timeout: Duration::from_secs(60),
            max_conns: 1024,
            threads: 0,
            per_client: None,
            first_request: admission::FIRST_REQUEST_DEFAULT,
            drain: Duration::from_secs(5),
            sock: SockOpts::default(),
            log: StatusLog::silent(),
        }
    }
}

/// Why a connection ended (the `reason` of the `closed` status line).
#[derive(Debug)]
pub(crate) enum End {
    Eof,
    Done,
    Idle,
    /// No complete first request within `--first-request-timeout`.
    FirstRequest,
    /// Closed to make room for a newcomer (see [`admission`]).
    Evicted,
    Shutdown,
    Error(io::Error),
    /// The peer broke the protocol (a request cut by EOF, bytes after a bare message).
    Incomplete(String),
}

impl End {
    fn status(self, peer: SocketAddr) -> Status {
        let (reason, error) = match self {
            End::Eof => ("eof", None),
            End::Done => ("done", None),
            End::Idle => ("idle", None),
            End::FirstRequest => ("first_request_timeout", None),
            End::Evicted => ("evicted", None),
            End::Shutdown => ("shutdown", None),
            End::Error(e) => ("error", Some(e.to_string())),
            End::Incomplete(why) => ("error", Some(why)),
        };
        Status::Closed {
            peer,
            reason,
            error,
        }
    }
}

impl ServeOpts {
    /// The admission bounds of these options.
    pub fn limits(&self) -> Limits {
        Limits::new(self.max_conns, self.per_client, self.first_request)
    }
}

/// The status line for a newcomer that was closed at once (`None`: shutdown came first).
pub(crate) fn refused_status(peer: SocketAddr, why: Option<Refused>) -> Status {
    Status::Closed {
        peer,
        reason: match why {
            Some(Refused::PerClient) => "per_client_limit",
            Some(Refused::Full) => "at_capacity",
            None => "shutdown",
        },
        error: None,
    }
}

fn mode_name(m: Mode) -> &'static str {
    match m {
        Mode::Single => "single",
        Mode::Threaded => "threaded",
        Mode::Async => "async",
    }
}

/// Serves `listener` until `shutdown` is requested and the drain is over. Must run inside a
/// tokio runtime in every mode (the blocking modes run on their own threads).
///
/// # Errors
/// Only set-up failures (the listener's address, creating the event loops); accept and
/// connection errors are logged and survived.
pub async fn serve(
    listener: std::net::TcpListener,
    opts: ServeOpts,
    shutdown: Shutdown,
) -> io::Result<()> {
    let addr = listener.local_addr()?;
    opts.log.emit(&Status::Listening {
        proto: "tcp",
        addr,
        mode: Some(mode_name(opts.mode)),
        protocol: Some(opts.protocol.name()),
        options: sockopt::report(&listener, &opts.sock),
    });
    match opts.mode {
        Mode::Async => serve_async(listener, opts, shutdown).await,
        Mode::Single | Mode::Threaded => {
            let stop = Arc::new(AtomicBool::new(false));
            let (tx, mut rx) = tokio::sync::oneshot::channel();
            let thread_stop = stop.clone();
            std::thread::Builder::new()
                .name("netkit-accept".into())
                .spawn(move || {
                    let _ = tx.send(blocking::serve(listener, opts, thread_stop));
                })?;
            let mut sd = shutdown;
            tokio::select! {
                r = &mut rx => return r.unwrap_or_else(|_| Err(io::Error::other("server thread died"))),
                () = sd.requested() => stop.store(true, Ordering::SeqCst),
            }
            rx.await
                .unwrap_or_else(|_| Err(io::Error::other("server thread died")))
        }
    }
}

async fn serve_async(
    listener: std::net::TcpListener,
    opts: ServeOpts,
    mut shutdown: Shutdown,
) -> io::Result<()> {
    let threads = match opts.threads {
        // Half the CPUs (at least one), as the proxy does: the lab's clients and load
        // generator run on the same machine. Measured on the shared 2-CPU VM (zen, 100 kept
        // connections, 5 rounds of 2 s, same run): p99 10.5 ms with one thread vs 21.4 ms with
        // two, 5.1 vs 8.1 ms in a second run; req/s equal or higher (issue 10).
        0 => std::thread::available_parallelism().map_or(1, |n| (n.get() / 2).max(1)),
        n => n,
    };
    let opts = Arc::new(opts);
    let adm = Admission::new(opts.limits());
    let (loops, ctl) = evloop::build(listener, opts.clone(), adm, threads)?;
    // Each loop reports how it ended (the connections its drain cut, or its poll's error).
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<io::Result<usize>>();
    let spawn = |lp: evloop::Loop| {
        let tx = tx.clone();
        std::thread::Builder::new()
            .name(lp.name())
            .spawn(move || drop(tx.send(lp.run())))
    };
    let mut loops = loops.into_iter();
    let mut first = loops
        .next()
        .ok_or_else(|| io::Error::other("no event loop"))?;
    // The other loops first: loop 0 hands connections only to those that run.
    let mut running = 1;
    for lp in loops {
        if spawn(lp).is_err() {
            break;
        }
        running += 1;
    }
    first.set_running(running);
    if let Err(e) = spawn(first) {
        // The others drain (nothing to do) and end.
        ctl.fail();
        drop(tx);
        while rx.recv().await.is_some() {}
        return Err(e);
    }
    drop(tx);
    let mut results = Vec::with_capacity(running);
    tokio::select! {
        () = shutdown.requested() => {}
        Some(r) = rx.recv() => results.push(r),
    }
    ctl.request_stop();
    while let Some(r) = rx.recv().await {
        results.push(r);
    }
    let mut aborted = 0;
    let mut failed = None;
    for r in results {
        match r {
            Ok(n) => aborted += n,
            Err(e) => failed = Some(e),
        }
    }
    opts.log.emit(&Status::Stopped { aborted });
    failed.map_or(Ok(()), Err)
}

/// After a bare message was answered, how long the server keeps reading the client's
/// leftover bytes (to report them) before it closes anyway.
pub(crate) const LINGER: Duration = Duration::from_secs(1);
/// Leftover bytes read at most after a bare message (then the connection is closed).
pub(crate) const MAX_TRAILING: usize = 64 * 1024;

/// The `closed` event's error for a request cut by EOF, as the book's server words it.
pub(crate) fn incomplete(part: &[u8]) -> String {
    let shown = &part[..part.len().min(200)];
    let more = if part.len() > shown.len() { "..." } else { "" };
    format!("received {}{more} then socket closed", py_bytes(shown))
}

/// The `closed` event's error for bytes sent after a bare message was answered.
pub(crate) fn trailing(n: usize) -> String {
    format!(
        "sent {n} more byte(s) after its bare message was answered; a bare message is what one \
         read returns: write it in one send, or end messages with a newline"
    )
}

/// accept() failure handling shared by every mode: log the first failure of an episode,
/// pause (10 ms doubling to 1 s) on resource exhaustion, log the recovery.
#[derive(Debug, Default)]
pub(crate) struct Backoff {
    failures: u64,
    pause: Duration,
}

impl Backoff {
    const FIRST: Duration = Duration::from_millis(10);
    const MAX: Duration = Duration::from_secs(1);

    /// Records a failed accept(); returns the pause before the next one (`None`: retry now).
    pub(crate) fn failure(&mut self, e: &io::Error, log: &StatusLog) -> Option<Duration> {
        // Errors that belong to one dying connection, not to the server (accept(2): "Linux
        // accept() passes already-pending network errors on the new socket as an error code").
        if matches!(
            e.raw_os_error(),
            Some(libc::ECONNABORTED | libc::EINTR | libc::EAGAIN | libc::EPROTO | libc::ECONNRESET)
        ) {
            return None;
        }
        self.pause = if self.failures == 0 {
            Self::FIRST
        } else {
            (self.pause * 2).min(Self::MAX)
        };
        if self.failures == 0 {
            let errno = e.raw_os_error();
            log.emit(&Status::AcceptError {
                errno,
                errno_name: errno.and_then(diagnose::errno_name),
                error: e.to_string(),
                backoff_ms: self.pause.as_millis() as u64,
            });
        }
        self.failures += 1;
        Some(self.pause)
    }

    /// Records a successful accept().
    pub(crate) fn success(&mut self, log: &StatusLog) {
        if self.failures > 0 {
            log.emit(&Status::AcceptRecovered {
                failures: self.failures,
            });
            self.failures = 0;
        }
    }
}

/// Resolves the HOST argument: `''` means every IPv4 interface (as in the book), an IP
/// literal is used as is, a name is resolved and its first address used.
///
/// ```
/// use netkit::lab::server::resolve_host;
/// assert_eq!(resolve_host("", 1060).unwrap().to_string(), "0.0.0.0:1060");
/// assert_eq!(resolve_host("::", 8).unwrap().to_string(), "[::]:8");
/// ```
///
/// # Errors
/// When the name does not resolve.
pub fn resolve_host(host: &str, port: u16) -> anyhow::Result<SocketAddr> {
    let host = host.trim();
    if host.is_empty() {
        return Ok(SocketAddr::new(IpAddr::V4(Ipv4Addr::UNSPECIFIED), port));
    }
    let bare = host.trim_start_matches('[').trim_end_matches(']');
    if let Ok(ip) = bare.parse::<IpAddr>() {
        return Ok(SocketAddr::new(ip, port));
    }
    (host, port)
        .to_socket_addrs()
        .with_context(|| format!("cannot resolve host {host:?}"))?
        .next()
        .with_context(|| format!("host {host:?} has no address"))
}

/// `netkit run server`: binds, prints the applied options, serves until SIGINT/SIGTERM and
/// the drain, and returns 0.
///
/// # Errors
/// Bad arguments, or a listener that cannot be created (the explanation is printed first).
pub fn run_cli(a: ServerArgs, format: Format) -> anyhow::Result<i32> {
    let protocol = match a.protocol {
        Protocol::Lab => Kind::Lab,
        Protocol::Zen => Kind::Zen,
        Protocol::Echo => Kind::Echo,
    };
    let port = a
        .port
        .unwrap_or(if protocol == Kind::Lab { 8888 } else { 1060 });
    let addr = resolve_host(&a.host, port)?;
    let sock = SockOpts::from_args(&a.sock, true);
    let listener = sockopt::listen(addr, &sock, BACKLOG)
        .map_err(|e| diagnose::listen_failure(e, &sock, format, "run server"))?;
    if a.mode == Mode::Single {
        // The book's point, said where the user sees it (a hint: stderr in every format).
        eprintln!(
            "note: single mode serves one connection at a time: one client that connects and sends \
             nothing blocks every other client (they wait in the listen queue) until --idle-timeout \
             ({} s) closes it; --mode threaded or async evict idle clients instead",
            a.idle_timeout
        );
    }
    let opts = ServeOpts {
        mode: a.mode,
        protocol,
        idle_timeout: Duration::from_secs(a.idle_timeout),
        max_conns: a.max_conns,
        threads: a.workers,
        per_client: a.max_conns_per_client,
        first_request: Duration::from_secs_f64(a.first_request_timeout),
        drain: Duration::from_secs_f64(a.drain),
        sock,
        log: StatusLog::stdout(format, "run server"),
    };
    // Every mode serves on threads of its own (async: `--workers` event loops); tokio is
    // only here for the signal handlers.
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("cannot start the tokio runtime")?;
    rt.block_on(async {
        let sd = shutdown::on_signals(false).context("cannot install signal handlers")?;
        serve(listener, opts, sd).await.context("server failed")
    })?;
    rt.shutdown_timeout(Duration::from_millis(100));
    Ok(crate::exit::FOUND)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_to_one_second_and_ignores_per_connection_errors() {
        let log = StatusLog::silent();
        let mut b = Backoff::default();
        let aborted = io::Error::from_raw_os_error(libc::ECONNABORTED);
        assert_eq!(b.failure(&aborted, &log), None);
        let emfile = io::Error::from_raw_os_error(libc::EMFILE);
        let pauses: Vec<u128> = (0..9)
            .map(|_| b.failure(&emfile, &log).unwrap().as_millis())
            .collect();
        assert_eq!(pauses, [10, 20, 40, 80, 160, 320, 640, 1000, 1000]);
        b.success(&log);
        assert_eq!(b.failure(&emfile, &log), Some(Duration::from_millis(10)));
    }

    #[test]
    fn host_argument_accepts_brackets_and_names() {
        assert_eq!(resolve_host("[::1]", 7).unwrap().to_string(), "[::1]:7");
        assert_eq!(resolve_host("0.0.0.0", 7).unwrap().to_string(), "0.0.0.0:7");
        assert!(resolve_host("localhost", 7).unwrap().ip().is_loopback());
        assert!(resolve_host("no.such.host.invalid", 7).is_err());
    }
}
