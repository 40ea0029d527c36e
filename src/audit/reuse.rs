//! Port-sharing findings: SO_REUSEADDR on UDP (rule U2) and on bound-only TCP (6b),
//! bound-only sockets that linger (6), SO_REUSEPORT groups (4, 4a, 5).

use std::collections::{BTreeSet, HashMap};

use serde_json::json;

use super::{Finding, Flags, Host, Severity, holder, owners};
use crate::inspect::{Proto, SockState, SocketEntry, fmt_endpoint, group_by};

/// Severity of "another local user can take this port over": high when the holder is root
/// or a system account and ordinary users may bind the port, warn for an ordinary holder,
/// info below `ip_unprivileged_port_start` (only privileged programs can join, rule 14).
fn takeover_severity(s: &SocketEntry, host: &Host) -> Severity {
    if !host.unprivileged(s.local_port) {
        Severity::Info
    } else if s.uid.is_some_and(|u| host.is_system_uid(u)) {
        Severity::High
    } else {
        Severity::Warn
    }
}

fn reuseaddr_on(s: &SocketEntry, flags: &Flags) -> bool {
    flags.of(s).and_then(|f| f.reuseaddr) == Some(true)
}

/// UDP sockets bound with SO_REUSEADDR, one finding per address and port (rule U2).
pub fn udp_reuseaddr(sockets: &[SocketEntry], flags: &Flags, host: &Host) -> Vec<Finding> {
    let risky: Vec<&SocketEntry> = sockets
        .iter()
        .filter(|s| s.proto == Proto::Udp && s.state == SockState::Unconn && reuseaddr_on(s, flags))
        .collect();
    group_by(&risky, |s| (s.local_addr, s.local_port))
        .into_iter()
        .map(|((addr, port), v)| {
            let severity = v
                .iter()
                .map(|s| takeover_severity(s, host))
                .max()
                .unwrap_or(Severity::Info);
            let first = v[0];
            let who = if host.unprivileged(port) {
                "any local user"
            } else {
                "any program with root or CAP_NET_BIND_SERVICE"
            };
            Finding {
                rule: Some("U2"),
                kind: "udp_reuseaddr",
                severity,
                message: format!(
                    "UDP {} is bound with SO_REUSEADDR by {} ({}): {who} can bind the same port with SO_REUSEADDR and, as the newest socket, silently receive all of its unicast datagrams (BIND-RULES.md rule U2; the RA exemption has no uid check)",
                    fmt_endpoint(addr, port),
                    holder(first),
                    owners(first),
                ),
                fix: "Drop SO_REUSEADDR from this UDP socket. For a worker pool use SO_REUSEPORT, which the kernel limits to one effective uid (rule U3); to share a port with a client socket, connect() that socket (rule U4).".into(),
                evidence: v.iter().map(|s| (**s).clone()).collect(),
                details: json!({
                    "system_holder": first.uid.map(|u| host.is_system_uid(u)),
                    "port_unprivileged": host.unprivileged(port),
                }),
            }
        })
        .collect()
}

/// TCP sockets bound with SO_REUSEADDR that are not listening (rule 6b).
pub fn tcp_bound_reuseaddr(sockets: &[SocketEntry], flags: &Flags, host: &Host) -> Vec<Finding> {
    sockets
        .iter()
        .filter(|s| s.proto == Proto::Tcp && s.state == SockState::Bound && reuseaddr_on(s, flags))
        .map(|s| Finding {
            rule: Some("6b"),
            kind: "tcp_bound_reuseaddr",
            severity: takeover_severity(s, host),
            message: format!(
                "TCP {} is bound with SO_REUSEADDR but not listening ({}, {}): another user can bind the same port with SO_REUSEADDR and listen() first, and this socket's listen() then fails with EADDRINUSE (BIND-RULES.md rules 6a, 6b)",
                s.local(),
                holder(s),
                owners(s),
            ),
            fix: "Call listen() right after bind(), or set SO_REUSEADDR only on sockets that listen at once.".into(),
            evidence: vec![s.clone()],
            details: json!({
                "system_holder": s.uid.map(|u| host.is_system_uid(u)),
                "port_unprivileged": host.unprivileged(s.local_port),
            }),
        })
        .collect()
}

/// A bound-only socket held this long is a leak rather than a bind() on its way to
/// listen() or connect().
pub const BOUND_LINGER_S: u64 = 60;

/// Bound-only TCP sockets (rule 6): invisible to `ss -tlnp`, yet they block the port.
pub fn bound_only(sockets: &[SocketEntry], host: &Host) -> Vec<Finding> {
    sockets
        .iter()
        .filter(|s| s.proto == Proto::Tcp && s.state == SockState::Bound)
        .map(|s| {
            let age = s
                .owners
                .iter()
                .filter_map(|o| host.process_age_s.get(&o.pid).copied())
                .max();
            let severity = match age {
                Some(a) if a >= BOUND_LINGER_S => Severity::Warn,
                _ => Severity::Info,
            };
            let age_text = match age {
                Some(a) => format!(
                    "the holder has run for {} (the kernel keeps no bind time, so the socket is at most that old)",
                    humantime::format_duration(std::time::Duration::from_secs(a))
                ),
                None => "age unknown".into(),
            };
            Finding {
                rule: Some("6"),
                kind: "bound_only",
                severity,
                message: format!(
                    "TCP {} is bound but not listening ({}, {}; {age_text}): it is invisible to ss -tlnp and /proc/net/tcp, yet a bind() of this port fails with EADDRINUSE unless both sockets set SO_REUSEADDR (BIND-RULES.md rule 6)",
                    s.local(),
                    holder(s),
                    owners(s),
                ),
                fix: format!(
                    "If the program forgot the socket, have it close() it (or restart it); a client that pinned its source port should connect() or close. `netkit who-owns {}` shows the holder.",
                    s.local_port
                ),
                evidence: vec![s.clone()],
                details: json!({ "holder_age_s": age }),
            }
        })
        .collect()
}

/// SO_REUSEPORT groups with two or more members (rules 4, 4a, 5).
pub fn reuseport_groups(sockets: &[SocketEntry], flags: &Flags) -> Vec<Finding> {
    let members: Vec<&SocketEntry> = sockets
        .iter()
        .filter(|s| matches!(s.state, SockState::Listen | SockState::Unconn))
        .filter(|s| flags.of(s).and_then(|f| f.reuseport) == Some(true))
        .collect();
    let mut out = Vec::new();
    for ((proto, port), v) in group_by(&members, |s| (s.proto, s.local_port)) {
        let mut by_inode: HashMap<u64, &SocketEntry> = HashMap::new();
        for s in &v {
            by_inode.entry(s.inode).or_insert(s);
        }
        if by_inode.len() < 2 {
            continue;
        }
        let mut group: Vec<&SocketEntry> = by_inode.into_values().collect();
        group.sort_by_key(|s| (s.local_addr, s.inode));
        let programs: BTreeSet<String> = group
            .iter()
            .map(|s| match s.owners.first() {
                Some(o) => o.command.clone(),
                None => "?".into(),
            })
            .collect();
        let users: BTreeSet<String> = group.iter().map(|s| holder(s)).collect();
        let addrs: BTreeSet<String> = group.iter().map(|s| s.local_addr.to_string()).collect();
        let same_program = programs.len() == 1 && !programs.contains("?");
        let mut message = format!(
            "{proto} port {port} has a SO_REUSEPORT group of {} sockets ({}); the kernel hashes each new {} across the members (BIND-RULES.md rule {})",
            group.len(),
            group
                .iter()
                .map(|s| format!("{} {}", s.local_addr, owners(s)))
                .collect::<Vec<_>>()
                .join("; "),
            if proto == Proto::Tcp {
                "connection"
            } else {
                "flow"
            },
            if proto == Proto::Tcp { "4" } else { "U3" },
        );
        if !same_program {
            message.push_str(&format!(
                "; the members are different programs ({}): each one takes a share of the traffic",
                programs.iter().cloned().collect::<Vec<_>>().join(", ")
            ));
        }
        if addrs.len() > 1 {
            message.push_str(
                "; the members bind different addresses, so there is no balancing: the most specific socket gets every connection (rule 4a)",
            );
        }
        message.push_str(&format!(
            "; only the same effective uid can join (rule 5): {}",
            users.iter().cloned().collect::<Vec<_>>().join(", ")
        ));
        out.push(Finding {
            rule: Some(if addrs.len() > 1 { "4a" } else { "4" }),
            kind: "reuseport_group",
            severity: if same_program && addrs.len() == 1 {
                Severity::Info
            } else {
                Severity::Warn
            },
            message,
            fix: "Check that every member is a worker you started; stop unexpected members (`netkit who-owns PORT`) and run the service under a dedicated user so no other program of that user can join. Give every member the same address.".into(),
            evidence: group.iter().map(|s| (*s).clone()).collect(),
            details: json!({
                "members": group.len(),
                "programs": programs,
                "users": users,
                "same_program": same_program,
                "addresses": addrs,
            }),
        });
    }
    out
}

#[cfg(test)]
mod tests {
    use super::super::testing::{host, sock};
    use super::*;
    use crate::sockopt::Applied;

    fn flags(v: &[(u64, bool, bool)]) -> Flags {
        Flags {
            by_inode: v
                .iter()
                .map(|&(i, ra, rp)| {
                    (
                        i,
                        Applied {
                            reuseaddr: Some(ra),
                            reuseport: Some(rp),
                            ..Applied::default()
                        },
                    )
                })
                .collect(),
        }
    }

    #[test]
    fn udp_reuseaddr_severity_follows_holder_and_port() {
        let mut user = sock(Proto::Udp, SockState::Unconn, "0.0.0.0", 5000, 2);
        user.uid = Some(1000);
        let v = vec![
            sock(Proto::Udp, SockState::Unconn, "0.0.0.0", 5353, 1),
            user,
            sock(Proto::Udp, SockState::Unconn, "0.0.0.0", 53, 3),
            sock(Proto::Udp, SockState::Unconn, "0.0.0.0", 6000, 4),
        ];
        let f = udp_reuseaddr(
            &v,
            &flags(&[
                (1, true, false),
                (2, true, false),
                (3, true, false),
                (4, false, true),
            ]),
            &host(),
        );
        let sev: Vec<_> = f
            .iter()
            .map(|f| (f.evidence[0].local_port, f.severity))
            .collect();
        assert_eq!(
            sev,
            [
                (5353, Severity::High),
                (5000, Severity::Warn),
                (53, Severity::Info)
            ]
        );
    }

    #[test]
    fn reuseport_group_of_two_programs_warns_and_one_socket_is_no_group() {
        let a = sock(Proto::Tcp, SockState::Listen, "127.0.0.1", 7000, 1);
        let mut b = sock(Proto::Tcp, SockState::Listen, "127.0.0.1", 7000, 2);
        let single = sock(Proto::Tcp, SockState::Listen, "127.0.0.1", 7001, 3);
        std::sync::Arc::make_mut(&mut b.owners[0]).command = "other".into();
        let f = reuseport_groups(
            &[a, b, single],
            &flags(&[(1, false, true), (2, false, true), (3, false, true)]),
        );
        assert_eq!(f.len(), 1);
        assert_eq!(f[0].severity, Severity::Warn);
        assert_eq!(f[0].details["same_program"], false);
    }
}
