//! The lab UDP pair (seed 002): `udp-server` and `udp-client` bound to the **same** local port.
//!
//! Two UDP sockets may share an address:port only when both set SO_REUSEADDR or both set
//! SO_REUSEPORT (BIND-RULES.md U1–U3; `--listen-multiple` sets both, like Twisted's
//! `listenMultiple`). The client then connect()s to its peer, and the kernel delivers the
//! peer's datagrams to the connected socket and everything else to the unconnected server
//! (BIND-RULES.md U4: the connected socket matches the 4-tuple and scores higher in
//! `net/ipv4/udp.c:compute_score`). Without the options the second bind fails with
//! EADDRINUSE, explained with the socket that holds the port.
//!
//! The server prints each datagram and echoes it back unless `--no-reply`. `--multicast GROUP`
//! binds the group address and joins it (IP_ADD_MEMBERSHIP) on the interface of `--addr`.

use std::io;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};

use super::diagnose;
use super::shutdown;
use super::status::{Status, StatusLog};
use crate::cli::run::{UdpClientArgs, UdpServerArgs};
use crate::cli::sockopts::SockOptArgs;
use crate::exit::{FOUND, NOTHING};
use crate::inspect::Proto;
use crate::output::Format;
use crate::sockopt::{self, SockOpts};

/// Largest datagram read.
const MAX_DATAGRAM: usize = 65_536;

/// UDP options: nothing by default (the seed's plain socket), both reuse flags with
/// `--listen-multiple`.
fn udp_opts(sock: &SockOptArgs, listen_multiple: bool) -> SockOpts {
    if sock.keepalive.is_some() || sock.nodelay {
        eprintln!(
            "hint: --keepalive, --keepintvl, --keepcnt and --nodelay are TCP options (tcp(7)); this UDP socket ignores them"
        );
    }
    let mut o = SockOpts::from_args(sock, false);
    if listen_multiple {
        o.reuseaddr = true;
        o.reuseport = true;
    }
    o
}

fn parse_ip(s: &str) -> anyhow::Result<IpAddr> {
    let t = s.trim();
    if t.is_empty() {
        return Ok(IpAddr::V4(Ipv4Addr::UNSPECIFIED));
    }
    t.trim_start_matches('[')
        .trim_end_matches(']')
        .parse()
        .with_context(|| format!("{s:?} is not an IP address"))
}

/// `netkit run udp-server`: prints (and echoes) datagrams until SIGINT/SIGTERM.
///
/// # Errors
/// Bad arguments, or a socket that cannot be bound (explained first).
pub fn run_server_cli(a: UdpServerArgs, format: Format) -> anyhow::Result<i32> {
    let opts = udp_opts(&a.sock, a.listen_multiple);
    let iface = parse_ip(&a.addr)?;
    let group = match &a.multicast {
        None => None,
        Some(g) => match g.parse::<Ipv4Addr>() {
            Ok(g) if g.is_multicast() => Some(g),
            _ => bail!("--multicast {g:?} is not an IPv4 multicast group (224.0.0.0/4)"),
        },
    };
    let bind_ip = group.map_or(iface, IpAddr::V4);
    let addr = SocketAddr::new(bind_ip, a.port);
    let sock = sockopt::udp_bind(addr, &opts)
        .map_err(|e| diagnose::failure(e, Proto::Udp, None, format, "run udp-server"))?;
    if let Some(g) = group {
        let IpAddr::V4(ifv4) = iface else {
            bail!("--multicast needs an IPv4 --addr for the interface");
        };
        sock.join_multicast_v4(&g, &ifv4)
            .with_context(|| format!("IP_ADD_MEMBERSHIP {g} on interface {ifv4}"))?;
    }
    let log = StatusLog::stdout(format, "run udp-server");
    log.emit(&Status::Listening {
        proto: "udp",
        addr: sock.local_addr()?,
        mode: None,
        protocol: None,
        options: sockopt::report(&sock, &opts),
    });
    sock.set_nonblocking(true)?;
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("cannot start the tokio runtime")?;
    rt.block_on(async move {
        let mut sd = shutdown::on_signals(true).context("cannot install signal handlers")?;
        let sock = tokio::net::UdpSocket::from_std(sock)?;
        let mut buf = vec![0u8; MAX_DATAGRAM];
        loop {
            let (n, peer) = tokio::select! {
                r = sock.recv_from(&mut buf) => match r {
                    Ok(x) => x,
                    // ICMP errors from earlier replies surface here; they concern one peer.
                    Err(e) if e.kind() == io::ErrorKind::ConnectionRefused => continue,
                    Err(e) => return Err(anyhow::Error::new(e).context("recvfrom")),
                },
                () = sd.requested() => break,
            };
            log.emit(&Status::Received {
                peer,
                message: String::from_utf8_lossy(&buf[..n]).into_owned(),
            });
            if !a.no_reply {
                let _ = sock.send_to(&buf[..n], peer).await;
            }
        }
        log.emit(&Status::Stopped { aborted: 0 });
        Ok(())
    })?;
    Ok(FOUND)
}

/// `netkit run udp-client`: binds the shared port, connects to the peer, sends and waits for
/// replies. Returns 0 when every message got a reply (or `--wait 0`), 1 otherwise.
///
/// # Errors
/// Bad arguments, or a socket that cannot be bound or connected (explained first).
pub fn run_client_cli(a: UdpClientArgs, format: Format) -> anyhow::Result<i32> {
    let opts = udp_opts(&a.sock, a.listen_multiple);
    let local = SocketAddr::new(parse_ip(&a.addr)?, a.port);
    let to: SocketAddr = {
        use std::net::ToSocketAddrs;
        a.to.to_socket_addrs()
            .with_context(|| format!("--to {:?} is not HOST:PORT", a.to))?
            .next()
            .with_context(|| format!("--to {:?} has no address", a.to))?
    };
    if to.port() == 0 {
        bail!(
            "--to {to}: port 0 is not a destination (the kernel picks a port only for a local bind); give the peer's port"
        );
    }
    if to.port() == a.port && crate::inspect::addrs_overlap(local.ip(), false, to.ip(), false) {
        bail!(
            "--to {to} is this client's own address ({local}): the client would send to and hear itself, never the server; point --to at the peer (the server replies to the client's port, so both may share it)"
        );
    }
    let sock = sockopt::udp_bind(local, &opts)
        .map_err(|e| diagnose::failure(e, Proto::Udp, None, format, "run udp-client"))?;
    sock.connect(to).with_context(|| format!("connect {to}"))?;
    let log = StatusLog::stdout(format, "run udp-client");
    let me = sock.local_addr()?;
    log.emit(&Status::Connected {
        proto: "udp",
        local: me,
        remote: to,
        options: sockopt::report(&sock, &opts),
    });
    let wait = Duration::from_secs_f64(a.wait);
    let mut buf = vec![0u8; MAX_DATAGRAM];
    let mut all = true;
    for _ in 0..a.count {
        let started = Instant::now();
        sock.send(a.message.as_bytes())
            .with_context(|| format!("send to {to}"))?;
        if wait.is_zero() {
            continue;
        }
        sock.set_read_timeout(Some(wait))?;
        let reply = match sock.recv(&mut buf) {
            Ok(n) => Some(String::from_utf8_lossy(&buf[..n]).into_owned()),
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                ) =>
            {
                None
            }
            Err(e) if e.kind() == io::ErrorKind::ConnectionRefused => {
                // A connected UDP socket reports the peer's ICMP port unreachable (udp(7)).
                eprintln!("{to} answered ICMP port unreachable: nothing listens there");
                None
            }
            Err(e) => return Err(anyhow::Error::new(e).context(format!("recv from {to}"))),
        };
        all &= reply.is_some();
        log.emit(&Status::Reply {
            via: "peer",
            from: to,
            local: me,
            sent: a.message.clone(),
            ok: reply.is_some(),
            reply,
            elapsed_ms: started.elapsed().as_secs_f64() * 1000.0,
        });
    }
    Ok(if all { FOUND } else { NOTHING })
}
