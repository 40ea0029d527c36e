//! The lab client (`netkit run client`, seed 003): sends a random 4-letter word, packed as
//! `{"server_ip", "server_port", "message"}` JSON, to the proxy (or the bare word straight to
//! the server with `--direct`) and prints the reply.
//!
//! Without `--persistent` every request uses a new connection and is sent without a newline,
//! exactly like the Python lab client, and the reply is what one read returns (the client's
//! `recv(1024)`). With `--persistent` one connection carries newline-terminated requests and
//! replies that end at a newline (or are a bare `DONE`); a peer that closes the connection
//! after a reply (the lab's Python proxy serves one request per connection) ends the run with
//! a message saying so, exit 2. Exit codes: 0 when every reply is `DONE`, 1 when one was a
//! refusal or an error (or missing), 2 on a local error (bind, connect), which is explained
//! from the socket inventory ([`super::diagnose`]). Socket errors are reported as such, never
//! mistaken for a closed stdout.

use std::collections::hash_map::RandomState;
use std::hash::{BuildHasher, Hasher};
use std::io::{self, Read, Write};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, TcpStream, ToSocketAddrs};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};

use super::diagnose;
use super::status::{Status, StatusLog};
use crate::cli::run::ClientArgs;
use crate::exit::{FOUND, NOTHING};
use crate::output::Format;
use crate::sockopt::{self, SockOpts};

/// The port the lab's proxy refuses (seed 003).
pub const BLOCKED_PORT: u16 = 7777;

/// A random lowercase word of four letters (the lab client's message).
pub fn random_word() -> String {
    // RandomState is seeded from the OS's randomness per process and per instance.
    let mut h = RandomState::new().build_hasher();
    h.write_u128(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos()),
    );
    let mut x = h.finish();
    (0..4)
        .map(|_| {
            let c = (b'a' + (x % 26) as u8) as char;
            x /= 26;
            c
        })
        .collect()
}

/// The proxy lab's request: `{"server_ip": "...", "server_port": N, "message": "..."}`.
/// `host` goes out as given (`127.1`, `localhost`, `::ffff:127.0.0.1`): resolving and
/// checking it is the proxy's job, and the client is how people test that.
pub fn request_json(host: &str, port: u16, message: &str) -> String {
    serde_json::json!({
        "server_ip": host,
        "server_port": port,
        "message": message,
    })
    .to_string()
}

/// Splits `HOST:PORT` (`[v6]:PORT` too) without resolving HOST.
///
/// ```
/// use netkit::lab::client::split_host_port;
/// assert_eq!(split_host_port("127.1:8888").unwrap(), ("127.1".to_string(), 8888));
/// assert_eq!(split_host_port("[::1]:80").unwrap(), ("::1".to_string(), 80));
/// assert!(split_host_port("localhost").is_err());
/// ```
///
/// # Errors
/// When there is no `:PORT`, the port is not a number, or the host is empty.
pub fn split_host_port(s: &str) -> anyhow::Result<(String, u16)> {
    let (host, port) = match s.strip_prefix('[') {
        Some(rest) => rest
            .split_once("]:")
            .with_context(|| format!("{s:?} is not [HOST]:PORT"))?,
        None => s
            .rsplit_once(':')
            .with_context(|| format!("{s:?} is not HOST:PORT"))?,
    };
    let port = port
        .parse::<u16>()
        .with_context(|| format!("{s:?}: {port:?} is not a port number"))?;
    if host.is_empty() {
        bail!("{s:?} has no host");
    }
    Ok((host.to_string(), port))
}

fn parse_addr(s: &str, what: &str) -> anyhow::Result<SocketAddr> {
    s.to_socket_addrs()
        .with_context(|| format!("{what} {s:?} is not HOST:PORT"))?
        .next()
        .with_context(|| format!("{what} {s:?} has no address"))
}

/// The local address for `--bind-port`: loopback of the target's family when the target is
/// loopback (as the lab's client binds 127.0.0.1), otherwise the wildcard.
fn local_for(target: SocketAddr, port: u16) -> SocketAddr {
    let ip = match target.ip() {
        ip if ip.is_loopback() => ip,
        IpAddr::V4(_) => IpAddr::V4(Ipv4Addr::UNSPECIFIED),
        IpAddr::V6(_) => IpAddr::V6(Ipv6Addr::UNSPECIFIED),
    };
    SocketAddr::new(ip, port)
}

/// One reply as read: its bytes and whether the peer closed the connection right after.
struct Got {
    bytes: Vec<u8>,
    closed: bool,
}

/// Reads one reply within `timeout`: what one read returns, or with `line_only` up to a
/// newline (a bare `DONE` also ends it). EOF ends the reply and is reported.
fn read_reply(s: &mut TcpStream, timeout: Duration, line_only: bool) -> io::Result<Got> {
    let deadline = Instant::now() + timeout;
    let mut reply = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Ok(Got {
                bytes: reply,
                closed: false,
            });
        }
        s.set_read_timeout(Some(left))?;
        match s.read(&mut buf) {
            Ok(0) => {
                return Ok(Got {
                    bytes: reply,
                    closed: true,
                });
            }
            Ok(n) => {
                reply.extend_from_slice(&buf[..n]);
                if !line_only || reply.contains(&b'\n') || reply == b"DONE" {
                    return Ok(Got {
                        bytes: reply,
                        closed: false,
                    });
                }
            }
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                ) => {}
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
}

/// True for the errors a socket gives when its peer has closed or reset the connection.
fn is_peer_gone(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::BrokenPipe
            | io::ErrorKind::ConnectionReset
            | io::ErrorKind::ConnectionAborted
            | io::ErrorKind::UnexpectedEof
    )
}

/// What a persistent client says when the peer closed after `served` requests.
fn closed_after(via: &str, served: u32) -> String {
    if served == 1 {
        format!(
            "the {via} closed the connection after one request; it serves one request per \
             connection (run without --persistent)"
        )
    } else {
        format!("the {via} closed the connection after {served} requests")
    }
}

/// `netkit run client`: returns 0 when every reply was `DONE`, 1 otherwise.
///
/// # Errors
/// Bad arguments, or a socket that cannot be bound or connected (explained first).
pub fn run_cli(a: ClientArgs, format: Format) -> anyhow::Result<i32> {
    if a.count == 0 {
        bail!("--count must be at least 1");
    }
    let (server_host, mut server_port) = split_host_port(&a.server).context("--server")?;
    if a.block {
        server_port = BLOCKED_PORT;
    }
    let (target, via) = if a.direct {
        let mut server = parse_addr(&a.server, "--server")?;
        server.set_port(server_port);
        (server, "server")
    } else {
        (parse_addr(&a.proxy, "--proxy")?, "proxy")
    };
    let opts = SockOpts::from_args(&a.sock, false);
    let bind = a.bind_port.map(|p| local_for(target, p));
    let timeout = Duration::from_secs_f64(a.timeout.max(0.001));
    let log = StatusLog::stdout(format, "run client");
    let connect = |first: bool| -> anyhow::Result<TcpStream> {
        let s = sockopt::connect(target, &opts, bind, Some(timeout))
            .map_err(|e| diagnose::client_failure(e, bind, target, &opts, format, "run client"))?;
        if first {
            log.emit(&Status::Connected {
                proto: "tcp",
                local: s.local_addr()?,
                remote: target,
                options: sockopt::report(&s, &opts),
            });
        }
        Ok(s)
    };
    let mut persistent = if a.persistent {
        Some(connect(true)?)
    } else {
        None
    };
    let mut all_ok = true;
    let mut peer_closed = false;
    for i in 0..a.count {
        if peer_closed {
            bail!("{}", closed_after(via, i));
        }
        let message = match &a.message {
            Some(m) => m.clone(),
            None => {
                let w = random_word();
                if format == Format::Table {
                    // println! would panic on a closed stdout (`| head -c1`); the run goes on.
                    let _ = std::io::Write::write_fmt(
                        &mut std::io::stdout(),
                        format_args!("Random 4 letter string: {w}\n"),
                    );
                }
                w
            }
        };
        let payload = if a.direct {
            message.clone()
        } else {
            request_json(&server_host, server_port, &message)
        };
        let mut fresh;
        let stream = match persistent.as_mut() {
            Some(s) => s,
            None => {
                fresh = connect(i == 0)?;
                &mut fresh
            }
        };
        let local = stream.local_addr()?;
        let started = Instant::now();
        let sent = if a.persistent {
            stream.write_all(format!("{payload}\n").as_bytes())
        } else {
            stream.write_all(payload.as_bytes())
        };
        // Socket errors become text: an io::Error in the chain would be taken for a closed
        // stdout (exit 0, nothing said).
        if let Err(e) = sent {
            if a.persistent && i > 0 && is_peer_gone(&e) {
                bail!("{}", closed_after(via, i));
            }
            bail!("sending to {target}: {e}");
        }
        let got = match read_reply(stream, timeout, a.persistent) {
            Ok(g) => g,
            Err(e) if a.persistent && i > 0 && is_peer_gone(&e) => {
                bail!("{}", closed_after(via, i));
            }
            Err(e) => bail!("reading the reply from {target}: {e}"),
        };
        if a.persistent && got.bytes.is_empty() && got.closed && i > 0 {
            bail!("{}", closed_after(via, i));
        }
        peer_closed = a.persistent && got.closed;
        let raw = got.bytes;
        let text = String::from_utf8_lossy(&raw);
        let text = text.trim_end_matches(['\r', '\n']);
        let reply = (!raw.is_empty()).then(|| text.to_string());
        let ok = reply.as_deref() == Some("DONE");
        all_ok &= ok;
        log.emit(&Status::Reply {
            via,
            from: target,
            local,
            sent: payload,
            reply,
            ok,
            elapsed_ms: (started.elapsed().as_secs_f64() * 1e6).round() / 1000.0,
        });
    }
    Ok(if all_ok { FOUND } else { NOTHING })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn random_word_is_four_lowercase_letters() {
        for _ in 0..50 {
            let w = random_word();
            assert_eq!(w.len(), 4);
            assert!(w.bytes().all(|b| b.is_ascii_lowercase()), "{w}");
        }
        let words: std::collections::HashSet<_> = (0..50).map(|_| random_word()).collect();
        assert!(words.len() > 40, "words repeat too often: {words:?}");
    }

    #[test]
    fn request_json_has_the_labs_three_keys() {
        let j = request_json("127.0.0.1", 8888, "tgmr");
        let v: serde_json::Value = serde_json::from_str(&j).unwrap();
        assert_eq!(v["server_ip"], "127.0.0.1");
        assert_eq!(v["server_port"], 8888);
        assert_eq!(v["message"], "tgmr");
    }
}
