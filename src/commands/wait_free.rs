//! `netkit wait-free PORT...`: trial-bind each port with the program's options until every
//! one passes or the timeout. A countdown follows the TIME_WAIT expiry; a port held by a live
//! process (LISTEN, BOUND, UNCONN) is named with its holder, since only its exit frees it.

use std::io::{IsTerminal, Write};
use std::time::{Duration, Instant};

use anyhow::bail;
use serde::Serialize;

use super::emit_found;
use super::explain::trial_opts;
use crate::cli::explain::WaitFreeArgs;
use crate::explain::trial::{self, TrialOpts};
use crate::inspect::{self, Owner, OwnerScope, Proto, Query, SockState, procfd, users};
use crate::output::{Block, Format, Report};

/// More ports than this is a typo, not a wait.
const MAX_PORTS: usize = 1024;

/// What `netkit wait-free` prints at the end.
#[derive(Debug, Serialize)]
pub struct WaitReport {
    /// The port, when one was asked (`null` for several).
    pub port: Option<u16>,
    /// Every port asked.
    pub ports: Vec<u16>,
    /// True when every trial bind passed before the timeout.
    pub bindable: bool,
    /// How long netkit waited, ms.
    pub waited_ms: u64,
    /// The last errno of a port that is still not bindable.
    pub errno: Option<&'static str>,
    /// Ports still not bindable at the end.
    pub pending: Vec<u16>,
    /// Live processes seen holding a pending port (a timer never frees those).
    pub holders: Vec<Owner>,
    /// Hints.
    pub notes: Vec<String>,
    /// How many of `notes` were already printed while waiting (not printed again).
    #[serde(skip)]
    printed: usize,
}

impl Report for WaitReport {
    fn human(&self) -> Vec<Block> {
        let what = match self.port {
            Some(p) => format!("port {p}"),
            None => format!(
                "ports {}",
                self.ports
                    .iter()
                    .map(u16::to_string)
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        };
        let waited = self.waited_ms as f64 / 1000.0;
        vec![Block::Line(if self.bindable {
            format!("{what}: bindable (waited {waited:.1}s)")
        } else if self.port.is_some() {
            format!(
                "{what}: still not bindable after {waited:.1}s ({})",
                self.errno.unwrap_or("error")
            )
        } else {
            format!(
                "{what}: {} still not bindable after {waited:.1}s ({})",
                self.pending
                    .iter()
                    .map(u16::to_string)
                    .collect::<Vec<_>>()
                    .join(", "),
                self.errno.unwrap_or("error")
            )
        })]
    }
    fn notes(&self) -> Vec<String> {
        self.notes.get(self.printed..).unwrap_or_default().to_vec()
    }
    fn command(&self) -> Option<&'static str> {
        Some("wait-free")
    }
}

/// What the table says about a port's leftovers and live holders.
struct Holding {
    /// The latest TIME_WAIT / FIN_WAIT2 expiry, when no live socket holds the port.
    deadline: Option<Instant>,
    /// Live LISTEN / BOUND / UNCONN sockets on the port of the trial's protocol, with owners.
    live: Vec<inspect::SocketEntry>,
}

fn holding(t: &TrialOpts) -> Holding {
    let q = Query {
        tcp: t.proto == Proto::Tcp,
        udp: t.proto == Proto::Udp,
        tcp_states: vec![
            SockState::TimeWait,
            SockState::FinWait2,
            SockState::Listen,
            SockState::Bound,
        ],
        local_port: Some(t.port),
        owners: OwnerScope::Binders,
        ..Query::default()
    };
    let Ok(snap) = inspect::snapshot(&q) else {
        return Holding {
            deadline: None,
            live: Vec::new(),
        };
    };
    let live: Vec<_> = snap
        .sockets
        .iter()
        .filter(|s| s.is_binder())
        .filter(|s| {
            inspect::addrs_overlap(
                s.local_addr,
                s.family == inspect::Family::Inet6,
                t.addr,
                t.v6only == Some(false),
            )
        })
        .cloned()
        .collect();
    let deadline = if live.is_empty() {
        snap.sockets
            .iter()
            .filter(|s| s.is_ownerless())
            .filter_map(|s| s.expires_ms)
            .max()
            .map(|ms| Instant::now() + Duration::from_millis(ms))
    } else {
        None
    };
    Holding { deadline, live }
}

/// "held by PID 123 (python3) listening on 127.0.0.1:6000: waiting helps only if it exits".
fn holder_note(port: u16, live: &[inspect::SocketEntry]) -> String {
    let me = users::current_uid();
    let root = procfd::is_root();
    let mut names = Vec::new();
    let mut can_signal = true;
    for s in live {
        if s.owners.is_empty() {
            can_signal &= root || s.uid == Some(me);
        }
        for o in &s.owners {
            let n = format!("PID {} ({})", o.pid, o.command);
            if !names.contains(&n) {
                names.push(n);
            }
            can_signal &= root || s.uid == Some(me);
        }
    }
    let s = &live[0];
    let who = if names.is_empty() {
        format!(
            "a socket of user {} (run as root to see the process)",
            s.user.as_deref().unwrap_or("?")
        )
    } else {
        names.join(", ")
    };
    let fix = if can_signal && !names.is_empty() {
        format!("; `netkit who-owns {port} --kill` stops it")
    } else {
        "; ask its owner or root to stop it".to_string()
    };
    format!(
        "port {port} is held by {who}, {} on {}: waiting helps only if it exits or closes the socket{fix}",
        match s.state {
            SockState::Listen => "listening",
            SockState::Unconn => "bound (UDP)",
            _ => "bound",
        },
        s.local()
    )
}

/// `netkit wait-free`.
///
/// # Errors
/// Bad arguments, or an error that waiting cannot fix (EACCES, EINVAL).
pub fn run(a: &WaitFreeArgs, f: Format) -> anyhow::Result<i32> {
    // One trial per (port, address): a /udp suffix or a host overrides --udp / --addr.
    let mut trials: Vec<TrialOpts> = Vec::new();
    for spec in &a.ports {
        let mut b = a.bind.clone();
        if let Some(p) = spec.proto {
            b.udp = p == Proto::Udp;
        }
        let addrs: Vec<String> = if spec.addrs.is_empty() {
            vec![b.addr.clone()]
        } else {
            spec.addrs.iter().map(|a| a.to_string()).collect()
        };
        for port in spec.ports.iter().cloned().flatten() {
            for addr in &addrs {
                let mut bb = b.clone();
                bb.addr = addr.clone();
                trials.push(trial_opts(&bb, port)?);
            }
            if trials.len() > MAX_PORTS {
                bail!("more than {MAX_PORTS} ports to wait for: give a smaller range");
            }
        }
    }
    let mut ports: Vec<u16> = trials.iter().map(|t| t.port).collect();
    ports.sort_unstable();
    ports.dedup();

    let started = Instant::now();
    let deadline = started + Duration::from_secs_f64(a.timeout);
    let poll = Duration::from_millis(150);
    let mut err = crate::output::stderr();
    let tty = std::io::stderr().is_terminal();
    let mut pending: Vec<usize> = (0..trials.len()).collect();
    let mut last_errno: Option<&'static str> = None;
    let mut told_holder: Vec<u16> = Vec::new();
    let mut holders: Vec<Owner> = Vec::new();
    let mut notes: Vec<String> = Vec::new();
    let mut deadlines: Vec<Option<Option<Instant>>> = vec![None; trials.len()];
    let mut last_shown: Option<(u16, u64)> = None;
    loop {
        let mut still = Vec::new();
        for &i in &pending {
            let o = trial::run(&trials[i]);
            if o.ok {
                continue;
            }
            let port = trials[i].port;
            if matches!(o.errno, Some(libc::EACCES) | Some(libc::EINVAL)) {
                bail!(
                    "port {port} cannot become bindable by waiting: {} (run `netkit explain {port}`)",
                    o.errno_name().unwrap_or("error"),
                );
            }
            last_errno = o.errno_name();
            still.push(i);
        }
        pending = still;
        let now = Instant::now();
        if pending.is_empty() || now >= deadline {
            break;
        }
        // The first pending port drives the countdown line; a live holder is named once.
        let i = pending[0];
        let port = trials[i].port;
        let twd = *deadlines[i].get_or_insert_with(|| {
            let h = holding(&trials[i]);
            if !h.live.is_empty() && !told_holder.contains(&port) {
                told_holder.push(port);
                let note = holder_note(port, &h.live);
                if tty {
                    let _ = writeln!(err, "\r\x1b[K{note}");
                } else {
                    let _ = writeln!(err, "{note}");
                }
                notes.push(note);
                for s in &h.live {
                    for o in &s.owners {
                        if !holders.iter().any(|x| x.pid == o.pid) {
                            holders.push((**o).clone());
                        }
                    }
                }
            }
            h.deadline
        });
        let left_timeout = deadline.saturating_duration_since(now).as_secs();
        let errno = last_errno.unwrap_or("busy");
        let line = match twd {
            Some(d) if d > now => {
                let s = d.saturating_duration_since(now).as_secs() + 1;
                (
                    s,
                    format!("port {port}: {errno} — TIME_WAIT expires in {s}s"),
                )
            }
            _ => (
                left_timeout,
                format!("port {port}: {errno} — waiting (timeout in {left_timeout}s)"),
            ),
        };
        if last_shown != Some((port, line.0)) {
            last_shown = Some((port, line.0));
            let _ = if tty {
                write!(err, "\r\x1b[K{}", line.1)
            } else {
                writeln!(err, "{}", line.1)
            };
            let _ = err.flush();
        }
        std::thread::sleep(poll.min(deadline.saturating_duration_since(now)));
    }
    if tty && last_shown.is_some() {
        let _ = writeln!(err);
    }
    drop(err);
    let mut pending_ports: Vec<u16> = pending.iter().map(|&i| trials[i].port).collect();
    pending_ports.sort_unstable();
    pending_ports.dedup();
    let bindable = pending_ports.is_empty();
    let printed = if bindable { 0 } else { notes.len() };
    // Ports the countdown never reached (--timeout 0, several pending): name their holders too.
    for &p in &pending_ports {
        if told_holder.contains(&p) {
            continue;
        }
        if let Some(&i) = pending.iter().find(|&&i| trials[i].port == p) {
            let h = holding(&trials[i]);
            if !h.live.is_empty() {
                told_holder.push(p);
                notes.push(holder_note(p, &h.live));
                for s in &h.live {
                    for o in &s.owners {
                        if !holders.iter().any(|x| x.pid == o.pid) {
                            holders.push((**o).clone());
                        }
                    }
                }
            }
        }
    }
    if let Some(p) = pending_ports.first() {
        notes.push(format!("run `netkit explain {p}` to see why"));
    }
    let r = WaitReport {
        port: (ports.len() == 1).then(|| ports[0]),
        ports,
        bindable,
        waited_ms: started.elapsed().as_millis() as u64,
        errno: if bindable { None } else { last_errno },
        pending: pending_ports,
        holders: if bindable { Vec::new() } else { holders },
        notes: if bindable { Vec::new() } else { notes },
        printed,
    };
    emit_found(&r, f, r.bindable)
}
