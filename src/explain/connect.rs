//! Why a client's connect() failed where bind() passed: the same 4-tuple still exists
//! (BIND-RULES.md rules 12, 12a) or the ephemeral ports towards that destination ran out
//! (rules 13, 13a). Pure functions over the TCP inventory; the lab client calls them through
//! `commands::explain::explain_connect`.

use std::net::SocketAddr;

use super::causes::{Cause, holder_text};
use crate::inspect::{SockState, SocketEntry, canonical};

/// Inputs of the connect diagnosis.
#[derive(Debug, Clone)]
pub struct ConnectEvidence<'a> {
    /// The fixed local address, when the client pinned one (port 0 = autobound).
    pub local: Option<SocketAddr>,
    /// The destination.
    pub remote: SocketAddr,
    /// The errno of connect().
    pub errno: i32,
    /// TCP sockets: those on the local port when pinned, else those towards `remote`.
    pub sockets: &'a [SocketEntry],
    /// `net.ipv4.ip_local_port_range`.
    pub ephemeral: (u16, u16),
    /// `net.ipv4.tcp_tw_reuse`.
    pub tw_reuse: u8,
    /// `net.ipv4.tcp_timestamps`.
    pub timestamps: u8,
}

fn to_remote(s: &SocketEntry, r: SocketAddr) -> bool {
    s.remote_port == Some(r.port()) && s.remote_addr.map(canonical) == Some(canonical(r.ip()))
}

/// The causes of a failed connect().
pub fn diagnose(ev: &ConnectEvidence<'_>) -> Vec<Cause> {
    let r = ev.remote;
    let mut out = Vec::new();
    if ev.errno != libc::EADDRNOTAVAIL && ev.errno != libc::EADDRINUSE {
        return out;
    }
    match ev.local.filter(|l| l.port() != 0) {
        Some(l) => {
            let same: Vec<&SocketEntry> = ev
                .sockets
                .iter()
                .filter(|s| s.local_port == l.port() && to_remote(s, r))
                .filter(|s| l.ip().is_unspecified() || canonical(s.local_addr) == canonical(l.ip()))
                .collect();
            let tw: Vec<&SocketEntry> = same.iter().copied().filter(|s| s.is_ownerless()).collect();
            let live: Vec<&SocketEntry> =
                same.iter().copied().filter(|s| !s.is_ownerless()).collect();
            if !live.is_empty() {
                out.push(Cause {
                    kind: "same_four_tuple",
                    message: format!(
                        "the connection {} -> {r} already exists ({}, {}): a TCP connection is identified by source and destination, and that pair is taken. The check happens at connect(), not at bind(), and the error is EADDRNOTAVAIL, not EADDRINUSE (BIND-RULES.md rule 12)",
                        live[0].local(),
                        live[0].state,
                        holder_text(live[0])
                    ),
                    fix: "use another source port (or none: let the kernel pick), connect to another destination, or close the old connection first".into(),
                    seconds_left: None,
                    sockets: live.into_iter().cloned().collect(),
                });
            } else if !tw.is_empty() {
                out.push(Cause {
                    kind: "four_tuple_time_wait",
                    message: format!(
                        "the same connection {} -> {r} is still in TIME_WAIT. An explicitly bound socket normally recycles its own TIME_WAIT at once when TCP timestamps were used (tcp_timestamps is {} here); it fails when the old connection had no timestamps (BIND-RULES.md rule 12a)",
                        tw[0].local(),
                        ev.timestamps
                    ),
                    fix: format!(
                        "enable net.ipv4.tcp_timestamps, or stop pinning the source port, or wait {} s",
                        tw.iter().filter_map(|s| s.expires_ms).max().unwrap_or(0).div_ceil(1000)
                    ),
                    seconds_left: tw.iter().filter_map(|s| s.expires_ms).max().map(|m| m.div_ceil(1000)),
                    sockets: tw.into_iter().cloned().collect(),
                });
            }
        }
        None => {
            let towards: Vec<&SocketEntry> =
                ev.sockets.iter().filter(|s| to_remote(s, r)).collect();
            let range = usize::from(ev.ephemeral.1.saturating_sub(ev.ephemeral.0)) + 1;
            let tws = towards
                .iter()
                .filter(|s| s.state == SockState::TimeWait)
                .count();
            let kind = if tws * 2 >= towards.len().max(1) {
                "ephemeral_exhausted_time_wait"
            } else {
                "ephemeral_exhausted"
            };
            out.push(Cause {
                kind,
                message: format!(
                    "no free source port towards {r}: {} connection(s) to it use source ports from net.ipv4.ip_local_port_range ({}-{}, {range} ports), {tws} of them in TIME_WAIT. An autobound connect() needs a source port not already used towards the same destination (BIND-RULES.md rule 13){}",
                    towards.len(),
                    ev.ephemeral.0,
                    ev.ephemeral.1,
                    if tws > 0 {
                        format!(
                            "; TIME_WAITs are reused only with tcp_tw_reuse=1 after tcp_tw_reuse_delay, or =2 on loopback (it is {} here; rule 13a)",
                            ev.tw_reuse
                        )
                    } else {
                        String::new()
                    }
                ),
                fix: "widen ip_local_port_range, reuse connections (keep-alive, pooling), spread load over more destination addresses or ports; for TIME_WAITs set net.ipv4.tcp_tw_reuse=1".into(),
                seconds_left: None,
                sockets: towards.into_iter().take(20).cloned().collect(),
            });
        }
    }
    out
}
