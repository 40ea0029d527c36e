//! The lab client (`netkit run client`, seed 003): sends a random 4-letter word, packed as
//! `{"server_ip", "server_port", "message"}` JSON, to the proxy (or the bare word straight to
//! the server with `--direct`) and prints the reply.
//!
//! Without `--persistent` every request uses a new connection and is sent without a newline,
//! exactly like the Python lab client; the reply ends at EOF, at a newline, or after 100 ms
//! without more bytes. With `--persistent` one connection carries newline-terminated requests
//! and newline-terminated replies. Exit codes: 0 when every reply is `DONE`, 1 when one was a
//! refusal or an error (or missing), 2 on a local error (bind, connect), which is explained
//! from the socket inventory ([`super::diagnose`]).

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

/// Quiet time that ends a reply without newline or EOF.
const REPLY_QUIET: Duration = Duration::from_millis(100);

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

/// Reads one reply: up to EOF, a newline, or [`REPLY_QUIET`] after the last byte, within
/// `timeout`.
fn read_reply(s: &mut TcpStream, timeout: Duration, line_only: bool) -> io::Result<Vec<u8>> {
    let deadline = Instant::now() + timeout;
    let mut reply = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        // A newline ends a reply; so does the lab's whole success reply, `DONE`, which the
        // server sends bare to a bare request: no need to wait out the quiet period for it.
        if reply.contains(&b'\n') || reply == b"DONE" {
            break;
        }
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            break;
        }
        let wait = if reply.is_empty() || line_only {
            left
        } else {
            left.min(REPLY_QUIET)
        };
        s.set_read_timeout(Some(wait))?;
        match s.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => reply.extend_from_slice(&buf[..n]),
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                ) =>
            {
                if !reply.is_empty() {
                    break;
                }
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(reply)
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
    let log = StatusLog::stdout(format);
    let connect = |first: bool| -> anyhow::Result<TcpStream> {
        let s = sockopt::connect(target, &opts, bind, Some(timeout))
            .map_err(|e| diagnose::client_failure(e, bind, target, &opts, format))?;
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
    for i in 0..a.count {
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
        sent.with_context(|| format!("sending to {target}"))?;
        let raw = read_reply(stream, timeout, a.persistent)
            .with_context(|| format!("reading the reply from {target}"))?;
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
