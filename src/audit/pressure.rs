//! Pressure findings: ephemeral ports in use per destination against the range (rule 13),
//! TIME_WAIT piling up on a port (rule 7), accept queues near their backlog, CLOSE_WAIT
//! piling up in a process. Evidence is capped at [`EVIDENCE_CAP`] sockets per finding; the
//! counts in `details` are complete.

use std::collections::{HashMap, HashSet};
use std::net::IpAddr;

use serde_json::json;

use super::{Finding, Host, Severity, owners};
use crate::inspect::{Proto, SockState, SocketEntry, canonical, fmt_endpoint, group_by};

/// Most sockets listed as evidence of one pressure finding.
pub const EVIDENCE_CAP: usize = 10;
/// TIME_WAIT entries on one local port that make a finding.
pub const TIMEWAIT_PER_PORT: usize = 1000;
/// CLOSE_WAIT sockets in one process that make a finding.
pub const CLOSE_WAIT_PER_PROCESS: usize = 10;

fn capped<'a>(v: impl IntoIterator<Item = &'a SocketEntry>) -> Vec<SocketEntry> {
    v.into_iter().take(EVIDENCE_CAP).cloned().collect()
}

/// Outgoing TCP connections per (source address, destination), against the ephemeral range:
/// an autobound connect() to that destination fails with EADDRNOTAVAIL once every port is
/// taken (rule 13; TIME_WAITs count, rule 13a). Warn at 50 %, high at 80 %.
pub fn ephemeral_per_destination(sockets: &[SocketEntry], host: &Host) -> Vec<Finding> {
    let (lo, hi) = host.ephemeral;
    let range = usize::from(hi.saturating_sub(lo)) + 1;
    let listening: HashSet<u16> = sockets
        .iter()
        .filter(|s| s.proto == Proto::Tcp && matches!(s.state, SockState::Listen))
        .map(|s| s.local_port)
        .collect();
    let outgoing: Vec<&SocketEntry> = sockets
        .iter()
        .filter(|s| s.proto == Proto::Tcp && s.remote_addr.is_some())
        .filter(|s| (lo..=hi).contains(&s.local_port) && !listening.contains(&s.local_port))
        .collect();
    let groups = group_by(&outgoing, |s| {
        (
            canonical(s.local_addr),
            s.remote_addr.map(canonical),
            s.remote_port,
        )
    });
    let mut out = Vec::new();
    for ((src, dst, dport), v) in groups {
        let (Some(dst), Some(dport)) = (dst, dport) else {
            continue;
        };
        let used = v.len();
        let severity = if used * 10 >= range * 8 {
            Severity::High
        } else if used * 2 >= range {
            Severity::Warn
        } else {
            continue;
        };
        let tw = v.iter().filter(|s| s.state == SockState::TimeWait).count();
        out.push(Finding {
            rule: Some("13"),
            kind: "ephemeral_ports",
            severity,
            message: format!(
                "{used} of the {range} ephemeral ports ({lo}-{hi}) are in use from {src} to {} ({tw} in TIME_WAIT): when all are taken, connect() to it fails with EADDRNOTAVAIL (BIND-RULES.md rules 13, 13a)",
                fmt_endpoint(dst, dport)
            ),
            fix: "Reuse connections (keep-alive, pooling), widen net.ipv4.ip_local_port_range, spread the load over more destination addresses or ports, or set net.ipv4.tcp_tw_reuse=1 when TIME_WAITs fill the range.".into(),
            evidence: capped(v.iter().map(|s| **s)),
            details: json!({
                "in_use": used,
                "time_wait": tw,
                "range_size": range,
                "source_addr": src,
                "destination_addr": dst,
                "destination_port": dport,
            }),
            netns: None,
        });
    }
    out
}

/// Local ports with [`TIMEWAIT_PER_PORT`] or more TIME_WAIT entries.
pub fn timewait_per_port(sockets: &[SocketEntry]) -> Vec<Finding> {
    let tw: Vec<&SocketEntry> = sockets
        .iter()
        .filter(|s| s.proto == Proto::Tcp && s.state == SockState::TimeWait)
        .collect();
    group_by(&tw, |s| s.local_port)
        .into_iter()
        .filter(|(_, v)| v.len() >= TIMEWAIT_PER_PORT)
        .map(|(port, v)| {
            let last = v.iter().filter_map(|s| s.expires_ms).max();
            Finding {
                rule: Some("7"),
                kind: "timewait_per_port",
                severity: Severity::Warn,
                message: format!(
                    "{} TIME_WAIT entries on local port {port} (the last expires in {}): until they do, a new server on this port gets EADDRINUSE unless both the old and the new socket set SO_REUSEADDR (BIND-RULES.md rule 7)",
                    v.len(),
                    last.map_or("?".into(), crate::output::fmt_ms)
                ),
                fix: "Set SO_REUSEADDR in every instance of the server; let clients close first (or keep connections alive) so the TIME_WAITs stay on their side.".into(),
                evidence: capped(v.iter().map(|s| **s)),
                details: json!({ "time_wait": v.len(), "last_expires_ms": last }),
                netns: None,
            }
        })
        .collect()
}

/// Listeners whose accept queue is at 80 % of the backlog or more; full (more than the
/// backlog, the kernel's `sk_acceptq_is_full`) is high: new SYNs are dropped.
pub fn accept_queues(sockets: &[SocketEntry]) -> Vec<Finding> {
    sockets
        .iter()
        .filter(|s| s.proto == Proto::Tcp && s.state == SockState::Listen)
        // For LISTEN, sock_diag's rqueue is the accept queue, wqueue the backlog.
        .filter(|s| s.recv_q > 0 && s.send_q > 0 && s.recv_q * 10 >= s.send_q * 8)
        .map(|s| {
            let full = s.recv_q > s.send_q;
            Finding {
                rule: None,
                kind: "accept_queue",
                severity: if full { Severity::High } else { Severity::Warn },
                message: format!(
                    "{} ({}) has {} connections waiting for accept() with a backlog of {}{}",
                    s.local(),
                    owners(s),
                    s.recv_q,
                    s.send_q,
                    if full {
                        ": the queue is full, so the kernel drops new SYNs and clients wait for retransmits (ListenOverflows in nstat)"
                    } else {
                        ": nearly full"
                    }
                ),
                fix: "Make the server accept faster (more workers, a non-blocking accept loop), or raise its listen() backlog (capped by net.core.somaxconn).".into(),
                evidence: vec![s.clone()],
                details: json!({ "queued": s.recv_q, "backlog": s.send_q, "full": full }),
                netns: None,
            }
        })
        .collect()
}

/// Processes holding [`CLOSE_WAIT_PER_PROCESS`] or more CLOSE_WAIT sockets.
pub fn close_wait_per_process(sockets: &[SocketEntry]) -> Vec<Finding> {
    let mut by_pid: HashMap<u32, Vec<&SocketEntry>> = HashMap::new();
    for s in sockets
        .iter()
        .filter(|s| s.proto == Proto::Tcp && s.state == SockState::CloseWait)
    {
        if let Some(o) = s.owners.first() {
            by_pid.entry(o.pid).or_default().push(s);
        }
    }
    let mut pids: Vec<_> = by_pid.into_iter().collect();
    pids.sort_by_key(|(pid, v)| (std::cmp::Reverse(v.len()), *pid));
    pids.into_iter()
        .filter(|(_, v)| v.len() >= CLOSE_WAIT_PER_PROCESS)
        .map(|(pid, v)| {
            let peers: HashSet<Option<IpAddr>> = v.iter().map(|s| s.remote_addr).collect();
            Finding {
                rule: None,
                kind: "close_wait",
                severity: Severity::Warn,
                message: format!(
                    "PID {pid} ({}) holds {} connections in CLOSE_WAIT (from {} peer address(es)): the peers closed and the process never called close(); no kernel timer ends CLOSE_WAIT, so each keeps an fd and its buffers until the process closes it",
                    v[0].owners.first().map_or("?", |o| o.command.as_str()),
                    v.len(),
                    peers.len()
                ),
                fix: "Fix the program to close() a connection when read() returns 0 (EOF); restarting it frees them now.".into(),
                evidence: capped(v.iter().copied()),
                details: json!({ "process": v[0].owners.first(), "close_wait": v.len() }),
                netns: None,
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::super::testing::{host, sock};
    use super::*;

    #[test]
    fn accept_queue_full_is_high_and_nearly_full_is_warn() {
        let mut full = sock(Proto::Tcp, SockState::Listen, "127.0.0.1", 80, 1);
        (full.recv_q, full.send_q) = (5, 4);
        let mut near = sock(Proto::Tcp, SockState::Listen, "127.0.0.1", 81, 2);
        (near.recv_q, near.send_q) = (8, 10);
        let mut fine = sock(Proto::Tcp, SockState::Listen, "127.0.0.1", 82, 3);
        (fine.recv_q, fine.send_q) = (1, 128);
        let f = accept_queues(&[full, near, fine]);
        let sev: Vec<_> = f.iter().map(|f| f.severity).collect();
        assert_eq!(sev, [Severity::High, Severity::Warn]);
    }

    #[test]
    fn ephemeral_ports_count_per_destination_against_the_range() {
        let mut h = host();
        h.ephemeral = (40000, 40009);
        let v: Vec<SocketEntry> = (0..8)
            .map(|i| {
                let mut s = sock(
                    Proto::Tcp,
                    SockState::Established,
                    "127.0.0.1",
                    40000 + i,
                    10 + u64::from(i),
                );
                s.remote_addr = Some("127.0.0.1".parse().unwrap());
                s.remote_port = Some(5000);
                s
            })
            .collect();
        let f = ephemeral_per_destination(&v, &h);
        assert_eq!(f.len(), 1);
        assert_eq!(f[0].severity, Severity::High);
        assert_eq!(f[0].details["in_use"], 8);
        h.ephemeral = (40000, 40015);
        assert_eq!(
            ephemeral_per_destination(&v, &h)[0].severity,
            Severity::Warn
        );
        h.ephemeral = (32768, 60999);
        assert!(ephemeral_per_destination(&v, &h).is_empty());
    }

    #[test]
    fn close_wait_names_the_process_once() {
        let v: Vec<SocketEntry> = (0..10)
            .map(|i| {
                let mut s = sock(Proto::Tcp, SockState::CloseWait, "127.0.0.1", 40000 + i, 7);
                s.remote_addr = Some("127.0.0.1".parse().unwrap());
                s.remote_port = Some(8080);
                s
            })
            .collect();
        let f = close_wait_per_process(&v);
        assert_eq!(f.len(), 1);
        assert!(
            f[0].message
                .starts_with("PID 107 (prog) holds 10 connections"),
            "{}",
            f[0].message
        );
        assert!(close_wait_per_process(&v[..9]).is_empty());
    }
}
