//! `netkit who-owns PORT --kill`: stop the processes that hold PORT as a listener, a bound-only
//! TCP socket or a bound UDP socket — never the clients connected to it — after showing them
//! and asking (or `--yes`), then wait until they let go of the port.
//!
//! Refuses PID 1 and netkit itself; as an ordinary user only the user's own processes.

use std::collections::BTreeMap;
use std::io::{self, BufRead, IsTerminal, Write};
use std::os::unix::fs::MetadataExt;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use serde::Serialize;

use super::filters::{apply_proto, snapshot_ports};
use super::who_owns::port_words;
use super::{FOUND, NOTHING, emit_found};
use crate::cli::inventory::WhoOwnsArgs;
use crate::cli::port::PortSet;
use crate::inspect::{self, OwnerScope, Query, SocketEntry, procfd, users};
use crate::output::{Block, Format, Report};

/// How long to wait for the port to be let go after the signal.
const WAIT: Duration = Duration::from_secs(5);

/// A process chosen (or refused) for the signal.
#[derive(Debug, Clone, Serialize)]
pub struct Target {
    /// PID.
    pub pid: u32,
    /// Command name.
    pub command: String,
    /// Its command line (`null` when unknown).
    pub cmdline: Option<String>,
    /// The process's user (`null` when unknown).
    pub user: Option<String>,
    /// The sockets on the port it holds.
    pub holds: Vec<Held>,
    /// Why it was not signalled, when it was not.
    pub refused: Option<String>,
    /// Whether the signal was sent.
    pub signalled: bool,
    /// Whether it let go of the port (exited or closed the sockets) in time.
    pub released: bool,
    /// Inodes of the sockets it holds on the port.
    #[serde(skip)]
    inodes: Vec<u64>,
}

/// A socket a target holds on the port: JSON `{proto, family, state, local_addr, local_port}`.
#[derive(Debug, Clone, Serialize)]
pub struct Held {
    /// TCP or UDP.
    pub proto: inspect::Proto,
    /// IPv4 or IPv6.
    pub family: inspect::Family,
    /// LISTEN, BOUND or UNCONN.
    pub state: inspect::SockState,
    /// Local address.
    pub local_addr: std::net::IpAddr,
    /// Local port.
    pub local_port: u16,
}

impl Held {
    /// `LISTEN 0.0.0.0:8080/tcp`, as the table shows it.
    fn cell(&self) -> String {
        format!(
            "{} {}/{}",
            self.state,
            inspect::fmt_endpoint(self.local_addr, self.local_port),
            self.proto
        )
    }
}

/// What `--kill` prints.
#[derive(Debug, Serialize)]
pub struct KillReport {
    /// The port.
    pub port: u16,
    /// The signal name.
    pub signal: String,
    /// The processes.
    pub targets: Vec<Target>,
    /// True when no LISTEN/BOUND/UNCONN socket remains on the port at the end (TIME_WAIT
    /// leftovers may still refuse a bind: that is `wait-free`'s `bindable`).
    #[serde(rename = "port_released")]
    pub port_free: bool,
    /// Sockets still on the port at the end (TIME_WAIT leftovers, connections).
    pub remaining: Vec<SocketEntry>,
    /// Hints.
    pub notes: Vec<String>,
}

impl Report for KillReport {
    fn human(&self) -> Vec<Block> {
        let rows = self
            .targets
            .iter()
            .map(|t| {
                vec![
                    t.pid.to_string(),
                    t.command.clone(),
                    t.user.clone().unwrap_or_else(|| "?".into()),
                    t.holds
                        .iter()
                        .map(Held::cell)
                        .collect::<Vec<_>>()
                        .join(", "),
                    match (&t.refused, t.signalled, t.released) {
                        (Some(r), _, _) => format!("refused: {r}"),
                        (None, true, true) => format!("SIG{}: released the port", self.signal),
                        (None, true, false) => format!("SIG{}: still holds the port", self.signal),
                        (None, false, _) => "not signalled".into(),
                    },
                ]
            })
            .collect();
        let mut out = vec![Block::table(
            &["PID", "COMMAND", "USER", "HOLDS", "RESULT"],
            rows,
        )];
        out.push(Block::Line(if self.port_free {
            format!("port {}: no listener or bound socket remains", self.port)
        } else {
            format!("port {}: still held", self.port)
        }));
        out
    }
    fn notes(&self) -> Vec<String> {
        self.notes.clone()
    }
    fn command(&self) -> Option<&'static str> {
        Some("who-owns")
    }
}

/// Parses `TERM`, `SIGTERM`, `term`, `15`.
pub fn parse_signal(s: &str) -> Option<(i32, String)> {
    let u = s.trim().to_ascii_uppercase();
    let name = u.strip_prefix("SIG").unwrap_or(&u);
    let table = [
        ("TERM", libc::SIGTERM),
        ("INT", libc::SIGINT),
        ("KILL", libc::SIGKILL),
        ("HUP", libc::SIGHUP),
        ("QUIT", libc::SIGQUIT),
        ("USR1", libc::SIGUSR1),
        ("USR2", libc::SIGUSR2),
    ];
    if let Ok(n) = name.parse::<i32>() {
        let known = table
            .iter()
            .find(|(_, v)| *v == n)
            .map(|(k, _)| k.to_string());
        return (1..=64)
            .contains(&n)
            .then(|| (n, known.unwrap_or_else(|| n.to_string())));
    }
    table
        .iter()
        .find(|(k, _)| *k == name)
        .map(|(k, v)| (*v, k.to_string()))
}

fn process_uid(pid: u32) -> Option<u32> {
    std::fs::metadata(format!("/proc/{pid}"))
        .ok()
        .map(|m| m.uid())
}

fn binders(ports: &PortSet, a: &WhoOwnsArgs) -> anyhow::Result<(Vec<SocketEntry>, Vec<String>)> {
    let mut q = Query {
        owners: OwnerScope::All,
        ..Query::default()
    };
    apply_proto(&mut q, a.filter);
    let snap = snapshot_ports(&q, ports).context("reading the socket table")?;
    Ok((snap.sockets, snap.notes))
}

/// Stops the processes holding the port.
///
/// # Errors
/// Bad signal, unreadable socket table, or no confirmation possible (stdin not a terminal
/// and no `--yes`).
pub fn run(a: &WhoOwnsArgs, f: Format) -> anyhow::Result<i32> {
    let (sig, sig_name) = parse_signal(&a.signal).with_context(|| {
        format!(
            "unknown signal {:?} (use TERM, INT, KILL, HUP, QUIT, USR1, USR2 or a number)",
            a.signal
        )
    })?;
    let ports = a.port_set();
    let words = port_words(&ports);
    let port = ports.ports().first().copied().unwrap_or(0);
    let (sockets, mut notes) = binders(&ports, a)?;
    let me = std::process::id();
    let my_uid = users::current_uid();
    let root = procfd::is_root();
    let mut names = users::UserNames::default();
    // Only processes that hold a LISTEN / BOUND / UNCONN socket on the port: a client
    // connected TO the port has it as its remote port and is never in this list.
    let mut by_pid: BTreeMap<u32, Target> = BTreeMap::new();
    for s in sockets.iter().filter(|s| s.is_binder()) {
        for o in &s.owners {
            let t = by_pid.entry(o.pid).or_insert_with(|| {
                let puid = process_uid(o.pid);
                Target {
                    pid: o.pid,
                    command: o.command.clone(),
                    cmdline: (!o.cmdline.is_empty()).then(|| o.cmdline.clone()),
                    user: puid.map(|u| names.name(u).to_string()),
                    holds: Vec::new(),
                    refused: if o.pid == 1 {
                        Some("PID 1 (init) is never signalled".into())
                    } else if o.pid == me {
                        Some("that is netkit itself".into())
                    } else if !root && puid != Some(my_uid) {
                        Some("another user's process (run as root)".into())
                    } else {
                        None
                    },
                    signalled: false,
                    released: false,
                    inodes: Vec::new(),
                }
            });
            t.inodes.push(s.inode);
            t.holds.push(Held {
                proto: s.proto,
                family: s.family,
                state: s.state,
                local_addr: s.local_addr,
                local_port: s.local_port,
            });
        }
    }
    let unseen = sockets
        .iter()
        .filter(|s| s.is_binder() && s.owners.is_empty())
        .count();
    if unseen > 0 {
        notes.push(format!(
            "{unseen} listening/bound socket(s) on {words} have no visible owner{}",
            if root {
                ""
            } else {
                ": run as root to see and stop them"
            }
        ));
    }
    let mut targets: Vec<Target> = by_pid.into_values().collect();
    let todo: Vec<usize> = (0..targets.len())
        .filter(|&i| targets[i].refused.is_none())
        .collect();
    if todo.is_empty() {
        let r = KillReport {
            port,
            signal: sig_name,
            port_free: !sockets.iter().any(|s| s.is_binder()),
            remaining: sockets,
            targets,
            notes: {
                notes.push(format!("nothing to stop: no process of yours holds {words} as a listener or bound socket"));
                notes
            },
        };
        emit_found(&r, f, false)?;
        return Ok(NOTHING);
    }
    if !a.yes {
        confirm(&targets, &todo, &sig_name, &words)?;
    }
    for &i in &todo {
        let pid = targets[i].pid as libc::pid_t;
        // SAFETY: kill(2) with a pid we just found holding the port and a valid signal number.
        if unsafe { libc::kill(pid, sig) } == 0 {
            targets[i].signalled = true;
        } else {
            targets[i].refused = Some(format!("kill failed: {}", io::Error::last_os_error()));
        }
    }
    // Wait (bounded) until the signalled processes no longer hold a binder socket on the port.
    let deadline = Instant::now() + WAIT;
    let mut left;
    loop {
        let (now_sockets, _) = binders(&ports, a)?;
        left = now_sockets;
        // A socket is let go when it is gone from the kernel's table, not merely from the
        // process's fd table (an exiting process drops its fds before the socket closes).
        let still: Vec<u64> = left
            .iter()
            .filter(|s| s.is_binder())
            .map(|s| s.inode)
            .collect();
        for t in targets.iter_mut().filter(|t| t.signalled) {
            t.released = !t.inodes.iter().any(|i| still.contains(i));
        }
        if targets.iter().filter(|t| t.signalled).all(|t| t.released) || Instant::now() >= deadline
        {
            break;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let port_free = !left.iter().any(|s| s.is_binder());
    let all_released = targets.iter().filter(|t| t.signalled).all(|t| t.released);
    if !all_released {
        notes.push(format!(
            "some processes still hold the port after {}s: try --signal KILL",
            WAIT.as_secs()
        ));
    }
    if left.iter().any(|s| s.is_ownerless()) {
        notes.push(format!(
            "TIME_WAIT/FIN_WAIT2 leftovers remain on {words}: a restart without SO_REUSEADDR may still fail; `netkit wait-free {port}` waits them out"
        ));
    }
    let r = KillReport {
        port,
        signal: sig_name,
        targets,
        port_free,
        remaining: left,
        notes,
    };
    emit_found(&r, f, all_released)?;
    Ok(if all_released { FOUND } else { NOTHING })
}

fn confirm(targets: &[Target], todo: &[usize], sig: &str, words: &str) -> anyhow::Result<()> {
    let stdin = io::stdin();
    if !stdin.is_terminal() {
        bail!("refusing to signal without confirmation: stdin is not a terminal (add --yes)");
    }
    let mut err = io::stderr();
    writeln!(
        err,
        "These processes hold {words} as a listener or bound socket:"
    )?;
    for &i in todo {
        let t = &targets[i];
        writeln!(
            err,
            "  PID {} {} (user {}): {}",
            t.pid,
            t.command,
            t.user.as_deref().unwrap_or("?"),
            t.holds
                .iter()
                .map(Held::cell)
                .collect::<Vec<_>>()
                .join(", ")
        )?;
    }
    write!(err, "Send SIG{sig} to {} process(es)? [y/N] ", todo.len())?;
    err.flush()?;
    let mut line = String::new();
    stdin.lock().read_line(&mut line)?;
    if !matches!(line.trim(), "y" | "Y" | "yes" | "YES") {
        bail!("cancelled: nothing was signalled");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signals_parse_by_name_and_number() {
        assert_eq!(parse_signal("TERM"), Some((libc::SIGTERM, "TERM".into())));
        assert_eq!(
            parse_signal("sigkill"),
            Some((libc::SIGKILL, "KILL".into()))
        );
        assert_eq!(parse_signal("2"), Some((libc::SIGINT, "INT".into())));
        assert_eq!(parse_signal("0"), None);
        assert_eq!(parse_signal("BOGUS"), None);
    }
}
