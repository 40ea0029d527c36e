//! Socket inode → owning processes, by reading `/proc/<pid>/fd`.
//!
//! The kernel keeps no reverse index from a socket to the processes holding it, so `ss -p`,
//! lsof and fuser all readlink every `/proc/<pid>/fd/<n>` looking for `socket:[INODE]`. netkit
//! does the same walk but only matches the inodes it was asked about, splits the processes
//! over the available cores, uses `readlinkat` relative to the open fd directory (no path
//! lookup per fd), and fetches names only for the PIDs it found.
//!
//! It does not skip processes by uid: a socket's uid is its creator's, and a process that
//! dropped privileges after inheriting the fd (an nginx worker) holds a root-owned socket.

use std::collections::{HashMap, HashSet};
use std::ffi::{CStr, CString};

use sysinfo::{ProcessRefreshKind, ProcessesToUpdate, System, UpdateKind};

/// The result of a walk.
#[derive(Debug, Default)]
pub struct Scan {
    /// Wanted inode → PIDs holding it, ascending.
    pub by_inode: HashMap<u64, Vec<u32>>,
    /// Processes whose fd directory could not be read (permission).
    pub unreadable: usize,
}

/// True when running with euid 0.
pub fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions and cannot fail.
    unsafe { libc::geteuid() == 0 }
}

/// Lists the PIDs under /proc (thread-group leaders only).
pub fn pids() -> Vec<u32> {
    let Ok(rd) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    rd.filter_map(|e| e.ok())
        .filter_map(|e| e.file_name().to_str().and_then(|s| s.parse::<u32>().ok()))
        .collect()
}

/// Finds every process holding one of `want`. Never fails: unreadable processes are counted.
pub fn owners_of(want: &HashSet<u64>) -> Scan {
    let pids = pids();
    let threads = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1)
        .clamp(1, 4);
    let chunk = pids.len().div_ceil(threads).max(1);
    let parts: Vec<Scan> = std::thread::scope(|scope| {
        let handles: Vec<_> = pids
            .chunks(chunk)
            .map(|part| scope.spawn(move || scan_part(part, want)))
            .collect();
        handles.into_iter().filter_map(|h| h.join().ok()).collect()
    });
    let mut scan = Scan::default();
    for p in parts {
        scan.unreadable += p.unreadable;
        for (inode, pids) in p.by_inode {
            scan.by_inode.entry(inode).or_default().extend(pids);
        }
    }
    for v in scan.by_inode.values_mut() {
        v.sort_unstable();
        v.dedup();
    }
    scan
}

fn scan_part(pids: &[u32], want: &HashSet<u64>) -> Scan {
    let mut scan = Scan::default();
    let mut link = [0u8; 64];
    for &pid in pids {
        let Ok(path) = CString::new(format!("/proc/{pid}/fd")) else {
            continue;
        };
        // SAFETY: path is a valid NUL-terminated string; the returned DIR* is checked for NULL
        // and closed below.
        let dir = unsafe { libc::opendir(path.as_ptr()) };
        if dir.is_null() {
            let err = std::io::Error::last_os_error();
            if matches!(err.raw_os_error(), Some(libc::EACCES) | Some(libc::EPERM)) {
                scan.unreadable += 1;
            }
            continue;
        }
        // SAFETY: dir is a valid, open DIR*.
        let dfd = unsafe { libc::dirfd(dir) };
        // /proc/1/fd can be opened but its links not read, even by root (ptrace access mode
        // check in proc_fd_access_allowed): count such a process once as unreadable.
        let mut denied = false;
        loop {
            // SAFETY: dir is valid; readdir returns NULL at the end or on error.
            let ent = unsafe { libc::readdir(dir) };
            if ent.is_null() {
                break;
            }
            // SAFETY: ent points to a dirent valid until the next readdir on this DIR*.
            let name = unsafe { CStr::from_ptr((*ent).d_name.as_ptr()) };
            if name.to_bytes().first() == Some(&b'.') {
                continue;
            }
            // SAFETY: dfd is open, name is NUL-terminated, link is a writable buffer of the
            // given length; readlinkat does not NUL-terminate, the length is returned.
            let n = unsafe {
                libc::readlinkat(dfd, name.as_ptr(), link.as_mut_ptr().cast(), link.len())
            };
            if n <= 0 {
                if !denied && std::io::Error::last_os_error().raw_os_error() == Some(libc::EACCES) {
                    denied = true;
                    scan.unreadable += 1;
                }
                continue;
            }
            if let Some(inode) = socket_inode(&link[..n as usize])
                && want.contains(&inode)
            {
                let v = scan.by_inode.entry(inode).or_default();
                if v.last() != Some(&pid) {
                    v.push(pid);
                }
            }
        }
        // SAFETY: dir came from opendir and is closed exactly once.
        unsafe { libc::closedir(dir) };
    }
    scan
}

/// Parses the target of an fd symlink: `socket:[12345]` → 12345.
///
/// ```
/// assert_eq!(netkit::inspect::procfd::socket_inode(b"socket:[12345]"), Some(12345));
/// assert_eq!(netkit::inspect::procfd::socket_inode(b"/dev/null"), None);
/// ```
pub fn socket_inode(link: &[u8]) -> Option<u64> {
    let rest = link.strip_prefix(b"socket:[")?.strip_suffix(b"]")?;
    std::str::from_utf8(rest).ok()?.parse().ok()
}

/// Command name and command line of each PID, read with sysinfo for those PIDs only.
/// PIDs that vanished are left out.
pub fn describe(pids: &[u32]) -> HashMap<u32, (String, String)> {
    let mut out = HashMap::new();
    if pids.is_empty() {
        return out;
    }
    let Ok(mut sys) = System::new() else {
        return out;
    };
    let ids: Vec<sysinfo::Pid> = pids.iter().map(|p| sysinfo::Pid::from_u32(*p)).collect();
    sys.refresh_processes_specifics(
        ProcessesToUpdate::Some(&ids),
        true,
        ProcessRefreshKind::nothing()
            .with_cmd(UpdateKind::Always)
            .without_tasks(),
    );
    for pid in pids {
        if let Some(p) = sys.process(sysinfo::Pid::from_u32(*pid)) {
            let cmdline = p
                .cmd()
                .iter()
                .map(|a| a.to_string_lossy())
                .collect::<Vec<_>>()
                .join(" ");
            out.insert(*pid, (p.name().to_string_lossy().into_owned(), cmdline));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_own_socket_inode() {
        use std::os::unix::fs::MetadataExt;
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let fd = std::os::fd::AsRawFd::as_raw_fd(&l);
        let ino = std::fs::metadata(format!("/proc/self/fd/{fd}"))
            .unwrap()
            .ino();
        let scan = owners_of(&HashSet::from([ino]));
        assert_eq!(scan.by_inode.get(&ino), Some(&vec![std::process::id()]));
    }

    #[test]
    fn describes_self() {
        let me = std::process::id();
        let d = describe(&[me]);
        assert!(d.get(&me).is_some_and(|(c, _)| !c.is_empty()));
    }
}
