//! `netkit wait-listen PORT... [-- CMD]`: poll with TCP connects until every port accepts,
//! then exec CMD. A connect that succeeds is closed at once (the server sees an empty
//! connection, as with wait-port and wait-for-it); refused, unreachable and timed-out
//! connects are retried every 100 ms until `--timeout`.

use std::io::{IsTerminal, Write};
use std::net::{IpAddr, SocketAddr, TcpStream, ToSocketAddrs};
use std::os::unix::process::CommandExt;
use std::time::{Duration, Instant};

use anyhow::bail;
use serde::Serialize;

use super::emit_found;
use crate::cli::wait::WaitListenArgs;
use crate::inspect::{Proto, fmt_endpoint};
use crate::output::{Block, Format, Report};

/// More targets than this is a typo (a range such as 1-65535), not a wait.
const MAX_TARGETS: usize = 1024;
/// Pause between rounds.
const POLL: Duration = Duration::from_millis(100);
/// The longest one connect() may take (a listener whose accept queue is full drops SYNs).
const CONNECT: Duration = Duration::from_millis(1000);

/// One port to wait for.
#[derive(Debug, Serialize)]
pub struct Target {
    /// The host as typed (`localhost`, `127.0.0.1`).
    pub host: String,
    /// The address that accepted, `null` while none has.
    pub target_addr: Option<IpAddr>,
    /// The port.
    pub target_port: u16,
    /// It accepted a connection.
    pub ready: bool,
    /// When it first accepted, ms after the start.
    pub ready_after_ms: Option<u64>,
    /// The addresses tried.
    #[serde(skip)]
    addrs: Vec<IpAddr>,
}

impl Target {
    fn label(&self) -> String {
        match self.addrs.as_slice() {
            [one] if self.host.parse::<IpAddr>().is_ok() => fmt_endpoint(*one, self.target_port),
            _ => format!("{}:{}", self.host, self.target_port),
        }
    }
}

/// What `wait-listen` reports.
#[derive(Debug, Serialize)]
pub struct WaitListenReport {
    /// Every target accepted before the timeout.
    pub ready: bool,
    /// How long netkit waited, ms.
    pub waited_ms: u64,
    /// The timeout, ms.
    pub timeout_ms: u64,
    /// The ports.
    pub targets: Vec<Target>,
    /// Hints (also printed on stderr).
    pub notes: Vec<String>,
}

impl Report for WaitListenReport {
    /// Nothing on stdout: it belongs to CMD. The outcome is a note on stderr.
    fn human(&self) -> Vec<Block> {
        Vec::new()
    }
    fn notes(&self) -> Vec<String> {
        self.notes.clone()
    }
    fn command(&self) -> Option<&'static str> {
        Some("wait-listen")
    }
}

fn resolve(host: &str) -> anyhow::Result<Vec<IpAddr>> {
    let host = host.trim_start_matches('[').trim_end_matches(']');
    if let Ok(a) = host.parse::<IpAddr>() {
        return Ok(vec![a]);
    }
    let mut v: Vec<IpAddr> = match (host, 0).to_socket_addrs() {
        Ok(it) => it.map(|a| a.ip()).collect(),
        Err(e) => bail!("cannot resolve --host '{host}': {e}"),
    };
    v.sort();
    v.dedup();
    if v.is_empty() {
        bail!("cannot resolve --host '{host}': no addresses");
    }
    Ok(v)
}

/// Waits, reports, and execs CMD when every port accepts.
///
/// # Errors
/// A UDP port, too many ports, an unresolvable host, or CMD that cannot be run.
pub fn run(a: &WaitListenArgs, f: Format) -> anyhow::Result<i32> {
    let ports = a.port_set();
    if let Some(s) = ports.0.iter().find(|s| s.proto == Some(Proto::Udp)) {
        bail!(
            "'{}': wait-listen waits for a TCP accept; a UDP port cannot be connected to",
            s.text
        );
    }
    let default_addrs = resolve(&a.host)?;
    let mut targets = Vec::new();
    for s in &ports.0 {
        let (host, addrs) = if s.addrs.is_empty() {
            (a.host.clone(), default_addrs.clone())
        } else {
            let host = s
                .text
                .rsplit_once(':')
                .map(|(h, _)| h.trim_start_matches('[').trim_end_matches(']').to_string())
                .unwrap_or_default();
            (host, s.addrs.clone())
        };
        for p in s.ports.iter().cloned().flatten() {
            if !targets
                .iter()
                .any(|t: &Target| t.target_port == p && t.addrs == addrs)
            {
                targets.push(Target {
                    host: host.clone(),
                    target_addr: None,
                    target_port: p,
                    ready: false,
                    ready_after_ms: None,
                    addrs: addrs.clone(),
                });
            }
            if targets.len() > MAX_TARGETS {
                bail!("more than {MAX_TARGETS} ports to wait for: give a smaller range");
            }
        }
    }

    let started = Instant::now();
    let deadline = started + Duration::from_secs_f64(a.timeout);
    let mut err = crate::output::stderr();
    let tty = std::io::stderr().is_terminal();
    let mut shown = false;
    loop {
        for t in targets.iter_mut().filter(|t| !t.ready) {
            let left = deadline.saturating_duration_since(Instant::now());
            let limit = CONNECT.min(left.max(Duration::from_millis(50)));
            if let Some(ip) = t.addrs.iter().copied().find(|&ip| {
                TcpStream::connect_timeout(&SocketAddr::new(ip, t.target_port), limit).is_ok()
            }) {
                t.ready = true;
                t.target_addr = Some(ip);
                t.ready_after_ms = Some(started.elapsed().as_millis() as u64);
            }
        }
        let now = Instant::now();
        if targets.iter().all(|t| t.ready) || now >= deadline {
            break;
        }
        if tty {
            let waiting: Vec<String> = targets
                .iter()
                .filter(|t| !t.ready)
                .take(3)
                .map(Target::label)
                .collect();
            let more = targets.iter().filter(|t| !t.ready).count() - waiting.len();
            let _ = write!(
                err,
                "\r\x1b[Kwaiting for {}{} to accept: {} of {} ready, {}s left",
                waiting.join(", "),
                if more > 0 {
                    format!(" and {more} more")
                } else {
                    String::new()
                },
                targets.iter().filter(|t| t.ready).count(),
                targets.len(),
                deadline.saturating_duration_since(now).as_secs() + 1
            );
            let _ = err.flush();
            shown = true;
        }
        std::thread::sleep(POLL.min(deadline.saturating_duration_since(now)));
    }
    if shown {
        let _ = write!(err, "\r\x1b[K");
        let _ = err.flush();
    }
    drop(err);
    let ready = targets.iter().all(|t| t.ready);
    let waited_ms = started.elapsed().as_millis() as u64;
    let mut notes = Vec::new();
    if ready {
        notes.push(format!(
            "{} accept{} connections (after {:.1}s)",
            targets
                .iter()
                .map(Target::label)
                .collect::<Vec<_>>()
                .join(", "),
            if targets.len() == 1 { "s" } else { "" },
            waited_ms as f64 / 1000.0
        ));
    } else {
        let missing: Vec<String> = targets
            .iter()
            .filter(|t| !t.ready)
            .map(Target::label)
            .collect();
        notes.push(format!(
            "timed out after {:.1}s: nothing accepts on {}{}",
            waited_ms as f64 / 1000.0,
            missing.join(", "),
            if a.cmd.is_empty() {
                String::new()
            } else {
                "; the command was not run".to_string()
            }
        ));
        if let Some(t) = targets.iter().find(|t| !t.ready) {
            notes.push(format!(
                "see what holds the port, if anything: `netkit who-owns {}`",
                t.target_port
            ));
        }
    }
    let r = WaitListenReport {
        ready,
        waited_ms,
        timeout_ms: (a.timeout * 1000.0) as u64,
        targets,
        notes,
    };
    let code = emit_found(&r, f, ready)?;
    if !ready || a.cmd.is_empty() {
        return Ok(code);
    }
    let e = std::process::Command::new(&a.cmd[0])
        .args(&a.cmd[1..])
        .exec();
    let name = a.cmd[0].to_string_lossy();
    let mut err = crate::output::stderr();
    let _ = writeln!(err, "netkit: cannot run '{name}': {e}");
    Ok(if e.kind() == std::io::ErrorKind::NotFound {
        127
    } else {
        126
    })
}
