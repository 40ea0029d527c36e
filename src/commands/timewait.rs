//! `netkit timewait`: TIME_WAIT sockets, summarised per local address:port or listed.
//!
//! Owners are looked up only for the listeners of ports that have TIME_WAIT entries, so a
//! summary over tens of thousands of entries costs one filtered dump and a short /proc walk.

use std::collections::{HashMap, HashSet};
use std::net::IpAddr;

use anyhow::Context;
use serde::Serialize;

use super::sockets_report::SocketsReport;
use crate::cli::inventory::TimewaitArgs;
use crate::inspect::{
    self, InspectError, ListenerIndex, ListenerRef, Proto, Query, SockState, SocketEntry, diag,
    fmt_endpoint,
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
    /// Always `timewait` (JSON puts it first, [`Report::command`]).
    #[serde(skip)]
    pub command: &'static str,
    /// The port asked about.
    pub port: Option<u16>,
    /// Total TIME_WAIT sockets.
    pub total: usize,
    /// Per local address:port, most entries first.
    pub ports: Vec<PortSummary>,
    /// Hints.
    pub notes: Vec<String>,
    /// Rows the table shows (0 = all).
    #[serde(skip)]
    pub limit: usize,
}

impl TimewaitReport {
    /// How many summary rows the table shows.
    fn shown(&self) -> usize {
        if self.limit == 0 {
            self.ports.len()
        } else {
            self.limit.min(self.ports.len())
        }
    }
}

impl Report for TimewaitReport {
    fn human(&self) -> Vec<Block> {
        let rows: Vec<Vec<String>> = self
            .ports
            .iter()
            .take(self.shown())
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
        let mut out = Vec::new();
        if !rows.is_empty() {
            out.push(Block::table(
                &["LOCAL", "COUNT", "SOONEST", "LATEST", "LISTENER"],
                rows,
            ));
        }
        let hidden = &self.ports[self.shown()..];
        if !hidden.is_empty() {
            out.push(Block::Line(format!(
                "... and {} more local address:port pair(s) holding {} TIME_WAIT socket(s) (--limit 0 or --json for all)",
                hidden.len(),
                hidden.iter().map(|p| p.count).sum::<usize>()
            )));
        }
        out.push(Block::Line(format!(
            "{} TIME_WAIT socket(s) on {} local address:port pair(s)",
            self.total,
            self.ports.len()
        )));
        out
    }

    fn notes(&self) -> Vec<String> {
        self.notes.clone()
    }

    fn command(&self) -> Option<&'static str> {
        Some(self.command)
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
    if args.all {
        return list_all(args, &q);
    }
    // Fold TIME_WAIT entries into per-address:port counters as the kernel sends them: a
    // summary of 100,000 entries never holds 100,000 rows.
    let folded = diag::for_each_job(&q, |_, acc: &mut Fold, m| {
        if args.port.is_some_and(|p| p != m.sport) {
            return;
        }
        match diag::to_state(Proto::Tcp, m) {
            SockState::TimeWait => acc.add_time_wait(m.src, m.sport, u64::from(m.expires)),
            SockState::Listen => acc.listeners.push(diag::to_entry(Proto::Tcp, m)),
            SockState::FinWait2 if m.inode == 0 => acc.orphans += 1,
            _ => {}
        }
    });
    let (parts, mut notes) = match folded {
        Ok(parts) => (parts, Vec::new()),
        // Without sock_diag, fold the /proc/net fallback's rows the same way.
        Err(InspectError::Netlink { .. }) => {
            let (rows, notes) = inspect::table(&q).context("reading the socket table")?;
            let mut acc = Fold::default();
            for s in rows {
                match s.state {
                    SockState::TimeWait => {
                        acc.add_time_wait(s.local_addr, s.local_port, s.expires_ms.unwrap_or(0))
                    }
                    SockState::Listen => acc.listeners.push(s),
                    SockState::FinWait2 if s.inode == 0 => acc.orphans += 1,
                    _ => {}
                }
            }
            (vec![acc], notes)
        }
        Err(e) => return Err(anyhow::Error::new(e).context("reading the socket table")),
    };
    let mut groups: HashMap<(IpAddr, u16), Agg> = HashMap::new();
    let mut listeners = Vec::new();
    let mut orphans = 0;
    for p in parts {
        orphans += p.orphans;
        listeners.extend(p.listeners);
        for (k, v) in p.groups {
            let g = groups.entry(k).or_insert(Agg::EMPTY);
            g.count += v.count;
            g.min = g.min.min(v.min);
            g.max = g.max.max(v.max);
        }
    }
    // Owners only for the listeners some TIME_WAIT group actually belongs to (same port and
    // an overlapping address): one /proc walk that can stop early.
    let matched: HashSet<u64> = {
        let index = ListenerIndex::new(&listeners);
        groups
            .keys()
            .filter_map(|(addr, port)| index.find(Proto::Tcp, *addr, *port))
            .map(|l| l.inode)
            .collect()
    };
    // The summary names one listener per port, so the first owner found is enough.
    notes.extend(inspect::resolve_owners_within(
        &mut listeners,
        |s| matched.contains(&s.inode),
        inspect::procfd::Reach::First,
    ));
    inspect::name_users(&mut listeners);
    orphan_note(orphans, &mut notes);
    let index = ListenerIndex::new(&listeners);
    let total = groups.values().map(|g| g.count).sum();
    let mut ports: Vec<PortSummary> = groups
        .into_iter()
        .map(|((addr, port), g)| PortSummary {
            local_addr: addr,
            local_port: port,
            count: g.count,
            min_expires_ms: g.min,
            max_expires_ms: g.max,
            listener: index.find(Proto::Tcp, addr, port).map(ListenerRef::of),
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
        limit: args.limit,
    }))
}

/// Counters of one local address:port.
#[derive(Debug, Clone, Copy)]
struct Agg {
    count: usize,
    min: u64,
    max: u64,
}

impl Agg {
    const EMPTY: Agg = Agg {
        count: 0,
        min: u64::MAX,
        max: 0,
    };
}

/// What one dump contributes to the summary.
#[derive(Debug, Default)]
struct Fold {
    groups: HashMap<(IpAddr, u16), Agg>,
    listeners: Vec<SocketEntry>,
    orphans: usize,
}

impl Fold {
    fn add_time_wait(&mut self, addr: IpAddr, port: u16, left_ms: u64) {
        let g = self.groups.entry((addr, port)).or_insert(Agg::EMPTY);
        g.count += 1;
        g.min = g.min.min(left_ms);
        g.max = g.max.max(left_ms);
    }
}

fn orphan_note(orphans: usize, notes: &mut Vec<String>) {
    if orphans > 0 {
        notes.push(format!(
            "{orphans} orphan FIN_WAIT2 socket(s) also hold ports (a server died with clients connected): see `netkit inspect --state FIN_WAIT2`"
        ));
    }
}

/// `timewait --all`: every TIME_WAIT socket with its port's listener.
fn list_all(args: &TimewaitArgs, q: &Query) -> anyhow::Result<Timewait> {
    let (mut sockets, mut notes) = inspect::table(q).context("reading the socket table")?;
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
    notes.extend(inspect::resolve_owners(&mut sockets, |s| {
        s.state == SockState::Listen && tw_ports.contains(&s.local_port)
    }));
    inspect::name_users(&mut sockets);
    orphan_note(orphans, &mut notes);
    inspect::link_listeners(&mut sockets);
    sockets.retain(|s| s.state == SockState::TimeWait);
    inspect::sort(&mut sockets);
    Ok(Timewait::All(SocketsReport {
        command: "timewait",
        port: args.port,
        sockets,
        notes,
        cmdline_column: false,
    }))
}
