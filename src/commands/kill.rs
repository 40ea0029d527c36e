//! `netkit who-owns PORT --kill`: stop the processes that hold PORT as a listener, a bound-only
//! TCP socket or a bound UDP socket — never the clients connected to it — after showing them
//! and asking (or `--yes`), then wait until they let go of the port.
//!
//! Refuses PID 1 and netkit itself; as an ordinary user only the user's own processes.
//!
//! Each target is opened as a pidfd (pidfd_open(2)) BEFORE the prompt and checked to still
//! hold the socket after that, and the signal goes through pidfd_send_signal(2): if the
//! process exits while the user reads the prompt and its PID is reused, the signal goes
//! nowhere (ESRCH) instead of hitting the newcomer.
//!
//! Exit codes: [`FREED`] 0, every signalled process let go of the port(s); [`NOTHING`] 1,
//! nothing to stop (or the prompt was declined); [`STILL_HELD`] 3, signalled but a target still
//! holds a port after the wait; 2, an error.

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
use crate::explain::pidfd::Pidfd;
use crate::inspect::{self, OwnerScope, Query, SocketEntry, procfd, users};
use crate::output::{Block, Format, Report};

/// How long to wait for the port to be let go after the signal.
const WAIT: Duration = Duration::from_secs(5);

/// Exit code: every signalled process let go of the port(s).
pub const FREED: i32 = FOUND;
/// Exit code: signalled, but a target still holds a port after the wait.
pub const STILL_HELD: i32 = 3;

/// A process chosen (or refused) for the signal.
#[derive(Debug, Serialize)]
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
    /// The pidfd, opened before the prompt.
    #[serde(skip)]
    pidfd: Option<Pidfd>,
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
    /// The port, when one was asked (`null` for several).
    pub port: Option<u16>,
    /// Every port asked.
    pub ports: Vec<u16>,
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
    /// `port 6000`, `ports 6000, 6001`, for the table's last line.
    #[serde(skip)]
    words: String,
}

impl Report for KillReport {
    fn human(&self) -> Vec<Block> {
        // Nothing found: the note on stderr says so; no empty table header.
        if self.targets.is_empty() {
            return Vec::new();
        }
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
            format!("{}: no listener or bound socket remains", self.words)
        } else {
            format!("{}: still held", self.words)
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

/// Stops the processes holding the port(s).
///
/// # Errors
/// Unreadable socket table, or no confirmation possible (stdin not a terminal and no `--yes`).
pub fn run(a: &WhoOwnsArgs, f: Format) -> anyhow::Result<i32> {
    let (sig, sig_name) = (a.signal.number, a.signal.name.to_string());
    let ports = a.port_set();
    let words = port_words(&ports);
    let short_words = words.strip_prefix("local ").unwrap_or(&words).to_string();
    let port_list = ports.ports();
    let first = port_list.first().copied().unwrap_or(0);
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
            if a.pid.is_some_and(|p| p != o.pid) {
                continue;
            }
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
                    pidfd: None,
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
    // Pin each target before asking: a pidfd names this process, not whoever gets its PID.
    for t in targets.iter_mut().filter(|t| t.refused.is_none()) {
        match Pidfd::open(t.pid) {
            Ok(fd) if still_holds(t.pid, &t.inodes) => t.pidfd = Some(fd),
            Ok(_) => t.refused = Some("let go of the port before the signal".into()),
            Err(e) if e.raw_os_error() == Some(libc::ESRCH) => {
                t.refused = Some("exited before the signal".into());
            }
            Err(e) => t.refused = Some(format!("pidfd_open failed: {e}")),
        }
    }
    let todo: Vec<usize> = (0..targets.len())
        .filter(|&i| targets[i].refused.is_none())
        .collect();
    let mut report = KillReport {
        port: ports.single(),
        ports: port_list.clone(),
        signal: sig_name.clone(),
        port_free: !sockets.iter().any(|s| s.is_binder()),
        remaining: Vec::new(),
        targets: Vec::new(),
        notes: Vec::new(),
        words: short_words,
    };
    if todo.is_empty() {
        notes.push(if targets.is_empty() {
            format!("nothing to stop: nothing holds {words} as a listener or bound socket")
        } else {
            format!(
                "nothing to stop: no process netkit may signal holds {words} as a listener or bound socket"
            )
        });
        report.remaining = sockets;
        report.targets = targets;
        report.notes = notes;
        emit_found(&report, f, false)?;
        return Ok(NOTHING);
    }
    if !a.yes && !confirm(&targets, &todo, &sig_name, &words)? {
        let mut err = crate::output::stderr();
        writeln!(err, "netkit: cancelled: nothing was signalled")?;
        return Ok(NOTHING);
    }
    for &i in &todo {
        let t = &mut targets[i];
        let Some(fd) = &t.pidfd else { continue };
        match fd.send_signal(sig) {
            Ok(()) => t.signalled = true,
            Err(e) if e.raw_os_error() == Some(libc::ESRCH) => {
                t.refused = Some("exited before the signal".into());
            }
            Err(e) => t.refused = Some(format!("pidfd_send_signal failed: {e}")),
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
    let signalled = targets.iter().filter(|t| t.signalled).count();
    let all_released = signalled > 0 && targets.iter().filter(|t| t.signalled).all(|t| t.released);
    if signalled > 0 && !all_released {
        notes.push(format!(
            "{} still hold the port after SIG{sig_name} and {}s: try --signal KILL",
            targets
                .iter()
                .filter(|t| t.signalled && !t.released)
                .map(|t| format!("PID {}", t.pid))
                .collect::<Vec<_>>()
                .join(", "),
            WAIT.as_secs()
        ));
    }
    if left.iter().any(|s| s.is_ownerless()) {
        notes.push(format!(
            "TIME_WAIT/FIN_WAIT2 leftovers remain on {words}: a restart without SO_REUSEADDR may still fail; `netkit wait-free {first}` waits them out"
        ));
    }
    report.targets = targets;
    report.port_free = port_free;
    report.remaining = left;
    report.notes = notes;
    emit_found(&report, f, all_released)?;
    Ok(if all_released {
        FREED
    } else if signalled > 0 {
        STILL_HELD
    } else {
        NOTHING
    })
}

/// True when `pid` still has one of the socket `inodes` open (read after its pidfd was
/// opened, so the pidfd is known to name the holder).
fn still_holds(pid: u32, inodes: &[u64]) -> bool {
    crate::explain::pidfd::socket_fds(pid)
        .map(|fds| fds.iter().any(|(_, i)| inodes.contains(i)))
        .unwrap_or(false)
}

/// Asks on the terminal; `Ok(false)` when the user declines.
fn confirm(targets: &[Target], todo: &[usize], sig: &str, words: &str) -> anyhow::Result<bool> {
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
    Ok(matches!(line.trim(), "y" | "Y" | "yes" | "YES"))
}
