//! Managed sockets: the only user of socket2. Applies the socket options the lab components
//! take as flags and reads back what the kernel actually set.
//!
//! Each [`SockOpts`] field names its option and man page; `explain` and `sockopt` use the same
//! names. The kernel doubles SO_SNDBUF/SO_RCVBUF on set (socket(7): "the kernel doubles this
//! value"), so callers show [`Applied`], never what was asked.

use std::fmt;
use std::io;
use std::net::{SocketAddr, TcpListener, TcpStream, UdpSocket};
use std::os::fd::AsFd;
use std::time::Duration;

use serde::Serialize;
use socket2::{Domain, Protocol, SockRef, Socket, TcpKeepalive, Type};

use crate::cli::sockopts::SockOptArgs;

/// Default TCP_KEEPINTVL when keepalive is on (tcp(7); seed 001: 75 s).
pub const DEFAULT_KEEPINTVL: u32 = 75;

/// Where a socket call failed, with the address and the kernel's error.
#[derive(Debug, thiserror::Error)]
#[error("{stage} {addr}: {source}")]
pub struct SocketError {
    /// `socket`, `setsockopt`, `bind`, `listen` or `connect`.
    pub stage: &'static str,
    /// The address involved.
    pub addr: SocketAddr,
    /// The kernel's error (errno in `raw_os_error`).
    #[source]
    pub source: io::Error,
}

impl SocketError {
    /// The errno, if the error came from the kernel.
    pub fn errno(&self) -> Option<i32> {
        self.source.raw_os_error()
    }
}

/// TCP keepalive settings (tcp(7): TCP_KEEPIDLE, TCP_KEEPINTVL, TCP_KEEPCNT).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Keepalive {
    /// TCP_KEEPIDLE, seconds of idleness before the first probe.
    pub idle: u32,
    /// TCP_KEEPINTVL, seconds between probes.
    pub intvl: u32,
    /// TCP_KEEPCNT, probes before dropping; `None` keeps the kernel's default (9).
    pub cnt: Option<u32>,
}

/// The options netkit sets on a managed socket.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct SockOpts {
    /// SO_KEEPALIVE (socket(7)) plus the tcp(7) timers.
    pub keepalive: Option<Keepalive>,
    /// SO_SNDBUF (socket(7)), bytes asked.
    pub sndbuf: Option<u32>,
    /// SO_RCVBUF (socket(7)), bytes asked.
    pub rcvbuf: Option<u32>,
    /// SO_REUSEADDR (socket(7)).
    pub reuseaddr: bool,
    /// SO_REUSEPORT (socket(7)).
    pub reuseport: bool,
    /// TCP_NODELAY (tcp(7)).
    pub nodelay: bool,
    /// IPV6_V6ONLY (ipv6(7)), for IPv6 sockets.
    pub v6only: bool,
}

impl SockOpts {
    /// Builds options from flags. `listener` turns SO_REUSEADDR on unless `--no-reuseaddr`,
    /// as the book's servers do.
    pub fn from_args(a: &SockOptArgs, listener: bool) -> SockOpts {
        SockOpts {
            keepalive: a.keepalive.map(|idle| Keepalive {
                idle,
                intvl: a.keepintvl.unwrap_or(DEFAULT_KEEPINTVL),
                cnt: a.keepcnt,
            }),
            sndbuf: a.sndbuf,
            rcvbuf: a.rcvbuf,
            reuseaddr: !a.no_reuseaddr && (a.reuseaddr || listener),
            reuseport: a.reuseport,
            nodelay: a.nodelay,
            v6only: a.v6only,
        }
    }
}

/// The options as the kernel reports them (getsockopt), for any socket fd.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Applied {
    /// SO_REUSEADDR.
    pub reuseaddr: Option<bool>,
    /// SO_REUSEPORT.
    pub reuseport: Option<bool>,
    /// SO_KEEPALIVE.
    pub keepalive: Option<bool>,
    /// TCP_KEEPIDLE, seconds.
    pub keepidle: Option<u32>,
    /// TCP_KEEPINTVL, seconds.
    pub keepintvl: Option<u32>,
    /// TCP_KEEPCNT.
    pub keepcnt: Option<u32>,
    /// SO_SNDBUF as read back (already doubled by the kernel).
    pub sndbuf: Option<usize>,
    /// SO_RCVBUF as read back.
    pub rcvbuf: Option<usize>,
    /// TCP_NODELAY.
    pub nodelay: Option<bool>,
    /// TCP_USER_TIMEOUT (tcp(7)), milliseconds; 0 = the kernel's default (retransmissions
    /// bounded by `net.ipv4.tcp_retries2`).
    pub user_timeout: Option<u32>,
    /// SO_LINGER (socket(7)): off, or the seconds close() waits for unsent data.
    pub linger: Option<Linger>,
    /// IPV6_V6ONLY (IPv6 sockets only).
    pub v6only: Option<bool>,
    /// SO_SNDBUF asked for, when one was.
    pub sndbuf_asked: Option<u32>,
    /// SO_RCVBUF asked for, when one was.
    pub rcvbuf_asked: Option<u32>,
}

/// SO_LINGER as getsockopt reports it. JSON: `false` when off, else the seconds (the same
/// encoding as `sockopt --set linger=` changes).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Linger {
    /// l_onoff 0: close() returns at once, the kernel sends what is left in the background.
    Off,
    /// l_onoff 1: close() waits up to this many seconds; 0 makes close() send an RST.
    Secs(u32),
}

impl Serialize for Linger {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            Linger::Off => s.serialize_bool(false),
            Linger::Secs(n) => s.serialize_u32(*n),
        }
    }
}

impl fmt::Display for Applied {
    /// `reuseaddr on, reuseport off, keepalive on (idle 75s intvl 75s cnt 9), sndbuf 131072
    /// (asked 65536), rcvbuf 131072, nodelay off, user-timeout default, linger off`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let onoff = |b: Option<bool>| match b {
            Some(true) => "on",
            Some(false) => "off",
            None => "?",
        };
        let num = |v: Option<u32>| v.map_or("?".to_string(), |x| x.to_string());
        write!(
            f,
            "reuseaddr {}, reuseport {}, keepalive {}",
            onoff(self.reuseaddr),
            onoff(self.reuseport),
            onoff(self.keepalive)
        )?;
        if self.keepalive == Some(true) {
            write!(
                f,
                " (idle {}s intvl {}s cnt {})",
                num(self.keepidle),
                num(self.keepintvl),
                num(self.keepcnt)
            )?;
        }
        let buf = |v: Option<usize>, asked: Option<u32>| match (v, asked) {
            (Some(v), Some(a)) => format!("{v} (asked {a})"),
            (Some(v), None) => v.to_string(),
            _ => "?".into(),
        };
        write!(
            f,
            ", sndbuf {}, rcvbuf {}",
            buf(self.sndbuf, self.sndbuf_asked),
            buf(self.rcvbuf, self.rcvbuf_asked),
        )?;
        // TCP_NODELAY does not exist on UDP sockets (read_back leaves it `None`).
        if self.nodelay.is_some() {
            write!(f, ", nodelay {}", onoff(self.nodelay))?;
        }
        match self.user_timeout {
            Some(0) => f.write_str(", user-timeout default")?,
            Some(ms) => write!(f, ", user-timeout {ms}ms")?,
            None => {}
        }
        match self.linger {
            Some(Linger::Off) => f.write_str(", linger off")?,
            Some(Linger::Secs(n)) => write!(f, ", linger {n}s")?,
            None => {}
        }
        if let Some(v) = self.v6only {
            write!(f, ", v6only {}", if v { "on" } else { "off" })?;
        }
        Ok(())
    }
}

/// Reads the options of any socket fd (ours, or a pidfd_getfd copy of another process's).
/// Options that do not apply (TCP_* on UDP, IPV6_V6ONLY on IPv4) are `None`.
pub fn read_back(fd: impl AsFd) -> Applied {
    let s = SockRef::from(&fd);
    let is_tcp = s.r#type().ok() == Some(Type::STREAM);
    let is_v6 = s
        .local_addr()
        .ok()
        .and_then(|a| a.as_socket())
        .is_some_and(|a| a.is_ipv6());
    Applied {
        reuseaddr: s.reuse_address().ok(),
        reuseport: s.reuse_port().ok(),
        keepalive: s.keepalive().ok(),
        keepidle: is_tcp
            .then(|| s.tcp_keepalive_time().ok().map(|d| d.as_secs() as u32))
            .flatten(),
        keepintvl: is_tcp
            .then(|| s.tcp_keepalive_interval().ok().map(|d| d.as_secs() as u32))
            .flatten(),
        keepcnt: is_tcp.then(|| s.tcp_keepalive_retries().ok()).flatten(),
        sndbuf: s.send_buffer_size().ok(),
        rcvbuf: s.recv_buffer_size().ok(),
        nodelay: is_tcp.then(|| s.tcp_nodelay().ok()).flatten(),
        user_timeout: is_tcp
            .then(|| {
                s.tcp_user_timeout()
                    .ok()
                    .map(|d| d.map_or(0, |d| u32::try_from(d.as_millis()).unwrap_or(u32::MAX)))
            })
            .flatten(),
        linger: s.linger().ok().map(|l| match l {
            None => Linger::Off,
            Some(d) => Linger::Secs(u32::try_from(d.as_secs()).unwrap_or(u32::MAX)),
        }),
        v6only: is_v6.then(|| s.only_v6().ok()).flatten(),
        sndbuf_asked: None,
        rcvbuf_asked: None,
    }
}

/// Reads back and records what was asked, for the start-up line of a component.
pub fn report(fd: impl AsFd, opts: &SockOpts) -> Applied {
    let mut a = read_back(fd);
    a.sndbuf_asked = opts.sndbuf;
    a.rcvbuf_asked = opts.rcvbuf;
    a
}

fn set(stage: &'static str, addr: SocketAddr) -> impl Fn(io::Error) -> SocketError {
    move |source| SocketError {
        stage,
        addr,
        source,
    }
}

/// Applies the options that must be set before bind(): reuse flags, V6ONLY, buffers.
fn apply_pre_bind(s: &Socket, opts: &SockOpts, addr: SocketAddr) -> Result<(), SocketError> {
    let e = set("setsockopt", addr);
    if opts.reuseaddr {
        s.set_reuse_address(true).map_err(&e)?;
    }
    if opts.reuseport {
        s.set_reuse_port(true).map_err(&e)?;
    }
    if addr.is_ipv6() {
        s.set_only_v6(opts.v6only).map_err(&e)?;
    }
    apply_stream_opts(&SockRef::from(s), opts, addr)
}

/// Applies per-connection options (keepalive, buffers, nodelay) to an open socket, e.g. an
/// accepted connection. Accepted sockets inherit most of these from the listener (tcp(7)),
/// but setting them again makes the result independent of that detail.
///
/// # Errors
/// The setsockopt that failed.
pub fn apply_stream_opts(
    s: &SockRef<'_>,
    opts: &SockOpts,
    addr: SocketAddr,
) -> Result<(), SocketError> {
    let e = set("setsockopt", addr);
    if let Some(b) = opts.sndbuf {
        s.set_send_buffer_size(b as usize).map_err(&e)?;
    }
    if let Some(b) = opts.rcvbuf {
        s.set_recv_buffer_size(b as usize).map_err(&e)?;
    }
    if s.r#type().ok() == Some(Type::STREAM) {
        if let Some(k) = opts.keepalive {
            let mut ka = TcpKeepalive::new()
                .with_time(Duration::from_secs(u64::from(k.idle)))
                .with_interval(Duration::from_secs(u64::from(k.intvl)));
            if let Some(c) = k.cnt {
                ka = ka.with_retries(c);
            }
            s.set_tcp_keepalive(&ka).map_err(&e)?;
        }
        if opts.nodelay {
            s.set_tcp_nodelay(true).map_err(&e)?;
        }
    }
    Ok(())
}

/// Applies [`apply_stream_opts`] to a std or tokio stream.
///
/// # Errors
/// The setsockopt that failed.
pub fn apply_to(fd: impl AsFd, opts: &SockOpts, addr: SocketAddr) -> Result<(), SocketError> {
    apply_stream_opts(&SockRef::from(&fd), opts, addr)
}

/// Creates a TCP listener on `addr` with `opts` and `listen(backlog)`.
///
/// # Errors
/// [`SocketError`] naming the stage (bind or listen) and the errno.
pub fn listen(addr: SocketAddr, opts: &SockOpts, backlog: i32) -> Result<TcpListener, SocketError> {
    let s = Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP))
        .map_err(set("socket", addr))?;
    apply_pre_bind(&s, opts, addr)?;
    s.bind(&addr.into()).map_err(set("bind", addr))?;
    s.listen(backlog).map_err(set("listen", addr))?;
    Ok(s.into())
}

/// Connects to `to` with `opts`, optionally from a fixed local address (`bind`), within
/// `timeout`.
///
/// # Errors
/// [`SocketError`] naming the stage (bind or connect) and the errno: EADDRINUSE at bind,
/// EADDRNOTAVAIL at connect when the same 4-tuple still exists (BIND-RULES.md rule 12).
pub fn connect(
    to: SocketAddr,
    opts: &SockOpts,
    bind: Option<SocketAddr>,
    timeout: Option<Duration>,
) -> Result<TcpStream, SocketError> {
    let s = Socket::new(Domain::for_address(to), Type::STREAM, Some(Protocol::TCP))
        .map_err(set("socket", to))?;
    if let Some(local) = bind {
        apply_pre_bind(&s, opts, local)?;
        s.bind(&local.into()).map_err(set("bind", local))?;
    } else {
        apply_stream_opts(&SockRef::from(&s), opts, to)?;
    }
    match timeout {
        Some(t) => s.connect_timeout(&to.into(), t),
        None => s.connect(&to.into()),
    }
    .map_err(set("connect", to))?;
    Ok(s.into())
}

/// Creates a TCP socket bound to `addr` with `opts`, without listen() — what a client that
/// pins its source port does before connect(). Used by `explain`'s trial for clients.
///
/// # Errors
/// [`SocketError`] naming the stage and the errno.
pub fn tcp_bind_only(
    addr: SocketAddr,
    opts: &SockOpts,
) -> Result<std::os::fd::OwnedFd, SocketError> {
    let s = Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP))
        .map_err(set("socket", addr))?;
    apply_pre_bind(&s, opts, addr)?;
    s.bind(&addr.into()).map_err(set("bind", addr))?;
    Ok(s.into())
}

/// Creates a UDP socket bound to `addr` with `opts`.
///
/// # Errors
/// [`SocketError`] naming the stage and the errno.
pub fn udp_bind(addr: SocketAddr, opts: &SockOpts) -> Result<UdpSocket, SocketError> {
    let s = Socket::new(Domain::for_address(addr), Type::DGRAM, Some(Protocol::UDP))
        .map_err(set("socket", addr))?;
    apply_pre_bind(&s, opts, addr)?;
    s.bind(&addr.into()).map_err(set("bind", addr))?;
    Ok(s.into())
}

/// A trial connect for `netkit explain --connect`: connect() to `to` within `timeout`, then
/// close with SO_LINGER 0 (an RST), so the probe leaves no TIME_WAIT on this host's
/// ephemeral ports and the peer no FIN_WAIT. Returns how long connect() took.
///
/// # Errors
/// [`SocketError`] at `socket` or `connect`; a timeout is `io::ErrorKind::TimedOut` with
/// errno ETIMEDOUT.
pub fn probe_connect(to: SocketAddr, timeout: Duration) -> Result<Duration, SocketError> {
    let s = Socket::new(Domain::for_address(to), Type::STREAM, Some(Protocol::TCP))
        .map_err(set("socket", to))?;
    let started = std::time::Instant::now();
    match s.connect_timeout(&to.into(), timeout) {
        Ok(()) => {
            let took = started.elapsed();
            let _ = s.set_linger(Some(Duration::ZERO));
            Ok(took)
        }
        Err(e) if e.kind() == io::ErrorKind::TimedOut && e.raw_os_error().is_none() => {
            Err(set("connect", to)(io::Error::from_raw_os_error(
                libc::ETIMEDOUT,
            )))
        }
        Err(e) => Err(set("connect", to)(e)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kernel_doubles_sndbuf_and_keeps_keepalive_timers() {
        let opts = SockOpts {
            keepalive: Some(Keepalive {
                idle: 75,
                intvl: 10,
                cnt: Some(4),
            }),
            sndbuf: Some(65536),
            reuseaddr: true,
            ..SockOpts::default()
        };
        let l = listen("127.0.0.1:0".parse().unwrap(), &opts, 8).unwrap();
        let a = report(&l, &opts);
        assert_eq!(a.sndbuf, Some(131072));
        assert_eq!(a.sndbuf_asked, Some(65536));
        assert_eq!(a.keepalive, Some(true));
        assert_eq!(
            (a.keepidle, a.keepintvl, a.keepcnt),
            (Some(75), Some(10), Some(4))
        );
        assert_eq!(a.reuseaddr, Some(true));
        assert_eq!(a.v6only, None);
        assert!(a.to_string().contains("sndbuf 131072 (asked 65536)"));
        assert_eq!((a.user_timeout, a.linger), (Some(0), Some(Linger::Off)));
        assert!(a.to_string().ends_with("user-timeout default, linger off"));
    }

    #[test]
    fn user_timeout_and_linger_are_read_back() {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let s = SockRef::from(&l);
        s.set_tcp_user_timeout(Some(Duration::from_millis(4500)))
            .unwrap();
        s.set_linger(Some(Duration::from_secs(7))).unwrap();
        let a = read_back(&l);
        assert_eq!(
            (a.user_timeout, a.linger),
            (Some(4500), Some(Linger::Secs(7)))
        );
        assert!(a.to_string().ends_with("user-timeout 4500ms, linger 7s"));
        let j = serde_json::to_value(&a).unwrap();
        assert_eq!(
            (&j["user_timeout"], &j["linger"]),
            (&4500.into(), &7.into())
        );
        // UDP has no TCP_USER_TIMEOUT; SO_LINGER is a socket-level option and reads there too.
        let u = UdpSocket::bind("127.0.0.1:0").unwrap();
        let a = read_back(&u);
        assert_eq!((a.user_timeout, a.linger), (None, Some(Linger::Off)));
        assert_eq!(serde_json::to_value(&a).unwrap()["linger"], false);
    }

    #[test]
    fn listener_defaults_to_reuseaddr_unless_disabled() {
        let a = SockOptArgs::default();
        assert!(SockOpts::from_args(&a, true).reuseaddr);
        assert!(!SockOpts::from_args(&a, false).reuseaddr);
        let no = SockOptArgs {
            no_reuseaddr: true,
            ..SockOptArgs::default()
        };
        assert!(!SockOpts::from_args(&no, true).reuseaddr);
    }
}
