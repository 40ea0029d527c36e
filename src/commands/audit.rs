//! `netkit audit [--fail-on warn|high]`: gathers the socket table with owners, the holders'
//! options (pidfd_getfd: root, or the caller's own processes) and the host's limits, runs the
//! `audit` rules and prints the findings. Exit 0 none, 1 findings, 2 error.

use std::collections::{HashMap, HashSet};
use std::io;
use std::path::PathBuf;

use anyhow::Context;
use serde::Serialize;

use super::sockets_report;
use crate::audit::{self, Finding, Flags, Host, NetnsTag, Severity};
use crate::cli::audit::{AuditArgs, FailOn};
use crate::explain::pidfd::{Pidfd, socket_fds};
use crate::inspect::multi::{self, Scope};
use crate::inspect::netns::{self, NetnsSpec};
use crate::inspect::{self, Query, SockState, SocketEntry};
use crate::output::{self, Block, Format, Report};
use crate::sockopt;

/// Findings per severity.
#[derive(Debug, Default, Serialize)]
pub struct Summary {
    /// High.
    pub high: usize,
    /// Warn.
    pub warn: usize,
    /// Info.
    pub info: usize,
}

/// What `netkit audit` prints.
#[derive(Debug, Serialize)]
pub struct AuditReport {
    /// Sockets examined.
    pub sockets_examined: usize,
    /// Findings, most severe first.
    pub findings: Vec<Finding>,
    /// Counts per severity.
    pub summary: Summary,
    /// Hints: what could not be seen.
    pub notes: Vec<String>,
}

impl Report for AuditReport {
    fn human(&self) -> Vec<Block> {
        let mut out = Vec::new();
        for f in &self.findings {
            let ns = match &f.netns {
                Some(t) => format!(
                    " [netns {}]",
                    t.name
                        .clone()
                        .unwrap_or_else(|| format!("net:[{}]", t.inode))
                ),
                None => String::new(),
            };
            // The head stays short so it never wraps (wrapping would fold its aligned
            // columns); the message and the fix are paragraphs under it, wrapped at a
            // terminal's width with the output module's hanging indent.
            out.push(Block::Line(format!(
                "{:<4}  {:<3}  {}{ns}",
                f.severity.name().to_uppercase(),
                f.rule.unwrap_or("-"),
                f.kind,
            )));
            out.push(Block::Line(format!("      {}", f.message)));
            out.push(Block::Line(format!("      fix: {}", f.fix)));
            out.push(evidence_table(&f.evidence));
        }
        out.push(Block::Line(format!(
            "{} finding(s): {} high, {} warn, {} info ({} sockets examined)",
            self.findings.len(),
            self.summary.high,
            self.summary.warn,
            self.summary.info,
            self.sockets_examined
        )));
        out
    }
    fn notes(&self) -> Vec<String> {
        self.notes.clone()
    }
    fn command(&self) -> Option<&'static str> {
        Some("audit")
    }
}

/// A finding's sockets as the listing shows them, indented under the finding. USER and TIMER
/// are left out when they say `-` on every row (TIME_WAIT has no user, live sockets no timer),
/// so that the addresses stay uncut in an 80-column terminal.
fn evidence_table(sockets: &[SocketEntry]) -> Block {
    let header = sockets_report::header(false);
    let mut rows: Vec<Vec<String>> = sockets
        .iter()
        .map(|s| sockets_report::cells(s, false))
        .collect();
    let keep: Vec<bool> = header
        .iter()
        .enumerate()
        .map(|(i, h)| !matches!(h.as_str(), "USER" | "TIMER") || rows.iter().any(|r| r[i] != "-"))
        .collect();
    let pick = |cells: Vec<String>| -> Vec<String> {
        cells
            .into_iter()
            .zip(&keep)
            .filter(|(_, k)| **k)
            .map(|(c, _)| c)
            .collect()
    };
    let mut header = pick(header);
    header[0] = format!("      {}", header[0]);
    for r in &mut rows {
        *r = pick(std::mem::take(r));
        r[0] = format!("      {}", r[0]);
    }
    Block::Table { header, rows }
}

/// Reads the options of the sockets in `want` from their first visible owner: one
/// `/proc/PID/fd` listing and one pidfd per process. Returns the flags and the inodes that
/// could not be read for lack of permission (EPERM).
fn holder_flags(want: &[(u32, u64)]) -> (Flags, HashSet<u64>) {
    let mut by_pid: HashMap<u32, HashSet<u64>> = HashMap::new();
    for &(pid, inode) in want {
        by_pid.entry(pid).or_default().insert(inode);
    }
    let mut flags = Flags::default();
    let mut denied = HashSet::new();
    for (pid, inodes) in by_pid {
        let fds = match socket_fds(pid) {
            Ok(f) => f,
            Err(e) if e.kind() == io::ErrorKind::PermissionDenied => {
                denied.extend(inodes);
                continue;
            }
            Err(_) => continue,
        };
        let Ok(pfd) = Pidfd::open(pid) else { continue };
        for (fd, inode) in fds {
            if !inodes.contains(&inode) || flags.by_inode.contains_key(&inode) {
                continue;
            }
            match pfd.getfd(fd) {
                Ok(copy) => {
                    flags.by_inode.insert(inode, sockopt::read_back(&copy));
                }
                Err(e) if e.raw_os_error() == Some(libc::EPERM) => {
                    denied.insert(inode);
                }
                Err(_) => {}
            }
        }
    }
    (flags, denied)
}

/// One namespace's sockets, with what is needed to read its settings.
struct Part {
    tag: Option<NetnsTag>,
    path: Option<PathBuf>,
    sockets: Vec<SocketEntry>,
}

/// The socket tables to audit: this namespace, or those `--netns`/`--all-netns` name.
fn gather(a: &AuditArgs) -> anyhow::Result<(Vec<Part>, Vec<String>)> {
    let scope = match (&a.netns, a.all_netns) {
        (Some(n), _) => {
            let spec = NetnsSpec::parse(n).map_err(anyhow::Error::msg)?;
            netns::inode_of(&spec).map_err(|e| anyhow::anyhow!("--netns {n}: {e}"))?;
            Scope::One(spec)
        }
        (None, true) => Scope::All,
        (None, false) => {
            let snap = inspect::snapshot(&Query::default()).context("reading the socket tables")?;
            let part = Part {
                tag: None,
                path: None,
                sockets: snap.sockets,
            };
            return Ok((vec![part], snap.notes));
        }
    };
    let m = multi::snapshot(&Query::default(), &scope)
        .context("reading the network namespaces' socket tables")?;
    let mut notes = m.notes;
    for (ns, why) in &m.skipped {
        notes.push(format!("namespace {} not audited: {why}", ns.label()));
    }
    let parts = m
        .parts
        .into_iter()
        .map(|p| Part {
            tag: Some(NetnsTag {
                inode: p.netns.inode,
                name: p.netns.name.clone(),
                current: p.netns.current,
            }),
            path: Some(p.netns.path.clone()),
            sockets: p.sockets,
        })
        .collect();
    Ok((parts, notes))
}

/// Runs the audit.
///
/// # Errors
/// The socket table cannot be read; a namespace named with `--netns` does not exist.
pub fn run(a: &AuditArgs, f: Format) -> anyhow::Result<i32> {
    let (mut parts, mut notes) = gather(a)?;
    for p in &mut parts {
        inspect::link_listeners(&mut p.sockets);
    }
    let all = || parts.iter().flat_map(|p| p.sockets.iter());
    // Socket inodes are unique host-wide, so one pass reads every namespace's holders.
    let binders: Vec<(u32, u64)> = all()
        .filter(|s| s.is_binder() && s.inode != 0)
        .filter_map(|s| s.owners.first().map(|o| (o.pid, s.inode)))
        .collect();
    let (flags, denied) = holder_flags(&binders);
    let unread: Vec<&SocketEntry> = all()
        .filter(|s| s.is_binder() && s.inode != 0 && flags.of(s).is_none())
        .collect();
    let refused = unread.iter().filter(|s| denied.contains(&s.inode)).count();
    let unowned = unread.iter().filter(|s| s.owners.is_empty()).count();
    let vanished = unread.len() - refused - unowned;
    if refused > 0 {
        notes.push(format!(
            "the options of {refused} listening/bound socket(s) could not be read (EPERM: pidfd_getfd needs root, or the socket's own user): SO_REUSEADDR/SO_REUSEPORT findings for them are missing; run as root for a complete audit"
        ));
    }
    if unowned > 0 {
        notes.push(format!(
            "{unowned} listening/bound socket(s) have no visible owner, so their options could not be read{}",
            if crate::inspect::procfd::is_root() {
                ""
            } else {
                " (most likely other users' processes: run as root for a complete audit)"
            }
        ));
    }
    if vanished > 0 {
        notes.push(format!(
            "{vanished} listening/bound socket(s) were closed (or their process exited) before their options could be read"
        ));
    }
    let sockets_examined = all().count();
    let mut findings = Vec::new();
    for p in &parts {
        // Port range, unprivileged start and bindv6only are per-namespace sysctls: read them
        // from a thread inside the namespace.
        let mut host = match &p.path {
            Some(path) if !p.tag.as_ref().is_some_and(|t| t.current) => {
                netns::run_in(path, Host::read).unwrap_or_else(|e| {
                    notes.push(format!(
                        "namespace {}: its sysctls could not be read ({e}); this namespace's values used",
                        path.display()
                    ));
                    Host::read()
                })
            }
            _ => Host::read(),
        };
        for s in p.sockets.iter().filter(|s| s.state == SockState::Bound) {
            for o in &s.owners {
                if let Some(age) = audit::process_age_s(o.pid) {
                    host.process_age_s.insert(o.pid, age);
                }
            }
        }
        for mut x in audit::audit(&p.sockets, &flags, &host) {
            x.netns = p.tag.clone();
            findings.push(x);
        }
    }
    findings.sort_by_key(|x| std::cmp::Reverse(x.severity));
    let mut summary = Summary::default();
    for x in &findings {
        match x.severity {
            Severity::High => summary.high += 1,
            Severity::Warn => summary.warn += 1,
            Severity::Info => summary.info += 1,
        }
    }
    let floor = match a.fail_on {
        None => Severity::Info,
        Some(FailOn::Warn) => Severity::Warn,
        Some(FailOn::High) => Severity::High,
    };
    let fail = findings.iter().any(|x| x.severity >= floor);
    let r = AuditReport {
        sockets_examined,
        findings,
        summary,
        notes,
    };
    output::emit(&r, f, io::stdout().lock(), io::stderr().lock())?;
    Ok(if fail { 1 } else { 0 })
}
