//! One collection: the kernel's socket table, read once over sock_diag and folded into
//! counters as the replies arrive (no row per socket is kept), then owners for the few
//! sockets whose owner a metric names (listeners of the kept ports, CLOSE_WAIT sockets).
//!
//! Cardinality is bounded: per-port series exist for the `max_ports` busiest listening ports
//! (by socket count) plus every port in `ports`; the rest are summed under `port="other"`.
//! Destinations of outgoing connections are bounded the same way by `max_destinations`.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::fmt;
use std::net::IpAddr;
use std::sync::Arc;
use std::time::Instant;

use crate::inspect::{
    self, Family, InspectError, Owner, Proto, Query, SockState, diag, procfd, sysctl, users,
};

/// What to collect and how far to go per label.
#[derive(Debug, Clone)]
pub struct Options {
    /// Ports always given their own series, listening or not.
    pub ports: Vec<u16>,
    /// Busiest listening ports given their own series; the rest go to `port="other"`.
    pub max_ports: usize,
    /// Busiest destinations of outgoing connections given their own series.
    pub max_destinations: usize,
    /// Every network namespace of the host, each with its own series (a `netns` label).
    pub all_netns: bool,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            ports: Vec::new(),
            max_ports: 50,
            max_destinations: 50,
            all_netns: false,
        }
    }
}

/// The network namespace a collection describes (`--all-netns`): its labels.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct NetnsLabels {
    /// The namespace's inode (`lsns -t net`, `ls -iL /proc/PID/ns/net`): stable while it
    /// lives, unique on the host.
    pub inode: u64,
    /// Its `ip netns` name, else the container its processes run in (`docker:3f9a1c2b7e4d
    /// (web)`), else empty.
    pub name: String,
    /// True for the exporter's own namespace.
    pub current: bool,
}

/// A port label: a number, or the bucket of everything beyond the limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum PortLabel {
    /// One port.
    Port(u16),
    /// Everything folded beyond `--max-ports` / `--max-destinations`.
    Other,
}

impl fmt::Display for PortLabel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PortLabel::Port(p) => write!(f, "{p}"),
            PortLabel::Other => f.write_str("other"),
        }
    }
}

/// The destination of outgoing connections: an address and port, or the folded rest.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Destination {
    /// One remote address and port.
    Peer(IpAddr, u16),
    /// Everything beyond `--max-destinations`.
    Other,
}

/// A process as the metrics name it.
#[derive(Debug, Clone, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ProcessLabels {
    /// Command name (comm); empty when the owner could not be seen.
    pub process: String,
    /// PID; `None` when the owner could not be seen.
    pub pid: Option<u32>,
    /// The socket's user.
    pub user: String,
    /// systemd unit, when the process runs in one.
    pub unit: String,
    /// Container id (short), when the process runs in one.
    pub container: String,
}

/// One listening socket (TCP LISTEN or bound UDP) on a kept port.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Listener {
    /// TCP or UDP.
    pub proto: Proto,
    /// Address family.
    pub family: Family,
    /// Local address (the real wildcard for `*`).
    pub addr: IpAddr,
    /// Local port.
    pub port: u16,
    /// Owner and user.
    pub owner: ProcessLabels,
    /// Connections waiting in the accept queue (Recv-Q of a LISTEN row); TCP only.
    pub accept_queue: u32,
    /// The accept queue's limit, the effective `listen()` backlog (Send-Q); TCP only.
    pub backlog: u32,
}

/// Classic histogram data: (upper bound, count in that bucket), sum and count.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct HistogramData {
    /// Per-bucket (not cumulative) counts with their upper bounds, `+Inf` last.
    pub buckets: Vec<(f64, u64)>,
    /// Sum of the observations.
    pub sum: f64,
    /// Number of observations.
    pub count: u64,
}

/// Upper bounds of the TIME_WAIT seconds-left histogram (TIME_WAIT lasts 60 s on Linux).
pub const TIMEWAIT_BUCKETS: [f64; 9] = [1.0, 5.0, 10.0, 15.0, 20.0, 30.0, 40.0, 50.0, 60.0];

/// Everything one scrape reports, ready to encode.
#[derive(Debug, Clone, Default)]
pub struct Collection {
    /// Host-wide sockets by (proto, family, state).
    pub sockets: BTreeMap<(Proto, Family, SockState), u64>,
    /// Sockets on listening (and `--port`) local ports by (proto, family, port, state).
    pub port_sockets: BTreeMap<(Proto, Family, PortLabel, SockState), u64>,
    /// Number of listening local ports per protocol.
    pub listening_ports: BTreeMap<Proto, u64>,
    /// Listening ports folded into `port="other"` per protocol.
    pub folded_ports: BTreeMap<Proto, u64>,
    /// Listening sockets on the kept ports.
    pub listeners: Vec<Listener>,
    /// TIME_WAIT sockets by local port.
    pub timewait: BTreeMap<PortLabel, u64>,
    /// Seconds left on TIME_WAIT timers.
    pub timewait_left: HistogramData,
    /// Bound-but-not-listening TCP sockets by (family, port).
    pub bound: BTreeMap<(Family, PortLabel), u64>,
    /// `net.ipv4.ip_local_port_range`.
    pub ephemeral_range: (u16, u16),
    /// Distinct local ports inside the ephemeral range held by any socket, per protocol.
    pub ephemeral_used: BTreeMap<Proto, u64>,
    /// Outgoing connections from ephemeral ports by (proto, destination).
    pub destinations: BTreeMap<(Proto, Destination), u64>,
    /// The highest share of the ephemeral range held towards one (local address,
    /// destination address, destination port): 1.0 means connect() fails with EADDRNOTAVAIL.
    pub usage_ratio: f64,
    /// CLOSE_WAIT sockets per owner process.
    pub close_wait: BTreeMap<ProcessLabels, u64>,
    /// Processes whose fds could not be read (owners may be missing).
    pub unreadable_processes: usize,
    /// With `--all-netns`: namespaces that could not be entered or read (without
    /// CAP_SYS_ADMIN, every namespace but the exporter's own).
    pub unreadable_namespaces: usize,
    /// How long the collection took, seconds.
    pub duration_s: f64,
    /// With `--all-netns`: the namespace these counts are from (the exporter's own for this
    /// collection), else `None`.
    pub netns: Option<NetnsLabels>,
    /// With `--all-netns`: the other namespaces' collections (each with `netns` set), those
    /// holding at least one socket, in `inspect::multi::namespaces` order.
    pub namespaces: Vec<Collection>,
}

impl Collection {
    /// Size of the ephemeral range (0 when misconfigured).
    pub fn ephemeral_size(&self) -> u64 {
        let (lo, hi) = self.ephemeral_range;
        if hi >= lo { u64::from(hi - lo) + 1 } else { 0 }
    }
}

/// A socket with a peer, leaving from a local port inside the ephemeral range.
#[derive(Debug, Clone, Copy)]
struct Outgoing {
    proto: Proto,
    lport: u16,
    src: IpAddr,
    dst: IpAddr,
    dport: u16,
}

/// What one dump folds into.
#[derive(Debug, Default)]
struct Fold {
    states: HashMap<(Proto, Family, u16, SockState), u64>,
    listeners: Vec<RawListener>,
    bound: HashMap<(Family, u16), u64>,
    timewait: HashMap<u16, u64>,
    /// Per-bucket counts (TIMEWAIT_BUCKETS, then +Inf) and the sum in ms.
    tw_hist: [u64; TIMEWAIT_BUCKETS.len() + 1],
    tw_sum_ms: u64,
    outgoing: Vec<Outgoing>,
    close_wait: Vec<(u64, Option<u32>)>,
}

#[derive(Debug, Clone, Copy)]
struct RawListener {
    proto: Proto,
    family: Family,
    addr: IpAddr,
    port: u16,
    inode: u64,
    uid: u32,
    recv_q: u32,
    send_q: u32,
}

/// One kernel record as the fold sees it (decoupled from the netlink decoder for tests).
#[derive(Debug, Clone, Copy)]
pub struct Record {
    /// TCP or UDP.
    pub proto: Proto,
    /// Address family.
    pub family: Family,
    /// State with netkit's names.
    pub state: SockState,
    /// Local address.
    pub src: IpAddr,
    /// Local port.
    pub sport: u16,
    /// Remote address.
    pub dst: IpAddr,
    /// Remote port.
    pub dport: u16,
    /// TIME_WAIT timer, ms.
    pub expires_ms: Option<u64>,
    /// Recv-Q.
    pub recv_q: u32,
    /// Send-Q.
    pub send_q: u32,
    /// Socket uid (`None` for kernel-held rows).
    pub uid: Option<u32>,
    /// Socket inode.
    pub inode: u64,
}

impl Record {
    fn from_diag(proto: Proto, m: &diag::DiagMsg) -> Record {
        // The same interpretation `inspect` uses (kernel-held rows have no uid, etc.).
        let e = diag::to_entry(proto, m);
        Record {
            proto,
            family: e.family,
            state: e.state,
            src: m.src,
            sport: m.sport,
            dst: m.dst,
            dport: m.dport,
            expires_ms: e.expires_ms,
            recv_q: m.rqueue,
            send_q: m.wqueue,
            uid: e.uid,
            inode: e.inode,
        }
    }
}

impl Fold {
    fn add(&mut self, r: &Record, eph: (u16, u16)) {
        *self
            .states
            .entry((r.proto, r.family, r.sport, r.state))
            .or_default() += 1;
        match r.state {
            SockState::Listen | SockState::Unconn => self.listeners.push(RawListener {
                proto: r.proto,
                family: r.family,
                addr: r.src,
                port: r.sport,
                inode: r.inode,
                uid: r.uid.unwrap_or(0),
                recv_q: r.recv_q,
                send_q: r.send_q,
            }),
            SockState::Bound => *self.bound.entry((r.family, r.sport)).or_default() += 1,
            SockState::TimeWait => {
                *self.timewait.entry(r.sport).or_default() += 1;
                let ms = r.expires_ms.unwrap_or(0);
                let secs = ms as f64 / 1000.0;
                let i = TIMEWAIT_BUCKETS
                    .iter()
                    .position(|&b| secs <= b)
                    .unwrap_or(TIMEWAIT_BUCKETS.len());
                self.tw_hist[i] += 1;
                self.tw_sum_ms += ms;
            }
            SockState::CloseWait => self.close_wait.push((r.inode, r.uid)),
            _ => {}
        }
        let peerless = matches!(
            r.state,
            SockState::Listen | SockState::Bound | SockState::Unconn
        );
        if !peerless && (eph.0..=eph.1).contains(&r.sport) {
            self.outgoing.push(Outgoing {
                proto: r.proto,
                lport: r.sport,
                src: inspect::canonical(r.src),
                dst: inspect::canonical(r.dst),
                dport: r.dport,
            });
        }
    }

    fn merge(&mut self, o: Fold) {
        for (k, v) in o.states {
            *self.states.entry(k).or_default() += v;
        }
        self.listeners.extend(o.listeners);
        for (k, v) in o.bound {
            *self.bound.entry(k).or_default() += v;
        }
        for (k, v) in o.timewait {
            *self.timewait.entry(k).or_default() += v;
        }
        for (a, b) in self.tw_hist.iter_mut().zip(o.tw_hist) {
            *a += b;
        }
        self.tw_sum_ms += o.tw_sum_ms;
        self.outgoing.extend(o.outgoing);
        self.close_wait.extend(o.close_wait);
    }
}

/// Resolves socket owners and their cgroup-derived unit/container, for the inodes a
/// collection names. Separate so tests can feed records without a /proc walk.
pub trait OwnerSource {
    /// Owners (first one is enough) of `want`, and how many processes were unreadable.
    fn owners(&self, want: &HashSet<u64>) -> (HashMap<u64, Arc<Owner>>, usize);
    /// systemd unit and container id of a process.
    fn placement(&self, pid: u32) -> (String, String);
}

/// Owners from `/proc/<pid>/fd` (stopping once each wanted socket has one owner) and
/// placement from `/proc/<pid>/cgroup`.
#[derive(Debug, Default)]
pub struct ProcOwners;

impl OwnerSource for ProcOwners {
    fn owners(&self, want: &HashSet<u64>) -> (HashMap<u64, Arc<Owner>>, usize) {
        let (m, unreadable) = inspect::owners_by_inode(want, procfd::Reach::First);
        let firsts = m
            .into_iter()
            .filter_map(|(i, v)| v.into_iter().next().map(|o| (i, o)))
            .collect();
        (firsts, unreadable.count)
    }

    fn placement(&self, pid: u32) -> (String, String) {
        // The container label is `runtime:short-id`, with its name where the runtime's
        // on-disk state gives it (inspect::cgroup).
        match inspect::cgroup::resolve(pid) {
            Some(a) => (
                a.unit.unwrap_or_default(),
                a.container.map(|c| c.label()).unwrap_or_default(),
            ),
            None => (String::new(), String::new()),
        }
    }
}

/// Reads the kernel's socket table once and builds the collection.
///
/// # Errors
/// When the sock_diag dump fails (the exporter reports it as a scrape error).
pub fn collect(opts: &Options) -> Result<Collection, InspectError> {
    if opts.all_netns {
        return collect_all_netns(opts);
    }
    let started = Instant::now();
    let eph = sysctl::ephemeral_range();
    let q = Query {
        owners: inspect::OwnerScope::None,
        ..Query::default()
    };
    let parts = diag::for_each_job(&q, |proto, acc: &mut Fold, m| {
        acc.add(&Record::from_diag(proto, m), eph);
    })?;
    let mut fold = Fold::default();
    for p in parts {
        fold.merge(p);
    }
    let mut c = build(fold, opts, eph, &ProcOwners);
    c.duration_s = started.elapsed().as_secs_f64();
    Ok(c)
}

/// [`collect`] for every namespace of the host: one dump per namespace from a thread that
/// entered it (its own `ip_local_port_range`, which is per namespace), owners for all of them
/// from ONE walk of `/proc` (socket inodes are unique host-wide), then one collection each.
/// Namespaces without a socket are left out (no series), except the exporter's own.
///
/// # Errors
/// When the dump of the exporter's own namespace fails; others that fail are left out.
fn collect_all_netns(opts: &Options) -> Result<Collection, InspectError> {
    use crate::inspect::multi::{self, Scope};
    let started = Instant::now();
    let q = Query {
        owners: inspect::OwnerScope::None,
        ..Query::default()
    };
    let per_ns = multi::each(&Scope::All, || {
        // Read inside the namespace: /proc/sys/net shows the reader's namespace.
        let eph = sysctl::ephemeral_range();
        let parts = diag::for_each_job(&q, |proto, acc: &mut Fold, m| {
            acc.add(&Record::from_diag(proto, m), eph);
        })?;
        let mut fold = Fold::default();
        for p in parts {
            fold.merge(p);
        }
        Ok((eph, fold))
    })?;
    // Every listener and CLOSE_WAIT socket of every namespace: a superset of what each
    // collection names, resolved in one walk.
    let want: HashSet<u64> = per_ns
        .parts
        .iter()
        .flat_map(|(_, (_, f))| {
            f.listeners
                .iter()
                .map(|l| l.inode)
                .chain(f.close_wait.iter().map(|(i, _)| *i))
        })
        .filter(|&i| i != 0)
        .collect();
    let (owners, unreadable) = if want.is_empty() {
        (HashMap::new(), 0)
    } else {
        ProcOwners.owners(&want)
    };
    let src = Prefetched { owners, unreadable };
    let skipped = per_ns.skipped.len();
    let mut out: Option<Collection> = None;
    let mut others = Vec::new();
    for (ns, (eph, fold)) in per_ns.parts {
        let Some(ns) = ns else { continue };
        if !ns.current && fold.states.is_empty() {
            continue;
        }
        let mut c = build(fold, opts, eph, &src);
        c.netns = Some(NetnsLabels {
            inode: ns.inode,
            name: ns.name.clone().unwrap_or_else(|| {
                ns.pids
                    .iter()
                    .find_map(|&pid| inspect::cgroup::resolve(pid)?.container)
                    .map(|c| c.label())
                    .unwrap_or_default()
            }),
            current: ns.current,
        });
        if ns.current && out.is_none() {
            out = Some(c);
        } else {
            others.push(c);
        }
    }
    let mut c = out.unwrap_or_default();
    c.namespaces = others;
    c.unreadable_namespaces = skipped;
    c.duration_s = started.elapsed().as_secs_f64();
    Ok(c)
}

/// Owners found beforehand for several collections (`--all-netns`).
#[derive(Debug)]
struct Prefetched {
    owners: HashMap<u64, Arc<Owner>>,
    unreadable: usize,
}

impl OwnerSource for Prefetched {
    fn owners(&self, want: &HashSet<u64>) -> (HashMap<u64, Arc<Owner>>, usize) {
        let found = want
            .iter()
            .filter_map(|i| self.owners.get(i).map(|o| (*i, o.clone())))
            .collect();
        (found, self.unreadable)
    }

    fn placement(&self, pid: u32) -> (String, String) {
        ProcOwners.placement(pid)
    }
}

/// Builds a collection from records (tests: synthetic records, a fake owner source).
pub fn collect_records(
    records: &[Record],
    opts: &Options,
    eph: (u16, u16),
    owners: &dyn OwnerSource,
) -> Collection {
    let mut fold = Fold::default();
    for r in records {
        fold.add(r, eph);
    }
    build(fold, opts, eph, owners)
}

/// The `n` keys with the highest counts (ties: lower key first), plus every key in `always`.
fn top_keys<K: Ord + Copy + std::hash::Hash>(
    counts: &HashMap<K, u64>,
    n: usize,
    always: impl Fn(&K) -> bool,
) -> HashSet<K> {
    let mut v: Vec<(&K, &u64)> = counts.iter().collect();
    v.sort_by(|a, b| b.1.cmp(a.1).then(a.0.cmp(b.0)));
    let mut keep: HashSet<K> = v.iter().take(n).map(|(k, _)| **k).collect();
    keep.extend(counts.keys().filter(|k| always(k)).copied());
    keep
}

fn build(fold: Fold, opts: &Options, eph: (u16, u16), src: &dyn OwnerSource) -> Collection {
    let mut c = Collection {
        ephemeral_range: eph,
        ..Collection::default()
    };
    let pinned = |p: u16| opts.ports.contains(&p);

    // Host totals, listening ports and the ranking by sockets per (proto, port).
    let listening: HashSet<(Proto, u16)> =
        fold.listeners.iter().map(|l| (l.proto, l.port)).collect();
    let mut per_port: HashMap<(Proto, u16), u64> = HashMap::new();
    let mut eph_used: HashSet<(Proto, u16)> = HashSet::new();
    for (&(proto, fam, port, st), &n) in &fold.states {
        *c.sockets.entry((proto, fam, st)).or_default() += n;
        if listening.contains(&(proto, port)) {
            *per_port.entry((proto, port)).or_default() += n;
        }
        if (eph.0..=eph.1).contains(&port) {
            eph_used.insert((proto, port));
        }
    }
    for (proto, _) in &eph_used {
        *c.ephemeral_used.entry(*proto).or_default() += 1;
    }
    for (proto, _) in &listening {
        *c.listening_ports.entry(*proto).or_default() += 1;
    }
    let kept = top_keys(&per_port, opts.max_ports, |k| pinned(k.1));
    for (proto, port) in per_port.keys() {
        if !kept.contains(&(*proto, *port)) {
            *c.folded_ports.entry(*proto).or_default() += 1;
        }
    }
    let port_label = |proto: Proto, port: u16| {
        if kept.contains(&(proto, port)) || pinned(port) {
            PortLabel::Port(port)
        } else {
            PortLabel::Other
        }
    };
    for (&(proto, fam, port, st), &n) in &fold.states {
        if listening.contains(&(proto, port)) || pinned(port) {
            *c.port_sockets
                .entry((proto, fam, port_label(proto, port), st))
                .or_default() += n;
        }
    }

    // TIME_WAIT and bound-only sockets: their own top lists (a TIME_WAIT port is often a
    // client's ephemeral port, which no listener holds).
    let tw_kept = top_keys(&fold.timewait, opts.max_ports, |p| pinned(*p));
    for (&port, &n) in &fold.timewait {
        let l = if tw_kept.contains(&port) {
            PortLabel::Port(port)
        } else {
            PortLabel::Other
        };
        *c.timewait.entry(l).or_default() += n;
    }
    let mut cum_bounds: Vec<(f64, u64)> = TIMEWAIT_BUCKETS
        .iter()
        .copied()
        .chain(std::iter::once(f64::INFINITY))
        .zip(fold.tw_hist)
        .collect();
    cum_bounds.shrink_to_fit();
    c.timewait_left = HistogramData {
        count: fold.tw_hist.iter().sum(),
        buckets: cum_bounds,
        sum: fold.tw_sum_ms as f64 / 1000.0,
    };
    let bound_ports: HashMap<u16, u64> =
        fold.bound
            .iter()
            .fold(HashMap::new(), |mut m, (&(_, p), &n)| {
                *m.entry(p).or_default() += n;
                m
            });
    let bound_kept = top_keys(&bound_ports, opts.max_ports, |p| pinned(*p));
    for (&(fam, port), &n) in &fold.bound {
        let l = if bound_kept.contains(&port) {
            PortLabel::Port(port)
        } else {
            PortLabel::Other
        };
        *c.bound.entry((fam, l)).or_default() += n;
    }

    // Ephemeral ports: outgoing sockets whose local port no listener of the protocol holds
    // (accepted connections of a listener on an ephemeral port are not outgoing).
    let mut per_dest: HashMap<(Proto, IpAddr, u16), u64> = HashMap::new();
    let mut per_tuple: HashMap<(Proto, IpAddr, IpAddr, u16), u64> = HashMap::new();
    for o in &fold.outgoing {
        if listening.contains(&(o.proto, o.lport)) {
            continue;
        }
        *per_dest.entry((o.proto, o.dst, o.dport)).or_default() += 1;
        *per_tuple
            .entry((o.proto, o.src, o.dst, o.dport))
            .or_default() += 1;
    }
    let size = c.ephemeral_size();
    if size > 0 {
        c.usage_ratio = per_tuple.values().copied().max().unwrap_or(0) as f64 / size as f64;
    }
    let dest_kept = top_keys(&per_dest, opts.max_destinations, |_| false);
    for (&(proto, dst, dport), &n) in &per_dest {
        let d = if dest_kept.contains(&(proto, dst, dport)) {
            Destination::Peer(dst, dport)
        } else {
            Destination::Other
        };
        *c.destinations.entry((proto, d)).or_default() += n;
    }

    // Owners: listeners of kept ports and CLOSE_WAIT sockets, one /proc walk.
    let shown: Vec<&RawListener> = fold
        .listeners
        .iter()
        .filter(|l| kept.contains(&(l.proto, l.port)) || pinned(l.port))
        .collect();
    let want: HashSet<u64> = shown
        .iter()
        .map(|l| l.inode)
        .chain(fold.close_wait.iter().map(|(i, _)| *i))
        .filter(|&i| i != 0)
        .collect();
    let (owners, unreadable) = if want.is_empty() {
        (HashMap::new(), 0)
    } else {
        src.owners(&want)
    };
    c.unreadable_processes = unreadable;
    let mut names = users::UserNames::default();
    let mut placements: HashMap<u32, (String, String)> = HashMap::new();
    let mut labels_of = |inode: u64, uid: Option<u32>| {
        let user = uid.map(|u| names.name(u).to_string()).unwrap_or_default();
        match owners.get(&inode) {
            Some(o) => {
                let (unit, container) = placements
                    .entry(o.pid)
                    .or_insert_with(|| src.placement(o.pid))
                    .clone();
                ProcessLabels {
                    process: o.command.clone(),
                    pid: Some(o.pid),
                    user,
                    unit,
                    container,
                }
            }
            None => ProcessLabels {
                user,
                ..ProcessLabels::default()
            },
        }
    };
    for l in shown {
        let tcp = l.proto == Proto::Tcp;
        c.listeners.push(Listener {
            proto: l.proto,
            family: l.family,
            addr: l.addr,
            port: l.port,
            owner: labels_of(l.inode, Some(l.uid)),
            accept_queue: if tcp { l.recv_q } else { 0 },
            backlog: if tcp { l.send_q } else { 0 },
        });
    }
    c.listeners.sort();
    for &(inode, uid) in &fold.close_wait {
        *c.close_wait.entry(labels_of(inode, uid)).or_default() += 1;
    }
    c
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::Ipv4Addr;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    fn rec(state: SockState, sport: u16, dst: &str, dport: u16) -> Record {
        Record {
            proto: Proto::Tcp,
            family: Family::Inet,
            state,
            src: IpAddr::V4(Ipv4Addr::LOCALHOST),
            sport,
            dst: ip(dst),
            dport,
            expires_ms: (state == SockState::TimeWait).then_some(30_500),
            recv_q: 0,
            send_q: 0,
            uid: (state != SockState::TimeWait).then_some(0),
            inode: if state == SockState::TimeWait {
                0
            } else {
                u64::from(sport) * 1000 + u64::from(dport)
            },
        }
    }

    struct Fake;
    impl OwnerSource for Fake {
        fn owners(&self, want: &HashSet<u64>) -> (HashMap<u64, Arc<Owner>>, usize) {
            let m = want
                .iter()
                .map(|&i| {
                    (
                        i,
                        Arc::new(Owner::new(4242, "app".into(), "app --serve".into())),
                    )
                })
                .collect();
            (m, 3)
        }
        fn placement(&self, _pid: u32) -> (String, String) {
            ("app.service".into(), String::new())
        }
    }

    fn listen(port: u16, q: u32, backlog: u32) -> Record {
        Record {
            recv_q: q,
            send_q: backlog,
            dst: ip("0.0.0.0"),
            ..rec(SockState::Listen, port, "0.0.0.0", 0)
        }
    }

    #[test]
    fn ports_beyond_the_limit_fold_into_other_but_pinned_ports_stay() {
        let mut v = Vec::new();
        // Port 1000 + i has i+1 established sockets, i in 0..5.
        for i in 0..5u16 {
            v.push(listen(1000 + i, 0, 128));
            for j in 0..=i {
                v.push(rec(
                    SockState::Established,
                    1000 + i,
                    "127.0.0.9",
                    50000 + j,
                ));
            }
        }
        let opts = Options {
            ports: vec![1000],
            max_ports: 2,
            max_destinations: 10,
            ..Options::default()
        };
        let c = collect_records(&v, &opts, (32768, 60999), &Fake);
        let est = |l: PortLabel| {
            c.port_sockets
                .get(&(Proto::Tcp, Family::Inet, l, SockState::Established))
                .copied()
        };
        assert_eq!(est(PortLabel::Port(1004)), Some(5));
        assert_eq!(est(PortLabel::Port(1003)), Some(4));
        assert_eq!(est(PortLabel::Port(1000)), Some(1), "pinned by --port");
        assert_eq!(est(PortLabel::Other), Some(3 + 2));
        assert_eq!(est(PortLabel::Port(1001)), None);
        assert_eq!(c.folded_ports.get(&Proto::Tcp), Some(&2));
        assert_eq!(c.listening_ports.get(&Proto::Tcp), Some(&5));
        // Listener info only for kept ports, owners resolved with placement.
        let ports: Vec<u16> = c.listeners.iter().map(|l| l.port).collect();
        assert_eq!(ports, vec![1000, 1003, 1004]);
        assert_eq!(c.listeners[0].owner.process, "app");
        assert_eq!(c.listeners[0].owner.unit, "app.service");
        assert_eq!(c.unreadable_processes, 3);
        // Host totals count everything.
        let total: u64 = c.sockets.values().sum();
        assert_eq!(total as usize, v.len());
    }

    #[test]
    fn ephemeral_usage_counts_outgoing_only_and_takes_the_worst_tuple() {
        let eph = (40000, 40009); // 10 ports
        let mut v = vec![listen(40005, 0, 128)];
        // 4 connections to 10.0.0.1:443, 2 to 10.0.0.2:443 from ephemeral ports.
        for p in 40000..40004 {
            v.push(rec(SockState::Established, p, "10.0.0.1", 443));
        }
        v.push(rec(SockState::TimeWait, 40004, "10.0.0.2", 443));
        v.push(rec(SockState::Established, 40006, "10.0.0.2", 443));
        // Accepted connections on the listener's (ephemeral) port are not outgoing.
        v.push(rec(SockState::Established, 40005, "10.0.0.1", 443));
        // A connection from outside the range does not count.
        v.push(rec(SockState::Established, 1234, "10.0.0.1", 443));
        let opts = Options {
            max_destinations: 1,
            ..Options::default()
        };
        let c = collect_records(&v, &opts, eph, &Fake);
        assert_eq!(c.ephemeral_size(), 10);
        assert!((c.usage_ratio - 0.4).abs() < 1e-9, "{}", c.usage_ratio);
        assert_eq!(
            c.destinations
                .get(&(Proto::Tcp, Destination::Peer(ip("10.0.0.1"), 443))),
            Some(&4)
        );
        assert_eq!(
            c.destinations.get(&(Proto::Tcp, Destination::Other)),
            Some(&2)
        );
        // Distinct ephemeral local ports held: 40000-40006 = 7.
        assert_eq!(c.ephemeral_used.get(&Proto::Tcp), Some(&7));
    }

    #[test]
    fn timewait_histogram_bounds_and_close_wait_owners() {
        let mut v = vec![listen(80, 3, 4096)];
        let mut tw = rec(SockState::TimeWait, 80, "127.0.0.2", 1);
        v.push(tw);
        tw.expires_ms = Some(59_999);
        v.push(tw);
        tw.expires_ms = Some(0);
        v.push(tw);
        v.push(rec(SockState::CloseWait, 80, "127.0.0.3", 5));
        v.push(rec(SockState::CloseWait, 80, "127.0.0.3", 6));
        let c = collect_records(&v, &Options::default(), (32768, 60999), &Fake);
        let h = &c.timewait_left;
        assert_eq!(h.count, 3);
        assert!((h.sum - (30.5 + 59.999)).abs() < 1e-9);
        // 0 s → le=1, 30.5 s → le=40, 59.999 s → le=60.
        let per: Vec<u64> = h.buckets.iter().map(|b| b.1).collect();
        assert_eq!(per, vec![1, 0, 0, 0, 0, 0, 1, 0, 1, 0]);
        assert_eq!(c.timewait.get(&PortLabel::Port(80)), Some(&3));
        assert_eq!(c.close_wait.len(), 1);
        let (who, n) = c.close_wait.iter().next().unwrap();
        assert_eq!((who.process.as_str(), who.pid, *n), ("app", Some(4242), 2));
        assert_eq!(c.listeners[0].accept_queue, 3);
        assert_eq!(c.listeners[0].backlog, 4096);
    }
}
