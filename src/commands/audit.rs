//! `netkit audit [--fail-on warn|high]`: gathers the socket table with owners, the holders'
//! options (pidfd_getfd: root, or the caller's own processes) and the host's limits, runs the
//! `audit` rules and prints the findings. Exit 0 none, 1 findings, 2 error.

use std::collections::{HashMap, HashSet};
use std::io;

use anyhow::Context;
use serde::Serialize;

use super::sockets_report;
use crate::audit::{self, Finding, Flags, Host, Severity};
use crate::cli::audit::{AuditArgs, FailOn};
use crate::explain::pidfd::{Pidfd, socket_fds};
use crate::inspect::{self, Query, SockState};
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
    /// Always 1.
    pub schema_version: u32,
    /// `audit`.
    pub command: &'static str,
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
            out.push(Block::Line(format!(
                "{:<4}  {:<3}  {}  {}",
                f.severity.name().to_uppercase(),
                f.rule.unwrap_or("-"),
                f.kind,
                f.message
            )));
            out.push(Block::Line(format!("      fix: {}", f.fix)));
            let rows = f
                .evidence
                .iter()
                .map(|s| {
                    let mut c = sockets_report::cells(s, false);
                    c[0] = format!("      {}", c[0]);
                    c
                })
                .collect();
            let mut header = sockets_report::header(false);
            header[0] = format!("      {}", header[0]);
            out.push(Block::Table { header, rows });
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
}

/// Reads the options of the sockets in `want` from their first visible owner: one
/// `/proc/PID/fd` listing and one pidfd per process. Returns the flags and how many sockets
/// could not be read for lack of permission.
fn holder_flags(want: &[(u32, u64)]) -> (Flags, usize) {
    let mut by_pid: HashMap<u32, HashSet<u64>> = HashMap::new();
    for &(pid, inode) in want {
        by_pid.entry(pid).or_default().insert(inode);
    }
    let mut flags = Flags::default();
    let mut denied = 0;
    for (pid, inodes) in by_pid {
        let (Ok(pfd), Ok(fds)) = (Pidfd::open(pid), socket_fds(pid)) else {
            continue;
        };
        for (fd, inode) in fds {
            if !inodes.contains(&inode) || flags.by_inode.contains_key(&inode) {
                continue;
            }
            match pfd.getfd(fd) {
                Ok(copy) => {
                    flags.by_inode.insert(inode, sockopt::read_back(&copy));
                }
                Err(e) if e.raw_os_error() == Some(libc::EPERM) => {
                    denied += 1;
                }
                Err(_) => {}
            }
        }
    }
    (flags, denied)
}

/// Runs the audit.
///
/// # Errors
/// The socket table cannot be read.
pub fn run(a: &AuditArgs, f: Format) -> anyhow::Result<i32> {
    let mut snap = inspect::snapshot(&Query::default()).context("reading the socket tables")?;
    inspect::link_listeners(&mut snap.sockets);
    let mut notes = snap.notes.clone();
    let binders: Vec<(u32, u64)> = snap
        .sockets
        .iter()
        .filter(|s| s.is_binder() && s.inode != 0)
        .filter_map(|s| s.owners.first().map(|o| (o.pid, s.inode)))
        .collect();
    let (flags, denied) = holder_flags(&binders);
    let unread = |owned: bool| {
        snap.sockets
            .iter()
            .filter(|s| s.is_binder() && s.inode != 0 && flags.of(s).is_none())
            .filter(|s| s.owners.is_empty() != owned)
            .count()
    };
    let (denied_socks, unowned) = (unread(true), unread(false));
    if denied_socks > 0 {
        notes.push(format!(
            "the options of {denied_socks} listening/bound socket(s) could not be read ({denied} refused with EPERM: pidfd_getfd needs root, or the socket's own user): SO_REUSEADDR/SO_REUSEPORT findings for them are missing; run as root for a complete audit"
        ));
    }
    if unowned > 0 {
        notes.push(format!(
            "{unowned} listening/bound socket(s) have no visible owner, so their options could not be read"
        ));
    }
    let mut host = Host::read();
    for s in snap.sockets.iter().filter(|s| s.state == SockState::Bound) {
        for o in &s.owners {
            if let Some(age) = audit::process_age_s(o.pid) {
                host.process_age_s.insert(o.pid, age);
            }
        }
    }
    let findings = audit::audit(&snap.sockets, &flags, &host);
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
        schema_version: 1,
        command: "audit",
        sockets_examined: snap.sockets.len(),
        findings,
        summary,
        notes,
    };
    output::emit(&r, f, io::stdout().lock(), io::stderr().lock())?;
    Ok(if fail { 1 } else { 0 })
}
