//! `netkit audit`: what on this host can be hijacked, shadowed or exhausted, from the measured
//! rules of docs/BIND-RULES.md. Pure rules over an [`inspect::Snapshot`](crate::inspect::Snapshot)
//! plus the holders' socket options ([`Flags`], read through pidfd_getfd by the command);
//! never prints.
//!
//! - [`reuse`]: SO_REUSEADDR on UDP (U2) and on bound-only TCP (6b), lingering bound-only
//!   sockets (6), SO_REUSEPORT groups (4, 4a, 5).
//! - [`exposure`]: development servers on a wildcard address, specific binds shadowing a
//!   wildcard (2, 4a, U2).
//! - [`pressure`]: ephemeral ports per destination (13), TIME_WAIT per port (7), accept
//!   queues near their backlog, CLOSE_WAIT per process.

pub mod exposure;
pub mod pressure;
pub mod reuse;

use std::collections::HashMap;

use serde::Serialize;

use crate::inspect::{SocketEntry, sysctl};
use crate::sockopt::Applied;

/// How bad a finding is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    /// Worth knowing; no other user can exploit it.
    Info,
    /// A risk or a resource running short.
    Warn,
    /// Another local user can take traffic, or a limit is (nearly) reached.
    High,
}

impl Severity {
    /// `info`, `warn`, `high`.
    pub fn name(self) -> &'static str {
        match self {
            Severity::Info => "info",
            Severity::Warn => "warn",
            Severity::High => "high",
        }
    }
}

/// One finding: what, how bad, the sockets that show it, and the fix.
#[derive(Debug, Clone, Serialize)]
pub struct Finding {
    /// The BIND-RULES.md row it rests on (`U2`, `6b`, `13`, ...), `null` for pure pressure.
    pub rule: Option<&'static str>,
    /// A stable snake_case name (`udp_reuseaddr`, `reuseport_group`, ...).
    pub kind: &'static str,
    /// How bad.
    pub severity: Severity,
    /// What was found, in one sentence with the evidence's numbers.
    pub message: String,
    /// What to do.
    pub fix: String,
    /// The sockets, in the inventory's schema (owners included).
    pub evidence: Vec<SocketEntry>,
    /// Figures behind the message (counts, limits, users); keys depend on `kind`.
    pub details: serde_json::Value,
}

/// The holders' socket options by inode, as far as pidfd_getfd could read them (root, or
/// the caller's own processes).
#[derive(Debug, Default)]
pub struct Flags {
    /// Options per socket inode.
    pub by_inode: HashMap<u64, Applied>,
}

impl Flags {
    /// The options of `s`, when they were readable.
    pub fn of(&self, s: &SocketEntry) -> Option<&Applied> {
        self.by_inode.get(&s.inode)
    }
}

/// Facts about the host the rules compare against.
#[derive(Debug, Clone)]
pub struct Host {
    /// `net.ipv4.ip_local_port_range`.
    pub ephemeral: (u16, u16),
    /// `net.ipv4.ip_unprivileged_port_start`.
    pub unprivileged_start: u32,
    /// `UID_MIN` of /etc/login.defs (default 1000): uids below it are system accounts.
    pub uid_min: u32,
    /// `net.ipv6.bindv6only`, the default of IPV6_V6ONLY.
    pub bindv6only: bool,
    /// Seconds each PID has run, where known (for the age of bound-only sockets).
    pub process_age_s: HashMap<u32, u64>,
}

impl Host {
    /// Reads the host's settings.
    pub fn read() -> Host {
        Host {
            ephemeral: sysctl::ephemeral_range(),
            unprivileged_start: sysctl::unprivileged_port_start(),
            uid_min: uid_min(),
            bindv6only: sysctl::bindv6only(),
            process_age_s: HashMap::new(),
        }
    }

    /// True for root and system accounts (uid below `UID_MIN`).
    pub fn is_system_uid(&self, uid: u32) -> bool {
        uid < self.uid_min
    }

    /// True when an ordinary user may bind `port` (rule 14).
    pub fn unprivileged(&self, port: u16) -> bool {
        u32::from(port) >= self.unprivileged_start
    }
}

/// `UID_MIN` from /etc/login.defs, 1000 when absent.
fn uid_min() -> u32 {
    std::fs::read_to_string("/etc/login.defs")
        .ok()
        .and_then(|s| {
            s.lines().find_map(|l| {
                let mut w = l.split_whitespace();
                (w.next() == Some("UID_MIN")).then(|| w.next()?.parse().ok())?
            })
        })
        .unwrap_or(1000)
}

/// Seconds since `pid` started: `/proc/PID/stat` field 22 (starttime, clock ticks since
/// boot, proc(5)) against `/proc/uptime`.
pub fn process_age_s(pid: u32) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name (field 2) may contain spaces and parentheses: count after the last ')'.
    let after = stat.rsplit_once(')')?.1;
    let start: u64 = after.split_whitespace().nth(19)?.parse().ok()?;
    // SAFETY: sysconf has no preconditions.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    let hz = u64::try_from(hz).ok().filter(|h| *h > 0)?;
    let up: f64 = std::fs::read_to_string("/proc/uptime")
        .ok()?
        .split_whitespace()
        .next()?
        .parse()
        .ok()?;
    Some((up as u64).saturating_sub(start / hz))
}

/// Every finding for `sockets`, most severe first.
pub fn audit(sockets: &[SocketEntry], flags: &Flags, host: &Host) -> Vec<Finding> {
    let mut out = Vec::new();
    out.extend(reuse::udp_reuseaddr(sockets, flags, host));
    out.extend(reuse::tcp_bound_reuseaddr(sockets, flags, host));
    out.extend(reuse::bound_only(sockets, host));
    out.extend(reuse::reuseport_groups(sockets, flags));
    out.extend(exposure::dev_servers(sockets));
    out.extend(exposure::shadowed_wildcards(sockets, flags, host));
    out.extend(pressure::ephemeral_per_destination(sockets, host));
    out.extend(pressure::timewait_per_port(sockets));
    out.extend(pressure::accept_queues(sockets));
    out.extend(pressure::close_wait_per_process(sockets));
    // Stable: within one severity, the order the rules above run in.
    out.sort_by_key(|f| std::cmp::Reverse(f.severity));
    out
}

/// "root", "uid 1000 (alice)": who holds a socket, for messages.
pub(crate) fn holder(s: &SocketEntry) -> String {
    match (s.uid, s.user.as_deref()) {
        (Some(u), Some(name)) if name != u.to_string() => format!("{name} (uid {u})"),
        (Some(u), _) => format!("uid {u}"),
        _ => "an unknown user".into(),
    }
}

/// "1234/python3, 99/nginx" or "owner not visible".
pub(crate) fn owners(s: &SocketEntry) -> String {
    if s.owners.is_empty() {
        return "owner not visible".into();
    }
    s.owners
        .iter()
        .map(|o| format!("{}/{}", o.pid, o.command))
        .collect::<Vec<_>>()
        .join(", ")
}

#[cfg(test)]
pub(crate) mod testing {
    //! Socket rows for the rules' unit tests.
    use std::net::IpAddr;

    use crate::inspect::{Family, Owner, Proto, SockState, SocketEntry};

    pub fn sock(proto: Proto, state: SockState, local: &str, port: u16, inode: u64) -> SocketEntry {
        let ip: IpAddr = local.parse().unwrap();
        SocketEntry {
            proto,
            family: if ip.is_ipv6() {
                Family::Inet6
            } else {
                Family::Inet
            },
            local_addr: ip,
            local_port: port,
            remote_addr: None,
            remote_port: None,
            state,
            uid: Some(0),
            user: Some("root".into()),
            inode,
            owners: vec![std::sync::Arc::new(Owner {
                pid: 100 + inode as u32,
                command: "prog".into(),
                cmdline: "prog".into(),
            })],
            expires_ms: None,
            listener: None,
            recv_q: 0,
            send_q: 0,
        }
    }

    pub fn host() -> super::Host {
        super::Host {
            ephemeral: (32768, 60999),
            unprivileged_start: 1024,
            uid_min: 1000,
            bindv6only: false,
            process_age_s: Default::default(),
        }
    }
}
