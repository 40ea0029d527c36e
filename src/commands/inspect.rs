//! `netkit inspect`: the full socket table with owners, like `ss -tuanp`.
//!
//! A full table can hold 100,000+ sockets, most of them TIME_WAIT. `ss` streams them and
//! holds nothing; netkit sorts and adds owners, so it must hold the table, but it keeps each
//! socket as the kernel's compact record ([`DiagMsg`], about half a [`SocketEntry`]) and
//! builds the full entry only while printing that row. Owners, user names and listeners are
//! shared lookups. This keeps peak memory within about 1.5× of `ss -tanp` (see
//! scripts/bench-inspect).

use rustc_hash::FxHashMap;
use std::sync::Arc;

use anyhow::Context;
use serde::ser::{SerializeSeq, SerializeStruct};
use serde::{Serialize, Serializer};

use super::filters::{
    apply_ports, apply_proto, awaits_accept, check_pid, keep, port_matches, scope_of, user_filter,
};
use super::sockets_report::{Columns, cells_with, header_with, with_empty_note};
use crate::cli::inventory::InspectArgs;
use crate::cli::state::StateFilter;
use crate::inspect::diag::{self, DiagMsg};
use crate::inspect::multi::{self, Scope};
use crate::inspect::netns::Netns;
use crate::inspect::{
    self, Family, InspectError, ListenerRef, OwnerScope, Proto, Query, SockState, SocketEntry,
    addrs_overlap, cgroup, procfd, users,
};
use crate::output::{Block, Report, Rows};

/// One row: the kernel's record, or a full entry when the /proc/net fallback produced it;
/// each with the index of its namespace in [`InspectReport::namespaces`] (0 without
/// `--all-netns`).
enum Row {
    Diag(Proto, u16, DiagMsg),
    Entry(u16, Box<SocketEntry>),
}

impl Row {
    /// The table order of this row ([`inspect::sort_key`]), without building an entry.
    fn key(&self) -> (u16, inspect::SortKey) {
        (self.ns(), self.sort_key())
    }

    /// The first fields of [`Row::key`] (namespace, protocol, local port), read without
    /// building the key: most comparisons of a sort end there.
    fn prefix(&self) -> (u16, Proto, u16) {
        match self {
            Row::Diag(p, ns, m) => (*ns, *p, m.sport),
            Row::Entry(ns, e) => (*ns, e.proto, e.local_port),
        }
    }

    /// The namespace index.
    fn ns(&self) -> u16 {
        match self {
            Row::Diag(_, ns, _) | Row::Entry(ns, _) => *ns,
        }
    }

    /// The socket's inode.
    fn inode(&self) -> u64 {
        match self {
            Row::Diag(_, _, m) => u64::from(m.inode),
            Row::Entry(_, e) => e.inode,
        }
    }

    fn sort_key(&self) -> inspect::SortKey {
        match self {
            Row::Diag(p, _, m) => {
                let state = diag::to_state(*p, m);
                let peerless = matches!(
                    state,
                    SockState::Listen | SockState::Bound | SockState::Unconn
                );
                let family = if m.src.is_ipv6() {
                    Family::Inet6
                } else {
                    Family::Inet
                };
                (
                    *p,
                    m.sport,
                    inspect::state_rank(state),
                    family,
                    m.src,
                    state,
                    (!peerless).then_some(m.dst),
                    (!peerless).then_some(m.dport),
                )
            }
            Row::Entry(_, e) => inspect::sort_key(e),
        }
    }

    /// The entry without owners, user or listener (no allocation for a `Diag` row).
    fn bare(&self) -> SocketEntry {
        match self {
            Row::Diag(p, _, m) => diag::to_entry(*p, m),
            Row::Entry(_, e) => (**e).clone(),
        }
    }
}

/// The full socket table, held compactly.
pub struct InspectReport {
    port: Option<u16>,
    rows: Vec<Row>,
    owners: inspect::OwnerMap,
    /// FxHash (as `by_port`): looked up for every row, twice per row for a table.
    users: FxHashMap<u32, Arc<str>>,
    /// LISTEN / UNCONN sockets with owners, for the `listener` of kernel-held rows.
    listeners: Vec<SocketEntry>,
    /// The same listeners as rows name them, made once (not once per TIME_WAIT row).
    listener_refs: Vec<Arc<ListenerRef>>,
    /// (namespace index, proto, port) → indexes into `listeners`.
    by_port: FxHashMap<(u16, Proto, u16), Vec<usize>>,
    /// The namespace of each index rows carry (`[None]` without `--all-netns`).
    namespaces: Vec<Option<Arc<Netns>>>,
    /// The optional columns: UNIT/CONTAINER when an owner has one, NETNS with `--all-netns`.
    cols: Columns,
    notes: Vec<String>,
}

impl InspectReport {
    /// Number of sockets.
    pub fn len(&self) -> usize {
        self.rows.len()
    }

    /// True when no socket matched.
    pub fn is_empty(&self) -> bool {
        self.rows.is_empty()
    }

    /// PIDs of the processes holding the listed sockets (repeats allowed).
    pub fn owner_pids(&self) -> Vec<u32> {
        self.rows
            .iter()
            .filter_map(|r| self.owners.get(&r.inode()))
            .flat_map(|o| o.iter().map(|p| p.pid))
            .collect()
    }

    /// The full entry of row `i`, as every other listing shows it.
    pub fn entry(&self, i: usize) -> SocketEntry {
        let row = &self.rows[i];
        let ns = row.ns();
        let mut s = row.bare();
        s.netns = self.namespaces.get(usize::from(ns)).cloned().flatten();
        if let Some(o) = self.owners.get(&s.inode) {
            s.owners = o.clone();
        }
        if let Some(uid) = s.uid {
            s.user = self.users.get(&uid).cloned();
        }
        if s.is_ownerless() || awaits_accept(&s) {
            s.listener = self
                .by_port
                .get(&(ns, s.proto, s.local_port))
                .into_iter()
                .flatten()
                .find(|&&j| {
                    let l = &self.listeners[j];
                    addrs_overlap(l.local_addr, l.family == Family::Inet6, s.local_addr, false)
                })
                .map(|&j| self.listener_refs[j].clone());
        }
        s
    }
}

impl Serialize for InspectReport {
    /// The listing schema shared with who-owns and listening; sockets are built row by row.
    fn serialize<S: Serializer>(&self, ser: S) -> Result<S::Ok, S::Error> {
        struct Sockets<'a>(&'a InspectReport);
        impl Serialize for Sockets<'_> {
            fn serialize<S: Serializer>(&self, ser: S) -> Result<S::Ok, S::Error> {
                let mut seq = ser.serialize_seq(Some(self.0.len()))?;
                for i in 0..self.0.len() {
                    seq.serialize_element(&self.0.entry(i))?;
                }
                seq.end()
            }
        }
        let mut st = ser.serialize_struct("InspectReport", 3)?;
        st.serialize_field("port", &self.port)?;
        st.serialize_field("sockets", &Sockets(self))?;
        st.serialize_field("notes", &self.notes)?;
        st.end()
    }
}

impl Rows for InspectReport {
    fn header(&self) -> Vec<String> {
        header_with(self.cols)
    }
    fn len(&self) -> usize {
        self.rows.len()
    }
    fn row(&self, i: usize) -> Vec<String> {
        let mut out = Vec::new();
        cells_with(&self.entry(i), self.cols, &mut out);
        out
    }
    fn row_into(&self, i: usize, out: &mut Vec<String>) {
        cells_with(&self.entry(i), self.cols, out)
    }
}

impl Report for InspectReport {
    fn human(&self) -> Vec<Block> {
        Vec::new()
    }
    fn rows(&self) -> Option<&dyn Rows> {
        (!self.rows.is_empty()).then_some(self as &dyn Rows)
    }
    fn notes(&self) -> Vec<String> {
        with_empty_note(&self.notes, self.rows.is_empty(), "inspect", self.port)
    }
    fn command(&self) -> Option<&'static str> {
        Some("inspect")
    }
}

/// Gathers the socket table with the filters applied.
///
/// # Errors
/// Unknown state, user or PID, or an unreadable socket table.
pub fn report(args: &InspectArgs) -> anyhow::Result<InspectReport> {
    let uid = user_filter(args.user.as_deref())?;
    check_pid(args.pid)?;
    let mut q = Query {
        owners: OwnerScope::All,
        ..Query::default()
    };
    apply_proto(&mut q, args.filter);
    let ports = args.port_set();
    apply_ports(&mut q, &ports);
    let remote = args.remote_set();
    if !remote.is_empty() {
        let (tcp, udp) = remote.protos();
        q.tcp &= tcp;
        q.udp &= udp;
    }
    // The owner walk runs while the kernel dumps: the whole host's fd links when every
    // socket is listed (what `ss -p` reads too), else the survey that starts a short walk.
    procfd::head_start(if ports.is_empty() && remote.is_empty() {
        procfd::HeadStart::Links
    } else {
        procfd::HeadStart::Survey
    });
    // --state: the union of the values; -l: the sockets that hold ports for servers.
    let mut filters = args.state.clone();
    if args.listening {
        filters.extend([
            StateFilter::Listening,
            StateFilter::Bound,
            StateFilter::Unconn,
        ]);
    }
    let states = (!filters.is_empty()).then(|| StateFilter::union(&filters));
    if let Some(st) = &states {
        // UDP sockets are UNCONN or (connected) ESTABLISHED; every other state is TCP's.
        q.udp &= st.contains(&SockState::Unconn) || st.contains(&SockState::Established);
        q.tcp &= st.iter().any(|s| *s != SockState::Unconn);
        q.tcp_states = st
            .iter()
            .copied()
            .filter(|s| *s != SockState::Unconn)
            .collect();
        // The listener column of kernel-held rows (and of connections waiting in an accept
        // queue) needs the listeners too.
        if st.iter().any(|s| {
            matches!(
                s,
                SockState::TimeWait
                    | SockState::FinWait2
                    | SockState::Established
                    | SockState::CloseWait
                    | SockState::SynRecv
            )
        }) && !q.tcp_states.contains(&SockState::Listen)
        {
            q.tcp_states.push(SockState::Listen);
        }
    }
    let wanted = |s: &SocketEntry| {
        states.as_ref().is_none_or(|st| st.contains(&s.state))
            && port_matches(&ports, s)
            && (remote.is_empty()
                || matches!((s.remote_addr, s.remote_port), (Some(a), Some(p)) if remote.matches(s.proto, a, false, p)))
            && uid.is_none_or(|u| s.uid == Some(u))
    };

    // Rows and listeners, straight from the kernel's dump: one per namespace with
    // --all-netns (each from a thread that entered it), owners from one walk below.
    let scope = scope_of(&args.ns);
    let mut notes = Vec::new();
    let mut listeners: Vec<(u16, SocketEntry)> = Vec::new();
    // Listeners as the kernel's compact records until the kernel-held rows are known: only
    // the listeners of ports with TIME_WAIT / orphan rows are kept (the `listener` column).
    let mut raw_listeners: Vec<(u16, Proto, DiagMsg)> = Vec::new();
    let mut rows: Vec<Row> = Vec::new();
    let dump = || {
        diag::for_each_job(&q, |proto, acc: &mut Gather, m: &DiagMsg| {
            let e = diag::to_entry(proto, m);
            if proto == Proto::Tcp && !q.tcp_states.contains(&e.state) {
                return;
            }
            if matches!(e.state, SockState::Listen | SockState::Unconn) {
                acc.listeners.push((proto, m.clone()));
            }
            if wanted(&e) {
                acc.rows.push(Row::Diag(proto, 0, m.clone()));
            }
        })
    };
    let per_ns = match multi::each(&scope, dump) {
        Ok(p) => p,
        // Without sock_diag (here: another namespace's failure is a skipped namespace): the
        // /proc/net fallback, as full entries.
        Err(InspectError::Netlink { .. }) => {
            let (all, n) = inspect::table(&q).context("reading the socket table")?;
            notes.extend(n);
            let mut g = Gather::default();
            for e in all {
                if matches!(e.state, SockState::Listen | SockState::Unconn) {
                    listeners.push((0, e.clone()));
                }
                if wanted(&e) {
                    g.rows.push(Row::Entry(0, Box::new(e)));
                }
            }
            multi::PerNs {
                parts: vec![(None, vec![g])],
                skipped: Vec::new(),
                notes: Vec::new(),
            }
        }
        Err(e) => return Err(anyhow::Error::new(e).context("reading the socket table")),
    };
    notes.extend(per_ns.notes);
    let mut namespaces: Vec<Option<Arc<Netns>>> = Vec::new();
    for (ns, mut parts) in per_ns.parts {
        let idx = u16::try_from(namespaces.len()).unwrap_or(u16::MAX);
        namespaces.push(ns);
        parts.sort_by_key(|p| std::cmp::Reverse(p.rows.len()));
        for mut p in parts {
            if idx != 0 {
                for r in &mut p.rows {
                    let (Row::Diag(_, n, _) | Row::Entry(n, _)) = r;
                    *n = idx;
                }
            }
            if rows.is_empty() {
                rows = std::mem::take(&mut p.rows);
            } else {
                rows.append(&mut p.rows);
            }
            raw_listeners.extend(p.listeners.into_iter().map(|(pr, m)| (idx, pr, m)));
        }
    }

    let held_ports: std::collections::HashSet<(u16, Proto, u16)> = rows
        .iter()
        .filter_map(|r| {
            let s = r.bare();
            (s.is_ownerless() || awaits_accept(&s)).then_some((r.ns(), s.proto, s.local_port))
        })
        .collect();
    listeners.extend(
        raw_listeners
            .into_iter()
            .filter(|(ns, p, m)| held_ports.contains(&(*ns, *p, m.sport)))
            .map(|(ns, p, m)| (ns, diag::to_entry(p, &m))),
    );
    listeners.retain(|(ns, l)| held_ports.contains(&(*ns, l.proto, l.local_port)));
    listeners.shrink_to_fit();
    inspect::trace::note("inspect: listeners of kernel-held rows kept");

    // Owners of every row and of the listeners, from one walk (socket inodes are unique
    // host-wide, so one walk serves every namespace).
    let want: std::collections::HashSet<u64> = rows
        .iter()
        .map(Row::inode)
        .chain(listeners.iter().map(|(_, l)| l.inode))
        .filter(|&i| i != 0)
        .collect();
    let scan = (!want.is_empty()).then(|| procfd::owners(&want, procfd::Reach::Shared));
    // The walk is over: while this thread reads each owner's names and cgroup (one process
    // at a time, kernel time), a second one sorts the rows, whose order owners do not
    // change. Measured at 65,000 / 130,000 rows: the sort was 12.6 / 31 ms and the owners'
    // names and cgroups 23 / 47 ms, one after the other on one core while the other idled.
    let sort_aside = rows.len() >= SORT_ASIDE_MIN && scan.is_some() && crate::cores() >= 2;
    let (owners, unreadable, placement, sorted) = std::thread::scope(|s| {
        let sorter = sort_aside.then(|| s.spawn(|| sort_rows(&mut rows)));
        let (mut owners, unreadable, _) = match scan {
            Some(scan) => inspect::owner_map_of(&want, scan),
            None => Default::default(),
        };
        // The systemd unit or container of each owner, once per process.
        let placement = cgroup::attribute(owners.lists_mut().flat_map(|l| l.iter_mut()));
        inspect::trace::note("inspect: owners placed (cgroup)");
        // A sorter that panicked (a bug) leaves the rows to the sort below.
        let sorted = sorter.is_some_and(|h| h.join().is_ok());
        (owners, unreadable, placement, sorted)
    });
    if unreadable.count > 0 && want.len() > owners.len() {
        notes.push(inspect::unreadable_note(&unreadable));
    }
    for (_, l) in listeners.iter_mut() {
        if let Some(o) = owners.get(&l.inode) {
            l.owners = o.clone();
        }
    }
    let mut by_port: FxHashMap<(u16, Proto, u16), Vec<usize>> = FxHashMap::default();
    for (i, (ns, l)) in listeners.iter().enumerate() {
        by_port
            .entry((*ns, l.proto, l.local_port))
            .or_default()
            .push(i);
    }
    let mut listeners: Vec<SocketEntry> = listeners.into_iter().map(|(_, l)| l).collect();
    inspect::name_users(&mut listeners);

    inspect::trace::note("inspect: listeners attached");
    let mut names = users::UserNames::default();
    let mut user_map: FxHashMap<u32, Arc<str>> = FxHashMap::default();
    for r in &rows {
        if let Some(u) = r.bare().uid {
            user_map.entry(u).or_insert_with(|| names.name(u));
        }
    }
    inspect::trace::note("inspect: users named");
    let cols = Columns {
        cmdline: false,
        placement,
        netns: scope != Scope::Here,
    };
    let listener_refs = listeners
        .iter()
        .map(|l| Arc::new(ListenerRef::of(l)))
        .collect();
    let mut report = InspectReport {
        port: ports.single(),
        rows,
        owners,
        users: user_map,
        listeners,
        listener_refs,
        by_port,
        namespaces,
        cols,
        notes,
    };
    if args.pid.is_some() {
        let keep_row = |r: &Row| {
            let mut e = r.bare();
            if let Some(o) = report.owners.get(&e.inode) {
                e.owners = o.clone();
            }
            keep(&e, args.pid, None)
        };
        let kept: Vec<bool> = report.rows.iter().map(keep_row).collect();
        let mut it = kept.into_iter();
        report.rows.retain(|_| it.next().unwrap_or(false));
    }
    inspect::trace::note("inspect: owners and listeners attached");
    // `retain` keeps the order: rows sorted beside the owner lookup stay sorted.
    if !sorted {
        sort_rows(&mut report.rows);
    }
    inspect::trace::note(&format!(
        "inspect: {} rows sorted{}",
        report.rows.len(),
        if sorted { " (beside the owners)" } else { "" }
    ));
    Ok(report)
}

/// From this many rows on, [`sort_rows`] runs in a second thread beside the owner lookup
/// (below it, a thread costs more than the sort).
const SORT_ASIDE_MIN: usize = 2048;

/// The longest run of rows [`sort_rows`] sorts with cached keys (~0.9 MiB of keys).
const CACHED_RUN: usize = 16 * 1024;

/// Sorts rows by [`Row::key`]: first by its cheap prefix, then each run of rows sharing a
/// prefix (one port's TIME_WAITs or connections, tens of thousands on a busy server) by
/// the whole key, built once per row of the run rather than twice per comparison. The
/// cached keys cost ~56 bytes a row, so a run longer than [`CACHED_RUN`] is sorted without
/// them (slower, no memory).
fn sort_rows(rows: &mut [Row]) {
    rows.sort_unstable_by_key(Row::prefix);
    let mut start = 0;
    while start < rows.len() {
        let p = rows[start].prefix();
        let len = rows[start..].partition_point(|r| r.prefix() == p);
        let run = &mut rows[start..start + len];
        if run.len() > 16 && run.len() <= CACHED_RUN {
            run.sort_by_cached_key(Row::key);
        } else if run.len() > 1 {
            run.sort_unstable_by_key(Row::key);
        }
        start += len;
    }
}

/// What one dump contributes.
#[derive(Default)]
struct Gather {
    rows: Vec<Row>,
    listeners: Vec<(Proto, DiagMsg)>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn row_key_is_the_sort_key_of_the_entry() {
        let msg = |family: u8, state: u8, src: &str, dst: &str| DiagMsg {
            family,
            state,
            timer: 0,
            src: src.parse().unwrap(),
            sport: 6000,
            dst: dst.parse().unwrap(),
            dport: 40000,
            expires: 0,
            rqueue: 0,
            wqueue: 0,
            uid: 0,
            inode: 1,
        };
        for (proto, m) in [
            (Proto::Tcp, msg(2, 10, "127.0.0.1", "0.0.0.0")),
            (Proto::Tcp, msg(2, 6, "127.0.0.1", "127.0.0.1")),
            (Proto::Tcp, msg(10, 1, "::1", "::1")),
            (Proto::Tcp, msg(2, 7, "0.0.0.0", "0.0.0.0")),
            (Proto::Udp, msg(10, 7, "::", "::")),
            (Proto::Udp, msg(2, 1, "127.0.0.1", "127.0.0.2")),
        ] {
            let r = Row::Diag(proto, 0, m);
            assert_eq!(r.sort_key(), inspect::sort_key(&r.bare()));
            // The sort compares the prefix first: it must be the key's first fields.
            let k = r.key();
            assert_eq!(r.prefix(), (k.0, k.1.0, k.1.1));
        }
    }

    #[test]
    fn rows_sort_as_their_keys_do() {
        // Runs of one port (TIME_WAITs, connections) longer and shorter than the cached
        // threshold, mixed states, families and protocols.
        let mut seed: u64 = 0x9e37_79b9_7f4a_7c15;
        let mut next = move || {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed
        };
        let mut rows = Vec::new();
        for i in 0..3000u32 {
            let r = next();
            let v6 = r & 1 == 0;
            let src = if v6 { "::1" } else { "127.0.0.1" };
            let dst = if v6 {
                format!("::{}", (r >> 8) % 50 + 1)
            } else {
                format!("127.0.{}.{}", (r >> 8) % 3, (r >> 16) % 250 + 1)
            };
            let m = DiagMsg {
                family: if v6 { 10 } else { 2 },
                state: [1u8, 6, 10, 8][((r >> 24) % 4) as usize],
                timer: 0,
                src: src.parse().unwrap(),
                sport: [6000u16, 6001, 6002][((r >> 28) % 3) as usize] + u16::from(i % 700 == 0),
                dst: dst.parse().unwrap(),
                dport: ((r >> 32) % 60000) as u16,
                expires: 0,
                rqueue: 0,
                wqueue: 0,
                uid: 0,
                inode: i + 1,
            };
            let proto = if (r >> 40) % 5 == 0 {
                Proto::Udp
            } else {
                Proto::Tcp
            };
            rows.push(Row::Diag(proto, ((r >> 44) % 2) as u16, m));
        }
        let mut want: Vec<_> = rows.iter().map(Row::key).collect();
        want.sort();
        sort_rows(&mut rows);
        let got: Vec<_> = rows.iter().map(Row::key).collect();
        assert_eq!(got, want);
    }
}
