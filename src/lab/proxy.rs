//! The lab proxy (`netkit run proxy`, seed 003): JSON forwarding with a blocklist and an
//! allow list ([`forward`]), or a transparent TCP relay ([`crate::lab::relay`]).
//!
//! [`serve`] takes an already-bound listener (mini-redis style) so tests can bind port 0. It
//! caps connections with a semaphore acquired *before* accept, so extra clients wait in the
//! kernel's listen queue (back-pressure, not refusal); it survives EMFILE/ENFILE by pausing
//! accepts with a growing back-off; and on shutdown it stops accepting, takes the connections
//! already in the listen queue, lets in-flight requests finish for `--drain`, then cuts the rest.
//! The address parsing and policy live in [`crate::lab::policy`], the framing in
//! [`crate::lab::jsonproto`].

pub mod budget;
pub mod events;
pub mod forward;

use std::io;
use std::net::{IpAddr, SocketAddr, ToSocketAddrs};
use std::os::fd::AsRawFd;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, bail};
use tokio::net::{TcpListener, TcpSocket, TcpStream};
use tokio::task::JoinSet;

use self::budget::BufferBudget;
use self::events::{CapacityEvent, ListeningEvent, Printer, RelayEvent, StoppedEvent};
use crate::cli::proxy::ProxyArgs;
use crate::lab::admission::{self, Admission, Limits, Ticket};
use crate::lab::policy::{Cidr, Policy, canonical};
use crate::lab::relay::{self, Ended, is_fd_exhaustion};
use crate::lab::resolver::NameResolver;
use crate::lab::shutdown::{self, Shutdown};
use crate::output::Format;
use crate::sockopt::{self, SockOpts};

/// What the proxy does with a connection.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Mode {
    /// JSON requests naming their target, checked against [`ProxyConfig::policy`].
    Json,
    /// Raw bytes both ways to a fixed target.
    Relay {
        /// Where every connection goes.
        to: SocketAddr,
        /// Clients refused (their canonical address).
        deny_clients: Vec<Cidr>,
        /// Use splice(2) for bulk streams (`--splice`; else the copy loop, the default).
        splice: bool,
    },
}

/// Everything a running proxy needs.
#[derive(Debug, Clone)]
pub struct ProxyConfig {
    /// JSON or relay.
    pub mode: Mode,
    /// Blocklist and allow list (JSON mode).
    pub policy: Policy,
    /// Largest message and server reply, bytes.
    pub max_message: usize,
    /// Bound on resolving and connecting to a target.
    pub connect_timeout: Duration,
    /// A request must arrive whole within this; idle connections are closed after it.
    pub idle_timeout: Duration,
    /// Connections served at once.
    pub max_conns: usize,
    /// Connections per client address (`None`: half of `max_conns`).
    pub per_client: Option<usize>,
    /// A new connection's first request must arrive whole within this.
    pub first_request: Duration,
    /// Request buffers beyond [`budget::FREE_PER_CONN`] per connection, shared.
    pub budget: Arc<BufferBudget>,
    /// Hostname lookups (bounded, cancellable), shared.
    pub resolver: Arc<NameResolver>,
    /// Time in-flight requests get after shutdown is asked.
    pub drain: Duration,
    /// Options for accepted connections.
    pub conn_opts: SockOpts,
    /// Options for connections to servers.
    pub upstream_opts: SockOpts,
    /// Output.
    pub printer: Printer,
}

impl ProxyConfig {
    /// A JSON-mode config with the lab defaults (blocklist 127.0.0.1:7777, loopback only),
    /// quiet, for tests and embedding.
    pub fn lab_defaults() -> ProxyConfig {
        ProxyConfig {
            mode: Mode::Json,
            policy: Policy::from_flags(&[], false, &[]).unwrap_or(Policy {
                block: Vec::new(),
                allow: Vec::new(),
            }),
            max_message: 65536,
            connect_timeout: Duration::from_secs(3),
            idle_timeout: Duration::from_secs(60),
            max_conns: 1024,
            per_client: None,
            first_request: admission::FIRST_REQUEST_DEFAULT,
            budget: Arc::new(BufferBudget::new(budget::DEFAULT_BUDGET)),
            resolver: Arc::new(NameResolver::default()),
            drain: Duration::from_secs(5),
            conn_opts: SockOpts::default(),
            upstream_opts: SockOpts::default(),
            printer: Printer {
                format: Format::Table,
                quiet: true,
            },
        }
    }
}

/// The largest `--max-message` accepted (16 MiB): beyond it one client's request could
/// take more memory than a lab proxy should hold for anyone.
pub const MAX_MESSAGE_LIMIT: usize = 16 << 20;

impl ProxyConfig {
    /// The admission bounds.
    pub fn limits(&self) -> Limits {
        Limits::new(self.max_conns, self.per_client, self.first_request)
    }
}

/// Counts returned by [`serve`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Summary {
    /// Connections accepted.
    pub accepted: u64,
    /// Connections cut at the drain deadline.
    pub aborted: u64,
    /// Connections closed to make room for newcomers (see [`admission`]).
    pub evicted: u64,
    /// Newcomers closed at once (per-client limit with every connection busy).
    pub refused: u64,
}

fn seconds(name: &str, s: f64) -> anyhow::Result<Duration> {
    if !(0.0..=86_400.0).contains(&s) {
        bail!("--{name} must be between 0 and 86400 seconds, got {s}");
    }
    Ok(Duration::from_secs_f64(s))
}

fn socket_addr(what: &str, s: &str) -> anyhow::Result<SocketAddr> {
    if let Ok(a) = s.parse::<SocketAddr>() {
        return Ok(a);
    }
    s.to_socket_addrs()
        .with_context(|| format!("{what} {s:?}: expected HOST:PORT"))?
        .next()
        .with_context(|| format!("{what} {s:?} resolves to no address"))
}

/// Builds the config from the command line.
///
/// # Errors
/// A malformed `--block`, `--allow`, `--deny-client`, `--relay` or duration.
pub fn config_from_args(a: &ProxyArgs, format: Format) -> anyhow::Result<ProxyConfig> {
    let policy = Policy::from_flags(&a.block, a.no_default_block, &a.allow)
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    let mode = match &a.relay {
        None => Mode::Json,
        Some(r) => Mode::Relay {
            to: {
                // The relay target obeys the same policy as JSON requests: loopback unless
                // --allow, never a --block target. Checked once, here, on the resolved
                // address the relay will connect to.
                let to = socket_addr("--relay", r)?;
                if to.port() == 0 {
                    bail!("--relay {r}: port 0 is not a destination; give the server's port");
                }
                if let Err((t, why)) = forward::check_all(&[to], &policy) {
                    bail!(
                        "--relay {r}: {t} is refused ({why}); a relay follows the same rules as JSON mode: loopback only unless --allow CIDR, and no --block target (--no-default-block clears the lab's 127.0.0.1:7777)"
                    );
                }
                to
            },
            deny_clients: a
                .deny_client
                .iter()
                .map(|c| {
                    c.parse::<Cidr>()
                        .map_err(|e| anyhow::anyhow!("--deny-client: {e}"))
                })
                .collect::<anyhow::Result<_>>()?,
            // `--splice` and `--no-splice` conflict (clap), so `--splice` alone decides.
            splice: a.splice,
        },
    };
    if !(1..=MAX_MESSAGE_LIMIT).contains(&a.max_message) {
        bail!(
            "--max-message must be between 1 and {MAX_MESSAGE_LIMIT} bytes (16 MiB), got {}",
            a.max_message
        );
    }
    let frame = crate::lab::jsonproto::frame_limit(a.max_message);
    if a.buffer_budget < frame {
        bail!(
            "--buffer-budget {} cannot hold one request of --max-message {} ({frame} bytes with the JSON around it)",
            a.buffer_budget,
            a.max_message
        );
    }
    Ok(ProxyConfig {
        mode,
        policy,
        max_message: a.max_message,
        connect_timeout: seconds("connect-timeout", a.connect_timeout)?,
        idle_timeout: seconds("idle-timeout", a.idle_timeout)?,
        max_conns: a.max_conns as usize,
        per_client: a.max_conns_per_client.map(|n| n as usize),
        first_request: seconds("first-request-timeout", a.first_request_timeout)?,
        budget: Arc::new(BufferBudget::new(a.buffer_budget)),
        resolver: Arc::new(NameResolver::default()),
        drain: seconds("drain", a.drain)?,
        conn_opts: SockOpts::from_args(&a.sock, false),
        upstream_opts: SockOpts::from_args(&a.sock, false),
        printer: Printer {
            format,
            quiet: a.quiet,
        },
    })
}

/// `netkit run proxy`: binds, prints what the kernel applied, serves until SIGINT/SIGTERM,
/// drains, and returns 0.
///
/// # Errors
/// Bad arguments, or the listener cannot be bound.
pub fn run_cli(a: ProxyArgs, format: Format) -> anyhow::Result<i32> {
    let cfg = config_from_args(&a, format)?;
    let listen = socket_addr("--listen", &a.listen)?;
    let listen_opts = SockOpts::from_args(&a.sock, true);
    let std_listener = sockopt::listen(listen, &listen_opts, 1024)
        .map_err(|e| crate::lab::diagnose::listen_failure(e, &listen_opts, format, "run proxy"))?;
    std_listener
        .set_nonblocking(true)
        .context("setting the listener non-blocking")?;
    if a.defer_accept {
        defer_accept(&std_listener, cfg.idle_timeout).context("setting TCP_DEFER_ACCEPT")?;
    }
    let applied = sockopt::report(&std_listener, &listen_opts);
    let local = std_listener.local_addr().unwrap_or(listen);
    let threads = match a.threads {
        Some(n) => n as usize,
        // One thread per CPU, as haproxy's nbthread. Every thread waits on the same listening
        // socket, so a new connection may wake more than one and the others find accept()
        // empty: 4-9 us of CPU per request more than one thread on a 2-CPU machine. With a
        // new connection per request (8 clients, two sessions of 5 interleaved rounds) two
        // threads served JSON 7,274 vs 6,246 and 8,004 vs 6,964 req/s; relay 8,385 vs 7,520
        // and 7,787 vs 8,151 (within the noise).
        None => std::thread::available_parallelism().map_or(1, |n| n.get()),
    };
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("starting the tokio runtime")?;
    rt.block_on(async move {
        let shutdown = shutdown::on_signals(true).context("installing signal handlers")?;
        cfg.printer.listening(&ListeningEvent {
            event: "listening",
            proto: "tcp",
            addr: local,
            mode: if cfg.mode == Mode::Json {
                "json"
            } else {
                "relay"
            },
            relay_to: match cfg.mode {
                Mode::Relay { to, .. } => Some(to),
                Mode::Json => None,
            },
            options: applied,
        });
        let printer = cfg.printer;
        let cfg = Arc::new(cfg);
        let summary = tokio::task::spawn_blocking(move || {
            serve_threads(std_listener, cfg, shutdown, threads)
        })
        .await
        .context("proxy threads")?
        .context("starting the proxy threads")?;
        printer.stopped(&StoppedEvent {
            event: "stopped",
            accepted: summary.accepted,
            aborted: summary.aborted,
            evicted: summary.evicted,
            refused: summary.refused,
        });
        anyhow::Ok(())
    })?;
    // Blocking resolver threads may still run; do not wait for them.
    rt.shutdown_background();
    Ok(0)
}

/// Serves with `threads` OS threads, each running a single-threaded runtime that accepts
/// on a duplicate of `listener` and keeps each connection on that thread (no cross-thread
/// wake-ups per request; the kernel wakes whichever thread is waiting in accept). The
/// admission state (connection cap, per-client limit) and the buffer budget are shared.
/// Blocks until every thread has drained.
///
/// # Errors
/// When the listener cannot be duplicated or a thread or runtime cannot start.
pub fn serve_threads(
    listener: std::net::TcpListener,
    cfg: Arc<ProxyConfig>,
    shutdown: Shutdown,
    threads: usize,
) -> io::Result<Summary> {
    let adm = Admission::new(cfg.limits());
    // Every descriptor (listener copies, epoll and eventfd of each runtime) is taken before
    // any thread accepts, so a thread cannot fail to start because another one already
    // used up the fd limit.
    let mut parts = Vec::new();
    for _ in 0..threads.max(1) {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?;
        parts.push((listener.try_clone()?, rt));
    }
    let mut handles = Vec::new();
    for (i, (l, rt)) in parts.into_iter().enumerate() {
        let (cfg, sd, adm) = (cfg.clone(), shutdown.clone(), adm.clone());
        let h = std::thread::Builder::new()
            .name(format!("proxy-{i}"))
            .spawn(move || -> io::Result<Summary> {
                let summary = rt.block_on(async move {
                    let l = TcpListener::from_std(l)?;
                    io::Result::Ok(serve_with(l, cfg, sd, adm).await)
                });
                // Resolver threads stuck in getaddrinfo must not hold up the exit.
                rt.shutdown_background();
                summary
            });
        match h {
            Ok(h) => handles.push(h),
            Err(e) if !handles.is_empty() => eprintln!("proxy thread {i} not started: {e}"),
            Err(e) => return Err(e),
        }
    }
    drop(listener);
    let mut total = Summary::default();
    for h in handles {
        let s = h
            .join()
            .map_err(|_| io::Error::other("a proxy thread panicked"))??;
        total.accepted += s.accepted;
        total.aborted += s.aborted;
    }
    let c = adm.counts();
    (total.evicted, total.refused) = (c.evicted, c.refused);
    Ok(total)
}

/// Serves `listener` until `shutdown`, then drains (see the module doc).
pub async fn serve(listener: TcpListener, cfg: Arc<ProxyConfig>, shutdown: Shutdown) -> Summary {
    let adm = Admission::new(cfg.limits());
    let mut s = serve_with(listener, cfg, shutdown, adm.clone()).await;
    let c = adm.counts();
    (s.evicted, s.refused) = (c.evicted, c.refused);
    s
}

/// The upstream socket of a relay connection, made before its client is accepted: at the
/// fd limit the client then stays in the listen queue (and is served later) instead of being
/// accepted and reset for want of a second descriptor.
fn relay_socket(cfg: &ProxyConfig) -> io::Result<Option<TcpSocket>> {
    match cfg.mode {
        Mode::Json => Ok(None),
        Mode::Relay { to, .. } => forward::new_socket(to).map(Some),
    }
}

async fn serve_with(
    listener: TcpListener,
    cfg: Arc<ProxyConfig>,
    mut shutdown: Shutdown,
    adm: Arc<Admission>,
) -> Summary {
    let mut tasks = JoinSet::new();
    let mut summary = Summary::default();
    let mut backoff = Duration::ZERO;
    let mut spare: Option<TcpSocket> = None;
    loop {
        while tasks.try_join_next().is_some() {}
        if adm.became_full() {
            cfg.printer.capacity(&CapacityEvent::new(&adm));
        }
        tokio::select! {
            () = adm.room() => {}
            _ = shutdown.requested() => break,
        }
        let reserved = match spare.take() {
            Some(s) => Ok(Some(s)),
            None => relay_socket(&cfg),
        };
        let accepted = match reserved {
            Ok(up) => {
                spare = up;
                tokio::select! {
                    r = listener.accept() => r,
                    _ = shutdown.requested() => break,
                }
            }
            Err(e) => Err(e),
        };
        match accepted {
            Ok((stream, peer)) => {
                if !backoff.is_zero() {
                    eprintln!("accept: file descriptors available again, accepting");
                    backoff = Duration::ZERO;
                }
                summary.accepted += 1;
                let mut sd = shutdown.clone();
                let stop = async move { sd.requested().await };
                let ticket = match adm.admit_wait(peer.ip(), stream.as_raw_fd(), stop).await {
                    Ok((t, _)) => t,
                    // Over its per-client limit with every connection busy, or shutdown:
                    // the newcomer is closed at once.
                    Err(_) => continue,
                };
                let upstream = spare.take();
                let cfg = cfg.clone();
                let sd = shutdown.clone();
                tasks.spawn(async move {
                    handle(stream, peer, &cfg, sd, Some(ticket), upstream).await;
                });
            }
            Err(e) if is_fd_exhaustion(&e) || is_memory_pressure(&e) => {
                // The connection stays in the listen queue; retry when fds are freed.
                if backoff.is_zero() {
                    eprintln!("accept: {e}; pausing accepts until descriptors are freed");
                }
                backoff = (backoff * 2).clamp(Duration::from_millis(5), Duration::from_secs(1));
                tokio::select! {
                    _ = tokio::time::sleep(backoff) => {},
                    _ = shutdown.requested() => break,
                }
            }
            // accept(2): ECONNABORTED, EPROTO and friends concern one connection only.
            Err(e) => {
                eprintln!("accept: {e}");
                tokio::time::sleep(Duration::from_millis(1)).await;
            }
        }
    }
    drop(spare);
    // Connections that completed the handshake before we stopped are in-flight too.
    if let Ok(std_listener) = listener.into_std() {
        while let Ok((s, peer)) = std_listener.accept() {
            let Ok(stream) = s
                .set_nonblocking(true)
                .and_then(|()| TcpStream::from_std(s))
            else {
                continue;
            };
            summary.accepted += 1;
            let cfg = cfg.clone();
            let sd = shutdown.clone();
            tasks.spawn(async move { handle(stream, peer, &cfg, sd, None, None).await });
        }
    }
    let deadline = tokio::time::sleep(cfg.drain);
    tokio::pin!(deadline);
    loop {
        tokio::select! {
            r = tasks.join_next() => if r.is_none() { break },
            _ = &mut deadline => {
                summary.aborted = tasks.len() as u64;
                eprintln!("drain: {} connections still open after {}; closing them", tasks.len(), forward::secs(cfg.drain));
                tasks.abort_all();
                while tasks.join_next().await.is_some() {}
                break;
            }
        }
    }
    summary
}

/// TCP_DEFER_ACCEPT (tcp(7)) for `limit` seconds (rounded up): the kernel completes the
/// handshake but queues the connection for accept only once data arrives. Not in
/// `sockopt` (socket2 has no setter for it), so set here with libc.
fn defer_accept(l: &std::net::TcpListener, limit: Duration) -> io::Result<()> {
    let secs: libc::c_int = limit.as_secs_f64().ceil().clamp(1.0, 3600.0) as libc::c_int;
    // SAFETY: setsockopt on our listener with a pointer to a c_int and its size.
    let rc = unsafe {
        libc::setsockopt(
            std::os::fd::AsRawFd::as_raw_fd(l),
            libc::IPPROTO_TCP,
            libc::TCP_DEFER_ACCEPT,
            (&secs as *const libc::c_int).cast(),
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        )
    };
    if rc == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

fn is_memory_pressure(e: &io::Error) -> bool {
    matches!(e.raw_os_error(), Some(libc::ENOBUFS) | Some(libc::ENOMEM))
}

async fn handle(
    mut stream: TcpStream,
    peer: SocketAddr,
    cfg: &ProxyConfig,
    shutdown: Shutdown,
    ticket: Option<Ticket>,
    upstream: Option<TcpSocket>,
) {
    // Accepted sockets inherit most options from the listener (tcp(7)); set them anyway.
    if cfg.conn_opts != SockOpts::default() {
        let _ = sockopt::apply_to(&stream, &cfg.conn_opts, peer);
    }
    match &cfg.mode {
        Mode::Json => forward::serve_conn(&mut stream, peer, cfg, shutdown, ticket.as_ref()).await,
        Mode::Relay {
            to,
            deny_clients,
            splice,
        } => {
            // A relay moves bytes the proxy does not see; it is never evicted.
            if let Some(t) = &ticket {
                t.set_busy(true);
            }
            relay_conn(&stream, peer, *to, deny_clients, *splice, cfg, upstream).await;
        }
    }
    // The slot forgets the fd before the socket is closed; an evicted connection's socket
    // is closed off this thread (see `Closer`).
    let closer = ticket.map(Ticket::release);
    if let (Some(c), Ok(s)) = (closer, stream.into_std()) {
        c.close(s.into());
    }
}

async fn relay_conn(
    client: &TcpStream,
    peer: SocketAddr,
    to: SocketAddr,
    deny: &[Cidr],
    splice: bool,
    cfg: &ProxyConfig,
    reserved: Option<TcpSocket>,
) {
    let ip: IpAddr = canonical(peer.ip());
    let mut ev = RelayEvent {
        event: "relay",
        client: peer,
        outcome: "closed",
        up: 0,
        down: 0,
        detail: None,
    };
    // Compare the address as it is (not the "reaches" meaning canonical gives 0.0.0.0).
    let peer_ip = peer.ip().to_canonical();
    if let Some(c) = deny.iter().find(|c| c.contains(peer_ip) || c.contains(ip)) {
        ev.outcome = "denied";
        ev.detail = Some(format!("client in --deny-client {c}"));
        cfg.printer.relay(&ev);
        return;
    }
    let sock = match reserved {
        Some(s) => Ok(s),
        None => forward::new_socket(to),
    };
    let connected = match sock {
        Ok(s) => forward::connect_socket(s, to, cfg, cfg.connect_timeout).await,
        Err(e) => Err(forward::reason(&e)),
    };
    let upstream = match connected {
        Ok(s) => s,
        Err(why) => {
            ev.outcome = "unreachable";
            ev.detail = Some(why);
            cfg.printer.relay(&ev);
            return;
        }
    };
    match relay::relay(client, &upstream, cfg.idle_timeout, splice, &cfg.budget).await {
        Ended::Closed(m) => {
            ev.up = m.up;
            ev.down = m.down;
        }
        Ended::Idle(m) => {
            ev.outcome = "idle";
            ev.up = m.up;
            ev.down = m.down;
        }
        Ended::Error(e) => {
            ev.outcome = "error";
            ev.detail = Some(forward::reason(&e));
        }
    }
    cfg.printer.relay(&ev);
}
