//! The socket table of several network namespaces at once (`--netns`, `--all-netns`, and
//! `who-owns`'s look into other namespaces when this one has nothing).
//!
//! Each namespace is dumped from a thread that entered it ([`netns::run_in`]) with the same
//! kernel-side filters as a dump here; owners are then resolved for all namespaces in ONE walk
//! of `/proc/*/fd` (socket inodes are unique host-wide), so N namespaces cost N dumps and one
//! walk.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::Instant;

use super::netns::{self, Netns, NetnsSpec};
use super::{
    InspectError, OwnerScope, Query, SocketEntry, diag, name_users, owners_by_inode, procfd, sort,
    unreadable_note,
};

/// Which namespaces to look in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Scope {
    /// The namespace netkit runs in (no `setns`).
    Here,
    /// One namespace the user named.
    One(NetnsSpec),
    /// Every namespace on the host.
    All,
    /// Every namespace except the current one (the fallback search of `who-owns`).
    Others,
}

/// Sockets of one namespace.
#[derive(Debug, Clone)]
pub struct NsSockets {
    /// The namespace (shared by its rows).
    pub netns: Arc<Netns>,
    /// Its sockets, sorted, owners resolved as the query asked.
    pub sockets: Vec<SocketEntry>,
}

/// The result of [`snapshot`].
#[derive(Debug, Clone, Default)]
pub struct MultiSnapshot {
    /// One entry per namespace that could be read, the current one first.
    pub parts: Vec<NsSockets>,
    /// Namespaces that could not be entered, with the reason (EPERM without root).
    pub skipped: Vec<(Netns, String)>,
    /// Hints for the user.
    pub notes: Vec<String>,
    /// Microseconds spent dumping, per namespace read (for the benchmark).
    pub dump_us: Vec<u128>,
}

impl MultiSnapshot {
    /// Every socket, with its namespace.
    pub fn rows(&self) -> impl Iterator<Item = (&Arc<Netns>, &SocketEntry)> {
        self.parts
            .iter()
            .flat_map(|p| p.sockets.iter().map(move |s| (&p.netns, s)))
    }

    /// Number of sockets over all namespaces.
    pub fn len(&self) -> usize {
        self.parts.iter().map(|p| p.sockets.len()).sum()
    }

    /// True when no namespace had a matching socket.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// The namespaces `scope` names.
///
/// # Errors
/// A named namespace that does not exist, as a one-line reason.
pub fn namespaces(scope: &Scope) -> Result<(Vec<Netns>, usize), String> {
    match scope {
        Scope::Here => {
            let inode = netns::current_inode().map_err(|e| e.to_string())?;
            Ok((
                vec![Netns {
                    inode,
                    name: None,
                    path: "/proc/self/ns/net".into(),
                    pids: vec![std::process::id()],
                    current: true,
                }],
                0,
            ))
        }
        Scope::One(spec) => {
            let inode = netns::inode_of(spec).map_err(|e| e.to_string())?;
            let (all, _) = netns::list_all();
            let found = all.into_iter().find(|n| n.inode == inode);
            let name = match spec {
                NetnsSpec::Name(n) => Some(n.clone()),
                _ => found.as_ref().and_then(|n| n.name.clone()),
            };
            Ok((
                vec![Netns {
                    inode,
                    name,
                    path: spec.path(),
                    pids: found.as_ref().map(|n| n.pids.clone()).unwrap_or_default(),
                    current: netns::current_inode().ok() == Some(inode),
                }],
                0,
            ))
        }
        Scope::All => Ok(netns::list_all()),
        Scope::Others => {
            let (all, unreadable) = netns::list_all();
            Ok((all.into_iter().filter(|n| !n.current).collect(), unreadable))
        }
    }
}

/// Dumps the sockets `q` asks for in every namespace of `scope`, resolves owners in one walk,
/// names users and sorts each namespace's rows.
///
/// # Errors
/// The dump of the current namespace failing (other namespaces' failures are reported in
/// [`MultiSnapshot::skipped`]); a named namespace that does not exist.
pub fn snapshot(q: &Query, scope: &Scope) -> Result<MultiSnapshot, InspectError> {
    let (list, unreadable) = namespaces(scope).map_err(|e| InspectError::Read {
        path: e,
        source: std::io::Error::from(std::io::ErrorKind::NotFound),
    })?;
    let mut out = MultiSnapshot::default();
    type Dumped = (
        Result<Result<Vec<SocketEntry>, InspectError>, std::io::Error>,
        Vec<String>,
        u128,
    );
    let results: Vec<Dumped> = par_map(&list, |ns| {
        let started = Instant::now();
        let mut notes = Vec::new();
        let dumped = if ns.current {
            Ok(super::table(q).map(|(v, n)| {
                notes = n;
                v
            }))
        } else {
            netns::run_in(&ns.path, || diag::query(q))
        };
        (dumped, notes, started.elapsed().as_micros())
    });
    for (ns, (entered, notes, us)) in list.into_iter().zip(results) {
        let is_current = ns.current;
        out.notes.extend(notes);
        let dumped = match entered {
            Ok(r) => r,
            Err(e) => {
                out.skipped.push((ns, e.to_string()));
                continue;
            }
        };
        out.dump_us.push(us);
        match dumped {
            Ok(sockets) => out.parts.push(NsSockets {
                netns: Arc::new(ns),
                sockets,
            }),
            Err(e) if is_current => return Err(e),
            Err(e) => out.skipped.push((ns, e.to_string())),
        }
    }
    // One walk for every namespace's sockets.
    let want: HashSet<u64> = out
        .parts
        .iter()
        .flat_map(|p| p.sockets.iter())
        .filter(|s| {
            s.inode != 0
                && match q.owners {
                    OwnerScope::None => false,
                    OwnerScope::Binders => s.is_binder(),
                    OwnerScope::All => true,
                }
        })
        .map(|s| s.inode)
        .collect();
    if !want.is_empty() {
        let (owners, unreadable_fds): (HashMap<u64, _>, _) =
            owners_by_inode(&want, procfd::Reach::Shared);
        for p in &mut out.parts {
            for s in &mut p.sockets {
                if let Some(o) = owners.get(&s.inode) {
                    s.owners = o.clone();
                }
            }
        }
        if unreadable_fds.count > 0 && want.len() > owners.len() {
            out.notes.push(unreadable_note(&unreadable_fds));
        }
    }
    for p in &mut out.parts {
        name_users(&mut p.sockets);
        sort(&mut p.sockets);
    }
    let notes = scope_notes(&out.skipped, unreadable);
    out.notes.extend(notes);
    Ok(out)
}

/// What [`each`] returns: one result per namespace read, in [`namespaces`]' order (the current
/// one first), and the hints about those that could not be read.
#[derive(Debug)]
pub struct PerNs<T> {
    /// The namespace (`None` for [`Scope::Here`]: rows stay untagged) and what `f` returned there.
    pub parts: Vec<(Option<Arc<Netns>>, T)>,
    /// Namespaces that could not be entered or read, with the reason.
    pub skipped: Vec<(Netns, String)>,
    /// Hints for the user ([`scope_notes`]).
    pub notes: Vec<String>,
}

/// Runs `f` once in every namespace of `scope`: on this thread for the current namespace, on
/// a thread that entered it ([`netns::run_in`]) for any other. Commands that fold the kernel's
/// records as they arrive (inspect, timewait, the exporter) use this instead of [`snapshot`].
///
/// # Errors
/// `f` failing in the current namespace; a named namespace that does not exist. Another
/// namespace that cannot be entered or read is listed in [`PerNs::skipped`] instead.
pub fn each<T, F>(scope: &Scope, f: F) -> Result<PerNs<T>, InspectError>
where
    T: Send,
    F: Fn() -> Result<T, InspectError> + Sync,
{
    let mut out = PerNs {
        parts: Vec::new(),
        skipped: Vec::new(),
        notes: Vec::new(),
    };
    if *scope == Scope::Here {
        out.parts.push((None, f()?));
        return Ok(out);
    }
    let (list, unreadable) = namespaces(scope).map_err(|e| InspectError::Read {
        path: e,
        source: std::io::Error::from(std::io::ErrorKind::NotFound),
    })?;
    let results = par_map(&list, |ns| {
        if ns.current {
            Ok(f())
        } else {
            netns::run_in(&ns.path, &f)
        }
    });
    for (ns, r) in list.into_iter().zip(results) {
        let got = match r {
            Ok(Ok(t)) => t,
            Ok(Err(e)) if ns.current => return Err(e),
            Ok(Err(e)) => {
                out.skipped.push((ns, e.to_string()));
                continue;
            }
            Err(e) => {
                out.skipped.push((ns, e.to_string()));
                continue;
            }
        };
        out.parts.push((Some(Arc::new(ns)), got));
    }
    out.notes = scope_notes(&out.skipped, unreadable);
    Ok(out)
}

/// At most this many namespaces are dumped at once.
const WORKERS: usize = 4;

/// `f` of every namespace of `list`, in order, run by a few worker threads: a dump of a
/// namespace is mostly the kernel walking its (host-wide, by default) TCP hash tables — about
/// 14 ms per namespace on the benchmark host under load — so several namespaces are walked at
/// once on as many cores. Each worker stays in the namespace it started in (this one); `f`
/// enters another through [`netns::run_in`].
fn par_map<T, F>(list: &[Netns], f: F) -> Vec<T>
where
    T: Send,
    F: Fn(&Netns) -> T + Sync,
{
    use std::sync::Mutex;
    use std::sync::atomic::{AtomicUsize, Ordering};
    // NETKIT_NETNS_WORKERS=N overrides (scripts/bench-netns measures 1 against the default).
    let workers = std::env::var("NETKIT_NETNS_WORKERS")
        .ok()
        .and_then(|v| v.parse::<usize>().ok())
        .unwrap_or_else(|| {
            std::thread::available_parallelism()
                .map_or(1, |n| n.get())
                .clamp(1, WORKERS)
        })
        .clamp(1, 64)
        .min(list.len());
    if workers <= 1 {
        return list.iter().map(&f).collect();
    }
    let next = AtomicUsize::new(0);
    let slots: Mutex<Vec<Option<T>>> = Mutex::new((0..list.len()).map(|_| None).collect());
    std::thread::scope(|s| {
        for _ in 0..workers {
            s.spawn(|| {
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    let Some(ns) = list.get(i) else { break };
                    let r = f(ns);
                    if let Ok(mut v) = slots.lock() {
                        v[i] = Some(r);
                    }
                }
            });
        }
    });
    let slots = slots.into_inner().unwrap_or_else(|e| e.into_inner());
    // Every slot is filled (a worker's panic ends the scope with that panic); a poisoned
    // lock is the only way to an empty one: run that namespace here.
    slots
        .into_iter()
        .zip(list)
        .map(|(r, ns)| r.unwrap_or_else(|| f(ns)))
        .collect()
}

/// The hints about namespaces a multi-namespace query could not look into: one line for
/// "entering needs root" (an ordinary user), one for processes whose namespace link could not
/// be read even as root, and one per namespace that failed for another reason.
pub fn scope_notes(skipped: &[(Netns, String)], unreadable: usize) -> Vec<String> {
    let mut notes = Vec::new();
    let denied = skipped
        .iter()
        .filter(|(_, why)| why.contains("needs root"))
        .count();
    if procfd::is_root() {
        // Root is refused only where a sandbox forbids it (this host's PID 1, for one).
        if unreadable > 0 {
            notes.push(format!(
                "the network namespace of {unreadable} process(es) could not be read even as root (/proc/PID/ns/net); sockets only they can see are not shown"
            ));
        }
    } else if denied > 0 || unreadable > 0 {
        notes.push(format!(
            "only this network namespace was examined: entering another needs root (CAP_SYS_ADMIN){}",
            if unreadable > 0 {
                format!("; {unreadable} other process(es)' namespace is unreadable (/proc/PID/ns/net)")
            } else {
                String::new()
            }
        ));
    }
    for (ns, why) in skipped
        .iter()
        .filter(|(_, why)| !why.contains("needs root"))
    {
        notes.push(format!("could not examine namespace {}: {why}", ns.label()));
    }
    notes
}
