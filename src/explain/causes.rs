//! The diagnosis: from the trial outcomes and the inventory of the port to the causes, each
//! with evidence and the fix that works here. Pure functions over data gathered by
//! `commands::explain`; every rule cites its row in BIND-RULES.md §1.

use std::collections::{HashMap, HashSet};
use std::net::IpAddr;

use serde::Serialize;

use super::trial::{Outcome, TrialOpts};
use crate::inspect::{
    Family, Proto, SockState, SocketEntry, addrs_overlap, canonical, fmt_endpoint,
};
use crate::sockopt::Applied;

/// One reason for the verdict, with evidence and a fix.
#[derive(Debug, Clone, Serialize)]
pub struct Cause {
    /// Stable machine name (`listening`, `time_wait`, `reuseport_uid_mismatch`, ...).
    pub kind: &'static str,
    /// What is going on, in plain words, with the evidence.
    pub message: String,
    /// What works here.
    pub fix: String,
    /// Seconds until the kernel drops the holder by itself (TIME_WAIT, FIN_WAIT2).
    pub seconds_left: Option<u64>,
    /// The sockets involved, in the inventory's schema.
    pub sockets: Vec<SocketEntry>,
}

/// Everything the diagnosis looks at.
#[derive(Debug, Clone)]
pub struct Evidence<'a> {
    /// The user's trial.
    pub trial: &'a TrialOpts,
    /// Its outcome.
    pub outcome: Outcome,
    /// The same trial with SO_REUSEADDR and without SO_REUSEPORT (run when the first one
    /// failed without SO_REUSEADDR). Never both flags: see KERNEL-FACTS.md "Bind buckets".
    pub with_reuseaddr: Option<Outcome>,
    /// The same trial with SO_REUSEPORT and without SO_REUSEADDR (run when the first one
    /// failed without SO_REUSEPORT).
    pub with_reuseport: Option<Outcome>,
    /// The trial as an unprivileged user (run as root for ports below
    /// `ip_unprivileged_port_start`).
    pub unprivileged: Option<Outcome>,
    /// Every socket on the port (TCP all states incl. BOUND, UDP), owners resolved.
    pub sockets: &'a [SocketEntry],
    /// Holders' options read through pidfd_getfd, by inode.
    pub flags: &'a HashMap<u64, Applied>,
    /// Inodes of sockets that a process inherited from its parent (or shares with others).
    pub inherited: &'a HashMap<u64, String>,
    /// Local listening endpoints (canonical address, port) on this host, to tell an outgoing
    /// connection from an accepted one.
    pub local_listeners: &'a HashSet<(IpAddr, u16)>,
    /// `net.ipv4.ip_local_port_range`.
    pub ephemeral: (u16, u16),
    /// `net.ipv4.ip_unprivileged_port_start`.
    pub unpriv_start: u32,
    /// `net.ipv6.bindv6only`.
    pub bindv6only: bool,
    /// A port that is bindable now, to suggest.
    pub spare_port: Option<u16>,
    /// For a port-0 trial: how many distinct ports of the ephemeral range are in use by the
    /// trial's protocol, with some examples (rule 13).
    pub ephemeral_used: Option<(usize, Vec<SocketEntry>)>,
}

impl Evidence<'_> {
    fn flag(&self, s: &SocketEntry) -> Option<&Applied> {
        self.flags.get(&s.inode)
    }

    /// Whether a socket's IPv6 wildcard covers IPv4: read when possible, else the default.
    fn dual(&self, s: &SocketEntry) -> bool {
        if s.family != Family::Inet6 {
            return false;
        }
        match self.flag(s).and_then(|f| f.v6only) {
            Some(v6only) => !v6only,
            None => !self.bindv6only,
        }
    }

    /// The sockets of the trial's protocol on the port whose address overlaps the trial's
    /// (BIND-RULES.md §0; rule 7c for TIME_WAIT scope follows from the same test).
    fn overlapping(&self) -> Vec<&SocketEntry> {
        self.sockets
            .iter()
            .filter(|s| s.proto == self.trial.proto && s.local_port == self.trial.port)
            .filter(|s| {
                addrs_overlap(
                    s.local_addr,
                    self.dual(s),
                    self.trial.addr,
                    self.trial.dual_stack(),
                )
            })
            .collect()
    }

    fn in_ephemeral(&self) -> bool {
        (self.ephemeral.0..=self.ephemeral.1).contains(&self.trial.port)
    }

    fn another_port(&self) -> String {
        match self.spare_port {
            Some(p) => format!("pick another port ({p} is free now: `netkit free-port`)"),
            None => "pick another port (`netkit free-port`)".to_string(),
        }
    }
}

/// `1234/python3 (user alice)` for the owners of a socket.
pub fn holder_text(s: &SocketEntry) -> String {
    let who = if s.owners.is_empty() {
        "an unseen process".to_string()
    } else {
        s.owners
            .iter()
            .map(|o| format!("PID {} ({})", o.pid, o.command))
            .collect::<Vec<_>>()
            .join(", ")
    };
    match &s.user {
        Some(u) => format!("{who}, user {u}"),
        None => who,
    }
}

fn pids_text(s: &SocketEntry) -> String {
    if s.owners.is_empty() {
        "its owner".to_string()
    } else {
        s.owners
            .iter()
            .map(|o| format!("PID {}", o.pid))
            .collect::<Vec<_>>()
            .join(" and ")
    }
}

fn secs(ms: u64) -> u64 {
    ms.div_ceil(1000)
}

fn is_wild(a: IpAddr) -> bool {
    a.is_unspecified()
}

/// How two overlapping addresses overlap.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Overlap {
    Same,
    Wildcard,
    DualStack,
}

fn overlap_kind(holder: &SocketEntry, holder_dual: bool, t: &TrialOpts) -> Overlap {
    if canonical(holder.local_addr) == canonical(t.addr)
        && (holder.family == Family::Inet6) == t.addr.is_ipv6()
    {
        return Overlap::Same;
    }
    let cross_family = (holder.family == Family::Inet6) != t.addr.is_ipv6()
        || canonical(holder.local_addr).is_ipv4() != canonical(t.addr).is_ipv4();
    if cross_family && (holder_dual || t.dual_stack()) {
        Overlap::DualStack
    } else if canonical(holder.local_addr) == canonical(t.addr) {
        Overlap::Same
    } else {
        Overlap::Wildcard
    }
}

fn overlap_text(o: Overlap, holder: &SocketEntry, t: &TrialOpts) -> String {
    let h = holder.local();
    let mine = fmt_endpoint(t.addr, t.port);
    match o {
        Overlap::Same => format!("{h} is the same address as yours"),
        Overlap::Wildcard if is_wild(holder.local_addr) => {
            format!("{h} is a wildcard: it means every local address, which includes {mine}")
        }
        Overlap::Wildcard => format!("you asked for the wildcard {mine}, which includes {h}"),
        Overlap::DualStack => format!(
            "one of the two is a dual-stack IPv6 socket ([::] with IPV6_V6ONLY=0), which also owns the IPv4 side of port {} ({h} vs {mine})",
            t.port
        ),
    }
}

fn overlap_fix(o: Overlap) -> &'static str {
    match o {
        Overlap::Same => "",
        Overlap::Wildcard => {
            "; or bind distinct specific addresses in both programs (a wildcard covers them all)"
        }
        Overlap::DualStack => {
            "; or set IPV6_V6ONLY=1 on the IPv6 socket (`--v6only`), or serve both families from the one dual-stack socket"
        }
    }
}

fn flag_text(v: Option<bool>) -> &'static str {
    match v {
        Some(true) => "set",
        Some(false) => "not set",
        None => "unknown (netkit could not read it)",
    }
}

/// The verdict's causes. For a failed trial these explain the errno; for a successful one
/// they say what sharing the port will do (who receives the datagrams or connections).
pub fn diagnose(ev: &Evidence<'_>) -> Vec<Cause> {
    if ev.outcome.ok {
        return sharing(ev);
    }
    match ev.outcome.errno {
        Some(libc::EACCES) => privileged(ev, false),
        Some(libc::EADDRNOTAVAIL) => vec![not_local(ev)],
        Some(libc::EINVAL) => vec![invalid(ev)],
        Some(libc::EADDRINUSE) if ev.trial.port == 0 => vec![ephemeral_exhausted(ev)],
        Some(libc::EADDRINUSE) if ev.outcome.stage == Some("listen") => vec![listen_conflict(ev)],
        Some(libc::EADDRINUSE) => in_use(ev),
        _ => vec![Cause {
            kind: "other_error",
            message: format!(
                "the kernel refused at {} with {} (errno {})",
                ev.outcome.stage.unwrap_or("?"),
                ev.outcome.errno_name().unwrap_or("?"),
                ev.outcome.errno.unwrap_or(0)
            ),
            fix: "see socket(7) and bind(2) for this errno".to_string(),
            seconds_left: None,
            sockets: Vec::new(),
        }],
    }
}

/// Rule 14 / 14a: EACCES below `ip_unprivileged_port_start`, which hides any conflict.
fn privileged(ev: &Evidence<'_>, informative: bool) -> Vec<Cause> {
    let p = ev.trial.port;
    let start = ev.unpriv_start;
    let mut out = Vec::new();
    let message = if informative {
        format!(
            "port {p} is below net.ipv4.ip_unprivileged_port_start ({start}): it works for you as root, but a program running as an ordinary user gets EACCES (Permission denied) here"
        )
    } else {
        format!(
            "port {p} is below net.ipv4.ip_unprivileged_port_start ({start}): only root or a program with CAP_NET_BIND_SERVICE may bind it, so the kernel answered EACCES (Permission denied)"
        )
    };
    out.push(Cause {
        kind: "privileged_port",
        message,
        fix: format!(
            "use a port >= {start}; or `sudo setcap cap_net_bind_service=+ep /path/to/program`; or lower net.ipv4.ip_unprivileged_port_start; or use socket activation (systemd) or a reverse proxy on {p}"
        ),
        seconds_left: None,
        sockets: Vec::new(),
    });
    // Rule 14a: bind() checks the permission before the conflict, so EACCES hides an
    // EADDRINUSE. Show what is behind it.
    let hidden: Vec<SocketEntry> = ev
        .overlapping()
        .into_iter()
        .filter(|s| s.is_binder() || s.is_ownerless())
        .cloned()
        .collect();
    if !hidden.is_empty() && !informative {
        let names: Vec<String> = hidden
            .iter()
            .map(|s| format!("{} {} ({})", s.state, s.local(), holder_text(s)))
            .collect();
        out.push(Cause {
            kind: "hidden_conflict",
            message: format!(
                "behind the EACCES the port is also in use: {}. bind() checks permission before conflicts (BIND-RULES.md rule 14a), so with privilege you would get EADDRINUSE next",
                names.join("; ")
            ),
            fix: format!(
                "fixing the permission alone is not enough: also stop the holder (`netkit who-owns {p} --kill`) or {}",
                ev.another_port()
            ),
            seconds_left: None,
            sockets: hidden,
        });
    }
    out
}

/// Rule 15: the address belongs to no interface.
fn not_local(ev: &Evidence<'_>) -> Cause {
    let a = ev.trial.addr;
    Cause {
        kind: "address_not_local",
        message: format!(
            "{a} is not assigned to any interface of this host, so the kernel answered EADDRNOTAVAIL (Cannot assign requested address)"
        ),
        fix: format!(
            "bind {} (every address) or one listed by `ip -br addr`; if the address comes later (DHCP, IPv6 DAD), set IP_FREEBIND / IPV6_FREEBIND or net.ipv4.ip_nonlocal_bind=1",
            if a.is_ipv6() { "::" } else { "0.0.0.0" }
        ),
        seconds_left: None,
        sockets: Vec::new(),
    }
}

/// Rule 16: EINVAL from bind.
fn invalid(ev: &Evidence<'_>) -> Cause {
    let t = ev.trial;
    let (message, fix) = match t.addr {
        IpAddr::V6(a) if a.segments()[0] & 0xffc0 == 0xfe80 && t.scope_id == 0 => (
            format!("{a} is an IPv6 link-local address: it exists once per interface, so bind() needs a scope id and answers EINVAL without one"),
            format!("name the interface: --addr '{a}%eth0' (sin6_scope_id)"),
        ),
        IpAddr::V6(a) if a.to_ipv4_mapped().is_some() && t.v6only == Some(true) => (
            format!("{a} is an IPv4-mapped address, and an IPv6-only socket (IPV6_V6ONLY=1) cannot take it: EINVAL"),
            "drop IPV6_V6ONLY (`--dual-stack`) or bind the IPv4 address on an AF_INET socket".to_string(),
        ),
        _ => (
            "the kernel answered EINVAL (Invalid argument): bind() works once per socket, and the address must fit the socket's family".to_string(),
            "create a new socket for every bind(); check the address family".to_string(),
        ),
    };
    Cause {
        kind: "invalid_argument",
        message,
        fix,
        seconds_left: None,
        sockets: Vec::new(),
    }
}

/// Rule 13: bind(0) → EADDRINUSE when every port of the ephemeral range is taken.
fn ephemeral_exhausted(ev: &Evidence<'_>) -> Cause {
    let (lo, hi) = ev.ephemeral;
    let size = usize::from(hi.saturating_sub(lo)) + 1;
    let (used, examples) = ev.ephemeral_used.clone().unwrap_or_default();
    Cause {
        kind: "ephemeral_exhausted",
        message: format!(
            "bind() to port 0 asks the kernel for a free port from net.ipv4.ip_local_port_range ({lo}-{hi}, {size} ports), and none is left: {used} of them are in use by {} sockets here. bind(0) treats ports used by outgoing connections as taken (BIND-RULES.md rule 13)",
            ev.trial.proto
        ),
        fix: "widen ip_local_port_range (`sysctl -w net.ipv4.ip_local_port_range=\"15000 65000\"`), close idle connections or reuse them (keep-alive, pooling), or bind a fixed port outside the range".into(),
        seconds_left: None,
        sockets: examples,
    }
}

/// Rule 6a: bind passed but listen() found another socket already listening on the port.
fn listen_conflict(ev: &Evidence<'_>) -> Cause {
    let socks: Vec<SocketEntry> = ev
        .overlapping()
        .into_iter()
        .filter(|s| matches!(s.state, SockState::Listen | SockState::Bound))
        .cloned()
        .collect();
    Cause {
        kind: "listen_conflict",
        message: format!(
            "bind() succeeded but listen() failed with EADDRINUSE: with SO_REUSEADDR on both sockets several may reserve port {} with bind(), but only the first to call listen() gets it (BIND-RULES.md rule 6a){}",
            ev.trial.port,
            if socks.is_empty() {
                String::new()
            } else {
                format!(
                    "; held by {}",
                    socks
                        .iter()
                        .map(|s| format!("{} {} ({})", s.state, s.local(), holder_text(s)))
                        .collect::<Vec<_>>()
                        .join("; ")
                )
            }
        ),
        fix: format!(
            "make sure only one socket ever listens on the port, or set SO_REUSEPORT on both (they can then both listen), or {}",
            ev.another_port()
        ),
        seconds_left: None,
        sockets: socks,
    }
}

/// EADDRINUSE at bind(): walk the holders (BIND-RULES.md §3 diagnosis order).
fn in_use(ev: &Evidence<'_>) -> Vec<Cause> {
    let t = ev.trial;
    let p = t.port;
    let over = ev.overlapping();
    let mut out = Vec::new();
    let kill_fix =
        |s: &SocketEntry| format!("stop {} (`netkit who-owns {p} --kill`)", pids_text(s));

    // 1. Listeners (TCP LISTEN) and bound UDP sockets: rules 1-5, U1. A holder whose read
    // flags exempt the trial (SO_REUSEPORT on both, same user; for UDP also SO_REUSEADDR on
    // both) does not block it and is not named as a cause.
    for s in over.iter().filter(|s| holds_like_listener(s)) {
        let o = overlap_kind(s, ev.dual(s), t);
        let hf = ev.flag(s);
        let holder_rp = hf.and_then(|f| f.reuseport);
        let holder_ra = hf.and_then(|f| f.reuseaddr);
        let same_uid = s.uid == Some(t.uid);
        if (t.reuseport && holder_rp == Some(true) && same_uid)
            || (s.proto == Proto::Udp && t.reuseaddr && holder_ra == Some(true))
        {
            continue;
        }
        let what = match s.state {
            SockState::Listen => "is listening on",
            SockState::Unconn => "has bound (UDP)",
            _ => "has a connected UDP socket on",
        };
        let base = format!(
            "{} {what} {}: {}",
            holder_text(s),
            s.local(),
            overlap_text(o, s, t)
        );
        let (kind, message, fix) = if t.reuseport && holder_rp != Some(false) && !same_uid {
            // Rule 5: the RP exemption needs the same effective uid; root gets none.
            (
                "reuseport_uid_mismatch",
                format!(
                    "{base}. Both sides want SO_REUSEPORT{}, but SO_REUSEPORT only groups sockets of the same user: that socket belongs to {} and your trial ran as uid {} (root gets no exemption; BIND-RULES.md rule 5)",
                    if holder_rp.is_none() {
                        " (its flag could not be read)"
                    } else {
                        ""
                    },
                    s.user.as_deref().unwrap_or("another user"),
                    t.uid
                ),
                format!(
                    "run every worker as the same user ({}), or pass the listening fd along (systemd socket activation, fork after bind); or {}",
                    s.user.as_deref().unwrap_or("the holder's user"),
                    ev.another_port()
                ),
            )
        } else if t.reuseport {
            // Rule 1 (RP on one side) / U1.
            (
                "reuseport_one_sided",
                format!(
                    "{base}. You set SO_REUSEPORT but the holder did {}: the exemption needs SO_REUSEPORT on both sockets (BIND-RULES.md rule {})",
                    if holder_rp == Some(false) {
                        "not"
                    } else {
                        "not, apparently (its flag could not be read)"
                    },
                    if s.proto == Proto::Udp { "U1" } else { "1" }
                ),
                format!(
                    "set SO_REUSEPORT in the holder too (same user) and restart it; or {}; or {}",
                    kill_fix(s),
                    ev.another_port()
                ),
            )
        } else if s.proto == Proto::Udp {
            (
                "udp_in_use",
                format!(
                    "{base}. Two UDP sockets may share an overlapping port only when both set SO_REUSEADDR or both set SO_REUSEPORT (same user); yours set {} and the holder's SO_REUSEADDR is {}, SO_REUSEPORT {} (BIND-RULES.md rule U1)",
                    if t.reuseaddr {
                        "SO_REUSEADDR"
                    } else {
                        "neither"
                    },
                    flag_text(holder_ra),
                    flag_text(holder_rp)
                ),
                format!(
                    "{}; or {}{} (SO_REUSEPORT on both is the right tool for UDP worker pools)",
                    kill_fix(s),
                    ev.another_port(),
                    overlap_fix(o)
                ),
            )
        } else {
            let kind = match o {
                Overlap::Same => "listening",
                Overlap::Wildcard => "wildcard_overlap",
                Overlap::DualStack => "dual_stack_overlap",
            };
            let ra_note = if t.reuseaddr {
                " SO_REUSEADDR never lets you share a listening port on Linux (BIND-RULES.md rules 1-3)."
            } else {
                ""
            };
            let rp_passes = !t.reuseport && ev.with_reuseport.is_some_and(|o| o.ok);
            let rp_hint = if (holder_rp == Some(true) && same_uid) || rp_passes {
                " It has SO_REUSEPORT set (a trial with SO_REUSEPORT passes): set SO_REUSEPORT in yours too to join its group."
            } else {
                ""
            };
            (
                kind,
                format!("{base}.{ra_note}{rp_hint}"),
                format!(
                    "{}; or {}{}",
                    kill_fix(s),
                    ev.another_port(),
                    overlap_fix(o)
                ),
            )
        };
        out.push(Cause {
            kind,
            message,
            fix,
            seconds_left: None,
            sockets: vec![(*s).clone()],
        });
        // Rule 10: an inherited fd keeps the port after the parent closed its copy.
        if let Some(why) = ev.inherited.get(&s.inode) {
            out.push(Cause {
                kind: "inherited_fd",
                message: format!(
                    "the socket on {} is held through an inherited file descriptor: {why} (BIND-RULES.md rule 10)",
                    s.local()
                ),
                fix: format!(
                    "stop every process that holds it ({}), and open listening sockets close-on-exec (O_CLOEXEC / SOCK_CLOEXEC, Python close_fds=True) so children do not keep them",
                    pids_text(s)
                ),
                seconds_left: None,
                sockets: vec![(*s).clone()],
            });
        }
    }

    // 2. Bound-only TCP sockets: rule 6.
    for s in over.iter().filter(|s| s.state == SockState::Bound) {
        let o = overlap_kind(s, ev.dual(s), t);
        let holder_ra = ev.flag(s).and_then(|f| f.reuseaddr);
        out.push(Cause {
            kind: "bound_not_listening",
            message: format!(
                "{} reserved {} with bind() but never called listen(): {}. Such a socket is invisible to `ss -tlnp` and /proc/net/tcp (only sock_diag state bit 13 shows it). Sharing needs SO_REUSEADDR on both: yours {}, the holder's {} (BIND-RULES.md rule 6)",
                holder_text(s),
                s.local(),
                overlap_text(o, s, t),
                if t.reuseaddr { "set" } else { "not set" },
                flag_text(holder_ra)
            ),
            fix: format!(
                "{}; or set SO_REUSEADDR on both sockets (only the first to listen() then gets the port); or {}",
                kill_fix(s),
                ev.another_port()
            ),
            seconds_left: None,
            sockets: vec![(*s).clone()],
        });
    }

    // 3. Connections: accepted ones belong to a live listener (already explained); the rest
    // are an outgoing connection's source port (rule 11) or orphans of a gone listener (rule 8).
    let has_listener = over.iter().any(|s| s.state == SockState::Listen);
    let conns: Vec<&SocketEntry> = over
        .iter()
        .copied()
        .filter(|s| s.proto == Proto::Tcp && !s.is_binder() && !s.is_ownerless())
        .filter(|s| {
            !matches!(
                s.state,
                SockState::SynRecv | SockState::NewSynRecv | SockState::Close
            )
        })
        .collect();
    let (outgoing, orphans): (Vec<&SocketEntry>, Vec<&SocketEntry>) =
        conns.iter().partition(|s| is_outgoing(ev, s));
    if !outgoing.is_empty() {
        let range = format!("{}-{}", ev.ephemeral.0, ev.ephemeral.1);
        out.push(Cause {
            kind: "ephemeral_source_port",
            message: format!(
                "an outgoing connection took port {p} as its source port: {}. Port {p} lies {} net.ipv4.ip_local_port_range ({range}), from which the kernel picks source ports at random; SO_REUSEADDR does not help against it (BIND-RULES.md rule 11)",
                outgoing
                    .iter()
                    .map(|s| format!("{} -> {} ({})", s.local(), s.remote(), holder_text(s)))
                    .collect::<Vec<_>>()
                    .join("; "),
                if ev.in_ephemeral() { "inside" } else { "outside (a program chose it explicitly)" }
            ),
            fix: format!(
                "use a server port outside {range}, or reserve it: `sysctl -w net.ipv4.ip_local_reserved_ports={p}`; the port frees when that connection closes"
            ),
            seconds_left: None,
            sockets: outgoing.iter().map(|s| (*s).clone()).collect(),
        });
    }
    if !orphans.is_empty() && !has_listener {
        out.push(Cause {
            kind: "orphan_established",
            message: format!(
                "no program listens on port {p} any more, but {} accepted connection(s) are still open and hold it: {}. No timer runs out: they last until they close (BIND-RULES.md rule 8)",
                orphans.len(),
                orphans
                    .iter()
                    .map(|s| format!("{} {} <- {} ({})", s.state, s.local(), s.remote(), holder_text(s)))
                    .collect::<Vec<_>>()
                    .join("; ")
            ),
            fix: format!(
                "close the worker or child that still holds them ({}); set SO_REUSEADDR in every instance of the server so this cannot block a restart",
                orphans.iter().map(|s| pids_text(s)).collect::<Vec<_>>().join(", ")
            ),
            seconds_left: None,
            sockets: orphans.iter().map(|s| (*s).clone()).collect(),
        });
    }

    // 4. Kernel-held leftovers: TIME_WAIT (rule 7) and orphan FIN_WAIT2 (rule 9). They are a
    // cause only when nothing live blocks the bind by itself: next to a blocking listener,
    // waiting for them changes nothing (issue 8, defect 2).
    let live_blockers: Vec<SocketEntry> = out
        .iter()
        .flat_map(|c| c.sockets.iter())
        .filter(|s| !s.is_ownerless())
        .cloned()
        .collect();
    let tw: Vec<&SocketEntry> = over
        .iter()
        .copied()
        .filter(|s| s.state == SockState::TimeWait)
        .collect();
    let fw: Vec<&SocketEntry> = over
        .iter()
        .copied()
        .filter(|s| s.state == SockState::FinWait2 && s.is_ownerless())
        .collect();
    let only_leftovers = over
        .iter()
        .all(|s| s.is_ownerless() || (orphans.iter().any(|o| o.inode == s.inode) && !has_listener))
        && (!tw.is_empty() || !fw.is_empty() || !orphans.is_empty());
    // The RA inference: a trial WITH SO_REUSEADDR still failing while only leftovers hold
    // the port means the old socket lacked it (a TIME_WAIT keeps the old flag; rule 7).
    let ra_outcome = if t.reuseaddr {
        Some(ev.outcome)
    } else {
        ev.with_reuseaddr
    };
    let old_lacked_ra = only_leftovers && ra_outcome.is_some_and(|o| !o.ok);
    let ra_would_work = only_leftovers && !t.reuseaddr && ev.with_reuseaddr.is_some_and(|o| o.ok);
    let rp_would_work = !t.reuseport && ev.with_reuseport.is_some_and(|o| o.ok);
    let leftover_fix = |left: u64| {
        if ra_would_work {
            format!(
                "set SO_REUSEADDR in your program before bind() (`--reuseaddr` passes here: the old socket had it too); or wait {left} s (`netkit wait-free {p}`)"
            )
        } else {
            format!(
                "wait {left} s (`netkit wait-free {p} && ./server`){}; for next time set SO_REUSEADDR in EVERY instance of the program, the old one included",
                if rp_would_work {
                    "; or set SO_REUSEPORT (`--reuseport` passes here: the old socket had it)"
                } else {
                    ""
                }
            )
        }
    };
    if !live_blockers.is_empty() && (!tw.is_empty() || !fw.is_empty()) {
        out.push(leftovers_behind_blocker(ev, &live_blockers, &tw, &fw));
    } else if !tw.is_empty() {
        let left = secs(tw.iter().filter_map(|s| s.expires_ms).max().unwrap_or(0));
        let outgoing_tw = tw.iter().any(|s| is_outgoing(ev, s));
        out.push(Cause {
            kind: "time_wait",
            message: format!(
                "{} old connection(s) on {} are in TIME_WAIT; the last expires in {left} s. No process owns them: the kernel keeps them for 60 s on the side that closed first ({}). A TIME_WAIT keeps the SO_REUSEADDR flag of the socket it came from, and a new bind passes only when both have it (BIND-RULES.md rule 7)",
                tw.len(),
                tw.iter()
                    .map(|s| s.local())
                    .collect::<HashSet<_>>()
                    .into_iter()
                    .collect::<Vec<_>>()
                    .join(", "),
                if outgoing_tw {
                    "here an outgoing connection from this port"
                } else {
                    "here most likely your old server"
                }
            ),
            fix: leftover_fix(left),
            seconds_left: Some(left),
            sockets: tw.iter().map(|s| (*s).clone()).collect(),
        });
    }
    if !fw.is_empty() && live_blockers.is_empty() {
        let left = secs(fw.iter().filter_map(|s| s.expires_ms).max().unwrap_or(0));
        out.push(Cause {
            kind: "fin_wait2",
            message: format!(
                "{} orphan connection(s) on port {p} are in FIN_WAIT2: the server died (or closed) while clients were connected; the kernel closed its side and waits up to net.ipv4.tcp_fin_timeout for the clients to hang up. Expires in {left} s (BIND-RULES.md rule 9)",
                fw.len()
            ),
            fix: format!(
                "{}; or have the clients close their connections",
                leftover_fix(left)
            ),
            seconds_left: Some(left),
            sockets: fw.iter().map(|s| (*s).clone()).collect(),
        });
    }
    if old_lacked_ra {
        out.push(Cause {
            kind: "old_socket_lacked_reuseaddr",
            message: format!(
                "a trial bind WITH SO_REUSEADDR also failed while only leftovers of an old socket hold port {p}: so the old program did not set SO_REUSEADDR. The leftovers keep the old socket's flag, and SO_REUSEADDR only helps when both sides set it (BIND-RULES.md rules 7-9)"
            ),
            fix: "setting SO_REUSEADDR now cannot help until the leftovers expire; set it in every instance (the old one included) so the next restart works at once".to_string(),
            seconds_left: None,
            sockets: Vec::new(),
        });
    }

    if out.is_empty() {
        out.push(Cause {
            kind: "holder_not_visible",
            message: format!(
                "the kernel says EADDRINUSE, but netkit sees no overlapping socket on port {p} in this network namespace. Either the holder went away between the trial and the inventory (run again), or it is a bound-only socket on a kernel older than 6.8 (invisible to sock_diag), or a socket pinned with SO_BINDTODEVICE"
            ),
            fix: format!("run `netkit explain {p}` again; or {}", ev.another_port()),
            seconds_left: None,
            sockets: Vec::new(),
        });
    }
    out
}

/// TIME_WAIT / FIN_WAIT2 leftovers next to a live socket that blocks the bind by itself
/// (kind `time_wait_harmless` when their flags are known to exempt the trial,
/// `time_wait_after_holder` otherwise): waiting for them changes nothing while that socket lives.
///
/// What they will do once it is gone follows from the kernel's admission rule: a live
/// listener L whose flags were read (pidfd_getfd) could only bind next to an overlapping
/// leftover that is exempt for L's options, and the connections L accepts inherit its flags;
/// a socket bound later next to a listening L needs SO_REUSEPORT on both. So when L has
/// SO_REUSEADDR and no SO_REUSEPORT, every leftover overlapping L carries SO_REUSEADDR, and
/// with SO_REUSEADDR on the new socket it cannot block it (rule 7a). Otherwise netkit cannot
/// tell their flags while L holds the port, and says so.
fn leftovers_behind_blocker(
    ev: &Evidence<'_>,
    blockers: &[SocketEntry],
    tw: &[&SocketEntry],
    fw: &[&SocketEntry],
) -> Cause {
    let t = ev.trial;
    let p = t.port;
    let left_of =
        |v: &[&SocketEntry]| secs(v.iter().filter_map(|s| s.expires_ms).max().unwrap_or(0));
    let left = left_of(tw).max(left_of(fw));
    let listeners: Vec<&SocketEntry> = blockers
        .iter()
        .filter(|b| b.state == SockState::Listen)
        .collect();
    let carried_ra = |s: &SocketEntry| {
        listeners.iter().any(|l| {
            let f = ev.flag(l);
            f.and_then(|f| f.reuseaddr) == Some(true)
                && f.and_then(|f| f.reuseport) == Some(false)
                && addrs_overlap(l.local_addr, ev.dual(l), s.local_addr, false)
        })
    };
    let all: Vec<&SocketEntry> = tw.iter().chain(fw.iter()).copied().collect();
    let exempt = t.reuseaddr && all.iter().all(|s| carried_ra(s));
    let names = blockers
        .iter()
        .map(|b| format!("{} {} ({})", b.state, b.local(), holder_text(b)))
        .collect::<HashSet<_>>()
        .into_iter()
        .collect::<Vec<_>>()
        .join("; ");
    let what = format!(
        "{} TIME_WAIT/FIN_WAIT2 leftover(s) on port {p} (the last expires in {left} s) do not decide this bind: {names} blocks it by itself, so waiting for them changes nothing while it lives",
        all.len()
    );
    let (message, fix) = if exempt {
        (
            format!(
                "{what}. They are harmless for you: that listener sets SO_REUSEADDR (read with pidfd_getfd) and no SO_REUSEPORT, so the kernel only let it bind next to leftovers that carry SO_REUSEADDR, and the connections it accepts inherit its flag; with SO_REUSEADDR on your socket they cannot block it once the listener is gone (BIND-RULES.md rules 7, 7a)"
            ),
            "nothing to do about them: deal with the listener above".to_string(),
        )
    } else {
        (
            format!(
                "{what}. Once it is gone they may still block for up to {left} s: a leftover keeps the flags of its socket, and the bind passes only when both set SO_REUSEADDR (or both SO_REUSEPORT){} (BIND-RULES.md rule 7)",
                if t.reuseaddr {
                    "; netkit cannot read their flags while the listener holds the port"
                } else {
                    ", and yours does not set SO_REUSEADDR"
                }
            ),
            format!(
                "deal with the listener above first; then, if the bind still fails, `netkit wait-free {p}` (at most {left} s); set SO_REUSEADDR in every instance of the program so leftovers never block a restart"
            ),
        )
    };
    Cause {
        kind: if exempt {
            "time_wait_harmless"
        } else {
            "time_wait_after_holder"
        },
        message,
        fix,
        seconds_left: Some(left),
        sockets: all.iter().map(|s| (*s).clone()).collect(),
    }
}

/// Sockets that conflict the way a listener does: TCP LISTEN, bound UDP, connected UDP.
fn holds_like_listener(s: &SocketEntry) -> bool {
    matches!(s.state, SockState::Listen | SockState::Unconn)
        || (s.proto == Proto::Udp && s.state == SockState::Established)
}

/// True when a connection on the port is outgoing: its remote end is a local listener, or it
/// talks to another host from a port inside the ephemeral range (BIND-RULES.md rule 11).
fn is_outgoing(ev: &Evidence<'_>, s: &SocketEntry) -> bool {
    match (s.remote_addr, s.remote_port) {
        (Some(a), Some(rp)) => {
            let a = canonical(a);
            let to_local_listener = ev.local_listeners.contains(&(a, rp))
                || ev
                    .local_listeners
                    .contains(&(crate::inspect::unspecified(Family::Inet), rp))
                || ev
                    .local_listeners
                    .contains(&(crate::inspect::unspecified(Family::Inet6), rp));
            if a.is_loopback() {
                to_local_listener
            } else {
                to_local_listener || ev.in_ephemeral()
            }
        }
        _ => false,
    }
}

/// For a bindable port: what sharing will do (rules 4, 4a, 6a/6b, 7a/7b, U2-U4), and what an
/// unprivileged user would get (rule 14).
fn sharing(ev: &Evidence<'_>) -> Vec<Cause> {
    let t = ev.trial;
    let mut out = Vec::new();
    if ev
        .unprivileged
        .is_some_and(|o| o.errno == Some(libc::EACCES))
    {
        out.extend(privileged(ev, true));
    }
    let over = ev.overlapping();
    let rank = |a: IpAddr| u8::from(!a.is_unspecified());
    for s in over.iter().filter(|s| holds_like_listener(s)) {
        let hf = ev.flag(s);
        let holder_rp = hf.and_then(|f| f.reuseport);
        let specific_differs =
            rank(s.local_addr) != rank(t.addr) || (s.family == Family::Inet6) != t.addr.is_ipv6();
        let what = if s.proto == Proto::Udp {
            "datagrams (hashed per flow: one source address:port always reaches the same socket)"
        } else {
            "new connections"
        };
        if s.proto == Proto::Udp && s.state == SockState::Established {
            out.push(Cause {
                kind: "udp_connected_share",
                message: format!(
                    "{} shares the port with a connected UDP socket ({} -> {}): the connected socket gets only its peer's datagrams, and your unconnected socket gets everything else (BIND-RULES.md rule U4)",
                    holder_text(s), s.local(), s.remote()
                ),
                fix: "nothing to do: this is the safe way for a server and a client to share a UDP port".to_string(),
                seconds_left: None,
                sockets: vec![(*s).clone()],
            });
            continue;
        }
        if t.reuseport && holder_rp != Some(false) {
            let msg = if specific_differs {
                format!(
                    "you join the SO_REUSEPORT group of {} on {}, but the addresses differ in how specific they are: the most specific socket gets every {} and there is NO load balancing (BIND-RULES.md rule 4a)",
                    holder_text(s),
                    s.local(),
                    if s.proto == Proto::Udp {
                        "datagram"
                    } else {
                        "connection"
                    }
                )
            } else {
                format!(
                    "you join the SO_REUSEPORT group of {} on {}: the kernel spreads {what} across the group (BIND-RULES.md rules 4, U3)",
                    holder_text(s),
                    s.local()
                )
            };
            out.push(Cause {
                kind: "reuseport_group",
                message: msg,
                fix: "this is the intended way to run several workers on one port; give every member the identical address and the same user".to_string(),
                seconds_left: None,
                sockets: vec![(*s).clone()],
            });
        } else if s.proto == Proto::Udp && t.reuseaddr {
            let who_gets = if rank(s.local_addr) > rank(t.addr) {
                format!(
                    "{} keeps receiving: a specific address beats the wildcard",
                    holder_text(s)
                )
            } else {
                format!(
                    "your socket, the most recently bound one, takes ALL unicast datagrams and {} silently receives nothing",
                    holder_text(s)
                )
            };
            out.push(Cause {
                kind: "udp_reuseaddr_takeover",
                message: format!(
                    "both sockets set SO_REUSEADDR, so the kernel lets you bind next to {} on {} (no uid check), but only ONE socket receives unicast: {who_gets} (BIND-RULES.md rule U2)",
                    holder_text(s), s.local()
                ),
                fix: "do not use SO_REUSEADDR to share a UDP port for receiving: use SO_REUSEPORT on both (same user) for a worker pool, or connect() the client socket so it only gets its peer's datagrams (rule U4)".to_string(),
                seconds_left: None,
                sockets: vec![(*s).clone()],
            });
        }
    }
    let bound: Vec<&SocketEntry> = over
        .iter()
        .copied()
        .filter(|s| s.state == SockState::Bound)
        .collect();
    // A bound-only socket with SO_REUSEPORT next to a SO_REUSEPORT trial of the same user is
    // a REUSEPORT group (both may listen, BIND-RULES.md rule 6a "rp-rp"); only the
    // SO_REUSEADDR exemption makes the second listen() fail (issue 8, defect 4).
    let (bound_rp, bound): (Vec<&SocketEntry>, Vec<&SocketEntry>) =
        bound.into_iter().partition(|s| {
            t.reuseport
                && ev.flag(s).and_then(|f| f.reuseport) == Some(true)
                && s.uid == Some(t.uid)
        });
    for s in bound_rp.iter().filter(|_| t.proto == Proto::Tcp) {
        out.push(Cause {
            kind: "reuseport_group",
            message: format!(
                "you join the SO_REUSEPORT group of {} on {}, which has bound the port (SO_REUSEPORT, read with pidfd_getfd) but not listened yet: with SO_REUSEPORT on both, same user, both sockets may listen and the kernel spreads new connections across them once both do (BIND-RULES.md rules 4, 6a)",
                holder_text(s),
                s.local()
            ),
            fix: "this is the intended way to run several workers on one port; give every member the identical address and the same user".to_string(),
            seconds_left: None,
            sockets: vec![(*s).clone()],
        });
    }
    if !bound.is_empty() && t.proto == Proto::Tcp {
        let other_uid = bound.iter().any(|s| s.uid.is_some_and(|u| u != t.uid));
        out.push(Cause {
            kind: "bound_reuseaddr_shared",
            message: format!(
                "{} bound the port with SO_REUSEADDR but has not listened yet; with SO_REUSEADDR on both you may bind and listen too, and then its listen() fails with EADDRINUSE: only the first to listen() gets the port (BIND-RULES.md rule 6a){}",
                bound.iter().map(|s| format!("{} on {}", holder_text(s), s.local())).collect::<Vec<_>>().join("; "),
                if other_uid { ". It belongs to another user: the SO_REUSEADDR exemption has no uid check, so any local user can take such a port over (rule 6b)" } else { "" }
            ),
            fix: "call listen() right after bind() in the other program, or stop it".to_string(),
            seconds_left: None,
            sockets: bound.iter().map(|s| (*s).clone()).collect(),
        });
    }
    let leftovers: Vec<&SocketEntry> = over.iter().copied().filter(|s| s.is_ownerless()).collect();
    if !leftovers.is_empty() {
        let left = secs(
            leftovers
                .iter()
                .filter_map(|s| s.expires_ms)
                .max()
                .unwrap_or(0),
        );
        out.push(Cause {
            kind: "time_wait_exempt",
            message: format!(
                "{} TIME_WAIT/FIN_WAIT2 leftover(s) hold the port for another {left} s, but your options pass: both the old socket and yours set {} (BIND-RULES.md rules 7a, 7b)",
                leftovers.len(),
                if t.reuseport { "SO_REUSEPORT" } else { "SO_REUSEADDR" }
            ),
            fix: "nothing to do; keep setting the option in every instance".to_string(),
            seconds_left: Some(left),
            sockets: leftovers.iter().map(|s| (*s).clone()).collect(),
        });
    }
    out
}

/// One-line verdict: `port 8080/tcp on 0.0.0.0 (no options): not bindable: EADDRINUSE at bind()`.
pub fn verdict_line(t: &TrialOpts, o: &Outcome) -> String {
    if o.ok {
        format!("{}: bindable", t.describe())
    } else {
        format!(
            "{}: not bindable: {} at {}()",
            t.describe(),
            o.errno_name().unwrap_or("error"),
            o.stage.unwrap_or("bind")
        )
    }
}
