//! explain, wait-free, free-port: turn the arguments into an [`explain::Request`], run the
//! engine ([`crate::explain::port`]) and render its report. The engine owns the trials, the
//! inventory and the diagnosis; this file only translates and prints.

use std::io::{self, IsTerminal, Write};
use std::net::{IpAddr, Ipv4Addr};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use serde::Serialize;

use super::{FOUND, NOTHING, emit_found};
use crate::cli::explain::{BindOptArgs, ExplainArgs, FreePortArgs, WaitFreeArgs};
use crate::explain::causes;
use crate::explain::errors::{self, Decoded};
use crate::explain::freeport;
use crate::explain::trial::{self, Outcome, TrialOpts};
use crate::explain::{self, ExplainReport, Request};
use crate::inspect::{self, OwnerScope, Proto, Query, SockState, sysctl};
use crate::output::{Block, Format, Report};
use crate::sockopt::Applied;

/// The human form of an engine report (also what `lab::diagnose` prints on stderr).
fn blocks(r: &ExplainReport) -> Vec<Block> {
    let o = Outcome {
        ok: r.bindable,
        stage: r.stage,
        errno: r.errno_code,
    };
    let mut out = vec![Block::Line(causes::verdict_line(&r.trial, &o))];
    for c in &r.checks {
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
    for (i, c) in r.causes.iter().enumerate() {
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
                    let mut row = super::sockets_report::cells(s, false);
                    row.push(
                        r.holders
                            .iter()
                            .find(|h| h.inode == s.inode && s.inode != 0)
                            .map_or("-".to_string(), |h| flags_cell(&h.options)),
                    );
                    row
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
        blocks(self)
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
            out.extend(blocks(e));
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
    let req = Request {
        as_user: a.as_user.clone(),
        ..Request::new(trial_opts(&a.bind, port)?)
    };
    let r = explain::port::port(&req)?;
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
                let req = Request {
                    as_user: a.as_user.clone(),
                    ..Request::new(trial_opts(&b, p)?)
                };
                explanation = Some(explain::port::port(&req)?);
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
