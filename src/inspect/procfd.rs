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
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use sysinfo::{ProcessRefreshKind, ProcessesToUpdate, System, UpdateKind};

/// The result of a walk: (inode, pid) pairs, sorted.
#[derive(Debug, Default)]
pub struct Scan {
    inodes: Vec<u64>,
    pids: Vec<u32>,
    /// Processes whose fd directory or fd links could not be read (permission).
    pub unreadable: usize,
    /// Of those, the ones refused although netkit may look (root refused by a sandbox or
    /// the ptrace access check, as for this host's PID 1): named in the hint.
    pub denied: Vec<u32>,
    /// True when a [`Reach::Within`] walk spent its fd-link budget before every wanted
    /// socket was seen: the ones missing may well have an owner nobody looked for.
    pub cut_short: bool,
}

impl Scan {
    /// The PIDs holding `inode`, ascending; empty when none was found.
    pub fn pids_of(&self, inode: u64) -> &[u32] {
        let lo = self.inodes.partition_point(|&i| i < inode);
        let hi = self.inodes.partition_point(|&i| i <= inode);
        &self.pids[lo..hi]
    }

    /// Every PID found, ascending, without repeats.
    pub fn all_pids(&self) -> Vec<u32> {
        let mut p = self.pids.clone();
        p.sort_unstable();
        p.dedup();
        p
    }
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

/// When the process started, in clock ticks since boot (`starttime`, field 22 of
/// `/proc/<pid>/stat`).
fn start_time(pid: u32) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    parse_start_time(&stat)
}

/// Parses `starttime` out of a `/proc/<pid>/stat` line (fields counted after the last `)`,
/// as in [`parse_ppid`]).
///
/// ```
/// let line = "42 (a b) c) S 7 42 42 0 -1 4194560 1 0 0 0 0 0 0 0 20 0 1 0 123456 1000";
/// assert_eq!(netkit::inspect::procfd::parse_start_time(line), Some(123456));
/// ```
pub fn parse_start_time(stat: &str) -> Option<u64> {
    let rest = &stat[stat.rfind(')')? + 1..];
    // After the command: state (3), ppid (4), ... starttime is field 22 overall.
    rest.split_whitespace().nth(19)?.parse().ok()
}

/// Fd links read between two checks of the early-stop flag.
const CHUNK: usize = 64;

/// A process with more fds than this has the links of the rest handed to another thread.
const SPLIT_AT: usize = 512;

/// One process as `stat /proc/<pid>/fd` describes it.
#[derive(Debug, Clone, Copy)]
struct Proc {
    pid: u32,
    /// Open fds: `st_size` of /proc/<pid>/fd (Linux ≥ 6.2, fs/proc/fd.c `proc_fd_getattr`);
    /// 0 on older kernels, which only costs the ordering.
    nfds: u64,
    /// The process's effective uid (owner of its /proc entries).
    uid: u32,
}

/// Stats every process's fd directory: fd count and uid, ~3 µs each, no fd walk.
fn survey() -> Vec<Proc> {
    use std::os::unix::fs::MetadataExt;
    pids()
        .into_iter()
        .filter_map(|pid| {
            let m = std::fs::metadata(format!("/proc/{pid}/fd")).ok()?;
            Some(Proc {
                pid,
                nfds: m.size(),
                uid: m.uid(),
            })
        })
        .collect()
}

/// Probing is worth it only while the wanted set is small (a port's sockets, a summary's
/// listeners); `inspect` wants every socket and reads every process anyway.
const PROBE_MAX_WANTED: usize = 4096;

/// How many processes the probe may move to the front of the walk.
const PROBE_FRONT: usize = 32;

/// Fd numbers the probe tries per process, from the fd count down.
const PROBE_TRIES: u64 = 4;

/// A probed socket this close (in inode numbers) to a wanted one counts as near: a few
/// CPUs' batches of `get_next_ino`.
const PROBE_NEAR: u64 = 8192;

/// Moves to the front the processes whose newest fd is a socket created near a wanted one.
///
/// Socket inode numbers come from one counter (`get_next_ino`, fs/inode.c, handed out to
/// each CPU in batches of 1,024), so they follow creation time, and a process that opened
/// the wanted socket usually opened its other sockets around then: a server's listeners
/// at start-up, a holder's last socket just after. A `readlink` of each process's highest
/// fd (`/proc/<pid>/fd/<count - 1>`, or just below when closed fds left holes: up to
/// [`PROBE_TRIES`]) gives that process's newest socket. Up to [`PROBE_FRONT`] processes
/// whose probe lies within [`PROBE_NEAR`] of a wanted inode go first, nearest first; the
/// rest keep their order. Like every order here this costs time, never a wrong answer.
/// Returns how many went to the front.
fn probe_first(procs: &mut Vec<Proc>, want: &HashSet<u64>) -> usize {
    let mut wanted: Vec<u64> = want.iter().copied().collect();
    wanted.sort_unstable();
    let nearest = |ino: u64| -> u64 {
        let i = wanted.partition_point(|&w| w < ino);
        let above = wanted.get(i).map_or(u64::MAX, |&w| w - ino);
        let below = i
            .checked_sub(1)
            .and_then(|j| wanted.get(j))
            .map_or(u64::MAX, |&w| ino - w);
        above.min(below)
    };
    let mut link = [0u8; 64];
    let mut near: Vec<(u64, usize)> = Vec::new();
    for (i, p) in procs.iter().enumerate() {
        // fd numbers count-1, count-2, ...: the first that is a socket. Closed fds leave
        // holes (a forked holder that closed its parent's pipes), so a few are tried.
        for fd in (p.nfds.saturating_sub(PROBE_TRIES)..p.nfds).rev() {
            let Ok(path) = CString::new(format!("/proc/{}/fd/{fd}", p.pid)) else {
                break;
            };
            // SAFETY: path is NUL-terminated, link is a writable buffer of the given length;
            // readlink does not NUL-terminate and returns the length or -1.
            let len =
                unsafe { libc::readlink(path.as_ptr(), link.as_mut_ptr().cast(), link.len()) };
            if len <= 0 {
                if std::io::Error::last_os_error().raw_os_error() == Some(libc::ENOENT) {
                    continue;
                }
                break;
            }
            if let Some(ino) = socket_inode(&link[..len as usize]) {
                let d = nearest(ino);
                if d <= PROBE_NEAR {
                    near.push((d, i));
                }
            }
            break;
        }
    }
    near.sort_unstable();
    near.truncate(PROBE_FRONT);
    if near.is_empty() {
        return 0;
    }
    let front: HashSet<usize> = near.iter().map(|&(_, i)| i).collect();
    let mut out: Vec<Proc> = near.iter().map(|&(_, i)| procs[i]).collect();
    out.extend(
        procs
            .iter()
            .enumerate()
            .filter(|(i, _)| !front.contains(i))
            .map(|(_, p)| *p),
    );
    *procs = out;
    near.len()
}

/// Work shared by the walker threads.
struct Shared<'a> {
    pids: &'a [u32],
    next: AtomicUsize,
    /// Second halves of large fd tables: (pid, fd numbers).
    overflow: Mutex<Vec<(u32, Vec<u32>)>>,
    want: &'a HashSet<u64>,
    /// Wanted inodes seen so far (for the early stop).
    seen: Mutex<HashSet<u64>>,
    /// Set once every wanted inode has been seen.
    stop: AtomicBool,
    /// Whether to stop early at all.
    early: bool,
    /// Fd links read so far, by every thread (for the budget).
    links: AtomicUsize,
    /// Stop once this many fd links were read (usize::MAX: no budget).
    budget: usize,
}

/// What one walker thread found.
#[derive(Default)]
struct Found {
    /// Fd links read (for `NETKIT_TRACE`).
    links: usize,
    /// (inode, pid, fd).
    pairs: Vec<(u64, u32, u32)>,
    unreadable: usize,
    denied: Vec<u32>,
    visited: Vec<u32>,
}

/// How far [`owners`] looks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reach {
    /// Stop once every wanted socket has one owner (enough to name a port's listener).
    First,
    /// Every owner of a shared socket: stop once every wanted socket was seen, then visit
    /// the ancestors and descendants of the processes found.
    Shared,
    /// Read every process.
    All,
    /// Like [`Reach::First`], but read at most this many fd links: a summary that only
    /// names owners in passing (`timewait`) stays cheap next to a young process with a
    /// large fd table. [`Scan::cut_short`] says when the budget ran out.
    Within(usize),
}

impl Reach {
    /// One owner per socket is enough.
    fn first_only(self) -> bool {
        matches!(self, Reach::First | Reach::Within(_))
    }
}

/// A process whose fd table is at most this big is read whole when it is a relative of a
/// holder; a larger one is only probed at the fd numbers where the socket was found.
const SMALL_RELATIVE: u64 = 256;

/// Finds the processes holding the sockets in `want` ([`Reach::Shared`]). Never fails:
/// unreadable processes are counted in [`Scan::unreadable`].
pub fn owners_of(want: &HashSet<u64>) -> Scan {
    owners(want, Reach::Shared)
}

/// Finds the processes holding the sockets in `want`, reading as few fd links as `reach`
/// allows. The kernel has no socket → process index, so this reads fd links:
/// 1. `stat` every `/proc/<pid>/fd` (its size is the number of open fds) and visit small
///    processes first; as a non-root user skip other users' processes, which cannot be read;
/// 2. unless `reach` is [`Reach::All`], stop as soon as every wanted inode has been seen;
/// 3. for [`Reach::Shared`], then visit the ancestors and descendants of every process found,
///    which is where the other holders of a shared socket live (fork-inherited fds: a forked
///    child, nginx or gunicorn workers under their master). A relative with a large fd table
///    is probed only at the fd numbers where the socket was found, since fork() keeps them;
/// 4. if something is still missing, the walk simply ran to the end.
///
/// Not reported by [`Reach::Shared`]: an fd passed over a UNIX socket (SCM_RIGHTS) to an
/// unrelated process visited after the stop, or renumbered in a large relative.
pub fn owners(want: &HashSet<u64>, reach: Reach) -> Scan {
    super::trace::note("owner walk: survey starts");
    let mut procs = survey();
    let mut unreadable = 0;
    if !is_root() {
        // SAFETY: geteuid has no preconditions and cannot fail.
        let me = unsafe { libc::geteuid() };
        let before = procs.len();
        procs.retain(|p| p.uid == me);
        unreadable += before - procs.len();
    }
    let budget = match reach {
        Reach::Within(n) => n,
        _ => usize::MAX,
    };
    let early = reach != Reach::All;
    // A walk expected to stop early (a budget, or few sockets wanted and the probe's
    // candidates first) runs in this thread: a second walker only pays off over a whole
    // host's fd tables, and on a loaded machine each thread costs a scheduling round trip.
    let probing = early && !want.is_empty() && want.len() <= PROBE_MAX_WANTED;
    let threads = if early && (budget != usize::MAX || probing) {
        1
    } else {
        walker_threads()
    };
    // The probe's candidates first; when they hold everything wanted, the rest of the
    // host is never ordered (no /proc/<pid>/stat read per process) nor walked.
    let front = if probing {
        probe_first(&mut procs, want)
    } else {
        0
    };
    let mut found = Found::default();
    if front > 0 {
        let order: Vec<u32> = procs[..front].iter().map(|p| p.pid).collect();
        found = walk_parallel(&order, want, true, budget, 1);
    }
    let missing: HashSet<u64> = {
        let seen: HashSet<u64> = found.pairs.iter().map(|p| p.0).collect();
        want.difference(&seen).copied().collect()
    };
    if !early || (!missing.is_empty() && found.links < budget) {
        let mut rest = procs.split_off(front);
        order_rest(&mut rest, reach);
        let rest_order: Vec<u32> = rest.iter().map(|p| p.pid).collect();
        super::trace::note(&format!(
            "owner walk: {} of {} processes ordered after the probe's {front}",
            rest_order.len(),
            rest_order.len() + front
        ));
        let rest_want = if early { &missing } else { want };
        let mut more = walk_parallel(
            &rest_order,
            rest_want,
            early,
            budget.saturating_sub(found.links),
            threads,
        );
        found.links += more.links;
        found.unreadable += more.unreadable;
        found.denied.append(&mut more.denied);
        found.pairs.append(&mut more.pairs);
        found.visited.append(&mut more.visited);
        procs.extend(rest);
    }
    let cut_short = budget != usize::MAX && found.links >= budget && !found_all(&found.pairs, want);
    if super::trace::on() {
        let seen: HashSet<u64> = found.pairs.iter().map(|p| p.0).collect();
        super::trace::note(&format!(
            "owner walk ({reach:?}): {} of {} processes visited, {} fd links read, {} of {} sockets found",
            found.visited.len(),
            procs.len(),
            found.links,
            seen.len(),
            want.len()
        ));
    }
    let mut pairs = std::mem::take(&mut found.pairs);
    unreadable += found.unreadable;
    let mut denied = std::mem::take(&mut found.denied);

    if reach == Reach::Shared && found_all(&pairs, want) {
        let visited: HashSet<u32> = found.visited.iter().copied().collect();
        let holders: HashSet<u32> = pairs.iter().map(|p| p.1).collect();
        let nfds: HashMap<u32, u64> = procs.iter().map(|p| (p.pid, p.nfds)).collect();
        let mut fd_numbers: Vec<u32> = pairs.iter().map(|p| p.2).collect();
        fd_numbers.sort_unstable();
        fd_numbers.dedup();
        let (small, large): (Vec<u32>, Vec<u32>) = relatives_of(&holders)
            .into_iter()
            .filter(|p| !visited.contains(p) && nfds.contains_key(p))
            .partition(|p| nfds.get(p).is_some_and(|&n| n <= SMALL_RELATIVE));
        let mut more = walk_parallel(&small, want, false, usize::MAX, 1);
        for pid in large {
            if let Some(dir) = FdDir::open(pid, &mut more) {
                dir.match_links(pid, &fd_numbers, want, &mut more);
            }
        }
        pairs.append(&mut more.pairs);
        unreadable += more.unreadable;
        denied.append(&mut more.denied);
    }
    if reach == Reach::Shared {
        super::trace::note("owner walk: relatives done");
    }
    denied.sort_unstable();
    denied.dedup();
    let mut pairs: Vec<(u64, u32)> = pairs.into_iter().map(|(i, p, _)| (i, p)).collect();
    pairs.sort_unstable();
    pairs.dedup();
    Scan {
        inodes: pairs.iter().map(|p| p.0).collect(),
        pids: pairs.iter().map(|p| p.1).collect(),
        unreadable,
        denied,
        cut_short,
    }
}

/// Orders the processes a walk visits after the probe's candidates: oldest first for
/// [`Reach::First`]/[`Reach::Within`], small fd tables first otherwise.
fn order_rest(procs: &mut [Proc], reach: Reach) {
    if reach.first_only() {
        // One owner per socket, asked for listeners (`timewait` names each port's listener):
        // oldest processes first. A listener is opened by a server at start-up, servers are
        // long-lived, and their forked workers are younger than the master that also holds
        // it; the many small processes a busy machine has (shells, compilers, cron jobs) are
        // mostly younger. Age is the start time in /proc/<pid>/stat (PIDs wrap too often
        // to stand for it: pid_max is 32,768 here); a process whose stat cannot be read
        // sorts last. Either way this costs time, never a wrong answer (the walk still runs
        // to the end when something is missing).
        let mut aged: Vec<(u64, Proc)> = procs
            .iter()
            .map(|p| (start_time(p.pid).unwrap_or(u64::MAX), *p))
            .collect();
        aged.sort_by_key(|&(t, p)| (t, p.pid));
        for (slot, (_, p)) in procs.iter_mut().zip(aged) {
            *slot = p;
        }
    } else {
        procs.sort_by_key(|p| (p.nfds, std::cmp::Reverse(p.pid)));
    }
}

fn found_all(pairs: &[(u64, u32, u32)], want: &HashSet<u64>) -> bool {
    let seen: HashSet<u64> = pairs.iter().map(|p| p.0).collect();
    want.iter().all(|i| seen.contains(i))
}

/// Ancestors (by `PPid`) and descendants (by `/proc/<pid>/task/<tid>/children`) of `pids`.
fn relatives_of(pids: &HashSet<u32>) -> HashSet<u32> {
    let mut out = HashSet::new();
    for &pid in pids {
        let mut p = pid;
        while let Some(parent) = parent_of(p) {
            if parent <= 1 || !out.insert(parent) {
                break;
            }
            p = parent;
        }
        let mut stack = vec![pid];
        while let Some(p) = stack.pop() {
            for c in children_of(p) {
                if out.insert(c) {
                    stack.push(c);
                }
            }
        }
    }
    for p in pids {
        out.remove(p);
    }
    out
}

/// The parent PID, from the field after the command name in `/proc/<pid>/stat`.
fn parent_of(pid: u32) -> Option<u32> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    parse_ppid(&stat)
}

/// Parses the PPid out of a `/proc/<pid>/stat` line; the command may contain spaces and
/// parentheses, so fields are counted after the last `)`.
///
/// ```
/// assert_eq!(netkit::inspect::procfd::parse_ppid("42 (a b) c) S 7 42 42 0"), Some(7));
/// ```
pub fn parse_ppid(stat: &str) -> Option<u32> {
    let rest = &stat[stat.rfind(')')? + 1..];
    rest.split_whitespace().nth(1)?.parse().ok()
}

/// Children of every thread of `pid` (CONFIG_PROC_CHILDREN; empty when unavailable).
fn children_of(pid: u32) -> Vec<u32> {
    let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) else {
        return Vec::new();
    };
    let mut out = Vec::new();
    for t in tasks.flatten() {
        if let Ok(s) = std::fs::read_to_string(t.path().join("children")) {
            out.extend(s.split_whitespace().filter_map(|c| c.parse::<u32>().ok()));
        }
    }
    out
}

/// Walker threads for a whole-host walk: one per core, at most 4.
fn walker_threads() -> usize {
    std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1)
        .clamp(1, 4)
}

fn walk_parallel(
    order: &[u32],
    want: &HashSet<u64>,
    early: bool,
    budget: usize,
    threads: usize,
) -> Found {
    if order.is_empty() {
        return Found::default();
    }
    let shared = Shared {
        pids: order,
        next: AtomicUsize::new(0),
        overflow: Mutex::new(Vec::new()),
        want,
        seen: Mutex::new(HashSet::new()),
        stop: AtomicBool::new(want.is_empty()),
        early,
        links: AtomicUsize::new(0),
        budget,
    };
    if threads <= 1 {
        return walk(&shared);
    }
    let parts: Vec<Found> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..threads)
            .map(|_| scope.spawn(|| walk(&shared)))
            .collect();
        handles.into_iter().filter_map(|h| h.join().ok()).collect()
    });
    let mut all = Found::default();
    for mut p in parts {
        all.links += p.links;
        all.unreadable += p.unreadable;
        all.denied.append(&mut p.denied);
        all.pairs.append(&mut p.pairs);
        all.visited.append(&mut p.visited);
    }
    all
}

fn walk(shared: &Shared<'_>) -> Found {
    let mut found = Found::default();
    let mut fds: Vec<u32> = Vec::new();
    while !shared.stop.load(Ordering::Relaxed) {
        // The second halves of large fd tables come first: they belong to processes earlier
        // in the order than any PID not taken yet. (Taking them last read every other
        // process before the rest of an early one: a `timewait` whose listeners sat above
        // fd 512 in the benchmark's parent read all 30,000 fd links of the host.)
        let job = shared.overflow.lock().ok().and_then(|mut q| q.pop());
        if let Some((pid, rest)) = job {
            if let Some(dir) = FdDir::open(pid, &mut found) {
                read_chunks(shared, &dir, pid, &rest, &mut found);
            }
            continue;
        }
        let i = shared.next.fetch_add(1, Ordering::Relaxed);
        let Some(&pid) = shared.pids.get(i) else {
            // Nothing left to take: a large table another thread split may still come.
            if shared.overflow.lock().map(|q| q.is_empty()).unwrap_or(true) {
                break;
            }
            continue;
        };
        found.visited.push(pid);
        let Some(dir) = FdDir::open(pid, &mut found) else {
            continue;
        };
        fds.clear();
        dir.list(&mut fds);
        if fds.len() > SPLIT_AT {
            let rest = fds.split_off(fds.len() / 2);
            if let Ok(mut q) = shared.overflow.lock() {
                q.push((pid, rest));
            }
        }
        read_chunks(shared, &dir, pid, &fds, &mut found);
    }
    found
}

/// Reads `fds` of one process in chunks, so that a stop raised by a find (here or in
/// another thread) or a spent budget ends the reading of a large fd table too, not only
/// the walk to the next process.
fn read_chunks(shared: &Shared<'_>, dir: &FdDir, pid: u32, fds: &[u32], found: &mut Found) {
    for chunk in fds.chunks(CHUNK) {
        let before = found.pairs.len();
        dir.match_links(pid, chunk, shared.want, found);
        note_seen(shared, &found.pairs[before..]);
        let total = shared.links.fetch_add(chunk.len(), Ordering::Relaxed) + chunk.len();
        if total >= shared.budget {
            shared.stop.store(true, Ordering::Relaxed);
        }
        if shared.early && shared.stop.load(Ordering::Relaxed) {
            break;
        }
    }
}

/// Records newly found inodes and raises the stop flag once all wanted ones were seen.
fn note_seen(shared: &Shared<'_>, new: &[(u64, u32, u32)]) {
    if !shared.early || new.is_empty() {
        return;
    }
    if let Ok(mut seen) = shared.seen.lock() {
        seen.extend(new.iter().map(|p| p.0));
        if seen.len() >= shared.want.len() {
            shared.stop.store(true, Ordering::Relaxed);
        }
    }
}

/// An open `/proc/<pid>/fd` directory.
struct FdDir(*mut libc::DIR);

impl FdDir {
    /// Opens the fd directory; counts it as unreadable on EACCES/EPERM, skips vanished PIDs.
    fn open(pid: u32, found: &mut Found) -> Option<FdDir> {
        let path = CString::new(format!("/proc/{pid}/fd")).ok()?;
        // SAFETY: path is a valid NUL-terminated string; NULL is checked below.
        let dir = unsafe { libc::opendir(path.as_ptr()) };
        if dir.is_null() {
            let err = std::io::Error::last_os_error();
            if matches!(err.raw_os_error(), Some(libc::EACCES) | Some(libc::EPERM)) {
                found.unreadable += 1;
                found.denied.push(pid);
            }
            return None;
        }
        Some(FdDir(dir))
    }

    /// The fd numbers in the directory.
    fn list(&self, out: &mut Vec<u32>) {
        loop {
            // SAFETY: self.0 is a valid open DIR*; readdir returns NULL at the end.
            let ent = unsafe { libc::readdir(self.0) };
            if ent.is_null() {
                break;
            }
            // SAFETY: ent points to a dirent valid until the next readdir on this DIR*.
            let name = unsafe { CStr::from_ptr((*ent).d_name.as_ptr()) };
            if let Some(fd) = std::str::from_utf8(name.to_bytes())
                .ok()
                .and_then(|n| n.parse::<u32>().ok())
            {
                out.push(fd);
            }
        }
    }

    /// Reads the link of each fd and records the wanted socket inodes.
    fn match_links(&self, pid: u32, fds: &[u32], want: &HashSet<u64>, found: &mut Found) {
        // SAFETY: self.0 is a valid open DIR*.
        let dfd = unsafe { libc::dirfd(self.0) };
        let mut link = [0u8; 64];
        let mut name = [0u8; 16];
        // /proc/1/fd can be opened but its links not read, even by root (ptrace access mode
        // check in proc_fd_access_allowed): count such a process once as unreadable.
        let mut denied = false;
        found.links += fds.len();
        for &fd in fds {
            let n = write_cstr_u32(&mut name, fd);
            // SAFETY: dfd is open, name[..=n] is NUL-terminated, link is a writable buffer of
            // the given length; readlinkat does not NUL-terminate and returns the length.
            let len = unsafe {
                libc::readlinkat(
                    dfd,
                    name[..=n].as_ptr().cast(),
                    link.as_mut_ptr().cast(),
                    link.len(),
                )
            };
            if len <= 0 {
                if !denied && std::io::Error::last_os_error().raw_os_error() == Some(libc::EACCES) {
                    denied = true;
                    found.unreadable += 1;
                    found.denied.push(pid);
                }
                continue;
            }
            if let Some(inode) = socket_inode(&link[..len as usize])
                && want.contains(&inode)
            {
                found.pairs.push((inode, pid, fd));
            }
        }
    }
}

impl Drop for FdDir {
    fn drop(&mut self) {
        // SAFETY: self.0 came from opendir and is closed exactly once, here.
        unsafe { libc::closedir(self.0) };
    }
}

/// Writes `v` in decimal followed by a NUL into `buf`; returns the index of the NUL.
fn write_cstr_u32(buf: &mut [u8; 16], mut v: u32) -> usize {
    let mut tmp = [0u8; 10];
    let mut n = 0;
    loop {
        tmp[n] = b'0' + (v % 10) as u8;
        n += 1;
        v /= 10;
        if v == 0 {
            break;
        }
    }
    for i in 0..n {
        buf[i] = tmp[n - 1 - i];
    }
    buf[n] = 0;
    n
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
        assert_eq!(scan.pids_of(ino), &[std::process::id()]);
        assert!(scan.pids_of(ino + 1).is_empty());
    }

    #[test]
    fn fd_names_are_written_as_c_strings() {
        let mut b = [0u8; 16];
        assert_eq!(write_cstr_u32(&mut b, 0), 1);
        assert_eq!(&b[..2], b"0\0");
        let n = write_cstr_u32(&mut b, 4294967295);
        assert_eq!(&b[..=n], b"4294967295\0");
    }

    #[test]
    fn describes_self() {
        let me = std::process::id();
        let d = describe(&[me]);
        assert!(d.get(&me).is_some_and(|(c, _)| !c.is_empty()));
    }
}
