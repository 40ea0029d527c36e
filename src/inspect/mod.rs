//! What the kernel says about sockets: the data model and the query that fills it.
//!
//! This layer gathers and never prints. The socket table comes from sock_diag netlink
//! ([`diag`]), owners and names from `/proc/<pid>` ([`procfd`]), users from
//! uzers ([`users`]). `/proc/net/*` parsing ([`procnet`]) is a fallback and a test oracle.
//! Commands build a [`Query`], call [`snapshot`] and hand the [`Snapshot`] to `output`.

pub mod caps;
pub mod cgroup;
pub mod diag;
pub mod forwarder;
pub mod multi;
pub mod netns;
pub mod procfd;
pub mod procnet;
pub mod sockstat;
pub mod sysctl;
pub mod trace;
pub mod users;

use std::collections::{HashMap, HashSet};
use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::sync::Arc;
use std::time::Instant;

use serde::{Serialize, Serializer};

/// Errors of the inspect layer.
#[derive(Debug, thiserror::Error)]
pub enum InspectError {
    /// The sock_diag netlink socket could not be opened or talked to.
    #[error("cannot query the kernel's socket table over sock_diag netlink ({what})")]
    Netlink {
        /// What netkit was doing.
        what: &'static str,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
    /// The kernel answered with something netkit cannot decode.
    #[error("malformed sock_diag reply: {0}")]
    Decode(String),
    /// A /proc file could not be read.
    #[error("cannot read {path}")]
    Read {
        /// The path.
        path: String,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
    /// A /proc/net table line could not be parsed.
    #[error("{path}:{line}: {reason}")]
    Parse {
        /// Which table.
        path: String,
        /// 1-based line number.
        line: usize,
        /// What was wrong.
        reason: &'static str,
    },
}

/// Transport protocol of a socket.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Proto {
    /// TCP (`IPPROTO_TCP`).
    Tcp,
    /// UDP (`IPPROTO_UDP`).
    Udp,
}

impl fmt::Display for Proto {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Proto::Tcp => "tcp",
            Proto::Udp => "udp",
        })
    }
}

/// Address family, named as the kernel names it (`AF_INET`, `AF_INET6`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Family {
    /// IPv4.
    Inet,
    /// IPv6 (including dual-stack `[::]` and v4-mapped addresses).
    Inet6,
}

/// Socket state with the kernel's names (`include/net/tcp_states.h`), plus `BOUND` for a TCP
/// socket that called bind() but not listen() and `UNCONN` for an unconnected UDP socket.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum SockState {
    /// `TCP_ESTABLISHED` (1); also a connected UDP socket.
    Established,
    /// `TCP_SYN_SENT` (2).
    SynSent,
    /// `TCP_SYN_RECV` (3).
    SynRecv,
    /// `TCP_FIN_WAIT1` (4).
    FinWait1,
    /// `TCP_FIN_WAIT2` (5).
    FinWait2,
    /// `TCP_TIME_WAIT` (6).
    TimeWait,
    /// `TCP_CLOSE` (7) seen in a normal dump.
    Close,
    /// `TCP_CLOSE_WAIT` (8).
    CloseWait,
    /// `TCP_LAST_ACK` (9).
    LastAck,
    /// `TCP_LISTEN` (10).
    Listen,
    /// `TCP_CLOSING` (11).
    Closing,
    /// `TCP_NEW_SYN_RECV` (12).
    NewSynRecv,
    /// Bound but not listening (`TCP_BOUND_INACTIVE`, reported as state 7 when asked with bit 13).
    Bound,
    /// Bound, unconnected UDP socket.
    Unconn,
}

impl SockState {
    /// Every state, in kernel order.
    pub const ALL: [SockState; 14] = [
        SockState::Established,
        SockState::SynSent,
        SockState::SynRecv,
        SockState::FinWait1,
        SockState::FinWait2,
        SockState::TimeWait,
        SockState::Close,
        SockState::CloseWait,
        SockState::LastAck,
        SockState::Listen,
        SockState::Closing,
        SockState::NewSynRecv,
        SockState::Bound,
        SockState::Unconn,
    ];

    /// The kernel's name, as used in JSON and tables.
    ///
    /// ```
    /// assert_eq!(netkit::inspect::SockState::TimeWait.name(), "TIME_WAIT");
    /// ```
    pub fn name(self) -> &'static str {
        match self {
            SockState::Established => "ESTABLISHED",
            SockState::SynSent => "SYN_SENT",
            SockState::SynRecv => "SYN_RECV",
            SockState::FinWait1 => "FIN_WAIT1",
            SockState::FinWait2 => "FIN_WAIT2",
            SockState::TimeWait => "TIME_WAIT",
            SockState::Close => "CLOSE",
            SockState::CloseWait => "CLOSE_WAIT",
            SockState::LastAck => "LAST_ACK",
            SockState::Listen => "LISTEN",
            SockState::Closing => "CLOSING",
            SockState::NewSynRecv => "NEW_SYN_RECV",
            SockState::Bound => "BOUND",
            SockState::Unconn => "UNCONN",
        }
    }

    /// Parses a state name as the kernel, `ss` or netkit writes it (`time-wait`, `TIME_WAIT`,
    /// `estab`, `listen`, `bound`, `unconn`), case-insensitively.
    ///
    /// ```
    /// use netkit::inspect::SockState;
    /// assert_eq!(SockState::parse("time-wait"), Some(SockState::TimeWait));
    /// assert_eq!(SockState::parse("ESTAB"), Some(SockState::Established));
    /// ```
    pub fn parse(s: &str) -> Option<SockState> {
        let norm: String = s
            .trim()
            .chars()
            .filter(|c| *c != '-' && *c != '_')
            .map(|c| c.to_ascii_uppercase())
            .collect();
        match norm.as_str() {
            "ESTAB" => return Some(SockState::Established),
            "BOUNDINACTIVE" => return Some(SockState::Bound),
            _ => {}
        }
        SockState::ALL
            .into_iter()
            .find(|st| st.name().replace('_', "") == norm)
    }

    /// The TCP state from a kernel state number, as found in sock_diag and `/proc/net/tcp`.
    pub fn from_tcp_number(n: u8) -> Option<SockState> {
        Some(match n {
            1 => SockState::Established,
            2 => SockState::SynSent,
            3 => SockState::SynRecv,
            4 => SockState::FinWait1,
            5 => SockState::FinWait2,
            6 => SockState::TimeWait,
            7 => SockState::Close,
            8 => SockState::CloseWait,
            9 => SockState::LastAck,
            10 => SockState::Listen,
            11 => SockState::Closing,
            12 => SockState::NewSynRecv,
            _ => return None,
        })
    }

    /// True for the states no process owns (uid and inode are 0 in the kernel's reply).
    pub fn is_orphan_timer(self) -> bool {
        matches!(self, SockState::TimeWait | SockState::FinWait2)
    }
}

impl fmt::Display for SockState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl Serialize for SockState {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.name())
    }
}

/// A process that holds a socket's file descriptor. JSON: the one process object of netkit's
/// vocabulary, `{"pid", "command", "cmdline"}`, with `cmdline: null` when it is unknown.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Owner {
    /// Process id.
    pub pid: u32,
    /// The short command name (`/proc/<pid>/comm`).
    pub command: String,
    /// The full command line, arguments joined with spaces; empty when unknown (kernel
    /// threads, a process that exited or hid it).
    #[serde(serialize_with = "empty_as_null")]
    pub cmdline: String,
    /// The systemd unit it runs in (`nginx.service`), when [`attribute_owners`] looked.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub unit: Option<String>,
    /// The container it runs in, when [`attribute_owners`] looked and found one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub container: Option<cgroup::Container>,
    /// For a port forwarder (docker-proxy, ...): where it forwards, with the evidence.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub forwards_to: Option<Box<forwarder::Forwarding>>,
}

impl Owner {
    /// A process with no unit or container attribution yet.
    pub fn new(pid: u32, command: String, cmdline: String) -> Owner {
        Owner {
            pid,
            command,
            cmdline,
            unit: None,
            container: None,
            forwards_to: None,
        }
    }

    /// The `UNIT/CONTAINER` cell: the container's label, else the unit, else `-`.
    pub fn placement(&self) -> String {
        let own = match (&self.container, &self.unit) {
            (Some(c), _) => c.label(),
            (None, Some(u)) => u.clone(),
            (None, None) => "-".to_string(),
        };
        match &self.forwards_to {
            Some(f) if own == "-" => format!("→ {}", f.label()),
            Some(f) => format!("{own} → {}", f.label()),
            None => own,
        }
    }
}

/// Names the systemd unit or container of every owner of `sockets` (one `/proc/PID/cgroup`
/// read per distinct process, plus the runtime's on-disk state for containers), and, for a
/// port forwarder such as `docker-proxy`, the container it forwards to when its command line
/// names the container's address and that address belongs to a namespace netkit can see.
/// Returns true when any owner has a unit or container.
pub fn attribute_owners(sockets: &mut [SocketEntry]) -> bool {
    cgroup::attribute(sockets.iter_mut().flat_map(|s| s.owners.iter_mut()))
}

/// `""` as `null`: "unknown" in JSON is null, never an empty string.
fn empty_as_null<S: Serializer>(v: &str, s: S) -> Result<S::Ok, S::Error> {
    if v.is_empty() {
        s.serialize_none()
    } else {
        s.serialize_str(v)
    }
}

/// The listener a kernel-held socket's port belongs to. JSON: `{"local_addr", "local_port",
/// "user", "owner": {"pid", "command", "cmdline"} | null}` (the owner is a process object).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListenerRef {
    /// PID of the first owner, `None` when it could not be seen.
    pub pid: Option<u32>,
    /// Its command name.
    pub command: Option<String>,
    /// Its command line (empty when unknown).
    pub cmdline: Option<String>,
    /// The listener socket's user.
    pub user: Option<Arc<str>>,
    /// The listener's local address (`0.0.0.0` / `::` for wildcards).
    pub local_addr: IpAddr,
    /// The listener's port.
    pub local_port: u16,
}

impl ListenerRef {
    /// Describes `l`, a LISTEN or UNCONN socket with owners resolved.
    pub fn of(l: &SocketEntry) -> ListenerRef {
        let first = l.owners.first();
        ListenerRef {
            pid: first.map(|o| o.pid),
            command: first.map(|o| o.command.clone()),
            cmdline: first.map(|o| o.cmdline.clone()),
            user: l.user.clone(),
            local_addr: l.local_addr,
            local_port: l.local_port,
        }
    }
}

impl Serialize for ListenerRef {
    fn serialize<S: Serializer>(&self, ser: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeStruct;
        let owner = self.pid.map(|pid| {
            Owner::new(
                pid,
                self.command.clone().unwrap_or_default(),
                self.cmdline.clone().unwrap_or_default(),
            )
        });
        let mut st = ser.serialize_struct("ListenerRef", 4)?;
        st.serialize_field("local_addr", &self.local_addr)?;
        st.serialize_field("local_port", &self.local_port)?;
        st.serialize_field("user", &self.user)?;
        st.serialize_field("owner", &owner)?;
        st.end()
    }
}

/// One socket as the kernel reports it, with what netkit could find out about its owners.
#[derive(Debug, Clone, Serialize)]
pub struct SocketEntry {
    /// TCP or UDP.
    pub proto: Proto,
    /// IPv4 or IPv6.
    pub family: Family,
    /// Local address (`0.0.0.0` / `::` for the wildcard).
    pub local_addr: IpAddr,
    /// Local port.
    pub local_port: u16,
    /// Remote address, `None` for listening and unconnected sockets.
    pub remote_addr: Option<IpAddr>,
    /// Remote port, `None` where there is no peer.
    pub remote_port: Option<u16>,
    /// State, with kernel names.
    pub state: SockState,
    /// Socket uid, `None` for TIME_WAIT / orphan FIN_WAIT2 (the kernel says 0 there, meaning nobody).
    pub uid: Option<u32>,
    /// User name for `uid` (shared between the sockets of one user).
    pub user: Option<Arc<str>>,
    /// Socket inode (0 for TIME_WAIT and orphans).
    pub inode: u64,
    /// Every process holding the socket; empty when unknown or none. Shared between the
    /// sockets of one process, which may hold tens of thousands.
    pub owners: Vec<Arc<Owner>>,
    /// Time left on the TIME_WAIT / FIN_WAIT2 timer, in milliseconds.
    pub expires_ms: Option<u64>,
    /// For ownerless rows (TIME_WAIT, orphan FIN_WAIT2): the current listener of the port.
    /// Shared: the rows of one port (tens of thousands of TIME_WAITs) name the same listener.
    pub listener: Option<Arc<ListenerRef>>,
    /// Receive queue (pending connections for LISTEN).
    pub recv_q: u32,
    /// Send queue (backlog for LISTEN).
    pub send_q: u32,
    /// The network namespace the socket lives in, when the query looked beyond this one
    /// (`--all-netns`, who-owns' search of other namespaces); `None` means this namespace.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub netns: Option<Arc<netns::Netns>>,
}

impl SocketEntry {
    /// `addr:port` with IPv6 in brackets, `*` for a wildcard address as ss prints it.
    pub fn local(&self) -> String {
        fmt_endpoint(self.local_addr, self.local_port)
    }

    /// The remote endpoint, or `*:*` when there is none.
    pub fn remote(&self) -> String {
        match (self.remote_addr, self.remote_port) {
            (Some(a), Some(p)) => fmt_endpoint(a, p),
            _ => "*:*".to_string(),
        }
    }

    /// True when no process can own this socket: TIME_WAIT, or FIN_WAIT2 with inode 0.
    pub fn is_ownerless(&self) -> bool {
        self.state == SockState::TimeWait || (self.state == SockState::FinWait2 && self.inode == 0)
    }

    /// True for sockets that hold a port for a server: LISTEN, BOUND, UNCONN.
    pub fn is_binder(&self) -> bool {
        matches!(
            self.state,
            SockState::Listen | SockState::Bound | SockState::Unconn
        )
    }
}

/// Formats `addr:port` with IPv6 addresses in brackets.
///
/// ```
/// use std::net::IpAddr;
/// assert_eq!(netkit::inspect::fmt_endpoint("::1".parse::<IpAddr>().unwrap(), 80), "[::1]:80");
/// ```
pub fn fmt_endpoint(addr: IpAddr, port: u16) -> String {
    match addr {
        IpAddr::V4(a) => format!("{a}:{port}"),
        IpAddr::V6(a) => format!("[{a}]:{port}"),
    }
}

/// True when two local addresses of sockets on one port overlap under the kernel's rule
/// (BIND-RULES.md §0): equal, or either is a wildcard covering the other. `dual_a`/`dual_b`
/// say whether an IPv6 wildcard is dual-stack (`IPV6_V6ONLY=0`), which covers all of IPv4.
pub fn addrs_overlap(a: IpAddr, dual_a: bool, b: IpAddr, dual_b: bool) -> bool {
    fn covers(w: IpAddr, dual: bool, other: IpAddr) -> bool {
        match w {
            IpAddr::V4(x) if x.is_unspecified() => is_v4ish(other),
            IpAddr::V6(x) if x.is_unspecified() => dual || !is_v4ish(other),
            _ => false,
        }
    }
    canonical(a) == canonical(b) || covers(a, dual_a, b) || covers(b, dual_b, a)
}

fn is_v4ish(a: IpAddr) -> bool {
    match a {
        IpAddr::V4(_) => true,
        IpAddr::V6(v) => v.to_ipv4_mapped().is_some(),
    }
}

/// The address with v4-mapped IPv6 folded to IPv4 (`::ffff:127.0.0.1` → `127.0.0.1`).
pub fn canonical(a: IpAddr) -> IpAddr {
    match a {
        IpAddr::V6(v) => match v.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => IpAddr::V6(v),
        },
        v4 => v4,
    }
}

/// Which sockets a command wants.
#[derive(Debug, Clone)]
pub struct Query {
    /// Include TCP sockets.
    pub tcp: bool,
    /// Include UDP sockets.
    pub udp: bool,
    /// Include IPv4 sockets.
    pub v4: bool,
    /// Include IPv6 sockets.
    pub v6: bool,
    /// TCP states to ask the kernel for (UDP is always asked for all).
    pub tcp_states: Vec<SockState>,
    /// Only sockets whose local port is this (filtered by the kernel).
    pub local_port: Option<u16>,
    /// Resolve owners (walk `/proc/*/fd`) for these sockets.
    pub owners: OwnerScope,
}

/// How far to go when mapping sockets to processes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OwnerScope {
    /// Do not look for owners.
    None,
    /// Owners of LISTEN / BOUND / UNCONN sockets only.
    Binders,
    /// Owners of every socket.
    All,
}

impl Default for Query {
    fn default() -> Self {
        Query {
            tcp: true,
            udp: true,
            v4: true,
            v6: true,
            tcp_states: SockState::ALL
                .into_iter()
                .filter(|s| !matches!(s, SockState::Unconn | SockState::Close))
                .collect(),
            local_port: None,
            owners: OwnerScope::All,
        }
    }
}

/// The result of a query: sockets plus what the user should know about gaps in it.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Snapshot {
    /// The sockets, sorted by proto, local port, local address, state.
    pub sockets: Vec<SocketEntry>,
    /// Hints: unreadable processes, missing privileges.
    pub notes: Vec<String>,
    /// Time spent, for `--verbose` diagnostics (not serialized).
    #[serde(skip)]
    pub elapsed_us: u128,
}

/// Reads the socket table as `q` asks, maps owners and names users.
///
/// # Errors
/// Fails only when the kernel's socket table cannot be read at all; lack of permission to see
/// other processes is reported in [`Snapshot::notes`], never as an error.
pub fn snapshot(q: &Query) -> Result<Snapshot, InspectError> {
    let started = Instant::now();
    let (mut sockets, mut notes) = table(q)?;
    notes.extend(resolve_owners(&mut sockets, |s| match q.owners {
        OwnerScope::None => false,
        OwnerScope::Binders => s.is_binder(),
        OwnerScope::All => true,
    }));
    name_users(&mut sockets);
    sort(&mut sockets);
    Ok(Snapshot {
        sockets,
        notes,
        elapsed_us: started.elapsed().as_micros(),
    })
}

/// The sockets `q` asks for, without owners: from sock_diag, or from `/proc/net` when the
/// netlink socket cannot be used (a sandbox that forbids `NETLINK_SOCK_DIAG`, a kernel
/// without `inet_diag`), with a note saying what that costs.
///
/// # Errors
/// The sock_diag error when both sources fail; decode errors of sock_diag replies (a netkit
/// bug, not something to hide behind the fallback).
pub fn table(q: &Query) -> Result<(Vec<SocketEntry>, Vec<String>), InspectError> {
    with_fallback(diag::query(q), || procnet::read_all(q))
}

fn with_fallback(
    primary: Result<Vec<SocketEntry>, InspectError>,
    fallback: impl FnOnce() -> Result<Vec<SocketEntry>, InspectError>,
) -> Result<(Vec<SocketEntry>, Vec<String>), InspectError> {
    match primary {
        Ok(v) => Ok((v, Vec::new())),
        Err(err @ InspectError::Netlink { .. }) => match fallback() {
            Ok(v) => {
                let cause = std::error::Error::source(&err)
                    .map(|c| format!(": {c}"))
                    .unwrap_or_default();
                Ok((
                    v,
                    vec![format!(
                        "{err}{cause}; read /proc/net instead, which cannot show bound-only (BOUND) TCP sockets"
                    )],
                ))
            }
            Err(_) => Err(err),
        },
        Err(e) => Err(e),
    }
}

/// Fills `owners` of the sockets selected by `pick` (those with an inode) from one walk of
/// `/proc/*/fd`, and returns the hints the user should see about what could not be read.
pub fn resolve_owners<F: Fn(&SocketEntry) -> bool>(
    sockets: &mut [SocketEntry],
    pick: F,
) -> Vec<String> {
    resolve_owners_within(sockets, pick, procfd::Reach::Shared)
}

/// Like [`resolve_owners`], looking only as far as `reach` says (e.g. [`procfd::Reach::First`]
/// when one owner per socket is enough).
pub fn resolve_owners_within<F: Fn(&SocketEntry) -> bool>(
    sockets: &mut [SocketEntry],
    pick: F,
    reach: procfd::Reach,
) -> Vec<String> {
    let mut notes = Vec::new();
    let want: HashSet<u64> = sockets
        .iter()
        .filter(|s| s.inode != 0 && pick(s))
        .map(|s| s.inode)
        .collect();
    if want.is_empty() {
        return notes;
    }
    let (owners, unreadable) = owner_map(&want, reach);
    for s in sockets.iter_mut() {
        if let Some(o) = owners.get(&s.inode) {
            s.owners = o.clone();
        }
    }
    if unreadable.count > 0 && want.len() > owners.len() {
        notes.push(unreadable_note(&unreadable));
    }
    notes
}

/// The processes holding each socket in `want` (one walk of `/proc/*/fd`, names for the PIDs
/// found only), with one shared [`Owner`] per process; plus how many processes could not be
/// read. Inodes with no owner found are absent.
pub fn owners_by_inode(
    want: &HashSet<u64>,
    reach: procfd::Reach,
) -> (HashMap<u64, Vec<Arc<Owner>>>, Unreadable) {
    let (map, unreadable) = owner_map(want, reach);
    let out = map
        .index
        .iter()
        .map(|(&inode, &i)| (inode, map.lists[i as usize].clone()))
        .collect();
    (out, unreadable)
}

/// Socket inode → the processes holding it, each distinct list of holders stored once: a
/// process with 40,000 connections costs 40,000 map entries of 12 bytes, not 40,000 vectors.
#[derive(Debug, Default)]
pub struct OwnerMap {
    /// FxHash: one lookup per row listed (twice per row for a table), keys from the kernel.
    index: rustc_hash::FxHashMap<u64, u32>,
    lists: Vec<Vec<Arc<Owner>>>,
}

impl OwnerMap {
    /// The holders of `inode`, if any was found.
    pub fn get(&self, inode: &u64) -> Option<&Vec<Arc<Owner>>> {
        self.index.get(inode).map(|&i| &self.lists[i as usize])
    }

    /// Every distinct list of holders, to attribute them in place ([`cgroup::attribute`]).
    pub fn lists_mut(&mut self) -> impl Iterator<Item = &mut Vec<Arc<Owner>>> {
        self.lists.iter_mut()
    }

    /// Number of sockets with holders.
    pub fn len(&self) -> usize {
        self.index.len()
    }

    /// True when no holder was found.
    pub fn is_empty(&self) -> bool {
        self.index.is_empty()
    }
}

/// Like [`owners_by_inode`], as a compact [`OwnerMap`].
pub fn owner_map(want: &HashSet<u64>, reach: procfd::Reach) -> (OwnerMap, Unreadable) {
    let (map, unreadable, _) = owner_map_within(want, reach);
    (map, unreadable)
}

/// Like [`owner_map`], plus whether a [`procfd::Reach::Within`] walk ran out of budget
/// before it saw every socket in `want` ([`procfd::Scan::cut_short`]).
pub fn owner_map_within(want: &HashSet<u64>, reach: procfd::Reach) -> (OwnerMap, Unreadable, bool) {
    if want.is_empty() {
        return (OwnerMap::default(), Unreadable::default(), false);
    }
    owner_map_of(want, procfd::owners(want, reach))
}

/// The second half of [`owner_map_within`]: the owners of `want` from a finished walk for
/// `want` ([`procfd::owners`], which reports no other socket), each process described once
/// (its command and command line).
pub fn owner_map_of(want: &HashSet<u64>, scan: procfd::Scan) -> (OwnerMap, Unreadable, bool) {
    let mut out = OwnerMap::default();
    let pids = scan.all_pids();
    let names = procfd::describe(&pids);
    trace::note(&format!("owners: {} process(es) described", pids.len()));
    let by_pid: rustc_hash::FxHashMap<u32, Arc<Owner>> = pids
        .iter()
        .map(|&pid| {
            let (command, cmdline) = names.get(&pid).cloned().unwrap_or_default();
            (pid, Arc::new(Owner::new(pid, command, cmdline)))
        })
        .collect();
    // The walk's pairs in inode order, each socket once. Measured at 50,014 sockets: a
    // search of the pairs and a SipHash insert per wanted inode (the index grown step by
    // step) took 34 ms with the cgroup placement after it; this pass and the placement 21
    // ms. Every walk reports only sockets of `want` (`procfd::owners`), so none is looked up.
    let mut interned: rustc_hash::FxHashMap<&[u32], u32> = rustc_hash::FxHashMap::default();
    out.index.reserve(want.len());
    for (inode, p) in scan.runs() {
        debug_assert!(
            want.contains(&inode),
            "the walk reported socket {inode}, not asked"
        );
        let i = *interned.entry(p).or_insert_with(|| {
            out.lists
                .push(p.iter().filter_map(|x| by_pid.get(x).cloned()).collect());
            (out.lists.len() - 1) as u32
        });
        out.index.insert(inode, i);
    }
    trace::note(&format!("owners: {} socket(s) indexed", out.index.len()));
    (
        out,
        Unreadable {
            count: scan.unreadable,
            pids: scan.denied,
        },
        scan.cut_short,
    )
}

/// Processes an owner walk could not read.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Unreadable {
    /// How many (as an ordinary user: every other user's process).
    pub count: usize,
    /// Those refused although netkit may look (root refused by the kernel's ptrace access
    /// check or a sandbox): named in the hint.
    pub pids: Vec<u32>,
}

/// The hint for sockets whose owner could not be seen: which processes were skipped.
pub fn unreadable_note(unreadable: &Unreadable) -> String {
    if procfd::is_root() {
        const SHOWN: usize = 8;
        let mut names: Vec<String> = unreadable
            .pids
            .iter()
            .take(SHOWN)
            .map(|p| format!("PID {p}"))
            .collect();
        if unreadable.pids.len() > SHOWN {
            names.push(format!("{} more", unreadable.pids.len() - SHOWN));
        }
        let which = if names.is_empty() {
            format!("{} process(es)", unreadable.count)
        } else {
            names.join(", ")
        };
        format!(
            "{which} could not be examined (/proc/<pid>/fd is unreadable even for root); sockets only they hold show no owner"
        )
    } else {
        "some sockets belong to other users' processes: run as root (sudo) to see their PIDs"
            .to_string()
    }
}

/// Fills `user` from `uid` for every socket.
pub fn name_users(sockets: &mut [SocketEntry]) {
    let mut cache = users::UserNames::default();
    for s in sockets.iter_mut() {
        if let Some(uid) = s.uid {
            s.user = Some(cache.name(uid));
        }
    }
}

/// Listeners (LISTEN, or UNCONN for UDP) indexed by protocol and port, so that finding the
/// listener of tens of thousands of TIME_WAIT entries costs one pass.
#[derive(Debug)]
pub struct ListenerIndex<'a> {
    sockets: &'a [SocketEntry],
    by_port: HashMap<(Proto, u16), Vec<usize>>,
}

impl<'a> ListenerIndex<'a> {
    /// Indexes the listeners among `sockets`.
    pub fn new(sockets: &'a [SocketEntry]) -> Self {
        let mut by_port: HashMap<(Proto, u16), Vec<usize>> = HashMap::new();
        for (i, s) in sockets.iter().enumerate() {
            if matches!(s.state, SockState::Listen | SockState::Unconn) {
                by_port.entry((s.proto, s.local_port)).or_default().push(i);
            }
        }
        ListenerIndex { sockets, by_port }
    }

    /// The first listener that a socket on `addr:port` belongs to (same protocol and port,
    /// overlapping address).
    pub fn find(&self, proto: Proto, addr: IpAddr, port: u16) -> Option<&'a SocketEntry> {
        let sockets = self.sockets;
        self.by_port
            .get(&(proto, port))?
            .iter()
            .map(|&j| &sockets[j])
            .find(|l| addrs_overlap(l.local_addr, l.family == Family::Inet6, addr, false))
    }
}

/// For each ownerless socket (TIME_WAIT, orphan FIN_WAIT2), records the listener of its
/// port found among `sockets`, if any.
pub fn link_listeners(sockets: &mut [SocketEntry]) {
    let found: Vec<(usize, ListenerRef)> = {
        let index = ListenerIndex::new(sockets);
        sockets
            .iter()
            .enumerate()
            .filter(|(_, s)| s.is_ownerless())
            .filter_map(|(i, s)| {
                index
                    .find(s.proto, s.local_addr, s.local_port)
                    .map(|l| (i, ListenerRef::of(l)))
            })
            .collect()
    };
    for (i, r) in found {
        sockets[i].listener = Some(Arc::new(r));
    }
}

/// The order every table shows sockets in: by protocol and port, the sockets that hold the
/// port for a server (LISTEN, BOUND, UNCONN) first, kernel-held TIME_WAIT last.
pub type SortKey = (
    Proto,
    u16,
    u8,
    Family,
    IpAddr,
    SockState,
    Option<IpAddr>,
    Option<u16>,
);

/// Where a state sorts within a port: server sockets first, kernel-held TIME_WAIT last.
pub fn state_rank(state: SockState) -> u8 {
    match state {
        SockState::Listen => 0,
        SockState::Bound => 1,
        SockState::Unconn => 2,
        SockState::TimeWait => 4,
        _ => 3,
    }
}

/// The [`SortKey`] of a socket.
pub fn sort_key(s: &SocketEntry) -> SortKey {
    (
        s.proto,
        s.local_port,
        state_rank(s.state),
        s.family,
        s.local_addr,
        s.state,
        s.remote_addr,
        s.remote_port,
    )
}

/// Sorts sockets by [`sort_key`].
pub fn sort(sockets: &mut [SocketEntry]) {
    // Unstable: the key is total, and a stable sort would allocate half the table again.
    sockets.sort_unstable_by_key(sort_key);
}

/// Groups entries by key, keeping first-seen order of keys.
pub fn group_by<K: std::hash::Hash + Eq + Clone, T, F: Fn(&T) -> K>(
    items: &[T],
    key: F,
) -> Vec<(K, Vec<&T>)> {
    let mut index: HashMap<K, usize> = HashMap::new();
    let mut out: Vec<(K, Vec<&T>)> = Vec::new();
    for it in items {
        let k = key(it);
        match index.get(&k) {
            Some(&i) => out[i].1.push(it),
            None => {
                index.insert(k.clone(), out.len());
                out.push((k, vec![it]));
            }
        }
    }
    out
}

/// The wildcard address of a family.
pub fn unspecified(family: Family) -> IpAddr {
    match family {
        Family::Inet => IpAddr::V4(Ipv4Addr::UNSPECIFIED),
        Family::Inet6 => IpAddr::V6(Ipv6Addr::UNSPECIFIED),
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_unreadable_hint_names_the_refused_pids_for_root() {
        let u = Unreadable {
            count: 2,
            pids: vec![1, 42],
        };
        let note = unreadable_note(&u);
        if procfd::is_root() {
            assert!(
                note.starts_with("PID 1, PID 42 could not be examined"),
                "{note}"
            );
        } else {
            assert!(note.contains("run as root"), "{note}");
        }
        let many = Unreadable {
            count: 10,
            pids: (1..=10).collect(),
        };
        if procfd::is_root() {
            assert!(unreadable_note(&many).contains("PID 8, 2 more"));
        }
    }

    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn wildcard_overlaps_specific_of_its_family_only() {
        assert!(addrs_overlap(ip("0.0.0.0"), false, ip("127.0.0.1"), false));
        assert!(!addrs_overlap(
            ip("127.0.0.1"),
            false,
            ip("127.0.0.2"),
            false
        ));
        assert!(addrs_overlap(ip("::"), true, ip("127.0.0.1"), false));
        assert!(!addrs_overlap(ip("::"), false, ip("127.0.0.1"), false));
        assert!(addrs_overlap(ip("::"), false, ip("::1"), false));
        assert!(addrs_overlap(
            ip("::ffff:127.0.0.1"),
            false,
            ip("127.0.0.1"),
            false
        ));
        assert!(!addrs_overlap(ip("::1"), false, ip("127.0.0.1"), false));
    }

    fn entry(state: SockState, addr: &str, port: u16, family: Family, inode: u64) -> SocketEntry {
        SocketEntry {
            proto: Proto::Tcp,
            family,
            local_addr: ip(addr),
            local_port: port,
            remote_addr: None,
            remote_port: None,
            state,
            uid: Some(0),
            user: None,
            inode,
            owners: Vec::new(),
            expires_ms: None,
            listener: None,
            recv_q: 0,
            send_q: 0,
            netns: None,
        }
    }

    #[test]
    fn netlink_failure_falls_back_with_a_note_and_decode_errors_do_not() {
        let netlink = || InspectError::Netlink {
            what: "opening the socket",
            source: std::io::Error::from_raw_os_error(libc::EPERM),
        };
        let one = || {
            Ok(vec![entry(
                SockState::Listen,
                "127.0.0.1",
                80,
                Family::Inet,
                1,
            )])
        };
        let (v, notes) = with_fallback(Ok(Vec::new()), one).unwrap();
        assert!(v.is_empty() && notes.is_empty());
        let (v, notes) = with_fallback(Err(netlink()), one).unwrap();
        assert_eq!(v.len(), 1);
        assert!(notes[0].contains("/proc/net") && notes[0].contains("sock_diag"));
        assert!(notes[0].contains("not permitted"), "{}", notes[0]);
        let both = with_fallback(Err(netlink()), || {
            Err(InspectError::Parse {
                path: "/proc/net/tcp".into(),
                line: 2,
                reason: "x",
            })
        });
        assert!(matches!(both, Err(InspectError::Netlink { .. })));
        let decode = with_fallback(Err(InspectError::Decode("bad".into())), one);
        assert!(matches!(decode, Err(InspectError::Decode(_))));
    }

    #[test]
    fn link_listeners_picks_what_a_linear_scan_picks() {
        use Family::{Inet, Inet6};
        let mut v = vec![
            entry(SockState::TimeWait, "127.0.0.1", 80, Inet, 0),
            entry(SockState::Listen, "127.0.0.2", 80, Inet, 1),
            entry(SockState::Listen, "::", 80, Inet6, 2),
            entry(SockState::Listen, "0.0.0.0", 80, Inet, 3),
            entry(SockState::TimeWait, "::1", 80, Inet6, 0),
            entry(SockState::TimeWait, "127.0.0.1", 81, Inet, 0),
            entry(SockState::Established, "127.0.0.1", 80, Inet, 9),
            entry(SockState::FinWait2, "127.0.0.2", 80, Inet, 0),
        ];
        let want: Vec<Option<IpAddr>> = v
            .iter()
            .map(|s| {
                s.is_ownerless()
                    .then(|| {
                        v.iter().find(|l| {
                            l.proto == s.proto
                                && l.local_port == s.local_port
                                && matches!(l.state, SockState::Listen | SockState::Unconn)
                                && addrs_overlap(
                                    l.local_addr,
                                    l.family == Family::Inet6,
                                    s.local_addr,
                                    false,
                                )
                        })
                    })
                    .flatten()
                    .map(|l| l.local_addr)
            })
            .collect();
        link_listeners(&mut v);
        let got: Vec<Option<IpAddr>> = v
            .iter()
            .map(|s| s.listener.as_ref().map(|l| l.local_addr))
            .collect();
        assert_eq!(got, want);
        assert_eq!(got[0], Some(ip("::")));
        assert_eq!(got[4], Some(ip("::")));
        assert_eq!((got[5], got[6]), (None, None));
        assert_eq!(got[7], Some(ip("127.0.0.2")));
    }

    #[test]
    fn state_names_round_trip() {
        for st in SockState::ALL {
            assert_eq!(SockState::parse(st.name()), Some(st));
        }
        assert_eq!(SockState::parse("fin-wait-2"), Some(SockState::FinWait2));
        assert_eq!(SockState::parse("listening"), None);
        assert_eq!(SockState::parse("fin_wait2"), Some(SockState::FinWait2));
    }
}

#[cfg(test)]
mod size_tests {
    /// A socket row is held for every socket of `inspect`; keep it small (peak RSS target).
    #[test]
    fn socket_entry_stays_compact() {
        assert!(std::mem::size_of::<super::SocketEntry>() <= 144);
    }
}
