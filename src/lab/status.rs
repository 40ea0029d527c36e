//! Status lines of the lab server, client and UDP pair: one line of text per event as the
//! book prints them (`Listening at 127.0.0.1:1060`, `Accepted connection from …`), or with
//! `--json` one JSON object per line carrying the same facts. Writing never fails the caller:
//! a closed stdout must not bring a server down.
//!
//! Bytes from the network (messages, replies, error texts that quote them) are untrusted:
//! the human lines escape control characters ([`printable`]) so a client cannot move the
//! cursor, clear the screen, set the window title or forge a line with `\r`; the JSON lines
//! carry them exactly (JSON escapes them anyway).
//!
//! JSON lines follow the project's vocabulary: `schema_version`, `command` (`"run server"`,
//! …), `ts` (RFC 3339 UTC, milliseconds), `event`, and split addresses (`local_addr` +
//! `local_port`, `peer_addr` + `peer_port`, `remote_addr` + `remote_port`). Schemas:
//! `docs/schema/run-server.schema.json` and its siblings.

use std::io::{self, Write};
use std::net::SocketAddr;

use serde_json::{Map, Value, json};

use crate::lab::jsonproto::printable;
use crate::output::{self, Format};
use crate::sockopt::Applied;

/// One status event. JSON: `{"schema_version": 1, "command": …, "ts": …, "event": "<snake_case
/// name>", …fields}` (see [`Status::to_json`]).
#[derive(Debug, Clone)]
pub enum Status {
    /// A TCP listener or UDP socket is ready, with the options the kernel applied.
    Listening {
        /// `tcp` or `udp`.
        proto: &'static str,
        /// Bound address.
        addr: SocketAddr,
        /// `single`, `threaded` or `async` (TCP server only).
        mode: Option<&'static str>,
        /// `lab`, `zen`, `echo` (TCP server only).
        protocol: Option<&'static str>,
        /// Socket options read back from the kernel.
        options: Applied,
    },
    /// A client socket is connected (TCP) or bound and connected (UDP), with the options the
    /// kernel applied.
    Connected {
        /// `tcp` or `udp`.
        proto: &'static str,
        /// Our address.
        local: SocketAddr,
        /// The peer.
        remote: SocketAddr,
        /// Socket options read back from the kernel.
        options: Applied,
    },
    /// A client sent a request and got (or did not get) a reply.
    Reply {
        /// Who answered: `proxy`, `server` or `peer`.
        via: &'static str,
        /// Their address.
        from: SocketAddr,
        /// Our address.
        local: SocketAddr,
        /// What was sent (without the trailing newline).
        sent: String,
        /// The reply, trailing newline removed; `None` when none came.
        reply: Option<String>,
        /// True when the reply means success (`DONE`, or any UDP reply).
        ok: bool,
        /// Milliseconds from sending to the reply.
        elapsed_ms: f64,
    },
    /// A connection was accepted.
    Accepted {
        /// The client.
        peer: SocketAddr,
    },
    /// A lab message (TCP) or a datagram (UDP) arrived.
    Received {
        /// Who sent it.
        peer: SocketAddr,
        /// The message, lossily decoded as UTF-8.
        message: String,
    },
    /// A connection ended.
    Closed {
        /// The client.
        peer: SocketAddr,
        /// `eof` (client closed), `done` (server closed after a reply), `idle`, `shutdown`,
        /// `error`.
        reason: &'static str,
        /// Error text for `error`.
        error: Option<String>,
    },
    /// accept() failed; the server backs off and retries (never exits).
    AcceptError {
        /// errno (EMFILE = 24, ENFILE = 23).
        errno: Option<i32>,
        /// Its name, when known.
        errno_name: Option<&'static str>,
        /// The kernel's message.
        error: String,
        /// Pause before the next accept().
        backoff_ms: u64,
    },
    /// accept() works again after failures.
    AcceptRecovered {
        /// How many accept() calls failed in the episode.
        failures: u64,
    },
    /// --max-conns connections are open; new clients wait in the listen queue.
    AtCapacity {
        /// The cap.
        max_conns: usize,
    },
    /// A shutdown signal arrived: no more accepts; in-flight requests may finish.
    ShuttingDown {
        /// Connections still open.
        in_flight: usize,
        /// Seconds they get.
        drain_s: f64,
    },
    /// The drain ended (all done, or time up).
    Stopped {
        /// Connections cut when the drain time ran out.
        aborted: usize,
    },
}

/// `{"<role>_addr": ip, "<role>_port": port}` into `m`.
fn put_addr(m: &mut Map<String, Value>, role: &str, a: SocketAddr) {
    m.insert(format!("{role}_addr"), json!(a.ip().to_string()));
    m.insert(format!("{role}_port"), json!(a.port()));
}

impl Status {
    /// The event's name in JSON.
    pub fn name(&self) -> &'static str {
        match self {
            Status::Listening { .. } => "listening",
            Status::Connected { .. } => "connected",
            Status::Reply { .. } => "reply",
            Status::Accepted { .. } => "accepted",
            Status::Received { .. } => "received",
            Status::Closed { .. } => "closed",
            Status::AcceptError { .. } => "accept_error",
            Status::AcceptRecovered { .. } => "accept_recovered",
            Status::AtCapacity { .. } => "at_capacity",
            Status::ShuttingDown { .. } => "shutting_down",
            Status::Stopped { .. } => "stopped",
        }
    }

    /// The JSON line for `command` (`"run server"`, …), stamped `ts`.
    pub fn to_json(&self, command: &str, ts: &str) -> Value {
        let mut m = Map::new();
        m.insert("schema_version".into(), json!(1));
        m.insert("command".into(), json!(command));
        m.insert("ts".into(), json!(ts));
        m.insert("event".into(), json!(self.name()));
        match self {
            Status::Listening {
                proto,
                addr,
                mode,
                protocol,
                options,
            } => {
                m.insert("proto".into(), json!(proto));
                put_addr(&mut m, "local", *addr);
                if let Some(mode) = mode {
                    m.insert("mode".into(), json!(mode));
                }
                if let Some(p) = protocol {
                    m.insert("protocol".into(), json!(p));
                }
                m.insert("options".into(), json!(options));
            }
            Status::Connected {
                proto,
                local,
                remote,
                options,
            } => {
                m.insert("proto".into(), json!(proto));
                put_addr(&mut m, "local", *local);
                put_addr(&mut m, "remote", *remote);
                m.insert("options".into(), json!(options));
            }
            Status::Reply {
                via,
                from,
                local,
                sent,
                reply,
                ok,
                elapsed_ms,
            } => {
                m.insert("via".into(), json!(via));
                put_addr(&mut m, "remote", *from);
                put_addr(&mut m, "local", *local);
                m.insert("sent".into(), json!(sent));
                m.insert("reply".into(), json!(reply));
                m.insert("ok".into(), json!(ok));
                m.insert("elapsed_ms".into(), json!(elapsed_ms));
            }
            Status::Accepted { peer } => put_addr(&mut m, "peer", *peer),
            Status::Received { peer, message } => {
                put_addr(&mut m, "peer", *peer);
                m.insert("message".into(), json!(message));
            }
            Status::Closed {
                peer,
                reason,
                error,
            } => {
                put_addr(&mut m, "peer", *peer);
                m.insert("reason".into(), json!(reason));
                m.insert("error".into(), json!(error));
            }
            Status::AcceptError {
                errno,
                errno_name,
                error,
                backoff_ms,
            } => {
                m.insert("errno".into(), json!(errno));
                m.insert("errno_name".into(), json!(errno_name));
                m.insert("error".into(), json!(error));
                m.insert("backoff_ms".into(), json!(backoff_ms));
            }
            Status::AcceptRecovered { failures } => {
                m.insert("failures".into(), json!(failures));
            }
            Status::AtCapacity { max_conns } => {
                m.insert("max_conns".into(), json!(max_conns));
            }
            Status::ShuttingDown { in_flight, drain_s } => {
                m.insert("in_flight".into(), json!(in_flight));
                m.insert("drain_s".into(), json!(drain_s));
            }
            Status::Stopped { aborted } => {
                m.insert("aborted".into(), json!(aborted));
            }
        }
        Value::Object(m)
    }

    /// The line a person reads (network bytes escaped).
    pub fn human(&self) -> String {
        match self {
            Status::Listening {
                proto,
                addr,
                mode,
                protocol,
                options,
            } => {
                let what = match (mode, protocol) {
                    (Some(m), Some(p)) => format!("{p} protocol, {m} mode; "),
                    _ => format!("{proto}; "),
                };
                format!("Listening at {addr}\n  {what}socket options: {options}")
            }
            Status::Connected {
                proto,
                local,
                remote,
                options,
            } => format!("Connected {proto} {local} -> {remote}\n  socket options: {options}"),
            Status::Reply {
                via,
                from,
                sent,
                reply,
                ..
            } => {
                let sent = printable(sent);
                match reply {
                    Some(r) => format!("Sent {sent}\nResponse from {via} {from}: {}", printable(r)),
                    None => format!("Sent {sent}\nNo response from {via} {from}"),
                }
            }
            Status::Accepted { peer } => format!("Accepted connection from {peer}"),
            Status::Received { message, .. } => format!("Server received: {}", printable(message)),
            Status::Closed {
                peer,
                reason,
                error,
            } => {
                let why = match (*reason, error) {
                    ("eof", _) => String::new(),
                    // The book's server: "Client ('127.0.0.1', 40765) error: received b'...'
                    // then socket closed".
                    ("error", Some(e)) => return format!("Client {peer} error: {}", printable(e)),
                    ("idle", _) => " (idle timeout)".to_string(),
                    ("done", _) => " (after the reply)".to_string(),
                    (r, _) => format!(" ({r})"),
                };
                format!("Client socket to {peer} has closed{why}")
            }
            Status::AcceptError {
                errno_name,
                error,
                backoff_ms,
                ..
            } => format!(
                "accept() failed: {error}{}; backing off {backoff_ms} ms and retrying",
                errno_name.map(|n| format!(" ({n})")).unwrap_or_default()
            ),
            Status::AcceptRecovered { failures } => {
                format!("accept() works again after {failures} failed attempt(s)")
            }
            Status::AtCapacity { max_conns } => format!(
                "{max_conns} connections open (--max-conns): new clients wait in the listen queue"
            ),
            Status::ShuttingDown { in_flight, drain_s } => format!(
                "Shutting down: no longer accepting; {in_flight} connection(s) open, \
                 letting in-flight requests finish (up to {drain_s} s)"
            ),
            Status::Stopped { aborted } => {
                if *aborted == 0 {
                    "Stopped".to_string()
                } else {
                    format!("Stopped; {aborted} connection(s) cut when the drain time ran out")
                }
            }
        }
    }
}

/// Where status lines go: stdout as text or JSON lines, or nowhere (library use, benches).
#[derive(Debug, Clone, Copy)]
pub struct StatusLog {
    format: Option<Format>,
    command: &'static str,
}

impl StatusLog {
    /// Lines on stdout in `format`, for `command` (`"run server"`, `"run client"`,
    /// `"run udp-server"`, `"run udp-client"`).
    pub fn stdout(format: Format, command: &'static str) -> StatusLog {
        StatusLog {
            format: Some(format),
            command,
        }
    }

    /// No output.
    pub fn silent() -> StatusLog {
        StatusLog {
            format: None,
            command: "",
        }
    }

    /// Writes one event; errors (a closed stdout) are ignored on purpose.
    pub fn emit(&self, s: &Status) {
        let Some(format) = self.format else { return };
        let mut out = io::stdout().lock();
        let _ = match format {
            Format::Json => {
                let ts = humantime::format_rfc3339_millis(std::time::SystemTime::now());
                output::json::line(&s.to_json(self.command, &ts.to_string()), &mut out)
            }
            Format::Table => writeln!(out, "{}", s.human()).and_then(|()| out.flush()),
        };
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn peer() -> SocketAddr {
        "127.0.0.1:40765".parse().unwrap()
    }

    #[test]
    fn human_lines_escape_control_characters_from_the_network() {
        let evil = "ok\x1b]0;pwned\x07\x1b[2J\rAccepted connection from 6.6.6.6:1";
        let lines = [
            Status::Received {
                peer: peer(),
                message: evil.into(),
            }
            .human(),
            Status::Reply {
                via: "server",
                from: peer(),
                local: peer(),
                sent: evil.into(),
                reply: Some(evil.into()),
                ok: false,
                elapsed_ms: 0.1,
            }
            .human(),
            Status::Closed {
                peer: peer(),
                reason: "error",
                error: Some(evil.into()),
            }
            .human(),
        ];
        for l in lines {
            assert!(!l.chars().any(|c| c.is_control() && c != '\n'), "{l:?}");
            assert!(l.contains("\\u{1b}"), "{l}");
        }
    }

    #[test]
    fn json_keeps_bytes_exact_and_splits_addresses() {
        let v = Status::Received {
            peer: "[::1]:9".parse().unwrap(),
            message: "a\x1bb".into(),
        }
        .to_json("run server", "2026-01-01T00:00:00.000Z");
        assert_eq!(v["message"], "a\x1bb");
        assert_eq!(v["peer_addr"], "::1");
        assert_eq!(v["peer_port"], 9);
        assert_eq!(v["schema_version"], 1);
        assert_eq!(v["command"], "run server");
        assert_eq!(v["event"], "received");
    }

    #[test]
    fn incomplete_request_is_an_error_line_like_the_books() {
        let l = Status::Closed {
            peer: peer(),
            reason: "error",
            error: Some("received b'Beautiful is better than' then socket closed".into()),
        }
        .human();
        assert_eq!(
            l,
            "Client 127.0.0.1:40765 error: received b'Beautiful is better than' then socket closed"
        );
    }
}
