//! JSON mode: one client connection, request after request. Frames each request with
//! [`FrameScanner`], checks it ([`parse_request`], [`Policy::check`] on every resolved
//! address), connects to exactly the checked address, sends the message, reads the server's
//! reply until it closes (half-closing if it waits for EOF) and relays it. Every failure is
//! a reply to the client.

use std::io;
use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};
use tokio::time::{Instant, sleep_until, timeout};

use super::ProxyConfig;
use super::budget::{FREE_PER_CONN, Lease};
use super::events::{BudgetEvent, Outcome, RequestEvent, shown};
use crate::lab::admission::Ticket;
use crate::lab::jsonproto::{FrameScanner, Request, frame_limit, parse_request};
use crate::lab::policy::{Host, LocalRoutes, Policy, Refusal, canonical, parse_host};
use crate::lab::relay::is_fd_exhaustion;
use crate::lab::resolver::{LookupError, NameResolver};
use crate::lab::shutdown::Shutdown;
use crate::sockopt;

/// Reply to a refused target.
pub const NOT_ALLOWED: &str = "Error, not allowed address";

/// How long a connection that has not sent anything yet may still send its request after
/// shutdown was asked (its bytes may be in flight); capped by `--drain`.
const FIRST_REQUEST_GRACE: Duration = Duration::from_millis(500);

/// Reply when the request buffer budget is spent.
pub const BUSY: &str = "Error, busy";

/// Serves one client connection until it closes, idles out, errs, is evicted or shutdown.
///
/// Memory: the request buffer starts at 2 KiB, grows only as far as one request may take
/// ([`frame_limit`]) and only against the shared budget (`Error, busy` past it), and shrinks
/// back after each request. The decoded message and the server's reply (up to
/// `--max-message`) are charged to the same lease while they live, so the reply direction is
/// bounded by the budget too (`Error, busy` when the budget cannot cover the reply).
pub async fn serve_conn(
    stream: &mut TcpStream,
    peer: SocketAddr,
    cfg: &ProxyConfig,
    mut shutdown: Shutdown,
    ticket: Option<&Ticket>,
) {
    const START: usize = 2048;
    let mut buf: Vec<u8> = Vec::with_capacity(START);
    let mut lease = cfg.budget.lease();
    let limit = frame_limit(cfg.max_message);
    let mut served = 0u64;
    loop {
        let mut scanner = FrameScanner::default();
        let mut deadline = Instant::now() + cfg.idle_timeout;
        // The first request has its own, shorter deadline (see `admission`).
        let first_due = ticket
            .filter(|_| served == 0)
            .map(Ticket::first_request_due);
        if let Some(d) = first_due {
            deadline = deadline.min(d);
        }
        let mut shutdown_seen = shutdown.is_requested() && served > 0;
        if shutdown_seen && buf.iter().all(u8::is_ascii_whitespace) {
            return;
        }
        let (start, end) = loop {
            match scanner.scan(&buf) {
                Ok(Some(span)) => break span,
                Ok(None) => {}
                Err(e) => {
                    let raw = shown(&buf);
                    bad_request(stream, peer, cfg, raw, e.to_string(), false).await;
                    return;
                }
            }
            if buf.len() > limit {
                let why = format!("request larger than {limit} bytes without ending");
                bad_request(stream, peer, cfg, shown(&buf), why, false).await;
                return;
            }
            // Grow by doubling, never past what one request may take (+1 byte to see that
            // it is over), and only as far as the shared budget allows.
            let want = (buf.capacity() * 2).clamp(START, limit + 1);
            if buf.capacity() - buf.len() < 1024 && want > buf.capacity() {
                if !lease.cover(want) {
                    budget_spent(cfg, "request");
                    let why = format!(
                        "buffer budget of {} bytes spent (--buffer-budget)",
                        cfg.budget.limit()
                    );
                    refuse(stream, peer, cfg, shown(&buf), BUSY, Outcome::Busy, why).await;
                    return;
                }
                buf.reserve_exact(want - buf.len());
            }
            tokio::select! {
                r = stream.read_buf(&mut buf) => match r {
                    Ok(0) => {
                        if scanner.started() && !ticket.is_some_and(Ticket::evicted) {
                            let why = "incomplete JSON: connection closed mid-request".to_string();
                            bad_request(stream, peer, cfg, shown(&buf), why, false).await;
                        }
                        return;
                    }
                    Ok(_) => {
                        if let Some(t) = ticket {
                            t.touch();
                        }
                    }
                    Err(_) => return,
                },
                _ = sleep_until(deadline) => {
                    if ticket.is_some_and(Ticket::evicted) {
                        return;
                    }
                    if !scanner.started() {
                        // Nothing sent at all: closed without a word, as at the idle timeout.
                    } else if first_due.is_some_and(|d| Instant::now() >= d) {
                        let why = format!(
                            "no whole request within {} (--first-request-timeout)",
                            secs(cfg.first_request)
                        );
                        let reply = format!("Error, bad request: {why}");
                        refuse(stream, peer, cfg, shown(&buf), &reply, Outcome::FirstRequestTimeout, why).await;
                    } else {
                        let why = format!(
                            "incomplete JSON: request not finished within {} (--idle-timeout)",
                            secs(cfg.idle_timeout)
                        );
                        bad_request(stream, peer, cfg, shown(&buf), why, false).await;
                    }
                    return;
                }
                _ = shutdown.requested(), if !shutdown_seen => {
                    shutdown_seen = true;
                    if !scanner.started() {
                        let grace = if served == 0 { FIRST_REQUEST_GRACE.min(cfg.drain) } else { Duration::ZERO };
                        deadline = deadline.min(Instant::now() + grace);
                    }
                }
            }
        };
        // A request followed by a newline gets its reply followed by one, for line clients;
        // a bare request (the Python lab client) gets the bare reply.
        let newline = matches!(buf.get(end), Some(b'\n' | b'\r'));
        let frame = &buf[start..end];
        let mut ev = RequestEvent {
            event: "request",
            client: peer,
            received: shown(frame),
            server_ip: None,
            server_port: None,
            message: None,
            target: None,
            outcome: Outcome::Forwarded,
            detail: None,
            response: String::new(),
            delivered: false,
        };
        let reply = match parse_request(frame, cfg.max_message) {
            Err(why) => {
                ev.outcome = Outcome::BadRequest;
                format!("Error, bad request: {why}").into_bytes()
            }
            Ok(req) => {
                ev.server_ip = Some(req.server_ip.clone());
                ev.server_port = Some(req.server_port);
                ev.message = Some(clipped(&req.message));
                // The decoded message lives while the request is forwarded: it counts
                // against the budget as well as the buffer it came from.
                if !lease.cover(buf.capacity() + req.message.len()) {
                    budget_spent(cfg, "request");
                    let why = format!(
                        "buffer budget of {} bytes spent (--buffer-budget)",
                        cfg.budget.limit()
                    );
                    refuse(stream, peer, cfg, shown(frame), BUSY, Outcome::Busy, why).await;
                    return;
                }
                // Waiting for the target and delivering its reply is not idleness: the
                // connection is not evicted until the reply is sent.
                if let Some(t) = ticket {
                    t.set_busy(true);
                }
                // A client whose connection is reset takes its request with it: the lookup
                // or connect in progress is dropped (cancelled), not left to its deadline.
                let base = buf.capacity() + req.message.len();
                tokio::select! {
                    r = forward(&req, cfg, &mut ev, &mut lease, base) => r,
                    () = client_gone(stream) => return,
                }
            }
        };
        buf.drain(..end);
        if buf.capacity() > FREE_PER_CONN {
            // Give a large request's buffer back before the next one.
            let mut small = Vec::with_capacity(buf.len().max(START));
            small.extend_from_slice(&buf);
            buf = small;
        }
        let mut reply = reply;
        if newline && !reply.ends_with(b"\n") {
            // In place (one more byte), not a second copy of a large reply.
            reply.reserve_exact(1);
            reply.push(b'\n');
        }
        // The reply is held until it is sent. This shrinks the lease (the message is gone,
        // the buffer may be smaller), except by a few bytes for a short error reply; the
        // reply exists already, so it is sent even if those few bytes are not covered.
        lease.cover(buf.capacity() + reply.capacity());
        ev.response = clipped(&String::from_utf8_lossy(&reply));
        ev.delivered = send_reply(stream, &reply, false, cfg.idle_timeout).await;
        drop(reply);
        lease.cover(buf.capacity());
        if let Some(t) = ticket {
            t.set_busy(false);
        }
        cfg.printer.request(&ev);
        served += 1;
        if !ev.delivered {
            return;
        }
    }
}

/// Counts a refusal for want of budget and logs the first of an episode (even with `--quiet`).
fn budget_spent(cfg: &ProxyConfig, direction: &'static str) {
    if cfg.budget.refused() {
        cfg.printer.budget(&BudgetEvent {
            event: "budget_spent",
            buffer_budget: cfg.budget.limit(),
            used: cfg.budget.used(),
            direction,
            refused: cfg.budget.refusals(),
        });
    }
}

/// Lingering close (nginx's `lingering_close`): after a refusal the client may still be
/// sending; closing with unread bytes would send a reset, which can make the client's kernel
/// drop the reply before it is read. Half-close, then read and discard (through a small
/// stack buffer, so no memory is held) until the client closes, for at most [`LINGER`].
async fn linger(stream: &mut TcpStream) {
    let _ = stream.shutdown().await;
    let mut sink = [0u8; 4096];
    let _ = timeout(LINGER, async {
        while matches!(stream.read(&mut sink).await, Ok(n) if n > 0) {}
    })
    .await;
}

/// How long [`linger`] waits for a refused client to stop sending.
const LINGER: Duration = Duration::from_secs(1);

/// Resolves when the client's connection failed (reset); pending forever while it is
/// there. A FIN is not "gone": a client may half-close after its request and still wait
/// for the reply (`nc -N`), so only the request's own deadline ends that one.
async fn client_gone(stream: &TcpStream) {
    let mut b = [0u8; 1];
    if stream.peek(&mut b).await.is_ok() {
        std::future::pending::<()>().await;
    }
}

/// The message as logged: at most 4 KiB of it (a 16 MiB message is not copied into the
/// event), then its size.
fn clipped(m: &str) -> String {
    const MAX: usize = 4096;
    if m.len() <= MAX {
        return m.to_string();
    }
    let mut cut = MAX;
    while !m.is_char_boundary(cut) {
        cut -= 1;
    }
    format!("{}... ({} bytes)", &m[..cut], m.len())
}

/// Replies `reply` to a request refused before it was parsed, and logs it.
async fn refuse(
    stream: &mut TcpStream,
    peer: SocketAddr,
    cfg: &ProxyConfig,
    received: String,
    reply: &str,
    outcome: Outcome,
    why: String,
) {
    let delivered = send_reply(stream, reply.as_bytes(), false, cfg.idle_timeout).await;
    linger(stream).await;
    cfg.printer.request(&RequestEvent {
        event: "request",
        client: peer,
        received,
        server_ip: None,
        server_port: None,
        message: None,
        target: None,
        outcome,
        detail: Some(why),
        response: reply.to_string(),
        delivered,
    });
}

async fn bad_request(
    stream: &mut TcpStream,
    peer: SocketAddr,
    cfg: &ProxyConfig,
    received: String,
    why: String,
    newline: bool,
) {
    let reply = format!("Error, bad request: {why}");
    let delivered = send_reply(stream, reply.as_bytes(), newline, cfg.idle_timeout).await;
    cfg.printer.request(&RequestEvent {
        event: "request",
        client: peer,
        received,
        server_ip: None,
        server_port: None,
        message: None,
        target: None,
        outcome: Outcome::BadRequest,
        detail: None,
        response: reply,
        delivered,
    });
}

async fn send_reply(stream: &mut TcpStream, reply: &[u8], newline: bool, limit: Duration) -> bool {
    let mut out = Vec::with_capacity(reply.len() + 1);
    out.extend_from_slice(reply);
    if newline && !reply.ends_with(b"\n") {
        out.push(b'\n');
    }
    matches!(timeout(limit, stream.write_all(&out)).await, Ok(Ok(())))
}

/// Checks, connects, sends and reads the reply; returns the bytes for the client and fills
/// in the event. The reply buffer is charged to `lease` on top of the `base` bytes the
/// connection already holds.
async fn forward(
    req: &Request,
    cfg: &ProxyConfig,
    ev: &mut RequestEvent,
    lease: &mut Lease<'_>,
    base: usize,
) -> Vec<u8> {
    let started = Instant::now();
    let host = match parse_host(&req.server_ip) {
        Ok(h) => h,
        Err(why) => {
            ev.outcome = Outcome::BadRequest;
            return format!("Error, bad request: {why}").into_bytes();
        }
    };
    let targets = match resolve(&host, req.server_port, cfg.connect_timeout, &cfg.resolver).await {
        Ok(t) => t,
        Err(why) => {
            ev.outcome = Outcome::Unreachable;
            return format!("Error, server unreachable: {why}").into_bytes();
        }
    };
    // Every resolved address must pass; then the proxy connects to these exact addresses.
    if let Err((t, refusal)) = check_all(&targets, &cfg.policy) {
        ev.target = Some(t);
        ev.outcome = match refusal {
            Refusal::Blocked(_) => Outcome::Blocked,
            Refusal::NotAllowed => Outcome::NotAllowed,
        };
        ev.detail = Some(refusal.to_string());
        return NOT_ALLOWED.as_bytes().to_vec();
    }
    let mut last_err = None;
    let mut upstream = None;
    for &t in &targets {
        let left = cfg.connect_timeout.saturating_sub(started.elapsed());
        ev.target = Some(t);
        match connect(t, cfg, left).await {
            Ok(s) => {
                upstream = Some(s);
                break;
            }
            Err(e) => last_err = Some(e),
        }
    }
    let Some(mut up) = upstream else {
        ev.outcome = Outcome::Unreachable;
        let why = last_err.unwrap_or_else(|| "no address".to_string());
        ev.detail = Some(why.clone());
        return format!("Error, server unreachable: {why}").into_bytes();
    };
    match exchange(&mut up, req.message.as_bytes(), cfg, lease, base).await {
        Ok(reply) => reply,
        Err(Failed::Busy(why)) => {
            ev.outcome = Outcome::Busy;
            ev.detail = Some(why);
            BUSY.as_bytes().to_vec()
        }
        Err(Failed::Other(why)) => {
            ev.outcome = Outcome::Unreachable;
            ev.detail = Some(why.clone());
            format!("Error, server unreachable: {why}").into_bytes()
        }
    }
}

/// Checks every target, exactly as it will be connected to; the kernel is asked whether an
/// address is local ([`LocalRoutes`]) only if a rule needs it.
pub(crate) fn check_all(
    targets: &[SocketAddr],
    policy: &Policy,
) -> Result<(), (SocketAddr, Refusal)> {
    let routes = std::cell::RefCell::new(LocalRoutes::new());
    let is_local = |ip: IpAddr| canonical(ip).is_loopback() || routes.borrow_mut().is_local(ip);
    for &t in targets {
        policy.check(t, &is_local).map_err(|r| (t, r))?;
    }
    Ok(())
}

/// How long the server may stay silent (no reply byte, no close) before the proxy
/// half-closes to say the message is complete.
const QUIET_BEFORE_HALF_CLOSE: Duration = Duration::from_millis(50);

/// Why [`exchange`] gave up.
enum Failed {
    /// The buffer budget cannot cover the reply read so far.
    Busy(String),
    /// The server failed, was too slow, or sent too much.
    Other(String),
}

impl From<String> for Failed {
    fn from(s: String) -> Failed {
        Failed::Other(s)
    }
}

/// Sends the message and reads the reply until the server closes (at most `max_message`
/// bytes, within the idle timeout). The reply buffer grows by doubling, each step charged
/// to `lease` (with `base` bytes already held); when the budget cannot cover it the reply
/// is dropped and the client told `Error, busy`.
///
/// Lab servers answer one `recv` and close, so the proxy waits for that close and does not
/// half-close first: the side that closes first holds the TIME_WAIT entry (RFC 9293 3.6), and
/// a proxy holding one per request for the same server slows its own connects (measured:
/// about 15% fewer requests per second). A server that waits for EOF, or answers and keeps
/// the connection open, gets shutdown(SHUT_WR) after [`QUIET_BEFORE_HALF_CLOSE`] of
/// silence. If it still never closes, what arrived is relayed when the idle timeout ends.
async fn exchange(
    up: &mut TcpStream,
    message: &[u8],
    cfg: &ProxyConfig,
    lease: &mut Lease<'_>,
    base: usize,
) -> Result<Vec<u8>, Failed> {
    match timeout(cfg.idle_timeout, up.write_all(message)).await {
        Ok(Ok(())) => {}
        Ok(Err(e)) => return Err(format!("sending the message: {}", reason(&e)).into()),
        Err(_) => {
            return Err(Failed::Other(
                "server did not take the message in time".into(),
            ));
        }
    }
    let mut reply = Vec::with_capacity(256);
    let deadline = Instant::now() + cfg.idle_timeout;
    let cap = cfg.max_message.max(1024);
    let mut chunk = [0u8; 4096];
    let mut half_closed = false;
    loop {
        // A lab server answers and closes at once, so on the default path neither wait
        // below is ever reached. A server that waits for EOF gets the half-close after
        // QUIET_BEFORE_HALF_CLOSE of silence; one that has answered but never closes has its
        // answer relayed after the same quiet time instead of at the idle timeout.
        let until = if half_closed && reply.is_empty() {
            deadline
        } else {
            deadline.min(Instant::now() + QUIET_BEFORE_HALF_CLOSE)
        };
        match tokio::time::timeout_at(until, up.read(&mut chunk)).await {
            Ok(Ok(0)) => break,
            Ok(Ok(n)) => {
                if reply.len() + n > cap {
                    return Err(format!("server reply is over {cap} bytes (--max-message)").into());
                }
                if reply.len() + n > reply.capacity() {
                    let want = (reply.capacity() * 2).max(reply.len() + n).min(cap);
                    if !lease.cover(base + want) {
                        budget_spent(cfg, "reply");
                        return Err(Failed::Busy(format!(
                            "buffer budget of {} bytes spent while reading the server's reply of over {} bytes (--buffer-budget)",
                            cfg.budget.limit(),
                            reply.len()
                        )));
                    }
                    reply.reserve_exact(want - reply.len());
                }
                reply.extend_from_slice(&chunk[..n]);
                // A zen question (ends with `?`) is answered by a sentence ending with `.`,
                // and the book's server keeps the connection open for the next question:
                // the protocol says the reply is whole, so no quiet wait.
                if message.trim_ascii_end().ends_with(b"?") && reply.ends_with(b".") {
                    break;
                }
            }
            // A reset after the reply (the server closed without reading everything) still
            // leaves a reply to relay.
            Ok(Err(e)) if reply.is_empty() => {
                return Err(format!("reading the reply: {}", reason(&e)).into());
            }
            Ok(Err(_)) => break,
            Err(_) if !half_closed && Instant::now() < deadline => {
                // shutdown(SHUT_WR): the server reads EOF after the message, can still reply.
                let _ = up.shutdown().await;
                half_closed = true;
            }
            Err(_) if reply.is_empty() => {
                return Err(format!("no reply within {}", secs(cfg.idle_timeout)).into());
            }
            Err(_) => break,
        }
    }
    Ok(reply)
}

/// Resolves a host to canonical addresses (deduplicated, in resolver order), bounded by
/// `limit` (see [`crate::lab::resolver`]: /etc/hosts without a lookup slot, DNS within a
/// bounded number of slots, cancelled when this future is dropped).
async fn resolve(
    host: &Host,
    port: u16,
    limit: Duration,
    resolver: &NameResolver,
) -> Result<Vec<SocketAddr>, String> {
    let name = match host {
        Host::Ip(ip) => return Ok(vec![SocketAddr::new(*ip, port)]),
        Host::Name(n) => n.as_str(),
    };
    let found = match timeout(limit, resolver.lookup(name)).await {
        Ok(Ok(v)) => v,
        Ok(Err(LookupError::Busy)) => return Err("resolver busy".into()),
        Ok(Err(LookupError::Failed(why))) => return Err(why),
        Err(_) => return Err(format!("resolving {name} took over {}", secs(limit))),
    };
    let mut out: Vec<SocketAddr> = Vec::new();
    for ip in found {
        let c = SocketAddr::new(canonical(ip), port);
        if !out.contains(&c) {
            out.push(c);
        }
    }
    if out.is_empty() {
        return Err(format!("{name} has no address"));
    }
    Ok(out)
}

/// Connects to `to` with the managed options (set before connect, so SO_SNDBUF/SO_RCVBUF
/// size the window), within `limit`.
pub async fn connect(
    to: SocketAddr,
    cfg: &ProxyConfig,
    limit: Duration,
) -> Result<TcpStream, String> {
    let sock = new_socket(to).map_err(|e| reason(&e))?;
    connect_socket(sock, to, cfg, limit).await
}

/// A TCP socket of `to`'s family.
///
/// # Errors
/// socket(2) failed (EMFILE/ENFILE at the fd limit).
pub fn new_socket(to: SocketAddr) -> io::Result<TcpSocket> {
    if to.is_ipv4() {
        TcpSocket::new_v4()
    } else {
        TcpSocket::new_v6()
    }
}

/// [`connect`] with a socket made before (by [`new_socket`]).
pub async fn connect_socket(
    sock: TcpSocket,
    to: SocketAddr,
    cfg: &ProxyConfig,
    limit: Duration,
) -> Result<TcpStream, String> {
    if cfg.upstream_opts != sockopt::SockOpts::default() {
        sockopt::apply_to(&sock, &cfg.upstream_opts, to).map_err(|e| reason(&e.source))?;
    }
    match timeout(limit, sock.connect(to)).await {
        Ok(Ok(s)) => Ok(s),
        Ok(Err(e)) => Err(reason(&e)),
        Err(_) => Err(format!(
            "connect timed out after {} (--connect-timeout)",
            secs(cfg.connect_timeout)
        )),
    }
}

/// A short reason for a socket error, without the "(os error N)" suffix.
pub fn reason(e: &io::Error) -> String {
    if is_fd_exhaustion(e) {
        return "proxy is out of file descriptors".into();
    }
    match e.raw_os_error() {
        Some(libc::ECONNREFUSED) => "connection refused".into(),
        Some(libc::ENETUNREACH) => "network unreachable".into(),
        Some(libc::EHOSTUNREACH) => "host unreachable".into(),
        Some(libc::ETIMEDOUT) => "connection timed out".into(),
        Some(libc::ECONNRESET) => "connection reset by the server".into(),
        Some(libc::EPIPE) => "server closed the connection".into(),
        Some(libc::EADDRNOTAVAIL) => "no local port available (EADDRNOTAVAIL)".into(),
        _ => {
            let s = e.to_string();
            match s.find(" (os error") {
                Some(i) => s[..i].to_lowercase(),
                None => s,
            }
        }
    }
}

/// A duration as people write it: `3s`, `0.3s`, `1.25s`.
pub fn secs(d: Duration) -> String {
    let s = format!("{:.3}", d.as_secs_f64());
    format!("{}s", s.trim_end_matches('0').trim_end_matches('.'))
}
