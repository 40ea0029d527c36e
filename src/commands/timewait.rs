//! `netkit timewait`: TIME_WAIT sockets, summarised per local address:port or listed.
//!
//! Owners are looked up only for the listeners of ports that have TIME_WAIT entries, so a
//! summary over tens of thousands of entries costs one filtered dump and a short /proc walk.

use std::collections::HashSet;
use std::net::IpAddr;

use anyhow::Context;
use serde::Serialize;

use super::sockets_report::SocketsReport;
use crate::cli::inventory::TimewaitArgs;
use crate::inspect::{
    self, ListenerRef, Proto, Query, SockState, SocketEntry, diag, fmt_endpoint, listeners_for,
};
use crate::output::{Block, Report, fmt_ms};

/// One local address:port and its TIME_WAIT entries.
#[derive(Debug, Serialize)]
pub struct PortSummary {
    /// Local address of the entries.
    pub local_addr: IpAddr,
    /// Local port.
    pub local_port: u16,
    /// How many TIME_WAIT sockets.
    pub count: usize,
    /// Soonest expiry, ms.
    pub min_expires_ms: u64,
    /// Latest expiry, ms.
    pub max_expires_ms: u64,
    /// The current listener of that port, if any.
    pub listener: Option<ListenerRef>,
}

/// `timewait` summary.
#[derive(Debug, Serialize)]
pub struct TimewaitReport {
    /// Always `timewait`.
    pub command: &'static str,
    /// The port asked about.
    pub port: Option<u16>,
    /// Total TIME_WAIT sockets.
    pub total: usize,
    /// Per local address:port, most entries first.
    pub ports: Vec<PortSummary>,
    /// Hints.
    pub notes: Vec<String>,
}

impl Report for TimewaitReport {
    fn human(&self) -> Vec<Block> {
        let rows = self
            .ports
            .iter()
            .map(|p| {
                vec![
                    fmt_endpoint(p.local_addr, p.local_port),
                    p.count.to_string(),
                    fmt_ms(p.min_expires_ms),
                    fmt_ms(p.max_expires_ms),
                    match &p.listener {
                        Some(l) => format!(
                            "{}/{} ({})",
                            l.pid.map_or("?".into(), |x| x.to_string()),
                            l.command.as_deref().unwrap_or("?"),
                            l.user.as_deref().unwrap_or("?")
                        ),
                        None => "-".into(),
                    },
                ]
            })
            .collect();
        vec![
            Block::table(&["LOCAL", "COUNT", "SOONEST", "LATEST", "LISTENER"], rows),
            Block::Line(format!(
                "{} TIME_WAIT socket(s) on {} local address:port pair(s)",
                self.total,
                self.ports.len()
            )),
        ]
    }

    fn notes(&self) -> Vec<String> {
        self.notes.clone()
    }
}

/// What `timewait` prints: the summary, or every socket with `--all`.
pub enum Timewait {
    /// Per-port summary.
    Summary(TimewaitReport),
    /// Every TIME_WAIT socket.
    All(SocketsReport),
}

/// Reads TIME_WAIT sockets (and the listeners of their ports).
///
/// # Errors
/// When the socket table cannot be read.
pub fn report(args: &TimewaitArgs) -> anyhow::Result<Timewait> {
    let q = Query {
        udp: false,
        tcp_states: vec![SockState::TimeWait, SockState::Listen, SockState::FinWait2],
        local_port: args.port,
        owners: inspect::OwnerScope::None,
        ..Query::default()
    };
    let mut sockets = diag::query(&q).context("reading the socket table")?;
    let orphans = sockets
        .iter()
        .filter(|s| s.state == SockState::FinWait2 && s.inode == 0)
        .count();
    sockets.retain(|s| s.state != SockState::FinWait2);
    let tw_ports: HashSet<u16> = sockets
        .iter()
        .filter(|s| s.state == SockState::TimeWait)
        .map(|s| s.local_port)
        .collect();
    let mut notes = inspect::resolve_owners(&mut sockets, |s| {
        s.state == SockState::Listen && tw_ports.contains(&s.local_port)
    });
    inspect::name_users(&mut sockets);
    if orphans > 0 {
        notes.push(format!(
            "{orphans} orphan FIN_WAIT2 socket(s) also hold ports (a server died with clients connected): see `netkit inspect --state FIN_WAIT2`"
        ));
    }
    if args.all {
        inspect::link_listeners(&mut sockets);
        sockets.retain(|s| s.state == SockState::TimeWait);
        inspect::sort(&mut sockets);
        return Ok(Timewait::All(SocketsReport {
            command: "timewait",
            port: args.port,
            sockets,
            notes,
            cmdline_column: false,
        }));
    }
    let (tw, listeners): (Vec<SocketEntry>, Vec<SocketEntry>) = sockets
        .into_iter()
        .partition(|s| s.state == SockState::TimeWait);
    let total = tw.len();
    let mut ports: Vec<PortSummary> = inspect::group_by(&tw, |s| (s.local_addr, s.local_port))
        .into_iter()
        .map(|((addr, port), group)| {
            let exp = group.iter().filter_map(|s| s.expires_ms);
            PortSummary {
                local_addr: addr,
                local_port: port,
                count: group.len(),
                min_expires_ms: exp.clone().min().unwrap_or(0),
                max_expires_ms: exp.max().unwrap_or(0),
                listener: listeners_for(&listeners, Proto::Tcp, addr, port)
                    .first()
                    .map(|l| ListenerRef::of(l)),
            }
        })
        .collect();
    ports.sort_by(|a, b| {
        b.count
            .cmp(&a.count)
            .then(a.local_port.cmp(&b.local_port))
            .then(a.local_addr.cmp(&b.local_addr))
    });
    if total > 0 {
        notes.push(
            "TIME_WAIT lasts 60 s and belongs to no process; a new bind() on the port passes only if the old socket and the new one both set SO_REUSEADDR (`netkit explain PORT`)"
                .to_string(),
        );
    }
    Ok(Timewait::Summary(TimewaitReport {
        command: "timewait",
        port: args.port,
        total,
        ports,
        notes,
    }))
}
