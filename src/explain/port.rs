//! The explain engine behind a small API: a [`Request`] (the trial's options, optionally
//! another user) in, an [`ExplainReport`] out. It runs the real trials, reads the port's
//! inventory and the holders' flags, and hands them to [`super::causes`]; it never prints.
//! `commands::explain` turns CLI arguments into a request and renders the report;
//! `lab::diagnose` calls [`listen`] and [`connect_failure`] for the lab components.
//!
//! Order matters: every trial that runs in a forked child (`--as-user`, the unprivileged
//! check) happens before the inventory starts its worker threads (see [`super::trial`]).
//! The extra trials never add a second reuse flag to the user's (KERNEL-FACTS.md "Bind
//! buckets"): a real bind with the user's options gives the same answer before and after.

use std::collections::{HashMap, HashSet};
use std::net::IpAddr;

use serde::Serialize;

use super::causes::{self, Cause, Evidence};
use super::freeport;
use super::pidfd::{self, HolderFlags};
use super::trial::{self, Outcome, TrialOpts};
use crate::inspect::{
    self, InspectError, OwnerScope, Proto, Query, SockState, SocketEntry, sysctl, users,
};
use crate::sockopt::Applied;

/// What to explain.
#[derive(Debug, Clone)]
pub struct Request {
    /// The bind to try, with the user's options.
    pub trial: TrialOpts,
    /// Run the trials as this user (root only), by name or uid.
    pub as_user: Option<String>,
    /// False when the caller may already run threads: the checks that fork are skipped.
    pub may_fork: bool,
}

impl Request {
    /// A request for `trial` as netkit's own user.
    pub fn new(trial: TrialOpts) -> Request {
        Request {
            trial,
            as_user: None,
            may_fork: true,
        }
    }
}

/// Why the engine could not answer.
#[derive(Debug, thiserror::Error)]
pub enum ExplainError {
    /// `--as-user` needs root.
    #[error("--as-user needs root (the trial child switches to that uid)")]
    AsUserNeedsRoot,
    /// The user does not exist.
    #[error("no such user: {0}")]
    NoSuchUser(String),
    /// The forked trial child failed.
    #[error("running the trial as another user")]
    TrialChild(#[source] std::io::Error),
    /// The socket table could not be read.
    #[error("reading the socket table")]
    Inventory(#[from] InspectError),
}

/// One extra trial netkit ran to explain the first.
#[derive(Debug, Clone, Serialize)]
pub struct Check {
    /// What it tested (`with SO_REUSEADDR`, `as nobody`).
    pub what: String,
    /// Whether it passed.
    pub bindable: bool,
    /// Its errno name.
    pub errno: Option<&'static str>,
}

/// What the engine found: the verdict, the extra trials, the causes and the holders' flags
/// (what `netkit explain PORT` prints).
#[derive(Debug, Clone, Serialize)]
pub struct ExplainReport {
    /// The port.
    pub port: u16,
    /// The kernel's verdict for the trial.
    pub bindable: bool,
    /// Its errno name (`EADDRINUSE`), `null` when bindable.
    pub errno: Option<&'static str>,
    /// The errno number.
    pub errno_code: Option<i32>,
    /// Where it failed: `bind` or `listen`.
    pub stage: Option<&'static str>,
    /// The trial's options.
    pub trial: TrialOpts,
    /// Extra trials that back the inferences.
    pub checks: Vec<Check>,
    /// Why, with evidence and fixes.
    pub causes: Vec<Cause>,
    /// Holders' socket options read through pidfd_getfd.
    pub holders: Vec<HolderFlags>,
    /// Hints.
    pub notes: Vec<String>,
}

/// Who runs the trials: netkit itself, or a uid/gid in a forked child.
#[derive(Debug, Clone, Copy)]
struct Runner {
    as_ids: Option<(u32, u32)>,
}

impl Runner {
    fn run(&self, t: &TrialOpts) -> Result<Outcome, ExplainError> {
        match self.as_ids {
            None => Ok(trial::run(t)),
            Some((u, g)) => trial::run_as(t, u, g).map_err(ExplainError::TrialChild),
        }
    }
}

/// Explains why `req.trial` can or cannot be bound right now: the trials first (before any
/// thread starts, see [`super::trial`]), then the port's inventory, the holders' flags and
/// the diagnosis ([`super::causes`]).
///
/// # Errors
/// `--as-user` without root or with an unknown user, or a trial child that cannot be
/// started; an unreadable inventory becomes a note.
pub fn port(req: &Request) -> Result<ExplainReport, ExplainError> {
    port_inner(req.trial.clone(), req.as_user.as_deref(), req.may_fork)
}

fn port_inner(
    t: TrialOpts,
    as_user: Option<&str>,
    may_fork: bool,
) -> Result<ExplainReport, ExplainError> {
    let mut t = t;
    let runner = match as_user {
        None => Runner { as_ids: None },
        Some(u) => {
            if !inspect::procfd::is_root() {
                return Err(ExplainError::AsUserNeedsRoot);
            }
            let uid = users::uid_of(u).ok_or_else(|| ExplainError::NoSuchUser(u.to_string()))?;
            t.as_user = Some(u.to_string());
            t.uid = uid;
            Runner {
                as_ids: Some((uid, trial::primary_gid(uid))),
            }
        }
    };
    let mut notes = Vec::new();
    let mut checks = Vec::new();
    // 1. The trials (all before any thread starts).
    let outcome = runner.run(&t)?;
    let in_use = outcome.errno == Some(libc::EADDRINUSE) && outcome.stage == Some("bind");
    // The extra trials never combine SO_REUSEADDR with SO_REUSEPORT unless the user asked
    // for both: a passing RA+RP socket leaves the port's bind bucket marked for
    // SO_REUSEPORT (tb->fastreuseport = FASTREUSEPORT_STRICT with our uid and address,
    // net/ipv4/inet_connection_sock.c inet_csk_update_fastreuse) even when only the
    // SO_REUSEADDR exemption admitted it, and while a TIME_WAIT keeps the bucket alive a
    // later plain SO_REUSEPORT bind then passes on the fast path (sk_reuseport_match)
    // although it would fail the real conflict check (KERNEL-FACTS.md, "Bind buckets").
    // A trial with one flag cannot do that: without SO_REUSEPORT it can only reset the
    // cached state, and with SO_REUSEPORT alone it passes only through the SO_REUSEPORT
    // exemption, so what it caches is true. Hence "instead of", not "added to".
    let with_reuseaddr = if in_use && !t.reuseaddr {
        let mut t2 = t.clone();
        t2.reuseaddr = true;
        t2.reuseport = false;
        let o = runner.run(&t2)?;
        checks.push(check(
            if t.reuseport {
                "with SO_REUSEADDR instead of SO_REUSEPORT"
            } else {
                "with SO_REUSEADDR"
            },
            o,
        ));
        Some(o)
    } else {
        None
    };
    let with_reuseport = if in_use && !t.reuseport {
        let mut t2 = t.clone();
        t2.reuseport = true;
        t2.reuseaddr = false;
        let o = runner.run(&t2)?;
        checks.push(check(
            if t.reuseaddr {
                "with SO_REUSEPORT instead of SO_REUSEADDR"
            } else {
                "with SO_REUSEPORT"
            },
            o,
        ));
        Some(o)
    } else {
        None
    };
    let single_flag_trials_failed = in_use
        && (t.reuseaddr != t.reuseport)
        && with_reuseaddr.is_none_or(|o| !o.ok)
        && with_reuseport.is_none_or(|o| !o.ok);
    let unpriv_start = sysctl::unprivileged_port_start();
    // Rule 14: as root, show what an ordinary user would get on a privileged port.
    let unprivileged = if outcome.ok
        && may_fork
        && runner.as_ids.is_none()
        && inspect::procfd::is_root()
        && t.port != 0
        && u32::from(t.port) < unpriv_start
    {
        let mut t2 = t.clone();
        t2.as_user = Some("nobody".into());
        t2.uid = 65534;
        match trial::run_as(&t2, 65534, 65534) {
            Ok(o) => {
                checks.push(check("as an unprivileged user (nobody)", o));
                Some(o)
            }
            Err(e) => {
                notes.push(format!("could not run the unprivileged check: {e}"));
                None
            }
        }
    } else {
        None
    };

    // 2. The inventory of the port (threads start here).
    let q = Query {
        local_port: Some(t.port),
        owners: OwnerScope::All,
        ..Query::default()
    };
    let mut sockets = match inspect::snapshot(&q) {
        Ok(s) => {
            notes.extend(s.notes);
            s.sockets
        }
        Err(e) => {
            notes.push(format!("the socket inventory could not be read ({e}); the verdict above is still the kernel's"));
            Vec::new()
        }
    };
    if t.port == 0 {
        sockets.clear();
    }
    inspect::link_listeners(&mut sockets);
    // Both flags together could pass only where different holders need different
    // exemptions, which takes a leftover (its flags unreadable) and no listener of ours.
    if single_flag_trials_failed
        && sockets.iter().any(|s| s.is_ownerless())
        && !sockets
            .iter()
            .any(|s| s.proto == t.proto && s.state == SockState::Listen)
    {
        notes.push(
            "netkit does not try SO_REUSEADDR and SO_REUSEPORT together on a busy port: such a trial can leave the port's bind bucket marked for SO_REUSEPORT and change what later binds get (docs/KERNEL-FACTS.md); with both flags set the leftovers' exemptions add up, which netkit cannot test without that risk".into(),
        );
    }

    // 3. Holders' flags and inherited fds.
    let mut flags: HashMap<u64, Applied> = HashMap::new();
    let mut holders = Vec::new();
    let mut denied = false;
    for s in sockets
        .iter()
        .filter(|s| s.is_binder() && s.proto == t.proto)
    {
        let Some(first) = s.owners.first() else {
            continue;
        };
        match pidfd::read_holder(first.pid, s.inode) {
            Ok(h) => {
                flags.insert(s.inode, h.options.clone());
                holders.push(h);
            }
            Err(e) if e.raw_os_error() == Some(libc::EPERM) => denied = true,
            Err(_) => {}
        }
    }
    if denied {
        notes.push(format!(
            "the holders' SO_REUSEADDR/SO_REUSEPORT flags could not all be read: {}",
            pidfd::permission_hint()
        ));
    }
    let inherited = inherited_fds(&sockets);
    let local_listeners = if sockets.iter().any(|s| !s.is_binder() && !s.is_ownerless()) {
        listener_endpoints()
    } else {
        HashSet::new()
    };
    let ephemeral = sysctl::ephemeral_range();
    let spare_port = if outcome.ok {
        None
    } else {
        freeport::find(
            t.proto,
            &freeport::default_ranges(unpriv_start, ephemeral),
            1,
            freeport::seed(),
        )
        .first()
        .copied()
    };
    let ephemeral_used = (t.port == 0 && outcome.errno == Some(libc::EADDRINUSE))
        .then(|| ephemeral_usage(t.proto, ephemeral));
    let ev = Evidence {
        ephemeral_used,
        trial: &t,
        outcome,
        with_reuseaddr,
        with_reuseport,
        unprivileged,
        sockets: &sockets,
        flags: &flags,
        inherited: &inherited,
        local_listeners: &local_listeners,
        ephemeral,
        unpriv_start,
        bindv6only: sysctl::bindv6only(),
        spare_port,
    };
    let causes = causes::diagnose(&ev);
    if outcome.ok && t.port != 0 && (ephemeral.0..=ephemeral.1).contains(&t.port) {
        notes.push(format!(
            "port {} lies inside net.ipv4.ip_local_port_range ({}-{}): an outgoing connection may take it as its source port at any time (BIND-RULES.md rule 11); servers are safer outside it",
            t.port, ephemeral.0, ephemeral.1
        ));
    }
    Ok(ExplainReport {
        port: t.port,
        bindable: outcome.ok,
        errno: outcome.errno_name(),
        errno_code: outcome.errno,
        stage: outcome.stage,
        trial: t,
        checks,
        causes,
        holders,
        notes,
    })
}

/// Explains why a server could not bind/listen on `addr` with `opts` — for `netkit run
/// server` and `netkit run proxy`, whose EADDRINUSE gets the same diagnosis as
/// `netkit explain PORT` with those options.
///
/// # Errors
/// When the socket table cannot be read.
pub fn listen(
    addr: std::net::SocketAddr,
    opts: &crate::sockopt::SockOpts,
) -> Result<ExplainReport, ExplainError> {
    let mut t = TrialOpts::plain(Proto::Tcp, addr.ip(), addr.port());
    t.reuseaddr = opts.reuseaddr;
    t.reuseport = opts.reuseport;
    if addr.is_ipv6() {
        t.v6only = Some(opts.v6only);
    }
    t.listen = true;
    port_inner(t, None, false)
}

/// Explains a failed client socket call — for `netkit run client --bind-port P` and other
/// callers holding a [`crate::sockopt::SocketError`]. At `bind` it runs the bind trial (no
/// listen(): a client pins a port, it does not listen) and the usual diagnosis; at `connect`
/// it looks for the same 4-tuple or exhausted source ports (BIND-RULES.md rules 12, 13).
///
/// # Errors
/// When the socket table cannot be read.
pub fn connect_failure(
    local: Option<std::net::SocketAddr>,
    remote: std::net::SocketAddr,
    opts: &crate::sockopt::SockOpts,
    err: &crate::sockopt::SocketError,
) -> Result<ExplainReport, ExplainError> {
    let errno = err.errno().unwrap_or(0);
    let local_addr = local.unwrap_or_else(|| {
        std::net::SocketAddr::new(
            inspect::unspecified(if remote.is_ipv6() {
                inspect::Family::Inet6
            } else {
                inspect::Family::Inet
            }),
            0,
        )
    });
    let mut t = TrialOpts::plain(Proto::Tcp, local_addr.ip(), local_addr.port());
    t.reuseaddr = opts.reuseaddr;
    t.reuseport = opts.reuseport;
    t.listen = false;
    if err.stage == "bind" {
        return port_inner(t, None, false);
    }
    let pinned = local.filter(|l| l.port() != 0);
    let q = Query {
        udp: false,
        local_port: pinned.map(|l| l.port()),
        owners: OwnerScope::None,
        ..Query::default()
    };
    let mut sockets = inspect::diag::query(&q)?;
    if pinned.is_none() {
        sockets.retain(|s| s.remote_port == Some(remote.port()));
    }
    let mut notes = inspect::resolve_owners(&mut sockets, |s| s.remote_port == Some(remote.port()));
    inspect::name_users(&mut sockets);
    let num = |p: &str, d: u8| sysctl::read(p).and_then(|v| v.parse().ok()).unwrap_or(d);
    let ev = super::connect::ConnectEvidence {
        local: pinned,
        remote,
        errno,
        sockets: &sockets,
        ephemeral: sysctl::ephemeral_range(),
        tw_reuse: num("net/ipv4/tcp_tw_reuse", 2),
        timestamps: num("net/ipv4/tcp_timestamps", 1),
    };
    let causes = super::connect::diagnose(&ev);
    if causes.is_empty() {
        notes.push(format!(
            "connect() to {remote} failed with {}; netkit has no specific explanation for it",
            trial::errno_name(errno)
        ));
    }
    Ok(ExplainReport {
        port: local_addr.port(),
        bindable: false,
        errno: Some(trial::errno_name(errno)),
        errno_code: Some(errno),
        stage: Some(err.stage),
        trial: t,
        checks: Vec::new(),
        causes,
        holders: Vec::new(),
        notes,
    })
}

/// Distinct local ports of the ephemeral range in use by `proto` sockets, and up to 20 of
/// them as examples.
fn ephemeral_usage(proto: Proto, (lo, hi): (u16, u16)) -> (usize, Vec<SocketEntry>) {
    let q = Query {
        tcp: proto == Proto::Tcp,
        udp: proto == Proto::Udp,
        owners: OwnerScope::None,
        ..Query::default()
    };
    let mut v = inspect::diag::query(&q).unwrap_or_default();
    v.retain(|s| (lo..=hi).contains(&s.local_port));
    let ports: HashSet<u16> = v.iter().map(|s| s.local_port).collect();
    v.truncate(20);
    let _ = inspect::resolve_owners(&mut v, |_| true);
    inspect::name_users(&mut v);
    (ports.len(), v)
}

fn check(what: &str, o: Outcome) -> Check {
    Check {
        what: what.to_string(),
        bindable: o.ok,
        errno: o.errno_name(),
    }
}

/// Binder sockets held by several live processes at once: the evidence that a descriptor
/// was inherited across fork() (or passed), BIND-RULES.md rule 10. A parent running the same
/// program is no evidence (Django's autoreloader, pytest, nodemon start children that open
/// their own sockets; issue 8, defect 3), so a single holder is never called inherited.
fn inherited_fds(sockets: &[SocketEntry]) -> HashMap<u64, String> {
    let mut out = HashMap::new();
    for s in sockets
        .iter()
        .filter(|s| s.is_binder() && s.owners.len() > 1)
    {
        out.insert(
            s.inode,
            format!(
                "{} live processes hold this one socket (inode {}: {}); one inherited it from the other across fork() or received it, so stopping one of them does not free the port",
                s.owners.len(),
                s.inode,
                s.owners
                    .iter()
                    .map(|o| format!("PID {} {}", o.pid, o.command))
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        );
    }
    out
}

/// Every local LISTEN endpoint (canonical address, port).
fn listener_endpoints() -> HashSet<(IpAddr, u16)> {
    let q = Query {
        udp: false,
        tcp_states: vec![SockState::Listen],
        owners: OwnerScope::None,
        ..Query::default()
    };
    inspect::diag::query(&q)
        .map(|v| {
            v.into_iter()
                .map(|s| (inspect::canonical(s.local_addr), s.local_port))
                .collect()
        })
        .unwrap_or_default()
}
