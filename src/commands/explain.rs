//! explain (wait-free and free-port are in their own files): turn the arguments into an [`explain::Request`], run the
//! engine ([`crate::explain::port`]) and render its report. The engine owns the trials, the
//! inventory and the diagnosis; this file only translates and prints.

use std::net::{IpAddr, Ipv4Addr};
use std::time::Duration;

use anyhow::{Context, bail};
use serde::Serialize;

use super::{FOUND, NOTHING, emit_found};
use crate::cli::explain::{BindOptArgs, ExplainArgs};
use crate::explain::causes;
use crate::explain::errors::{self, Decoded};
use crate::explain::trial::{Outcome, TrialOpts};
use crate::explain::{self, ExplainReport, Request};
use crate::inspect::{self, Proto, sysctl};
use crate::output::{Block, Format, Report};
use crate::sockopt::Applied;

/// The human form of an engine report (also what `lab::diagnose` prints on stderr).
fn blocks(r: &ExplainReport) -> Vec<Block> {
    let o = Outcome {
        ok: r.bindable.or(r.connected).unwrap_or(false),
        stage: r.stage,
        errno: r.errno_code,
    };
    let head = match (r.mode, r.target_addr) {
        ("connect", Some(a)) if r.connected == Some(true) => format!(
            "tcp connect to {}: connected",
            inspect::fmt_endpoint(a, r.target_port.unwrap_or(r.port))
        ),
        ("connect", Some(a)) => format!(
            "tcp connect to {}: failed: {} at connect()",
            inspect::fmt_endpoint(a, r.target_port.unwrap_or(r.port)),
            r.errno.unwrap_or("error")
        ),
        _ => causes::verdict_line(&r.trial, &o),
    };
    let mut out = vec![Block::Line(head)];
    for c in &r.checks {
        out.push(Block::Line(format!(
            "  check {}: {}",
            c.what,
            match (c.bindable, r.mode) {
                (true, "connect") => "connected".to_string(),
                (true, _) => "bindable".to_string(),
                (false, "connect") => format!("failed ({})", c.errno.unwrap_or("error")),
                (false, _) => format!("not bindable ({})", c.errno.unwrap_or("error")),
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
    fn command(&self) -> Option<&'static str> {
        Some("explain")
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
    fn command(&self) -> Option<&'static str> {
        Some("explain")
    }
    fn human(&self) -> Vec<Block> {
        let mut out = Vec::new();
        match &self.decoded {
            None => out.push(Block::Line(
                "not recognised as a bind/listen/connect error (EADDRINUSE, EACCES, EADDRNOTAVAIL, EINVAL, ECONNREFUSED)"
                    .into(),
            )),
            Some(d) => {
                out.push(Block::Line(format!(
                    "{} at {}() from {} ({}){}",
                    d.errno,
                    d.side,
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
    if let Some(target) = &a.connect {
        let Some((host, port)) = explain::dial::split_host_port(target) else {
            bail!("--connect wants HOST:PORT ([::1]:8080, localhost:5432), got {target:?}");
        };
        if !(a.timeout.is_finite() && a.timeout > 0.0 && a.timeout <= 600.0) {
            bail!("--timeout must be a number of seconds in (0, 600]");
        }
        let req = explain::dial::DialRequest {
            host,
            port,
            timeout: Duration::from_secs_f64(a.timeout),
        };
        let r = explain::dial::dial(&req)?;
        let ok = r.connected == Some(true);
        emit_found(&r, f, true)?;
        return Ok(if ok { FOUND } else { NOTHING });
    }
    let Some(port) = a.port else {
        bail!("give a PORT, --connect HOST:PORT or --error TEXT");
    };
    let req = Request {
        as_user: a.as_user.clone(),
        ..Request::new(trial_opts(&a.bind, port)?)
    };
    let r = explain::port::port(&req)?;
    let ok = r.bindable == Some(true);
    emit_found(&r, f, true)?;
    Ok(if ok { FOUND } else { NOTHING })
}

fn run_error(a: &ExplainArgs, text: &str, f: Format) -> anyhow::Result<i32> {
    let decoded = errors::decode(text);
    let mut notes = Vec::new();
    let mut explanation = None;
    if let Some(d) = &decoded {
        let port = a.port.or(d.port);
        let here = d.platform == "linux" || d.platform == "unknown";
        match port {
            Some(p) if here && d.side == "connect" => {
                // The connect side: dial what the message dialled (a name is dialled as a
                // name, so `localhost` → ::1 vs 127.0.0.1 shows up).
                let host = d
                    .host
                    .clone()
                    .or_else(|| d.addr.map(|a| a.to_string()))
                    .unwrap_or_else(|| "localhost".to_string());
                if d.host.is_none() && d.addr.is_none() {
                    notes.push(format!(
                        "the message names port {p} but no host: the live check dials localhost"
                    ));
                }
                notes.push(format!(
                    "a connect-side error: the live check is `netkit explain --connect {}`",
                    if host.contains(':') { format!("[{host}]:{p}") } else { format!("{host}:{p}") }
                ));
                let req = explain::dial::DialRequest {
                    host,
                    port: p,
                    timeout: Duration::from_secs(3),
                };
                explanation = Some(explain::dial::dial(&req)?);
            }
            Some(p) if here => {
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
                "the message comes from {}, so port {} on this Linux host says nothing about it: run netkit's check (or `{}`) on that machine",
                d.platform,
                d.port.map_or("?".into(), |p| p.to_string()),
                match d.platform {
                    "windows" => "netstat -ano | findstr :PORT",
                    _ => "lsof -nP -iTCP:PORT",
                }
            )),
            None if d.side == "connect" => notes.push(
                "the message names no port: run `netkit explain --connect HOST:PORT` with what the program dialled".into(),
            ),
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
        (Some(_), Some(e)) if e.bindable != Some(true) && e.connected != Some(true) => NOTHING,
        _ => FOUND,
    };
    emit_found(&r, f, true)?;
    Ok(code)
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
