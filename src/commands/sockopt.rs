//! `netkit sockopt PID [--fd N | --port P | --all] [--set NAME=VALUE... [--dry-run]]`: the
//! socket options of another process's sockets, read through pidfd_open + pidfd_getfd +
//! getsockopt on the copy, and with `--set` changed live (`retune`). Without ptrace rights
//! (EPERM) it says which rule applies and what to do, and exits 2.

use std::net::IpAddr;
use std::os::fd::RawFd;

use anyhow::{Context, bail};
use serde::Serialize;
use socket2::SockRef;

use super::{ERROR, FOUND, NOTHING, emit_found};
use crate::cli::explain::SockoptArgs;
use crate::explain::pidfd::{self, Pidfd};
use crate::inspect::{SockState, fmt_endpoint, procfd};
use crate::output::{Block, Format, Report};
use crate::retune::{self, Change, Outcome, Setting};
use crate::sockopt::{self, Applied};

/// The process, in the JSON vocabulary's shape.
#[derive(Debug, Serialize)]
pub struct Process {
    /// Process id.
    pub pid: u32,
    /// Its name (comm).
    pub command: String,
    /// Its command line, `null` when unreadable (or a kernel thread).
    pub cmdline: Option<String>,
}

/// One socket of the process.
#[derive(Debug, Serialize)]
pub struct SockoptEntry {
    /// The fd number in the target process.
    pub fd: RawFd,
    /// The socket inode.
    pub inode: u64,
    /// `tcp`, `udp` or another type name.
    pub proto: String,
    /// Kernel state name (`LISTEN`, `ESTABLISHED`, `BOUND`, `UNCONN`, ...).
    pub state: Option<SockState>,
    /// Local address (no brackets; `0.0.0.0` / `::` for the wildcard).
    pub local_addr: IpAddr,
    /// Local port.
    pub local_port: u16,
    /// Peer address, when connected.
    pub remote_addr: Option<IpAddr>,
    /// Peer port, when connected.
    pub remote_port: Option<u16>,
    /// The options, after any change.
    pub options: Applied,
    /// With `--set`: each option before → after.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub changes: Option<Vec<Change>>,
}

/// What `netkit sockopt` prints.
#[derive(Debug, Serialize)]
pub struct SockoptReport {
    /// The process.
    pub process: Process,
    /// True with `--dry-run`.
    pub dry_run: bool,
    /// Its IP sockets (the selected ones).
    pub sockets: Vec<SockoptEntry>,
    /// Hints.
    pub notes: Vec<String>,
    /// The terminal's width (`None`: a pipe or `--wide`), for the read table's layout.
    #[serde(skip)]
    pub width: Option<usize>,
}

impl SockoptEntry {
    fn local(&self) -> String {
        fmt_endpoint(self.local_addr, self.local_port)
    }
    fn remote(&self) -> String {
        match (self.remote_addr, self.remote_port) {
            (Some(a), Some(p)) => fmt_endpoint(a, p),
            _ => "*:*".into(),
        }
    }
    fn state_name(&self) -> &'static str {
        self.state.map_or("?", SockState::name)
    }
}

impl Report for SockoptReport {
    fn human(&self) -> Vec<Block> {
        let head = Block::Line(format!(
            "PID {} ({}){}",
            self.process.pid,
            self.process.command,
            if self.dry_run {
                " — dry run, nothing changed"
            } else {
                ""
            }
        ));
        if self.sockets.iter().all(|s| s.changes.is_none()) {
            let rows: Vec<Vec<String>> = self
                .sockets
                .iter()
                .map(|s| {
                    vec![
                        s.fd.to_string(),
                        s.proto.clone(),
                        s.state_name().to_string(),
                        s.local(),
                        s.remote(),
                        s.options.to_string(),
                    ]
                })
                .collect();
            let header = ["FD", "PROTO", "STATE", "LOCAL", "REMOTE", "OPTIONS"];
            if self
                .width
                .is_none_or(|w| w >= natural_width(&header, &rows))
            {
                return vec![head, Block::table(&header, rows)];
            }
            // A terminal too narrow for the options: rather than cut them to `…` as a
            // free-text column, the table keeps the sockets and each socket's options follow
            // as a wrapped line. Piped output keeps one greppable row per socket.
            let mut out = vec![head];
            let mut lines = Vec::new();
            let rows: Vec<Vec<String>> = rows
                .into_iter()
                .map(|mut r| {
                    let opts = r.pop().unwrap_or_default();
                    lines.push(Block::Line(format!("fd {}: {opts}", r[0])));
                    r
                })
                .collect();
            out.push(Block::table(&header[..5], rows));
            out.extend(lines);
            return out;
        }
        let mut rows = Vec::new();
        let mut lines = Vec::new();
        for s in &self.sockets {
            for c in s.changes.iter().flatten() {
                let v = |x: Option<retune::Val>| x.map_or("?".to_string(), |v| v.to_string());
                rows.push(vec![
                    s.fd.to_string(),
                    s.state_name().to_string(),
                    s.local(),
                    s.remote(),
                    c.kernel_name.to_string(),
                    format!("{} → {}", v(c.before), v(c.after)),
                    outcome_word(c.outcome).to_string(),
                ]);
                if let Some(n) = &c.note {
                    let l = format!("fd {} {}: {n}", s.fd, c.kernel_name);
                    if !lines.contains(&l) {
                        lines.push(l);
                    }
                }
            }
        }
        let mut out = vec![
            head,
            Block::table(
                &[
                    "FD",
                    "STATE",
                    "LOCAL",
                    "REMOTE",
                    "OPTION",
                    "BEFORE → AFTER",
                    "RESULT",
                ],
                rows,
            ),
        ];
        out.extend(lines.into_iter().map(Block::Line));
        out
    }
    fn notes(&self) -> Vec<String> {
        self.notes.clone()
    }
    fn command(&self) -> Option<&'static str> {
        Some("sockopt")
    }
}

/// The width of `rows` under `header` as a table lays them out (2 spaces between columns).
fn natural_width(header: &[&str], rows: &[Vec<String>]) -> usize {
    use unicode_width::UnicodeWidthStr;
    let widths = (0..header.len()).map(|i| {
        rows.iter()
            .map(|r| r.get(i).map_or(0, |c| c.width()))
            .max()
            .unwrap_or(0)
            .max(header[i].width())
    });
    widths.sum::<usize>() + 2 * header.len().saturating_sub(1)
}

fn outcome_word(o: Outcome) -> &'static str {
    match o {
        Outcome::Changed => "changed",
        Outcome::Unchanged => "unchanged",
        Outcome::Clamped => "clamped",
        Outcome::WouldChange => "would change",
        Outcome::Refused => "refused",
        Outcome::Failed => "FAILED",
    }
}

fn parse_settings(a: &SockoptArgs) -> anyhow::Result<Vec<Setting>> {
    let settings = a
        .set
        .iter()
        .map(|s| s.parse::<Setting>())
        .collect::<Result<Vec<_>, _>>()?;
    if !settings.is_empty() && a.fd.is_none() && a.port.is_none() && !a.all {
        bail!("--set changes live sockets: choose them with --fd N, --port P or --all");
    }
    Ok(settings)
}

/// Shows (and with `--set`, changes) another process's socket options.
///
/// # Errors
/// A malformed or refused `--set`, no such process or fd, or no permission (with the rule).
pub fn run(a: &SockoptArgs, f: Format) -> anyhow::Result<i32> {
    let settings = parse_settings(a)?;
    let pid = a.pid;
    let pfd = match Pidfd::open(pid) {
        Ok(p) => p,
        Err(e) if e.raw_os_error() == Some(libc::ESRCH) => bail!("no such process: {pid}"),
        Err(e) => return Err(e).context("pidfd_open"),
    };
    let fds = match pidfd::socket_fds(pid) {
        Ok(v) => v,
        Err(e) if e.kind() == std::io::ErrorKind::PermissionDenied => {
            bail!("{}", retune::permission_line(pid))
        }
        Err(e) => return Err(e).with_context(|| format!("listing /proc/{pid}/fd")),
    };
    let wanted: Vec<(RawFd, u64)> = match a.fd {
        Some(n) => {
            let v: Vec<_> = fds.into_iter().filter(|(fd, _)| *fd == n).collect();
            if v.is_empty() {
                bail!("fd {n} of PID {pid} is not a socket (or not open)");
            }
            v
        }
        None => fds,
    };
    let mut sockets = Vec::new();
    for (fd, inode) in wanted {
        let copy = match pfd.getfd(fd) {
            Ok(c) => c,
            Err(e) if e.raw_os_error() == Some(libc::EPERM) => {
                bail!("{}", retune::permission_line(pid))
            }
            // The fd was closed meanwhile.
            Err(e) if e.raw_os_error() == Some(libc::EBADF) => continue,
            Err(e) => return Err(e).with_context(|| format!("pidfd_getfd of fd {fd}")),
        };
        let s = SockRef::from(&copy);
        let local = s.local_addr().ok().and_then(|x| x.as_socket());
        // Only IP sockets: unix and netlink sockets have no port options.
        let Some(local) = local else { continue };
        if let Some(p) = a.port
            && local.port() != p
        {
            continue;
        }
        let proto = match s.r#type() {
            Ok(socket2::Type::STREAM) => "tcp".to_string(),
            Ok(socket2::Type::DGRAM) => "udp".to_string(),
            Ok(t) => format!("{t:?}").to_lowercase(),
            Err(_) => "?".into(),
        };
        if a.all && proto != "tcp" {
            continue;
        }
        let changes = (!settings.is_empty()).then(|| retune::retune(&s, &settings, a.dry_run));
        let remote = s.peer_addr().ok().and_then(|x| x.as_socket());
        sockets.push(SockoptEntry {
            fd,
            inode,
            proto,
            state: retune::state(&s),
            local_addr: local.ip(),
            local_port: local.port(),
            remote_addr: remote.map(|r| r.ip()),
            remote_port: remote.map(|r| r.port()),
            options: sockopt::read_back(&copy),
            changes,
        });
        // `copy` drops here: the borrowed reference is closed at once.
    }
    let (command, cmdline) = procfd::describe(&[pid]).remove(&pid).unwrap_or_default();
    let mut notes = Vec::new();
    if sockets.is_empty() {
        notes.push(match (a.port, a.all) {
            (Some(p), _) => format!("PID {pid} holds no IP socket on port {p}"),
            (None, true) => format!("PID {pid} holds no TCP socket"),
            (None, false) => format!("PID {pid} holds no IP socket"),
        });
    }
    let all_changes = || sockets.iter().flat_map(|s| s.changes.iter().flatten());
    let failed = all_changes().any(|c| c.outcome == Outcome::Failed);
    let none_applicable = !settings.is_empty()
        && !sockets.is_empty()
        && all_changes().all(|c| c.outcome == Outcome::Refused);
    if none_applicable {
        notes.push("no selected socket takes these options (TCP options on UDP sockets)".into());
    }
    let found = !sockets.is_empty();
    let r = SockoptReport {
        process: Process {
            pid,
            command,
            cmdline: Some(cmdline).filter(|c| !c.is_empty()),
        },
        dry_run: a.dry_run,
        sockets,
        notes,
        width: crate::output::Layout::detect().width,
    };
    emit_found(&r, f, found)?;
    Ok(if failed || none_applicable {
        ERROR
    } else if found {
        FOUND
    } else {
        NOTHING
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn report(width: Option<usize>) -> SockoptReport {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let a = l.local_addr().unwrap();
        SockoptReport {
            process: Process {
                pid: 1,
                command: "python3".into(),
                cmdline: None,
            },
            dry_run: false,
            sockets: vec![SockoptEntry {
                fd: 3,
                inode: 1,
                proto: "tcp".into(),
                state: Some(SockState::Listen),
                local_addr: a.ip(),
                local_port: a.port(),
                remote_addr: None,
                remote_port: None,
                options: sockopt::read_back(&l),
                changes: None,
            }],
            notes: vec![],
            width,
        }
    }

    #[test]
    fn options_follow_the_table_on_a_narrow_terminal_and_stay_in_the_row_elsewhere() {
        let piped = report(None).human();
        let Block::Table { header, rows } = &piped[1] else {
            panic!("{piped:?}")
        };
        assert_eq!(header.last().map(String::as_str), Some("OPTIONS"));
        assert!(rows[0][5].ends_with("user-timeout default, linger off"));
        let narrow = report(Some(80)).human();
        let Block::Table { header, .. } = &narrow[1] else {
            panic!("{narrow:?}")
        };
        assert_eq!(header.last().map(String::as_str), Some("REMOTE"));
        assert!(
            matches!(&narrow[2], Block::Line(l) if l.starts_with("fd 3: reuseaddr")),
            "{narrow:?}"
        );
        // Wide enough for the whole row: the greppable table.
        let wide = report(Some(400)).human();
        assert_eq!(wide.len(), 2);
        assert!(matches!(&wide[1], Block::Table { header, .. } if header.len() == 6));
    }
}
