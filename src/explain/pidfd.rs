//! Borrowing another process's socket through pidfd_open + pidfd_getfd (Linux ≥ 5.6,
//! KERNEL-FACTS.md) to read its options with getsockopt. Read-only: netkit never calls
//! setsockopt or shutdown on the copy, and closes it at once (the copy holds a reference).
//!
//! pidfd_getfd needs ptrace-attach rights over the target (root, or the same user where Yama
//! `kernel.yama.ptrace_scope` is 0); EPERM otherwise.

use std::fs;
use std::io;
use std::os::fd::{FromRawFd, OwnedFd, RawFd};

use serde::Serialize;

use crate::inspect::procfd::socket_inode;
use crate::sockopt::{self, Applied};

/// An open pidfd for one process.
#[derive(Debug)]
pub struct Pidfd(OwnedFd);

impl Pidfd {
    /// pidfd_open(2).
    ///
    /// # Errors
    /// ESRCH when the process does not exist.
    pub fn open(pid: u32) -> io::Result<Pidfd> {
        let pid =
            libc::pid_t::try_from(pid).map_err(|_| io::Error::from_raw_os_error(libc::ESRCH))?;
        // SAFETY: pidfd_open takes a pid and flags and returns a new fd or -1.
        let fd = unsafe { libc::syscall(libc::SYS_pidfd_open, pid, 0) };
        if fd < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: the kernel returned a fresh fd that we now own.
        Ok(Pidfd(unsafe { OwnedFd::from_raw_fd(fd as RawFd) }))
    }

    /// pidfd_send_signal(2): signals exactly this process, never a later holder of its PID.
    ///
    /// # Errors
    /// ESRCH once the process has exited, EPERM without the right to signal it.
    pub fn send_signal(&self, sig: i32) -> io::Result<()> {
        use std::os::fd::AsRawFd;
        // SAFETY: pidfd_send_signal takes a pidfd, a signal number, a null siginfo (the
        // kernel then fills one as kill(2) would) and flags 0; it returns 0 or -1.
        let r = unsafe {
            libc::syscall(
                libc::SYS_pidfd_send_signal,
                self.0.as_raw_fd(),
                sig,
                std::ptr::null::<libc::siginfo_t>(),
                0,
            )
        };
        if r < 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(())
    }

    /// pidfd_getfd(2): a copy of the target's `fd` in this process.
    ///
    /// # Errors
    /// EPERM without ptrace rights, EBADF when the fd is not open there.
    pub fn getfd(&self, fd: RawFd) -> io::Result<OwnedFd> {
        use std::os::fd::AsRawFd;
        // SAFETY: pidfd_getfd takes a pidfd, a target fd and flags; it returns a new fd or -1.
        let r = unsafe { libc::syscall(libc::SYS_pidfd_getfd, self.0.as_raw_fd(), fd, 0) };
        if r < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: the kernel returned a fresh fd that we now own (closed on drop).
        Ok(unsafe { OwnedFd::from_raw_fd(r as RawFd) })
    }
}

/// The socket fds of a process: (fd number, socket inode), ascending by fd.
///
/// # Errors
/// When `/proc/PID/fd` cannot be listed (no such process, or no permission).
pub fn socket_fds(pid: u32) -> io::Result<Vec<(RawFd, u64)>> {
    let mut out = Vec::new();
    for e in fs::read_dir(format!("/proc/{pid}/fd"))? {
        let Ok(e) = e else { continue };
        let Some(fd) = e.file_name().to_str().and_then(|s| s.parse::<RawFd>().ok()) else {
            continue;
        };
        let Ok(link) = fs::read_link(e.path()) else {
            continue;
        };
        if let Some(inode) = socket_inode(link.as_os_str().as_encoded_bytes()) {
            out.push((fd, inode));
        }
    }
    out.sort_unstable();
    Ok(out)
}

/// The options of a holder's socket, as far as netkit could read them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct HolderFlags {
    /// The socket inode.
    pub inode: u64,
    /// The process the socket was borrowed from.
    pub pid: u32,
    /// Its fd number there.
    pub fd: RawFd,
    /// What getsockopt said.
    pub options: Applied,
}

/// Reads the options of the socket `inode` held by `pid`.
///
/// # Errors
/// EPERM without ptrace rights; ENOENT when the process no longer holds the socket.
pub fn read_holder(pid: u32, inode: u64) -> io::Result<HolderFlags> {
    let fd = socket_fds(pid)?
        .into_iter()
        .find(|(_, i)| *i == inode)
        .map(|(fd, _)| fd)
        .ok_or_else(|| io::Error::from_raw_os_error(libc::ENOENT))?;
    let copy = Pidfd::open(pid)?.getfd(fd)?;
    Ok(HolderFlags {
        inode,
        pid,
        fd,
        options: sockopt::read_back(&copy),
    })
}

/// `kernel.yama.ptrace_scope`, when Yama is present.
pub fn ptrace_scope() -> Option<u8> {
    crate::inspect::sysctl::read("kernel/yama/ptrace_scope").and_then(|s| s.parse().ok())
}

/// What is needed to read another user's sockets, for EPERM messages.
pub fn permission_hint() -> String {
    let scope = match ptrace_scope() {
        Some(n) => format!("kernel.yama.ptrace_scope is {n} here"),
        None => "Yama is not active here, so plain ptrace rules apply".to_string(),
    };
    format!(
        "reading another process's socket options needs ptrace rights over it (pidfd_getfd): run as root, or as the same user with kernel.yama.ptrace_scope=0 ({scope})"
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_own_listener_flags_through_pidfd() {
        let opts = sockopt::SockOpts {
            reuseaddr: true,
            reuseport: true,
            ..Default::default()
        };
        let l = sockopt::listen("127.0.0.1:0".parse().unwrap(), &opts, 4).unwrap();
        let inode = {
            use std::os::fd::AsRawFd;
            use std::os::unix::fs::MetadataExt;
            fs::metadata(format!("/proc/self/fd/{}", l.as_raw_fd()))
                .unwrap()
                .ino()
        };
        let h = read_holder(std::process::id(), inode).unwrap();
        assert_eq!(h.options.reuseaddr, Some(true));
        assert_eq!(h.options.reuseport, Some(true));
    }
}
