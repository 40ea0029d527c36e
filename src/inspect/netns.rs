//! Network namespaces: naming one (`NAME`, `PATH`, `pid:N`), listing every one on the host,
//! and running a query inside one.
//!
//! Every container is a network namespace, and a socket in another namespace is invisible to a
//! sock_diag dump made from this one: the kernel answers a netlink socket with the sockets of
//! the namespace the netlink socket was created in (`sock_net(skb->sk)` in
//! `net/ipv4/inet_diag.c`). So netkit enters the namespace on a thread of its own with
//! `setns(fd, CLONE_NEWNET)`, opens its netlink sockets there, and lets the thread end. A
//! namespace belongs to a task, not to a process (`setns(2)`), so the other threads — and the
//! main thread's own trial sockets — never leave the namespace they were in. Threads spawned by
//! the entered thread (the parallel dumps of `diag::for_each_job`) start in the entered
//! namespace: `clone(CLONE_THREAD)` copies the creating thread's `nsproxy`.
//!
//! Entering needs `CAP_SYS_ADMIN` over the namespace's owning user namespace (root, in
//! practice); without it `setns` fails with `EPERM` and the caller reports what it can still
//! see: the namespace inode of every process it may read.
//!
//! Socket inodes are unique host-wide (sockfs), so `/proc/<pid>/fd` owners match sockets found
//! in any namespace, and the owner walk runs once, from here.

use std::collections::HashMap;
use std::fs::{self, File};
use std::io;
use std::os::fd::AsRawFd;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use serde::Serialize;

/// Where `ip netns add NAME` puts its bind mounts.
pub const NAMED_DIR: &str = "/run/netns";

/// A namespace as the user named it on the command line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NetnsSpec {
    /// `ip netns` name: `/run/netns/NAME`.
    Name(String),
    /// Any netns file (`/proc/123/ns/net`, a bind mount).
    Path(PathBuf),
    /// `pid:N`: the namespace of process N.
    Pid(u32),
}

impl NetnsSpec {
    /// Parses `NAME`, `PATH` (anything with a `/`) or `pid:N`.
    ///
    /// # Errors
    /// A one-line reason for an empty name, a bad pid or a name with characters `ip netns`
    /// refuses.
    pub fn parse(s: &str) -> Result<NetnsSpec, String> {
        if let Some(p) = s.strip_prefix("pid:") {
            return match p.parse::<u32>() {
                Ok(n) if n > 0 => Ok(NetnsSpec::Pid(n)),
                _ => Err(format!(
                    "invalid namespace '{s}': expected pid:N with N a process id"
                )),
            };
        }
        if s.contains('/') {
            return Ok(NetnsSpec::Path(PathBuf::from(s)));
        }
        if s.is_empty() || s == "." || s == ".." {
            return Err(format!(
                "invalid namespace '{s}': expected a name from `ip netns list`, a path or pid:N"
            ));
        }
        Ok(NetnsSpec::Name(s.to_string()))
    }

    /// The file to open.
    pub fn path(&self) -> PathBuf {
        match self {
            NetnsSpec::Name(n) => Path::new(NAMED_DIR).join(n),
            NetnsSpec::Path(p) => p.clone(),
            NetnsSpec::Pid(pid) => PathBuf::from(format!("/proc/{pid}/ns/net")),
        }
    }
}

/// One network namespace of the host.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Netns {
    /// The namespace's inode (`ls -L -i /proc/PID/ns/net`, `lsns -t net`): its identity.
    pub inode: u64,
    /// The `ip netns` name when one is bound under `/run/netns`.
    pub name: Option<String>,
    /// A file that names it (for entering): `/run/netns/NAME` or `/proc/PID/ns/net`.
    #[serde(skip)]
    pub path: PathBuf,
    /// Processes whose namespace it is (the first few; a named namespace may have none).
    pub pids: Vec<u32>,
    /// True for the namespace netkit itself runs in.
    pub current: bool,
}

impl Netns {
    /// `name` when named, else `net:[inode]` as `/proc/PID/ns/net` reads.
    pub fn label(&self) -> String {
        match &self.name {
            Some(n) => n.clone(),
            None => format!("net:[{}]", self.inode),
        }
    }
}

/// The inode of the namespace netkit runs in.
///
/// # Errors
/// `/proc/self/ns/net` cannot be read (no `/proc`).
pub fn current_inode() -> io::Result<u64> {
    Ok(fs::metadata("/proc/thread-self/ns/net")
        .or_else(|_| fs::metadata("/proc/self/ns/net"))?
        .ino())
}

/// The inode of the namespace `spec` names.
///
/// # Errors
/// The file does not exist or is not readable; or it is not a network namespace.
pub fn inode_of(spec: &NetnsSpec) -> io::Result<u64> {
    let p = spec.path();
    let meta = fs::metadata(&p).map_err(|e| with_path(e, &p))?;
    Ok(meta.ino())
}

/// How many processes' namespaces each entry lists at most.
const PIDS_PER_NS: usize = 8;

/// Every network namespace on the host: those named under `/run/netns` and every distinct
/// `/proc/*/ns/net` this user may read, the current one first. Also returns how many
/// processes' namespace links could not be read (not root).
pub fn list_all() -> (Vec<Netns>, usize) {
    let current = current_inode().ok();
    let mut by_inode: HashMap<u64, Netns> = HashMap::new();
    let mut order: Vec<u64> = Vec::new();
    if let Ok(dir) = fs::read_dir(NAMED_DIR) {
        let mut named: Vec<(String, PathBuf)> = dir
            .flatten()
            .map(|e| (e.file_name().to_string_lossy().into_owned(), e.path()))
            .collect();
        named.sort();
        for (name, path) in named {
            // A name whose namespace is gone stays as an empty file on tmpfs: its inode is
            // the file's own, not a namespace's. `ip netns` lists it anyway; entering fails.
            let Ok(meta) = fs::metadata(&path) else {
                continue;
            };
            by_inode.entry(meta.ino()).or_insert_with(|| {
                order.push(meta.ino());
                Netns {
                    inode: meta.ino(),
                    name: Some(name),
                    path,
                    pids: Vec::new(),
                    current: Some(meta.ino()) == current,
                }
            });
        }
    }
    let mut unreadable = 0;
    if let Ok(proc_dir) = fs::read_dir("/proc") {
        let mut pids: Vec<u32> = proc_dir
            .flatten()
            .filter_map(|e| e.file_name().to_str()?.parse().ok())
            .collect();
        pids.sort_unstable();
        for pid in pids {
            let link = PathBuf::from(format!("/proc/{pid}/ns/net"));
            let ino = match fs::read_link(&link) {
                Ok(target) => match parse_ns_link(&target.to_string_lossy()) {
                    Some(ino) => ino,
                    None => continue,
                },
                Err(e) if e.kind() == io::ErrorKind::PermissionDenied => {
                    unreadable += 1;
                    continue;
                }
                Err(_) => continue, // exited
            };
            let ns = by_inode.entry(ino).or_insert_with(|| {
                order.push(ino);
                Netns {
                    inode: ino,
                    name: None,
                    path: link.clone(),
                    pids: Vec::new(),
                    current: Some(ino) == current,
                }
            });
            if ns.pids.len() < PIDS_PER_NS {
                ns.pids.push(pid);
            }
            if ns.name.is_none() && ns.pids.len() == 1 {
                ns.path = link;
            }
        }
    }
    let mut all: Vec<Netns> = order
        .into_iter()
        .filter_map(|i| by_inode.remove(&i))
        .collect();
    all.sort_by_key(|n| !n.current);
    (all, unreadable)
}

/// `net:[4026531840]` → 4026531840.
pub fn parse_ns_link(s: &str) -> Option<u64> {
    s.strip_prefix("net:[")?.strip_suffix(']')?.parse().ok()
}

/// Runs `f` on a new thread that has entered the namespace at `path`, and returns its result.
/// The calling thread's namespace never changes.
///
/// # Errors
/// The namespace file cannot be opened, or `setns` refuses (`EPERM` without
/// `CAP_SYS_ADMIN`, `EINVAL` when the file is not a network namespace).
pub fn run_in<T, F>(path: &Path, f: F) -> io::Result<T>
where
    T: Send,
    F: FnOnce() -> T + Send,
{
    let file = File::open(path).map_err(|e| with_path(e, path))?;
    std::thread::scope(|s| {
        s.spawn(move || {
            // SAFETY: setns on a valid, open fd; it changes only this thread's namespace.
            let rc = unsafe { libc::setns(file.as_raw_fd(), libc::CLONE_NEWNET) };
            if rc != 0 {
                return Err(with_path(io::Error::last_os_error(), path));
            }
            Ok(f())
        })
        .join()
        .unwrap_or_else(|_| Err(io::Error::other("the namespace thread panicked")))
    })
}

fn with_path(e: io::Error, p: &Path) -> io::Error {
    let what = match e.raw_os_error() {
        Some(libc::EPERM) => "entering another network namespace needs root (CAP_SYS_ADMIN)",
        Some(libc::EINVAL) => "not a network namespace",
        Some(libc::ENOENT) => "no such namespace",
        _ => "cannot open",
    };
    io::Error::new(e.kind(), format!("{}: {what} ({e})", p.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn specs_parse_as_ip_netns_and_nsenter_name_them() {
        assert_eq!(NetnsSpec::parse("blue"), Ok(NetnsSpec::Name("blue".into())));
        assert_eq!(
            NetnsSpec::parse("blue").map(|s| s.path()),
            Ok(PathBuf::from("/run/netns/blue"))
        );
        assert_eq!(NetnsSpec::parse("pid:42"), Ok(NetnsSpec::Pid(42)));
        assert_eq!(
            NetnsSpec::parse("pid:42").map(|s| s.path()),
            Ok(PathBuf::from("/proc/42/ns/net"))
        );
        assert_eq!(
            NetnsSpec::parse("/proc/1/ns/net"),
            Ok(NetnsSpec::Path("/proc/1/ns/net".into()))
        );
        for bad in ["pid:", "pid:x", "pid:0", "", "..", "."] {
            assert!(NetnsSpec::parse(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn ns_links_parse() {
        assert_eq!(parse_ns_link("net:[4026531840]"), Some(4026531840));
        assert_eq!(parse_ns_link("mnt:[4026531840]"), None);
        assert_eq!(parse_ns_link("net:[x]"), None);
    }

    #[test]
    fn the_current_namespace_is_listed_first_with_this_process() {
        let (all, _) = list_all();
        let cur = current_inode().expect("own netns");
        assert_eq!(all.first().map(|n| n.inode), Some(cur));
        assert!(all[0].current);
        let inodes: std::collections::HashSet<u64> = all.iter().map(|n| n.inode).collect();
        assert_eq!(inodes.len(), all.len(), "one entry per namespace");
    }

    #[test]
    fn running_in_the_current_namespace_keeps_the_callers() {
        let cur = current_inode().expect("own netns");
        let inside = match run_in(Path::new("/proc/self/ns/net"), || current_inode().ok()) {
            Ok(i) => i,
            Err(e) if e.raw_os_error().is_none() && e.kind() == io::ErrorKind::PermissionDenied => {
                eprintln!("skipped: setns needs CAP_SYS_ADMIN ({e})");
                return;
            }
            Err(e) => panic!("{e}"),
        };
        assert_eq!(inside, Some(cur));
        assert_eq!(current_inode().ok(), Some(cur));
    }

    #[test]
    fn a_missing_namespace_is_a_clear_error() {
        let e = run_in(Path::new("/run/netns/nk-netns-does-not-exist"), || ())
            .expect_err("no such file");
        assert!(e.to_string().contains("no such namespace"), "{e}");
        let e = run_in(Path::new("/proc/self/ns/mnt"), || ());
        // A mount namespace is not a network namespace: EINVAL (root) or EPERM.
        assert!(e.is_err());
    }
}
