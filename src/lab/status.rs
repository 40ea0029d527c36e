//! Status lines of the lab server, client and UDP pair: one line of text per event as the
//! book prints them (`Listening at 127.0.0.1:1060`, `Accepted connection from …`), or with
//! `--json` one JSON object per line carrying the same facts. Writing never fails the caller:
//! a closed stdout must not bring a server down.

use std::io::{self, Write};
use std::net::SocketAddr;

use serde::Serialize;

use crate::output::{self, Format};
use crate::sockopt::Applied;

/// One status event. JSON: `{"event": "<snake_case name>", …fields}`.
#[derive(Debug, Clone, Serialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum Status {
    /// A TCP listener or UDP socket is ready, with the options the kernel applied.
    Listening {
        /// `tcp` or `udp`.
        proto: &'static str,
        /// Bound address.
        addr: SocketAddr,
        /// `single`, `threaded` or `async` (TCP server only).
        #[serde(skip_serializing_if = "Option::is_none")]
        mode: Option<&'static str>,
        /// `lab`, `zen`, `echo` (TCP server only).
        #[serde(skip_serializing_if = "Option::is_none")]
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
        #[serde(skip_serializing_if = "Option::is_none")]
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
        /// Connections cut off when the drain time ran out.
        cut_off: usize,
    },
}

impl Status {
    /// The line a person reads.
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
            } => match reply {
                Some(r) => format!("Sent {sent}\nResponse from {via} {from}: {r}"),
                None => format!("Sent {sent}\nNo response from {via} {from}"),
            },
            Status::Accepted { peer } => format!("Accepted connection from {peer}"),
            Status::Received { message, .. } => format!("Server received: {message}"),
            Status::Closed {
                peer,
                reason,
                error,
            } => {
                let why = match (*reason, error) {
                    ("eof", _) => String::new(),
                    ("error", Some(e)) => format!(" (error: {e})"),
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
            Status::Stopped { cut_off } => {
                if *cut_off == 0 {
                    "Stopped".to_string()
                } else {
                    format!("Stopped; {cut_off} connection(s) cut off when the drain time ran out")
                }
            }
        }
    }
}

/// Where status lines go: stdout as text or JSON lines, or nowhere (library use, benches).
#[derive(Debug, Clone, Copy)]
pub struct StatusLog {
    format: Option<Format>,
}

impl StatusLog {
    /// Lines on stdout in `format`.
    pub fn stdout(format: Format) -> StatusLog {
        StatusLog {
            format: Some(format),
        }
    }

    /// No output.
    pub fn silent() -> StatusLog {
        StatusLog { format: None }
    }

    /// Writes one event; errors (a closed stdout) are ignored on purpose.
    pub fn emit(&self, s: &Status) {
        let Some(format) = self.format else { return };
        let mut out = io::stdout().lock();
        let _ = match format {
            Format::Json => output::json::line(s, &mut out),
            Format::Table => writeln!(out, "{}", s.human()).and_then(|()| out.flush()),
        };
    }
}
