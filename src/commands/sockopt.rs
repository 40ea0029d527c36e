//! `netkit sockopt PID [--fd N | --port P]`: the socket options of another process's
//! sockets, read through pidfd_open + pidfd_getfd + getsockopt on the copy (read-only).
//! Without ptrace rights (EPERM) it says what is needed and exits 2.

use std::net::SocketAddr;
use std::os::fd::RawFd;

use anyhow::{Context, bail};
use serde::Serialize;
use socket2::SockRef;

use super::{FOUND, NOTHING, emit_found};
use crate::cli::explain::SockoptArgs;
use crate::explain::pidfd::{self, Pidfd};
use crate::inspect::{fmt_endpoint, procfd};
use crate::output::{Block, Format, Report};
use crate::sockopt::{self, Applied};

/// One socket of the process.
#[derive(Debug, Serialize)]
pub struct SockoptEntry {
    /// The fd number in the target process.
    pub fd: RawFd,
    /// The socket inode.
    pub inode: u64,
    /// `tcp`, `udp` or another type name.
    pub proto: String,
    /// Local address.
    pub local: Option<String>,
    /// Local port.
    pub local_port: Option<u16>,
    /// Peer address, when connected.
    pub remote: Option<String>,
    /// The options.
    pub options: Applied,
}

/// What `netkit sockopt` prints.
#[derive(Debug, Serialize)]
pub struct SockoptReport {
    /// The process.
    pub pid: u32,
    /// Its command name.
    pub command: String,
    /// Its IP sockets.
    pub sockets: Vec<SockoptEntry>,
    /// Hints.
    pub notes: Vec<String>,
}

impl Report for SockoptReport {
    fn human(&self) -> Vec<Block> {
        let rows = self
            .sockets
            .iter()
            .map(|s| {
                vec![
                    s.fd.to_string(),
                    s.proto.clone(),
                    s.local.clone().unwrap_or_else(|| "-".into()),
                    s.remote.clone().unwrap_or_else(|| "*:*".into()),
                    s.options.to_string(),
                ]
            })
            .collect();
        vec![
            Block::Line(format!("PID {} ({})", self.pid, self.command)),
            Block::table(&["FD", "PROTO", "LOCAL", "REMOTE", "OPTIONS"], rows),
        ]
    }
    fn notes(&self) -> Vec<String> {
        self.notes.clone()
    }
}

fn endpoint(a: Option<SocketAddr>) -> Option<String> {
    a.map(|a| fmt_endpoint(a.ip(), a.port()))
}

/// Shows another process's socket options.
///
/// # Errors
/// No such process or fd, or no permission (with what is needed).
pub fn run(a: &SockoptArgs, f: Format) -> anyhow::Result<i32> {
    let pid = a.pid;
    let pfd = match Pidfd::open(pid) {
        Ok(p) => p,
        Err(e) if e.raw_os_error() == Some(libc::ESRCH) => bail!("no such process: {pid}"),
        Err(e) => return Err(e).context("pidfd_open"),
    };
    let fds = match pidfd::socket_fds(pid) {
        Ok(v) => v,
        Err(e) if e.kind() == std::io::ErrorKind::PermissionDenied => {
            bail!("cannot list /proc/{pid}/fd: {}", pidfd::permission_hint())
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
                bail!(
                    "PID {pid}: permission denied (EPERM) — {}",
                    pidfd::permission_hint()
                )
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
        let remote = s.peer_addr().ok().and_then(|x| x.as_socket());
        sockets.push(SockoptEntry {
            fd,
            inode,
            proto,
            local: endpoint(Some(local)),
            local_port: Some(local.port()),
            remote: endpoint(remote),
            options: sockopt::read_back(&copy),
        });
        // `copy` drops here: the borrowed reference is closed at once.
    }
    let command = procfd::describe(&[pid])
        .remove(&pid)
        .map(|(c, _)| c)
        .unwrap_or_default();
    let mut notes = Vec::new();
    if sockets.is_empty() {
        notes.push(match a.port {
            Some(p) => format!("PID {pid} holds no IP socket on port {p}"),
            None => format!("PID {pid} holds no IP socket"),
        });
    }
    let found = !sockets.is_empty();
    let r = SockoptReport {
        pid,
        command,
        sockets,
        notes,
    };
    emit_found(&r, f, found)?;
    Ok(if found { FOUND } else { NOTHING })
}
