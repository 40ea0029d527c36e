//! Turning CLI filter flags into an inspect `Query` and row predicates.

use anyhow::{Context, bail};

use crate::cli::inventory::ProtoFilter;
use crate::cli::port::PortSet;
use crate::inspect::{
    self, Family, InspectError, OwnerScope, Query, Snapshot, SockState, SocketEntry, users,
};

/// Applies --tcp/--udp/-4/-6 (none given = all).
pub fn apply_proto(q: &mut Query, f: ProtoFilter) {
    if f.tcp || f.udp {
        q.tcp = f.tcp;
        q.udp = f.udp;
    }
    if f.v4 || f.v6 {
        q.v4 = f.v4;
        q.v6 = f.v6;
    }
}

/// Resolves --user to a uid.
///
/// # Errors
/// When the name is not a known user.
pub fn user_filter(user: Option<&str>) -> anyhow::Result<Option<u32>> {
    match user {
        None => Ok(None),
        Some(u) => match users::uid_of(u) {
            Some(uid) => Ok(Some(uid)),
            None => bail!("no such user: {u:?}"),
        },
    }
}

/// Keeps sockets held by `pid` (when given) and owned by `uid` (when given).
pub fn keep(s: &SocketEntry, pid: Option<u32>, uid: Option<u32>) -> bool {
    pid.is_none_or(|p| s.owners.iter().any(|o| o.pid == p)) && uid.is_none_or(|u| s.uid == Some(u))
}

/// Checks that a PID exists, so `--pid 999999` says so instead of "nothing found".
///
/// # Errors
/// When /proc/PID does not exist.
pub fn check_pid(pid: Option<u32>) -> anyhow::Result<()> {
    if let Some(p) = pid {
        std::fs::metadata(format!("/proc/{p}"))
            .with_context(|| format!("no process with PID {p}"))?;
    }
    Ok(())
}

/// Narrows `q` to what the port arguments can match: the kernel's port filter when they name
/// one port, and the protocols their `/tcp` `/udp` suffixes leave.
pub fn apply_ports(q: &mut Query, ports: &PortSet) {
    if ports.is_empty() {
        return;
    }
    let (tcp, udp) = ports.protos();
    q.tcp &= tcp;
    q.udp &= udp;
    if let Some(p) = ports.single() {
        q.local_port = Some(p);
    }
}

/// True when the socket's local end is what the port arguments name (an IPv6 wildcard is
/// taken as dual-stack, Linux's default, so `127.0.0.1:6000` shows a `[::]:6000` listener).
pub fn port_matches(ports: &PortSet, s: &SocketEntry) -> bool {
    ports.matches(
        s.proto,
        s.local_addr,
        s.family == Family::Inet6,
        s.local_port,
    )
}

/// At most this many ports are asked of the kernel one by one (its port filter); more are
/// filtered from one full dump.
const PER_PORT_DUMPS: usize = 32;

/// [`inspect::snapshot`] for several port arguments: the kernel filters by port where it can,
/// the rest (protocol suffixes, hosts, ranges) is filtered here before owners are looked up.
///
/// # Errors
/// When the socket table cannot be read.
pub fn snapshot_ports(q: &Query, ports: &PortSet) -> Result<Snapshot, InspectError> {
    let mut q = q.clone();
    apply_ports(&mut q, ports);
    let list = ports.ports();
    let (mut sockets, mut notes) = if q.local_port.is_none() && list.len() <= PER_PORT_DUMPS {
        let mut all = Vec::new();
        let mut notes = Vec::new();
        for p in list {
            q.local_port = Some(p);
            let (s, n) = inspect::table(&q)?;
            all.extend(s);
            for n in n {
                if !notes.contains(&n) {
                    notes.push(n);
                }
            }
        }
        (all, notes)
    } else {
        inspect::table(&q)?
    };
    sockets.retain(|s| port_matches(ports, s));
    notes.extend(inspect::resolve_owners(&mut sockets, |s| match q.owners {
        OwnerScope::None => false,
        OwnerScope::Binders => s.is_binder(),
        OwnerScope::All => true,
    }));
    inspect::name_users(&mut sockets);
    inspect::sort(&mut sockets);
    Ok(Snapshot {
        sockets,
        notes,
        elapsed_us: 0,
    })
}

/// True for a TCP connection the kernel completed but no process accepted yet: a server-side
/// socket with no file (inode 0) that is not a TIME_WAIT/orphan timer row. Its owner is the
/// listener whose accept queue holds it (a `?` would suggest a hidden process).
pub fn awaits_accept(s: &SocketEntry) -> bool {
    s.proto == inspect::Proto::Tcp
        && s.inode == 0
        && s.owners.is_empty()
        && matches!(
            s.state,
            SockState::Established | SockState::CloseWait | SockState::SynRecv
        )
}

/// Points each connection waiting in an accept queue ([`awaits_accept`]) at its listener.
pub fn link_accept_queue(sockets: &mut [SocketEntry]) {
    let found: Vec<(usize, inspect::ListenerRef)> = {
        let index = inspect::ListenerIndex::new(sockets);
        sockets
            .iter()
            .enumerate()
            .filter(|(_, s)| awaits_accept(s))
            .filter_map(|(i, s)| {
                index
                    .find(s.proto, s.local_addr, s.local_port)
                    .filter(|l| l.state == SockState::Listen)
                    .map(|l| (i, inspect::ListenerRef::of(l)))
            })
            .collect()
    };
    for (i, r) in found {
        sockets[i].listener = Some(std::sync::Arc::new(r));
    }
}

/// [`snapshot_ports`] over the namespaces of `scope` ([`inspect::multi`]): each row carries its
/// namespace (`SocketEntry::netns`), owners come from one walk, and the hints say which
/// namespaces could not be entered. `Scope::Here` is exactly [`snapshot_ports`] (an empty
/// `ports` means every port).
///
/// # Errors
/// When this namespace's socket table cannot be read, or a named namespace does not exist.
pub fn snapshot_scoped(
    q: &Query,
    ports: &PortSet,
    scope: &inspect::multi::Scope,
) -> Result<Snapshot, InspectError> {
    if *scope == inspect::multi::Scope::Here {
        return if ports.is_empty() {
            inspect::snapshot(q)
        } else {
            snapshot_ports(q, ports)
        };
    }
    let mut q = q.clone();
    apply_ports(&mut q, ports);
    let multi = inspect::multi::snapshot(&q, scope)?;
    let mut sockets = Vec::new();
    for part in multi.parts {
        for mut s in part.sockets {
            if ports.is_empty() || port_matches(ports, &s) {
                s.netns = Some(part.netns.clone());
                sockets.push(s);
            }
        }
    }
    Ok(Snapshot {
        sockets,
        notes: multi.notes,
        elapsed_us: 0,
    })
}

/// The scope `--netns`/`--all-netns` ask for (`--netns` itself is handled by running the
/// whole command inside that namespace, so here it is `Here`).
pub fn scope_of(ns: &crate::cli::netns::NetnsArgs) -> inspect::multi::Scope {
    if ns.all_netns {
        inspect::multi::Scope::All
    } else {
        inspect::multi::Scope::Here
    }
}
