//! explain, wait-free, free-port: run the trials, gather the port's inventory and the
//! holders' flags, hand them to `explain::causes`, and print.
//!
//! Order matters: every trial that runs in a forked child (`--as-user`, the unprivileged
//! check) happens before the inventory starts its worker threads (see `explain::trial`).

use std::collections::{HashMap, HashSet};
use std::io::{self, IsTerminal, Write};
use std::net::{IpAddr, Ipv4Addr};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use serde::Serialize;

use super::{FOUND, NOTHING, emit_found};
use crate::cli::explain::{BindOptArgs, ExplainArgs, FreePortArgs, WaitFreeArgs};
use crate::explain::causes::{self, Cause, Evidence};
use crate::explain::errors::{self, Decoded};
use crate::explain::freeport;
use crate::explain::pidfd::{self, HolderFlags};
use crate::explain::trial::{self, Outcome, TrialOpts};
use crate::inspect::{self, OwnerScope, Proto, Query, SockState, SocketEntry, sysctl, users};
use crate::output::{Block, Format, Report};
use crate::sockopt::Applied;

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

/// What `netkit explain PORT` prints.
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

impl ExplainReport {
    fn blocks(&self) -> Vec<Block> {
        let o = Outcome {
            ok: self.bindable,
            stage: self.stage,
            errno: self.errno_code,
        };
        let mut out = vec![Block::Line(causes::verdict_line(&self.trial, &o))];
        for c in &self.checks {
            out.push(Block::Line(format!(
                "  check {}: {}",
                c.what,
                if c.bindable {
                    "bindable".to_string()
                } else {
                    format!("not bindable ({})", c.errno.unwrap_or("error"))
                }
            )));
        }
        for (i, c) in self.causes.iter().enumerate() {
            out.push(Block::Line(String::new()));
            out.push(Block::Line(format!(
                "{}. [{}] {}",
                i + 1,
                c.kind,
                c.message
            )));
            if !c.sockets.is_empty() {
                // The listing's columns plus the holder's flags read through pidfd_getfd.
                let rows = c
                    .sockets
                    .iter()
                    .map(|s| {
                        let mut r = super::sockets_report::cells(s, false);
                        r.push(
                            self.holders
                                .iter()
                                .find(|h| h.inode == s.inode && s.inode != 0)
                                .map_or("-".to_string(), |h| flags_cell(&h.options)),
                        );
                        r
                    })
                    .collect();
                let mut header = super::sockets_report::header(false);
                header.push("FLAGS".to_string());
                out.push(Block::Table { header, rows });
            }
            out.push(Block::Line(format!("   fix: {}", c.fix)));
        }
        out
    }
}

fn flags_cell(a: &Applied) -> String {
    let mut v = Vec::new();
    if a.reuseaddr == Some(true) {
        v.push("SO_REUSEADDR");
    }
    if a.reuseport == Some(true) {
        v.push("SO_REUSEPORT");
    }
    match a.v6only {
        Some(true) => v.push("V6ONLY"),
        Some(false) => v.push("dual-stack"),
        None => {}
    }
    if v.is_empty() {
        "none".into()
    } else {
        v.join(",")
    }
}

impl Report for ExplainReport {
    fn human(&self) -> Vec<Block> {
        self.blocks()
    }
    fn notes(&self) -> Vec<String> {
        self.notes.clone()
    }
}

/// What `netkit explain --error TEXT` prints.
#[derive(Debug, Serialize)]
pub struct ErrorReport {
    /// The text as given.
    pub text: String,
    /// What it means; `null` when not recognised.
    pub decoded: Option<Decoded>,
    /// The live explanation of the port the text names, when it names one and the error is
    /// from Linux (or does not say).
    pub explanation: Option<ExplainReport>,
    /// Hints.
    pub notes: Vec<String>,
}

impl Report for ErrorReport {
    fn human(&self) -> Vec<Block> {
        let mut out = Vec::new();
        match &self.decoded {
            None => out.push(Block::Line(
                "not recognised as a bind/listen error (EADDRINUSE, EACCES, EADDRNOTAVAIL, EINVAL)"
                    .into(),
            )),
            Some(d) => {
                out.push(Block::Line(format!(
                    "{} from {} ({}){}",
                    d.errno,
                    d.source,
                    d.platform,
                    d.port.map_or(String::new(), |p| format!(", port {p}"))
                )));
                out.push(Block::Line(format!("meaning: {}", d.message)));
                out.push(Block::Line(format!("fix: {}", d.fix)));
            }
        }
        if let Some(e) = &self.explanation {
            out.push(Block::Line(String::new()));
            out.push(Block::Line(format!(
                "live check of port {} on this host:",
                e.port
            )));
            out.extend(e.blocks());
        }
        out
    }
    fn notes(&self) -> Vec<String> {
        let mut n = self.notes.clone();
        if let Some(e) = &self.explanation {
            n.extend(e.notes.iter().cloned());
        }
        n
    }
}

/// Parses `--addr`: an IP address, optionally `fe80::1%eth0` with an interface name or index.
fn parse_addr(s: &str) -> anyhow::Result<(IpAddr, u32)> {
    let s = s.trim().trim_start_matches('[').trim_end_matches(']');
    let (ip, scope) = match s.split_once('%') {
        Some((ip, iface)) => {
            let idx = match iface.parse::<u32>() {
                Ok(n) => n,
                Err(_) => {
                    let c = std::ffi::CString::new(iface).context("bad interface name")?;
                    // SAFETY: c is a valid NUL-terminated string.
                    let n = unsafe { libc::if_nametoindex(c.as_ptr()) };
                    if n == 0 {
                        bail!("no such interface: {iface}");
                    }
                    n
                }
            };
            (ip, idx)
        }
        None => (s, 0),
    };
    let addr: IpAddr = match ip {
        "" | "*" => IpAddr::V4(Ipv4Addr::UNSPECIFIED),
        "localhost" => IpAddr::V4(Ipv4Addr::LOCALHOST),
        _ => ip.parse().with_context(|| {
            format!("not an IP address: {ip:?} (use 0.0.0.0, ::, 127.0.0.1, ...)")
        })?,
    };
    Ok((addr, scope))
}

/// Builds the trial options from the flags.
///
/// # Errors
/// A malformed address, or V6ONLY flags on an IPv4 address.
pub fn trial_opts(b: &BindOptArgs, port: u16) -> anyhow::Result<TrialOpts> {
    let (addr, scope_id) = parse_addr(&b.addr)?;
    if addr.is_ipv4() && (b.v6only || b.dual_stack) {
        bail!("--v6only/--dual-stack apply to IPv6 addresses only (use --addr ::)");
    }
    let mut t = TrialOpts::plain(if b.udp { Proto::Udp } else { Proto::Tcp }, addr, port);
    t.scope_id = scope_id;
    t.reuseaddr = b.reuseaddr;
    t.reuseport = b.reuseport;
    if addr.is_ipv6() {
        t.v6only = Some(if b.v6only {
            true
        } else if b.dual_stack {
            false
        } else {
            sysctl::bindv6only()
        });
    }
    Ok(t)
}

/// Who runs the trials: netkit itself, or a uid/gid in a forked child.
#[derive(Debug, Clone, Copy)]
struct Runner {
    as_ids: Option<(u32, u32)>,
}

impl Runner {
    fn run(&self, t: &TrialOpts) -> anyhow::Result<Outcome> {
        match self.as_ids {
            None => Ok(trial::run(t)),
            Some((u, g)) => trial::run_as(t, u, g).context("running the trial as another user"),
        }
    }
}

/// Explains why `t` can or cannot be bound right now.
///
/// # Errors
/// When a trial child cannot be started; an unreadable inventory becomes a note.
pub fn explain_port(t: TrialOpts, as_user: Option<&str>) -> anyhow::Result<ExplainReport> {
    explain_port_inner(t, as_user, true)
}

/// `may_fork`: false when the caller may already run threads (the lab client), so the
/// unprivileged check, which forks, is skipped.
fn explain_port_inner(
    t: TrialOpts,
    as_user: Option<&str>,
    may_fork: bool,
) -> anyhow::Result<ExplainReport> {
    let mut t = t;
    let runner = match as_user {
        None => Runner { as_ids: None },
        Some(u) => {
            if !inspect::procfd::is_root() {
                bail!("--as-user needs root (the trial child switches to that uid)");
            }
            let uid = users::uid_of(u).with_context(|| format!("no such user: {u}"))?;
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
    let with_reuseaddr = if in_use && !t.reuseaddr {
        let mut t2 = t.clone();
        t2.reuseaddr = true;
        let o = runner.run(&t2)?;
        checks.push(check("with SO_REUSEADDR", o));
        Some(o)
    } else {
        None
    };
    let with_reuseport = if in_use && !t.reuseport {
        let mut t2 = t.clone();
        t2.reuseport = true;
        let o = runner.run(&t2)?;
        checks.push(check("with SO_REUSEPORT", o));
        Some(o)
    } else {
        None
    };
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
pub fn explain_listen(
    addr: std::net::SocketAddr,
    opts: &crate::sockopt::SockOpts,
) -> anyhow::Result<ExplainReport> {
    let mut t = TrialOpts::plain(Proto::Tcp, addr.ip(), addr.port());
    t.reuseaddr = opts.reuseaddr;
    t.reuseport = opts.reuseport;
    if addr.is_ipv6() {
        t.v6only = Some(opts.v6only);
    }
    t.listen = true;
    explain_port_inner(t, None, false)
}

/// Explains a failed client socket call — for `netkit run client --bind-port P` and other
/// callers holding a [`crate::sockopt::SocketError`]. At `bind` it runs the bind trial (no
/// listen(): a client pins a port, it does not listen) and the usual diagnosis; at `connect`
/// it looks for the same 4-tuple or exhausted source ports (BIND-RULES.md rules 12, 13).
///
/// # Errors
/// When the socket table cannot be read.
pub fn explain_connect(
    local: Option<std::net::SocketAddr>,
    remote: std::net::SocketAddr,
    opts: &crate::sockopt::SockOpts,
    err: &crate::sockopt::SocketError,
) -> anyhow::Result<ExplainReport> {
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
        return explain_port_inner(t, None, false);
    }
    let pinned = local.filter(|l| l.port() != 0);
    let q = Query {
        udp: false,
        local_port: pinned.map(|l| l.port()),
        owners: OwnerScope::None,
        ..Query::default()
    };
    let mut sockets = inspect::diag::query(&q).context("reading the socket table")?;
    if pinned.is_none() {
        sockets.retain(|s| s.remote_port == Some(remote.port()));
    }
    let mut notes = inspect::resolve_owners(&mut sockets, |s| s.remote_port == Some(remote.port()));
    inspect::name_users(&mut sockets);
    let num = |p: &str, d: u8| sysctl::read(p).and_then(|v| v.parse().ok()).unwrap_or(d);
    let ev = crate::explain::connect::ConnectEvidence {
        local: pinned,
        remote,
        errno,
        sockets: &sockets,
        ephemeral: sysctl::ephemeral_range(),
        tw_reuse: num("net/ipv4/tcp_tw_reuse", 2),
        timestamps: num("net/ipv4/tcp_timestamps", 1),
    };
    let causes = crate::explain::connect::diagnose(&ev);
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

fn ppid_of(pid: u32) -> Option<u32> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name may hold spaces and parentheses: the fields start after the last ')'.
    let rest = &stat[stat.rfind(')')? + 1..];
    rest.split_whitespace().nth(1)?.parse().ok()
}

fn exe_of(pid: u32) -> Option<std::path::PathBuf> {
    std::fs::read_link(format!("/proc/{pid}/exe")).ok()
}

/// Binder sockets held by several processes, or by a child of a process running the same
/// program that no longer holds it itself (BIND-RULES.md rule 10).
fn inherited_fds(sockets: &[SocketEntry]) -> HashMap<u64, String> {
    let mut out = HashMap::new();
    for s in sockets.iter().filter(|s| s.is_binder()) {
        if s.owners.len() > 1 {
            out.insert(
                s.inode,
                format!(
                    "{} processes hold this one socket ({}); one inherited it from the other across fork(), so stopping one of them does not free the port",
                    s.owners.len(),
                    s.owners.iter().map(|o| format!("PID {} {}", o.pid, o.command)).collect::<Vec<_>>().join(", ")
                ),
            );
        } else if let Some(o) = s.owners.first()
            && let Some(pp) = ppid_of(o.pid)
            && pp > 1
            && exe_of(pp).is_some()
            && exe_of(pp) == exe_of(o.pid)
        {
            out.insert(
                s.inode,
                format!(
                    "PID {} is a child of PID {pp}, which runs the same program and does not hold the socket: most likely the child inherited it across fork() and kept it after the parent closed its copy (if the child opened it itself, ignore this)",
                    o.pid
                ),
            );
        }
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

/// `netkit explain`.
///
/// # Errors
/// Bad arguments, or a trial child that cannot be started.
pub fn run(a: &ExplainArgs, f: Format) -> anyhow::Result<i32> {
    if let Some(text) = &a.error {
        return run_error(a, text, f);
    }
    let Some(port) = a.port else {
        bail!("give a PORT or --error TEXT");
    };
    let t = trial_opts(&a.bind, port)?;
    let r = explain_port(t, a.as_user.as_deref())?;
    let ok = r.bindable;
    emit_found(&r, f, true)?;
    Ok(if ok { FOUND } else { NOTHING })
}

fn run_error(a: &ExplainArgs, text: &str, f: Format) -> anyhow::Result<i32> {
    let decoded = errors::decode(text);
    let mut notes = Vec::new();
    let mut explanation = None;
    if let Some(d) = &decoded {
        let port = a.port.or(d.port);
        match port {
            Some(p) if d.platform == "linux" || d.platform == "unknown" => {
                let mut b = a.bind.clone();
                if let Some(addr) = d.addr
                    && b.addr == "0.0.0.0"
                {
                    b.addr = addr.to_string();
                }
                b.udp |= d.proto == Proto::Udp;
                if d.reuseaddr_default == Some(true) && !b.reuseaddr {
                    b.reuseaddr = true;
                    notes.push(format!(
                        "{} sets SO_REUSEADDR on its listeners by default, so the live trial does too",
                        d.source
                    ));
                }
                explanation = Some(explain_port(trial_opts(&b, p)?, a.as_user.as_deref())?);
            }
            Some(_) => notes.push(format!(
                "the message comes from {}, so port {} on this Linux host says nothing about it",
                d.platform,
                d.port.map_or("?".into(), |p| p.to_string())
            )),
            None => notes.push(
                "the message names no port: run `netkit explain PORT` with the program's options for the live answer".into(),
            ),
        }
    }
    let r = ErrorReport {
        text: text.to_string(),
        decoded,
        explanation,
        notes,
    };
    let code = match (&r.decoded, &r.explanation) {
        (None, _) => NOTHING,
        (Some(_), Some(e)) if !e.bindable => NOTHING,
        _ => FOUND,
    };
    emit_found(&r, f, true)?;
    Ok(code)
}

/// What `netkit wait-free` prints at the end.
#[derive(Debug, Serialize)]
pub struct WaitReport {
    /// The port.
    pub port: u16,
    /// True when a trial bind passed before the timeout.
    #[serde(rename = "bindable")]
    pub free: bool,
    /// How long netkit waited, ms.
    pub waited_ms: u64,
    /// The last errno, when not free.
    pub errno: Option<&'static str>,
    /// Hints.
    pub notes: Vec<String>,
}

impl Report for WaitReport {
    fn human(&self) -> Vec<Block> {
        vec![Block::Line(if self.free {
            format!(
                "port {} is free (waited {:.1}s)",
                self.port,
                self.waited_ms as f64 / 1000.0
            )
        } else {
            format!(
                "port {} is still not bindable after {:.1}s ({})",
                self.port,
                self.waited_ms as f64 / 1000.0,
                self.errno.unwrap_or("error")
            )
        })]
    }
    fn notes(&self) -> Vec<String> {
        self.notes.clone()
    }
    fn command(&self) -> Option<&'static str> {
        Some("wait-free")
    }
}

/// The latest expiry among TIME_WAIT / FIN_WAIT2 leftovers on the port, as an instant;
/// `None` when a listener or bound socket holds the port too (then no timer will free it).
fn leftover_deadline(port: u16) -> Option<Instant> {
    let q = Query {
        udp: false,
        tcp_states: vec![
            SockState::TimeWait,
            SockState::FinWait2,
            SockState::Listen,
            SockState::Bound,
        ],
        local_port: Some(port),
        owners: OwnerScope::None,
        ..Query::default()
    };
    let v = inspect::diag::query(&q).ok()?;
    if v.iter().any(|s| s.is_binder()) {
        return None;
    }
    let ms = v
        .iter()
        .filter(|s| s.is_ownerless())
        .filter_map(|s| s.expires_ms)
        .max()?;
    Some(Instant::now() + Duration::from_millis(ms))
}

/// `netkit wait-free`.
///
/// # Errors
/// Bad arguments, or an error that waiting cannot fix (EACCES, EINVAL).
pub fn wait_free(a: &WaitFreeArgs, f: Format) -> anyhow::Result<i32> {
    if !(a.timeout.is_finite() && a.timeout >= 0.0) {
        bail!("--timeout must be a number of seconds >= 0");
    }
    let t = trial_opts(&a.bind, a.port)?;
    let started = Instant::now();
    let deadline = started + Duration::from_secs_f64(a.timeout.min(86_400.0));
    let poll = Duration::from_millis(150);
    let mut tw_deadline: Option<Option<Instant>> = None;
    let mut last_shown: Option<u64> = None;
    let mut err = io::stderr();
    let tty = err.is_terminal();
    let mut last;
    loop {
        let o = trial::run(&t);
        last = o;
        if o.ok {
            break;
        }
        if matches!(o.errno, Some(libc::EACCES) | Some(libc::EINVAL)) {
            bail!(
                "port {} cannot become bindable by waiting: {} (run `netkit explain {}`)",
                a.port,
                o.errno_name().unwrap_or("error"),
                a.port
            );
        }
        let now = Instant::now();
        if now >= deadline {
            break;
        }
        let twd = *tw_deadline.get_or_insert_with(|| leftover_deadline(a.port));
        let left_timeout = deadline.saturating_duration_since(now).as_secs();
        let line = match twd {
            Some(d) if d > now => {
                let s = d.saturating_duration_since(now).as_secs() + 1;
                (
                    s,
                    format!(
                        "port {}: {} — TIME_WAIT expires in {s}s",
                        a.port,
                        o.errno_name().unwrap_or("busy")
                    ),
                )
            }
            _ => (
                left_timeout,
                format!(
                    "port {}: {} — waiting (timeout in {left_timeout}s)",
                    a.port,
                    o.errno_name().unwrap_or("busy")
                ),
            ),
        };
        if last_shown != Some(line.0) {
            last_shown = Some(line.0);
            let _ = if tty {
                write!(err, "\r{:<70}", line.1)
            } else {
                writeln!(err, "{}", line.1)
            };
        }
        std::thread::sleep(poll.min(deadline.saturating_duration_since(now)));
    }
    if tty && last_shown.is_some() {
        let _ = writeln!(err);
    }
    let r = WaitReport {
        port: a.port,
        free: last.ok,
        waited_ms: started.elapsed().as_millis() as u64,
        errno: last.errno_name(),
        notes: if last.ok {
            Vec::new()
        } else {
            vec![format!("run `netkit explain {}` to see why", a.port)]
        },
    };
    emit_found(&r, f, r.free)
}

/// What `netkit free-port` prints.
#[derive(Debug, Serialize)]
pub struct FreePortReport {
    /// Bindable ports, each checked by a trial bind.
    pub ports: Vec<u16>,
    /// `tcp` or `udp`.
    pub proto: Proto,
    /// The ranges searched, JSON `[{"first": A, "last": B}]`.
    #[serde(serialize_with = "ranges_as_objects")]
    pub ranges: Vec<(u16, u16)>,
    /// Hints.
    pub notes: Vec<String>,
}

impl Report for FreePortReport {
    fn human(&self) -> Vec<Block> {
        self.ports
            .iter()
            .map(|p| Block::Line(p.to_string()))
            .collect()
    }
    fn notes(&self) -> Vec<String> {
        self.notes.clone()
    }
    fn command(&self) -> Option<&'static str> {
        Some("free-port")
    }
}

/// Port ranges as `{"first", "last"}` objects rather than bare pairs.
fn ranges_as_objects<S: serde::Serializer>(r: &[(u16, u16)], s: S) -> Result<S::Ok, S::Error> {
    #[derive(Serialize)]
    struct Range {
        first: u16,
        last: u16,
    }
    s.collect_seq(r.iter().map(|&(first, last)| Range { first, last }))
}

/// `netkit free-port`.
///
/// # Errors
/// A malformed `--range`.
pub fn free_port(a: &FreePortArgs, f: Format) -> anyhow::Result<i32> {
    if a.count == 0 || a.count > 10_000 {
        bail!("--count must be between 1 and 10000");
    }
    let proto = if a.udp { Proto::Udp } else { Proto::Tcp };
    let mut notes = Vec::new();
    let ranges = match &a.range {
        Some(r) => vec![freeport::parse_range(r).with_context(|| {
            format!("--range must be A-B with 1 <= A <= B <= 65535, got {r:?}")
        })?],
        None => {
            let eph = sysctl::ephemeral_range();
            let start = sysctl::unprivileged_port_start();
            notes.push(format!(
                "searched outside net.ipv4.ip_local_port_range ({}-{}), where outgoing connections pick their source ports (BIND-RULES.md rule 11), and from ip_unprivileged_port_start ({start}) up; use --range A-B to choose",
                eph.0, eph.1
            ));
            freeport::default_ranges(start, eph)
        }
    };
    let ports = freeport::find(proto, &ranges, a.count, freeport::seed());
    if ports.len() < a.count {
        notes.push(format!(
            "found only {} free port(s) of {} asked",
            ports.len(),
            a.count
        ));
    }
    let found = ports.len() == a.count;
    let r = FreePortReport {
        ports,
        proto,
        ranges,
        notes,
    };
    emit_found(&r, f, found)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_with_scope_and_brackets_parse() {
        assert_eq!(
            parse_addr("[::1]").unwrap().0,
            "::1".parse::<IpAddr>().unwrap()
        );
        assert!(parse_addr("fe80::1%lo").unwrap().1 > 0);
        assert!(parse_addr("fe80::1%no-such-if0").is_err());
        assert!(parse_addr("nonsense").is_err());
        assert_eq!(
            parse_addr("*").unwrap().0,
            IpAddr::V4(Ipv4Addr::UNSPECIFIED)
        );
    }
}
