//! Explains a failed bind()/connect() of a lab socket. The TCP client's EADDRINUSE at bind
//! and EADDRNOTAVAIL at connect go through the `explain` engine
//! ([`crate::explain::port::connect_failure`]: trial bind, causes, fixes); everything
//! else, and the engine's own failure, gets the short inventory-based explanation here: the
//! errno by name and the sockets that hold the local port (their owner, or for a TIME_WAIT
//! the seconds left). It only reads and never changes anything.

use std::net::SocketAddr;

use crate::inspect::{self, OwnerScope, Proto, Query, SockState, SocketEntry};
use crate::output::{Format, fmt_ms};
use crate::sockopt::SocketError;

/// The symbolic name of an errno ([`crate::errno::name`], the crate's one table).
///
/// ```
/// assert_eq!(netkit::lab::diagnose::errno_name(98), Some("EADDRINUSE"));
/// ```
pub use crate::errno::name as errno_name;

/// Lines explaining `err`, for a socket of `proto` whose local address was `local` (for a
/// connect failure, the address the client had bound). Empty when there is nothing to add
/// beyond the error itself.
pub fn explain(err: &SocketError, proto: Proto, local: Option<SocketAddr>) -> Vec<String> {
    let Some(errno) = err.errno() else {
        return Vec::new();
    };
    let name = errno_name(errno).unwrap_or("errno");
    let mut lines = Vec::new();
    match (err.stage, errno) {
        ("bind", libc::EADDRINUSE) => {
            let port = err.addr.port();
            lines.push(format!(
                "{name} ({errno}): {proto} port {port} is already taken on an overlapping address:"
            ));
            let holders = holders(proto, port, |_| true);
            if holders.is_empty() {
                lines.push(
                    "  no socket on that port is visible now (it may have just closed, or belong \
                     to another network namespace)"
                        .into(),
                );
            }
            lines.extend(holders.iter().map(describe));
            if holders.iter().any(|s| s.state == SockState::TimeWait) {
                lines.push(
                    "  a TIME_WAIT blocks the bind unless both the old and the new socket set \
                     SO_REUSEADDR (BIND-RULES.md rule 7); it lasts 60 s"
                        .into(),
                );
            }
            match proto {
                Proto::Tcp => lines.push(
                    "  hint: let the kernel choose a port (port 0 / --bind-port 0), or stop the holder"
                        .into(),
                ),
                Proto::Udp => lines.push(
                    "  hint: two UDP sockets can share a port only when BOTH set SO_REUSEADDR or \
                     BOTH set SO_REUSEPORT (--reuseaddr, --reuseport, --listen-multiple; \
                     BIND-RULES.md U4)"
                        .into(),
                ),
            }
        }
        ("connect", libc::EADDRNOTAVAIL) if local.is_some_and(|l| l.port() != 0) => {
            let Some(l) = local else { return lines };
            let remote = err.addr;
            lines.push(format!(
                "{name} ({errno}): the connection {l} -> {remote} already exists; a 4-tuple must be \
                 unique, and the kernel checks it at connect(), not at bind() (BIND-RULES.md rule 12)"
            ));
            let same = holders(proto, l.port(), |s| {
                s.remote_port == Some(remote.port())
                    && s.remote_addr.map(inspect::canonical) == Some(inspect::canonical(remote.ip()))
            });
            lines.extend(same.iter().map(describe));
            lines.push(
                "  hint: leave out --bind-port (or use --bind-port 0) so each connection gets its \
                 own source port"
                    .into(),
            );
        }
        ("connect", libc::ECONNREFUSED) => lines.push(format!(
            "{name} ({errno}): nothing is listening on {} (start it first, e.g. `netkit run server` \
             or `netkit run proxy`)",
            err.addr
        )),
        (_, libc::EACCES) => lines.push(format!(
            "{name} ({errno}): ports below 1024 need root or CAP_NET_BIND_SERVICE (BIND-RULES.md rule 14)"
        )),
        ("bind", libc::EADDRNOTAVAIL) => lines.push(format!(
            "{name} ({errno}): {} is not an address of this host (BIND-RULES.md rule 15)",
            err.addr.ip()
        )),
        _ => {}
    }
    lines
}

/// Prints the explanation of a failed socket call (indented lines on stderr, or one
/// `{"event":"error", …}` JSON line on stdout) and turns the error into the one-line error
/// `main` prints.
pub fn failure(
    e: SocketError,
    proto: Proto,
    local: Option<SocketAddr>,
    format: Format,
    command: &'static str,
) -> anyhow::Error {
    let lines = explain(&e, proto, local);
    report(&e, &lines, format, command);
    // SocketError's message already ends with its source; a chained source would repeat it.
    anyhow::anyhow!("{e}")
}

/// Like [`failure`], for the TCP client: EADDRINUSE at bind() and EADDRNOTAVAIL at
/// connect() get the explain engine's diagnosis (on stderr as a report, or as the
/// `explanation` lines of the JSON error event); other errors get [`explain`]'s lines.
pub fn client_failure(
    e: SocketError,
    local: Option<SocketAddr>,
    remote: SocketAddr,
    opts: &crate::sockopt::SockOpts,
    format: Format,
    command: &'static str,
) -> anyhow::Error {
    let engine = matches!(
        (e.stage, e.errno()),
        ("bind", Some(libc::EADDRINUSE)) | ("connect", Some(libc::EADDRNOTAVAIL))
    );
    let report = engine
        .then(|| crate::explain::port::connect_failure(local, remote, opts, &e).ok())
        .flatten();
    match report {
        Some(r) => engine_report(e, &r, format, command),
        None => failure(e, Proto::Tcp, local, format, command),
    }
}

/// Like [`failure`], for a TCP listener (server, proxy): EADDRINUSE gets the explain
/// engine's diagnosis for exactly the listener's options.
pub fn listen_failure(
    e: SocketError,
    opts: &crate::sockopt::SockOpts,
    format: Format,
    command: &'static str,
) -> anyhow::Error {
    let report = (e.errno() == Some(libc::EADDRINUSE))
        .then(|| crate::explain::port::listen(e.addr, opts).ok())
        .flatten();
    match report {
        Some(r) => engine_report(e, &r, format, command),
        None => failure(e, Proto::Tcp, None, format, command),
    }
}

/// Prints the explain engine's report about `e` (stderr table, or the JSON error event's
/// `explanation`) and returns the one-line error for `main`.
fn engine_report(
    e: SocketError,
    report: &crate::explain::ExplainReport,
    format: Format,
    command: &'static str,
) -> anyhow::Error {
    let errno = e.errno().unwrap_or(0);
    let head = format!(
        "{} ({errno}) at {}() {}: why, from `netkit explain`:",
        errno_name(errno).unwrap_or("errno"),
        e.stage,
        e.addr
    );
    match format {
        Format::Table => {
            eprintln!("{head}");
            let _ = crate::output::emit(
                report,
                Format::Table,
                std::io::stderr().lock(),
                std::io::stderr().lock(),
            );
        }
        Format::Json => {
            let mut lines = vec![head];
            lines.extend(
                report
                    .causes
                    .iter()
                    .map(|c| format!("[{}] {} Fix: {}", c.kind, c.message, c.fix)),
            );
            report_lines(&e, &lines, format, command);
        }
    }
    anyhow::anyhow!("{e}")
}

/// Prints `lines` about `e` as [`failure`] does.
pub fn report(e: &SocketError, lines: &[String], format: Format, command: &'static str) {
    report_lines(e, lines, format, command)
}

/// The JSON error event carries the component's envelope (`schema_version`, `command`,
/// `ts`) and the failed address split, like every other lab event.
fn report_lines(e: &SocketError, lines: &[String], format: Format, command: &'static str) {
    #[derive(serde::Serialize)]
    struct ErrorLine<'a> {
        schema_version: u32,
        command: &'static str,
        ts: String,
        event: &'static str,
        stage: &'static str,
        local_addr: std::net::IpAddr,
        local_port: u16,
        errno: Option<i32>,
        errno_name: Option<&'static str>,
        error: String,
        explanation: &'a [String],
    }
    match format {
        Format::Json => {
            let line = ErrorLine {
                schema_version: 1,
                command,
                ts: humantime::format_rfc3339_millis(std::time::SystemTime::now()).to_string(),
                event: "error",
                stage: e.stage,
                local_addr: e.addr.ip(),
                local_port: e.addr.port(),
                errno: e.errno(),
                errno_name: e.errno().and_then(errno_name),
                error: e.source.to_string(),
                explanation: lines,
            };
            let _ = crate::output::json::line(&line, &mut std::io::stdout().lock());
        }
        Format::Table => {
            for l in lines {
                eprintln!("{l}");
            }
        }
    }
}

fn holders(proto: Proto, port: u16, keep: impl Fn(&SocketEntry) -> bool) -> Vec<SocketEntry> {
    let q = Query {
        tcp: proto == Proto::Tcp,
        udp: proto == Proto::Udp,
        local_port: Some(port),
        owners: OwnerScope::All,
        ..Query::default()
    };
    match inspect::snapshot(&q) {
        Ok(s) => s
            .sockets
            .into_iter()
            .filter(|s| s.local_port == port && keep(s))
            .collect(),
        Err(_) => Vec::new(),
    }
}

/// `  TIME_WAIT 127.0.0.1:5000 -> 127.0.0.1:8888, expires in 59.4s (no process owns it)`.
fn describe(s: &SocketEntry) -> String {
    let mut line = format!("  {} {} {}", s.proto, s.state.name(), s.local());
    if s.remote_port.is_some() {
        line.push_str(&format!(" -> {}", s.remote()));
    }
    let timer =
        s.state == SockState::TimeWait || s.state == SockState::FinWait2 && s.owners.is_empty();
    if let (true, Some(ms)) = (timer, s.expires_ms) {
        line.push_str(&format!(", expires in {}", fmt_ms(ms)));
    }
    if s.owners.is_empty() {
        if s.inode == 0 {
            line.push_str(" (no process owns it)");
        } else {
            line.push_str(" (owner not visible; try as root)");
        }
    } else {
        let owners: Vec<String> = s
            .owners
            .iter()
            .map(|o| format!("pid {} ({})", o.pid, o.command))
            .collect();
        line.push_str(&format!(" held by {}", owners.join(", ")));
    }
    line
}
