//! `netkit timewait`: TIME_WAIT sockets, summarised per local address:port or listed.
//!
//! Owners are looked up only for the listeners of ports that have TIME_WAIT entries, so a
//! summary over tens of thousands of entries costs one filtered dump and a short /proc walk.

use std::collections::HashSet;
use std::net::IpAddr;
use std::sync::Arc;

use anyhow::Context;
use serde::Serialize;

use super::filters::scope_of;
use super::sockets_report::SocketsReport;
use crate::cli::inventory::TimewaitArgs;
use crate::inspect::multi::{self, Scope};
use crate::inspect::netns::Netns;
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
    /// The current listener of that port, if any (in the same namespace).
    pub listener: Option<ListenerRef>,
    /// The network namespace of the entries (`--all-netns` only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub netns: Option<Arc<Netns>>,
}

/// One namespace's TIME_WAIT entries (`--all-netns`).
#[derive(Debug, Serialize)]
pub struct NsSummary {
    /// The namespace.
    pub netns: Arc<Netns>,
    /// Its TIME_WAIT sockets.
    pub total: usize,
    /// When they expire, as [`TimewaitReport::expiry_buckets`].
    pub expiry_buckets: Vec<ExpiryBucket>,
}

/// Width of one expiry bucket, in seconds.
pub const BUCKET_SECONDS: u64 = 10;
/// Number of expiry buckets: TIME_WAIT lasts 60 s (`TCP_TIMEWAIT_LEN`), so six of ten seconds.
pub const BUCKETS: usize = 6;

/// TIME_WAIT sockets whose time left falls in `[seconds_left_from, seconds_left_to)`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct ExpiryBucket {
    /// Lower bound of the time left, seconds (inclusive).
    pub seconds_left_from: u64,
    /// Upper bound of the time left, seconds (exclusive).
    pub seconds_left_to: u64,
    /// How many TIME_WAIT sockets.
    pub count: usize,
}

/// The bucket of a timer: entries that linger past their timer (time left 0) count as
/// expiring; a timer of 60 s or more (not seen on Linux) goes to the last bucket.
pub fn bucket_of(left_ms: u64) -> usize {
    ((left_ms / 1000 / BUCKET_SECONDS) as usize).min(BUCKETS - 1)
}

/// The buckets of a histogram, soonest first.
pub fn expiry_buckets(counts: &[usize; BUCKETS]) -> Vec<ExpiryBucket> {
    counts
        .iter()
        .enumerate()
        .map(|(i, &count)| ExpiryBucket {
            seconds_left_from: i as u64 * BUCKET_SECONDS,
            seconds_left_to: (i as u64 + 1) * BUCKET_SECONDS,
            count,
        })
        .collect()
}

/// The histogram as text lines: `  0-10s      12  ####`, bars scaled to the largest bucket
/// (at most 40 characters; any non-empty bucket gets at least one `#`).
pub fn histogram_lines(buckets: &[ExpiryBucket]) -> Vec<String> {
    const BAR: usize = 40;
    let max = buckets.iter().map(|b| b.count).max().unwrap_or(0);
    let width = buckets
        .iter()
        .map(|b| b.count.to_string().len())
        .max()
        .unwrap_or(1)
        .max(5);
    let mut out = vec!["EXPIRES IN  TIME_WAIT".to_string()];
    for b in buckets {
        let bar = if max == 0 || b.count == 0 {
            0
        } else {
            (b.count * BAR).div_ceil(max)
        };
        let range = format!("{}-{}s", b.seconds_left_from, b.seconds_left_to);
        let line = format!("{range:>10}  {:>width$}  {}", b.count, "#".repeat(bar));
        out.push(line.trim_end().to_string());
    }
    out
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
    /// When the entries expire: counts per 10-second bucket of time left, soonest first.
    pub expiry_buckets: Vec<ExpiryBucket>,
    /// Per local address:port, most entries first.
    pub ports: Vec<PortSummary>,
    /// With `--all-netns`: every namespace read, with its own count and histogram.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub namespaces: Option<Vec<NsSummary>>,
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
        // Nothing found: the hint on stderr says so, as in every other command.
        if self.total == 0 {
            return Vec::new();
        }
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
                .into_iter()
                .chain(
                    self.namespaces
                        .is_some()
                        .then(|| p.netns.as_ref().map_or("-".into(), |n| n.label())),
                )
                .collect()
            })
            .collect();
        let mut out = Vec::new();
        if self.total > 0 {
            out.extend(
                histogram_lines(&self.expiry_buckets)
                    .into_iter()
                    .map(Block::Line),
            );
            out.push(Block::Line(String::new()));
        }
        // --all-netns: each namespace that has entries gets its own histogram, when there
        // is more than one (with one, it is the histogram above).
        let busy: Vec<&NsSummary> = self
            .namespaces
            .iter()
            .flatten()
            .filter(|n| n.total > 0)
            .collect();
        if busy.len() > 1 {
            for n in busy {
                out.push(Block::Line(format!(
                    "netns {} (inode {}): {} TIME_WAIT",
                    n.netns.label(),
                    n.netns.inode,
                    n.total
                )));
                out.extend(
                    histogram_lines(&n.expiry_buckets)
                        .into_iter()
                        .map(Block::Line),
                );
                out.push(Block::Line(String::new()));
            }
        }
        if !rows.is_empty() {
            let mut header = vec!["LOCAL", "COUNT", "SOONEST", "LATEST", "LISTENER"];
            if self.namespaces.is_some() {
                header.push("NETNS");
            }
            out.push(Block::table(&header, rows));
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

/// How many fd links the owner walk of a plain `timewait` (no `--port`) may read: the
/// summary names the listeners' owners in passing, so it looks for them in the oldest
/// processes first and gives up after this many links instead of reading the whole host
/// (a young server with TIME_WAITs next to thousands of long-lived fds). `--port` looks
/// until it finds them.
pub const QUICK_WALK_LINKS: usize = 4096;

/// The hint for listeners whose owner the budgeted walk did not reach.
fn unresolved_note(ports: &[u16]) -> String {
    const SHOWN: usize = 8;
    let mut list: Vec<String> = ports.iter().take(SHOWN).map(|p| p.to_string()).collect();
    if ports.len() > SHOWN {
        list.push(format!("{} more", ports.len() - SHOWN));
    }
    let example = ports.first().copied().unwrap_or(0);
    format!(
        "the owner of the listener on port(s) {} was not looked for past the first {QUICK_WALK_LINKS} fd links of /proc (oldest processes first): `netkit timewait --port {example}` or `netkit who-owns {example}` finds it",
        list.join(", ")
    )
}

/// Reads TIME_WAIT sockets (and the listeners of their ports).
///
/// # Errors
/// When the socket table cannot be read.
pub fn report(args: &TimewaitArgs) -> anyhow::Result<Timewait> {
    let asked = args.port_set();
    let mut q = Query {
        udp: false,
        tcp_states: vec![SockState::TimeWait, SockState::Listen, SockState::FinWait2],
        owners: inspect::OwnerScope::None,
        ..Query::default()
    };
    // One port: the kernel filters; several, a range or a host: filtered as they arrive.
    super::filters::apply_ports(&mut q, &asked);
    q.udp = false;
    let wanted =
        |addr: IpAddr, port: u16| asked.is_empty() || asked.matches(Proto::Tcp, addr, false, port);
    if args.all {
        return list_all(args, &q);
    }
    // Fold TIME_WAIT entries into per-address:port counters as the kernel sends them: a
    // summary of 100,000 entries never holds 100,000 rows. With --all-netns, one dump per
    // namespace (from a thread that entered it).
    let scope = scope_of(&args.ns);
    let tw_states = diag::tcp_state_mask(&[SockState::TimeWait, SockState::FinWait2]);
    let listen_state = diag::tcp_state_mask(&[SockState::Listen]);
    // The owner walk's survey (for the listeners of the ports shown) runs while the kernel
    // dumps the TIME_WAIT entries, in a thread that first dumps every listener (the
    // summary needs those of the ports with entries, known only once the TIME_WAIT dump is
    // over). Measured at scale 1 (5,015 listeners, 40,000 TIME_WAIT): the listeners after
    // the TIME_WAIT dump, filtered by a bytecode of its ports, were 1.1-1.5 ms of the
    // command's critical path; inside the TIME_WAIT dump's state mask, 2.5 ms more CPU
    // there; in a third thread, a TIME_WAIT dump started 3 ms late (the wake-up of a thread
    // on a core the survey already uses). One port asked: the kernel filters on it, and one
    // dump of all three states is a few messages. With --all-netns each namespace dumps its
    // own.
    let (early_tx, early_rx) = std::sync::mpsc::channel();
    let early_listeners = (q.local_port.is_none() && scope == Scope::Here).then(|| {
        inspect::procfd::head_start_then(
            inspect::procfd::HeadStart::Survey,
            Box::new(move || {
                // Sorted by port here, so that the caller, once it knows the ports with
                // entries, touches only their listeners: reading all 5,000 records written
                // by this thread's core cost it 0.4 ms (cache lines moving between cores).
                // One allocation, so that dropping it is one free.
                let mut msgs: Vec<diag::DiagMsg> = Vec::new();
                let r = diag::dump_with(Proto::Tcp, None, listen_state, None, |m| {
                    msgs.push(m.clone())
                });
                msgs.sort_unstable_by_key(|m| m.sport);
                inspect::trace::note("timewait: listen dump done (head start)");
                let _ = early_tx.send(r.map(|()| msgs));
            }),
        );
        std::sync::Mutex::new(Some(early_rx))
    });
    if early_listeners.is_none() {
        inspect::procfd::head_start(inspect::procfd::HeadStart::Survey);
    }
    inspect::trace::note("timewait: dump starts");
    // TIME_WAIT and orphan FIN_WAIT2 first (the state mask skips the listen table), then the
    // listeners of the ports that have entries: the head start's, or when there is none a
    // dump filtered by a bytecode of those ports (the kernel fills no message for the
    // others). Listeners are kept whatever their address: a TIME_WAIT on 127.0.0.1:P
    // belongs to the wildcard listener of P.
    let family_ok = |m: &diag::DiagMsg| {
        if m.family == netlink_packet_sock_diag::constants::AF_INET6 {
            q.v6
        } else {
            q.v4
        }
    };
    let fold = |acc: &mut Fold, m: &diag::DiagMsg| {
        if !family_ok(m) {
            return;
        }
        match diag::to_state(Proto::Tcp, m) {
            SockState::Listen => acc.listen_msgs.push(m.clone()),
            SockState::TimeWait if wanted(m.src, m.sport) => {
                acc.add_time_wait(m.src, m.sport, u64::from(m.expires))
            }
            SockState::FinWait2 if m.inode == 0 && wanted(m.src, m.sport) => acc.orphans += 1,
            _ => {}
        }
    };
    let collect = || -> Result<Vec<Fold>, InspectError> {
        let mut f = Fold::default();
        match q.local_port {
            Some(port) => diag::dump_with(
                Proto::Tcp,
                None,
                tw_states | listen_state,
                Some(port),
                |m| fold(&mut f, m),
            )?,
            None => {
                diag::dump_with(Proto::Tcp, None, tw_states, None, |m| fold(&mut f, m))?;
                inspect::trace::note("timewait: TIME_WAIT dump and fold done");
                let early = early_listeners
                    .as_ref()
                    .and_then(|slot| slot.lock().ok()?.take())
                    .and_then(|rx| rx.recv().ok())
                    .and_then(Result::ok);
                match early {
                    Some(msgs) => {
                        let ports: HashSet<u16> = f.groups.keys().map(|k| k.1).collect();
                        for p in ports {
                            let from = msgs.partition_point(|m| m.sport < p);
                            let to = from + msgs[from..].partition_point(|m| m.sport == p);
                            msgs[from..to].iter().for_each(|m| fold(&mut f, m));
                        }
                    }
                    None => {
                        let ports: Vec<u16> = f.groups.keys().map(|k| k.1).collect();
                        diag::dump_tcp_ports(listen_state, &ports, |m| fold(&mut f, m))?;
                    }
                }
            }
        }
        let ports: HashSet<u16> = f.groups.keys().map(|k| k.1).collect();
        let read = f.listen_msgs.len();
        f.listeners = std::mem::take(&mut f.listen_msgs)
            .iter()
            .filter(|m| ports.contains(&m.sport))
            .map(|m| diag::to_entry(Proto::Tcp, m))
            .collect();
        inspect::trace::note(&format!(
            "timewait: listen dump done, listeners of {} port(s) kept (of {read} read)",
            ports.len(),
        ));
        Ok(vec![f])
    };
    let (per_ns, mut notes): (Vec<NsFold>, Vec<String>) = match multi::each(&scope, collect) {
        Ok(p) => (
            p.parts
                .into_iter()
                .map(|(ns, parts)| (ns, Fold::merge(parts)))
                .collect(),
            p.notes,
        ),
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
            let tw_ports: HashSet<u16> = acc.groups.keys().map(|k| k.1).collect();
            acc.listeners.retain(|l| tw_ports.contains(&l.local_port));
            (vec![(None, acc)], notes)
        }
        Err(e) => return Err(anyhow::Error::new(e).context("reading the socket table")),
    };
    inspect::trace::note("timewait: dump and fold done");
    // Owners only for the listeners some TIME_WAIT group actually belongs to (same port, an
    // overlapping address, the same namespace): one /proc walk for every namespace, which
    // can stop early.
    let matched: HashSet<u64> = per_ns
        .iter()
        .flat_map(|(_, f)| {
            let index = ListenerIndex::new(&f.listeners);
            f.groups
                .keys()
                .filter_map(|(addr, port)| index.find(Proto::Tcp, *addr, *port))
                .map(|l| l.inode)
                .collect::<Vec<u64>>()
        })
        .collect();
    inspect::trace::note(&format!(
        "timewait: {} namespace(s), {} matched listeners",
        per_ns.len(),
        matched.len()
    ));
    let mut listeners: Vec<SocketEntry> = Vec::new();
    let mut ranges = Vec::new();
    for (_, f) in &per_ns {
        ranges.push(listeners.len()..listeners.len() + f.listeners.len());
        listeners.extend(f.listeners.iter().cloned());
    }
    // The summary names one listener per port, so the first owner found is enough; without
    // --port it is a side note, looked for within a budget.
    let matched: HashSet<u64> = matched.into_iter().filter(|&i| i != 0).collect();
    let reach = if asked.is_empty() {
        inspect::procfd::Reach::Within(QUICK_WALK_LINKS)
    } else {
        inspect::procfd::Reach::First
    };
    let (owners, unreadable, cut_short) = inspect::owner_map_within(&matched, reach);
    for l in listeners.iter_mut() {
        if let Some(o) = owners.get(&l.inode) {
            l.owners = o.clone();
        }
    }
    inspect::trace::note("timewait: owners done");
    if cut_short {
        let mut missing: Vec<u16> = listeners
            .iter()
            .filter(|l| matched.contains(&l.inode) && l.owners.is_empty())
            .map(|l| l.local_port)
            .collect();
        missing.sort_unstable();
        missing.dedup();
        notes.push(unresolved_note(&missing));
    } else if unreadable.count > 0 && matched.len() > owners.len() {
        notes.push(inspect::unreadable_note(&unreadable));
    }
    inspect::name_users(&mut listeners);
    let mut orphans = 0;
    let mut buckets = [0usize; BUCKETS];
    let mut ports: Vec<PortSummary> = Vec::new();
    let mut namespaces = Vec::new();
    for ((ns, f), range) in per_ns.into_iter().zip(ranges) {
        orphans += f.orphans;
        for (b, n) in buckets.iter_mut().zip(f.buckets) {
            *b += n;
        }
        let index = ListenerIndex::new(&listeners[range]);
        let ns_total: usize = f.groups.values().map(|g| g.count).sum();
        ports.extend(f.groups.into_iter().map(|((addr, port), g)| PortSummary {
            local_addr: addr,
            local_port: port,
            count: g.count,
            min_expires_ms: g.min,
            max_expires_ms: g.max,
            listener: index.find(Proto::Tcp, addr, port).map(ListenerRef::of),
            netns: ns.clone(),
        }));
        if let Some(ns) = ns {
            namespaces.push(NsSummary {
                netns: ns,
                total: ns_total,
                expiry_buckets: expiry_buckets(&f.buckets),
            });
        }
    }
    orphan_note(orphans, &mut notes);
    let total = ports.iter().map(|p| p.count).sum();
    ports.sort_by(|a, b| {
        b.count
            .cmp(&a.count)
            .then(a.local_port.cmp(&b.local_port))
            .then(a.local_addr.cmp(&b.local_addr))
            .then(
                a.netns
                    .as_ref()
                    .map(|n| n.inode)
                    .cmp(&b.netns.as_ref().map(|n| n.inode)),
            )
    });
    if total == 0 {
        notes.push(if asked.is_empty() {
            "no TIME_WAIT sockets".to_string()
        } else {
            format!(
                "no TIME_WAIT socket on {}",
                super::who_owns::port_words(&asked)
            )
        });
    }
    if total > 0 {
        notes.push(
            "TIME_WAIT lasts 60 s and belongs to no process; a new bind() on the port passes only if the old socket and the new one both set SO_REUSEADDR (`netkit explain PORT`)"
                .to_string(),
        );
    }
    Ok(Timewait::Summary(TimewaitReport {
        command: "timewait",
        port: asked.single(),
        total,
        expiry_buckets: expiry_buckets(&buckets),
        ports,
        namespaces: (scope != Scope::Here).then_some(namespaces),
        notes,
        limit: args.limit,
    }))
}

/// One namespace's fold (`None`: this namespace, without `--all-netns`).
type NsFold = (Option<Arc<Netns>>, Fold);

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
    /// Per local address:port; FxHash: one lookup per TIME_WAIT entry, keys from the kernel.
    groups: rustc_hash::FxHashMap<(IpAddr, u16), Agg>,
    listeners: Vec<SocketEntry>,
    /// The listeners as dumped, before the fold says which ports matter.
    listen_msgs: Vec<diag::DiagMsg>,
    orphans: usize,
    buckets: [usize; BUCKETS],
}

impl Fold {
    /// The dumps of one namespace (tcp4, tcp6, ... in parallel) as one fold.
    fn merge(parts: Vec<Fold>) -> Fold {
        let mut out = Fold::default();
        for p in parts {
            out.orphans += p.orphans;
            for (b, n) in out.buckets.iter_mut().zip(p.buckets) {
                *b += n;
            }
            out.listeners.extend(p.listeners);
            for (k, v) in p.groups {
                let g = out.groups.entry(k).or_insert(Agg::EMPTY);
                g.count += v.count;
                g.min = g.min.min(v.min);
                g.max = g.max.max(v.max);
            }
        }
        out
    }

    fn add_time_wait(&mut self, addr: IpAddr, port: u16, left_ms: u64) {
        let g = self.groups.entry((addr, port)).or_insert(Agg::EMPTY);
        g.count += 1;
        g.min = g.min.min(left_ms);
        g.max = g.max.max(left_ms);
        self.buckets[bucket_of(left_ms)] += 1;
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
    let ports = args.port_set();
    // With --all-netns, one dump per namespace, each row tagged with its namespace.
    let per_ns = multi::each(&scope_of(&args.ns), || inspect::table(q))
        .context("reading the socket table")?;
    let mut notes = per_ns.notes;
    let mut sockets = Vec::new();
    for (ns, (rows, n)) in per_ns.parts {
        for n in n {
            if !notes.contains(&n) {
                notes.push(n);
            }
        }
        sockets.extend(rows.into_iter().map(|mut s| {
            s.netns = ns.clone();
            s
        }));
    }
    sockets.retain(|s| {
        ports.is_empty()
            || (s.state == SockState::Listen && ports.has_port(s.local_port))
            || ports.matches(s.proto, s.local_addr, false, s.local_port)
    });
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
    // A TIME_WAIT's listener is the one of its own namespace: link within each.
    let mut by_ns: Vec<Vec<SocketEntry>> = Vec::new();
    let mut rest = sockets.into_iter().peekable();
    while let Some(first) = rest.next() {
        let key = first.netns.as_ref().map(|n| n.inode);
        let mut part = vec![first];
        while let Some(s) = rest.next_if(|s| s.netns.as_ref().map(|n| n.inode) == key) {
            part.push(s);
        }
        inspect::link_listeners(&mut part);
        part.retain(|s| s.state == SockState::TimeWait);
        inspect::sort(&mut part);
        by_ns.push(part);
    }
    let sockets: Vec<SocketEntry> = by_ns.into_iter().flatten().collect();
    Ok(Timewait::All(SocketsReport {
        command: "timewait",
        port: ports.single(),
        sockets,
        notes,
        cmdline_column: false,
        cols: Default::default(),
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_are_ten_seconds_and_clamp_at_both_ends() {
        assert_eq!(bucket_of(0), 0);
        assert_eq!(bucket_of(9_999), 0);
        assert_eq!(bucket_of(10_000), 1);
        assert_eq!(bucket_of(59_999), 5);
        assert_eq!(bucket_of(60_000), 5);
        assert_eq!(bucket_of(u64::from(u32::MAX)), 5);
        let b = expiry_buckets(&[1, 0, 0, 0, 0, 7]);
        assert_eq!(b.len(), BUCKETS);
        assert_eq!((b[5].seconds_left_from, b[5].seconds_left_to), (50, 60));
        assert_eq!(b.iter().map(|x| x.count).sum::<usize>(), 8);
    }

    #[test]
    fn histogram_bars_scale_to_the_largest_bucket() {
        let lines = histogram_lines(&expiry_buckets(&[1, 0, 0, 0, 20, 40]));
        assert_eq!(lines.len(), 1 + BUCKETS);
        assert_eq!(lines[1], "     0-10s      1  #");
        assert_eq!(lines[2], "    10-20s      0");
        assert!(lines[5].ends_with(&"#".repeat(20)), "{}", lines[5]);
        assert!(lines[6].ends_with(&format!("40  {}", "#".repeat(40))));
    }
}
