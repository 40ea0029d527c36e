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

    /// Each socket found with the PIDs holding it (ascending), in inode order: one pass over
    /// the pairs, no search.
    pub fn runs(&self) -> impl Iterator<Item = (u64, &[u32])> + '_ {
        let mut i = 0;
        std::iter::from_fn(move || {
            let inode = *self.inodes.get(i)?;
            let mut end = i + 1;
            while self.inodes.get(end) == Some(&inode) {
                end += 1;
            }
            let run = (inode, &self.pids[i..end]);
            i = end;
            Some(run)
        })
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

/// Stats every process's fd directory: fd count and uid, no fd walk.
fn survey(root: &ProcRoot, pids: Vec<u32>) -> Vec<Proc> {
    pids.into_iter()
        .filter_map(|pid| {
            let (nfds, uid) = root.fd_dir_stat(pid)?;
            Some(Proc { pid, nfds, uid })
        })
        .collect()
}

/// `/proc`, open, so that the survey's per-process calls name `PID/fd[/N]` relative to it:
/// no allocation and one path component fewer per call (each call is a path walk in
/// procfs; ~590 processes × 2–4 calls per survey).
struct ProcRoot(libc::c_int);

impl ProcRoot {
    fn open() -> Option<ProcRoot> {
        // SAFETY: the path is a NUL-terminated literal; the result is checked.
        let fd = unsafe {
            libc::open(
                c"/proc".as_ptr(),
                libc::O_RDONLY | libc::O_DIRECTORY | libc::O_CLOEXEC,
            )
        };
        (fd >= 0).then_some(ProcRoot(fd))
    }

    /// Writes `PID/fd` or `PID/fd/N` and a NUL into `buf`.
    fn path(buf: &mut [u8; 40], pid: u32, fd: Option<u64>) {
        use std::io::Write;
        let mut w = &mut buf[..];
        let ok = match fd {
            Some(fd) => write!(w, "{pid}/fd/{fd}\0"),
            None => write!(w, "{pid}/fd\0"),
        };
        if ok.is_err() {
            buf[0] = 0;
        }
    }

    /// `st_size` (the open fd count, Linux ≥ 6.2) and `st_uid` of `/proc/PID/fd`.
    fn fd_dir_stat(&self, pid: u32) -> Option<(u64, u32)> {
        let mut path = [0u8; 40];
        Self::path(&mut path, pid, None);
        // SAFETY: stat is plain data that fstatat fills; zeroed is a valid value.
        let mut st: libc::stat = unsafe { std::mem::zeroed() };
        // SAFETY: self.0 is an open directory fd, path is NUL-terminated, st is writable.
        let r = unsafe { libc::fstatat(self.0, path.as_ptr().cast(), &mut st, 0) };
        (r == 0).then_some((st.st_size as u64, st.st_uid))
    }

    /// The target of `/proc/PID/fd/N` into `link`: its length, or the errno.
    fn fd_link(&self, pid: u32, fd: u64, link: &mut [u8; 64]) -> Result<usize, i32> {
        let mut path = [0u8; 40];
        Self::path(&mut path, pid, Some(fd));
        // SAFETY: self.0 is an open directory fd, path is NUL-terminated, link is a
        // writable buffer of the given length; readlinkat does not NUL-terminate.
        let len = unsafe {
            libc::readlinkat(
                self.0,
                path.as_ptr().cast(),
                link.as_mut_ptr().cast(),
                link.len(),
            )
        };
        if len > 0 {
            Ok(len as usize)
        } else {
            Err(std::io::Error::last_os_error().raw_os_error().unwrap_or(0))
        }
    }
}

impl Drop for ProcRoot {
    fn drop(&mut self) {
        // SAFETY: self.0 came from open and is closed exactly once, here.
        unsafe { libc::close(self.0) };
    }
}

/// Keeps the processes this user can read (all of them as root); returns them and how many
/// were dropped.
fn readable(mut procs: Vec<Proc>) -> (Vec<Proc>, usize) {
    if is_root() {
        return (procs, 0);
    }
    // SAFETY: geteuid has no preconditions and cannot fail.
    let me = unsafe { libc::geteuid() };
    let before = procs.len();
    procs.retain(|p| p.uid == me);
    let dropped = before - procs.len();
    (procs, dropped)
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

/// The newest socket of a process: the link of its highest fd (`/proc/<pid>/fd/<count - 1>`),
/// or just below when closed fds left holes (a forked holder that closed its parent's pipes):
/// up to [`PROBE_TRIES`] fd numbers, the first that exists decides.
fn newest_socket(root: &ProcRoot, p: &Proc) -> Option<u64> {
    let mut link = [0u8; 64];
    for fd in (p.nfds.saturating_sub(PROBE_TRIES)..p.nfds).rev() {
        match root.fd_link(p.pid, fd, &mut link) {
            Ok(len) => return socket_inode(&link[..len]),
            Err(libc::ENOENT) => continue,
            Err(_) => return None,
        }
    }
    None
}

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
fn probe_first(
    procs: &mut Vec<Proc>,
    want: &HashSet<u64>,
    newest: impl Fn(&Proc) -> Option<u64>,
) -> usize {
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
    let mut near: Vec<(u64, usize)> = Vec::new();
    for (i, p) in procs.iter().enumerate() {
        if let Some(ino) = newest(p) {
            let d = nearest(ino);
            if d <= PROBE_NEAR {
                near.push((d, i));
            }
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
    /// The processes, in visiting order (owned by a head start's walk, which outlives the
    /// caller's stack frame).
    pids: std::borrow::Cow<'a, [u32]>,
    next: AtomicUsize,
    /// Second halves of large fd tables: (pid, fd numbers).
    overflow: Mutex<Vec<(u32, Vec<u32>)>>,
    /// The inodes looked for; `None`: every socket (the head start's whole-host walk).
    want: Option<&'a HashSet<u64>>,
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
    /// Read each process's fds from both ends inwards (the probe's candidates: the wanted
    /// socket was created near their newest fd, or is one of their oldest; [`ends_first`]).
    ends_first: bool,
}

impl<'a> Shared<'a> {
    fn new(
        pids: std::borrow::Cow<'a, [u32]>,
        want: Option<&'a HashSet<u64>>,
        early: bool,
        budget: usize,
        ends_first: bool,
    ) -> Shared<'a> {
        Shared {
            pids,
            next: AtomicUsize::new(0),
            overflow: Mutex::new(Vec::new()),
            want,
            seen: Mutex::new(HashSet::new()),
            stop: AtomicBool::new(want.is_some_and(|w| w.is_empty())),
            early,
            links: AtomicUsize::new(0),
            budget,
            ends_first,
        }
    }
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

impl Found {
    /// Adds what another walk found.
    fn absorb(&mut self, mut more: Found) {
        self.links += more.links;
        self.unreadable += more.unreadable;
        self.denied.append(&mut more.denied);
        self.pairs.append(&mut more.pairs);
        self.visited.append(&mut more.visited);
    }
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
/// When a command started a [`head_start`] before its socket dump, step 1 (and for
/// [`HeadStart::Links`] the whole walk) was done in a thread while the kernel dumped; what
/// it could not have seen (processes started since) is walked here.
///
/// Not reported by [`Reach::Shared`]: an fd passed over a UNIX socket (SCM_RIGHTS) to an
/// unrelated process visited after the stop, or renumbered in a large relative. Nor, ever, a
/// socket outside `want`.
pub fn owners(want: &HashSet<u64>, reach: Reach) -> Scan {
    match take_head() {
        Some(Head::Links(links)) => from_links(want, reach, links),
        Some(Head::Survey(survey)) => walk_owners(want, reach, survey, true),
        None => {
            super::trace::note("owner walk: survey starts");
            walk_owners(want, reach, Survey::take(false), false)
        }
    }
}

/// The processes a walk may visit, as [`survey`] found them (other users' processes
/// dropped for an ordinary user, and counted).
struct Survey {
    procs: Vec<Proc>,
    unreadable: usize,
    /// Each process's newest socket (the probe's readlink, see [`probe_first`]), when the
    /// head start read them ahead.
    newest: Option<HashMap<u32, u64>>,
}

impl Survey {
    /// Stats every process's fd directory; with `probe`, also reads each one's newest socket.
    fn take(probe: bool) -> Survey {
        let root = ProcRoot::open();
        let (procs, unreadable) =
            readable(root.as_ref().map_or_else(Vec::new, |r| survey(r, pids())));
        super::trace::note("owner walk: fd directories stated");
        let newest = probe.then(|| match &root {
            Some(root) => procs
                .iter()
                .filter_map(|p| newest_socket(root, p).map(|i| (p.pid, i)))
                .collect(),
            None => HashMap::new(),
        });
        Survey {
            procs,
            unreadable,
            newest,
        }
    }
}

#[cfg(test)]
impl Survey {
    /// A copy of the processes of `other` (tests: the same survey walked two ways).
    fn take_from(other: &Survey) -> Survey {
        Survey {
            procs: other.procs.clone(),
            unreadable: other.unreadable,
            newest: other.newest.clone(),
        }
    }
}

/// The walk behind [`owners`], over the processes of `survey`; `ahead`: the survey was taken
/// before the dump (a head start), so processes started since are walked when something is
/// still missing at the end.
fn walk_owners(want: &HashSet<u64>, reach: Reach, survey: Survey, ahead: bool) -> Scan {
    let Survey {
        mut procs,
        mut unreadable,
        newest,
    } = survey;
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
        match &newest {
            Some(n) => probe_first(&mut procs, want, |p| n.get(&p.pid).copied()),
            None => match ProcRoot::open() {
                Some(root) => probe_first(&mut procs, want, |p| newest_socket(&root, p)),
                None => 0,
            },
        }
    } else {
        0
    };
    let mut found = Found::default();
    if front > 0 {
        let order: Vec<u32> = procs[..front].iter().map(|p| p.pid).collect();
        found = walk_ordered(&order, Some(want), true, budget, 1, true);
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
        let more = walk_parallel(
            &rest_order,
            Some(rest_want),
            early,
            budget.saturating_sub(found.links),
            threads,
        );
        found.absorb(more);
        procs.extend(rest);
    }
    if ahead && found.links < budget && !found_all(&found.pairs, want) {
        // Processes started after the head start's survey.
        let (fresh, fresh_unreadable) = fresh_processes(&procs);
        unreadable += fresh_unreadable;
        let seen: HashSet<u64> = found.pairs.iter().map(|p| p.0).collect();
        let missing: HashSet<u64> = want.difference(&seen).copied().collect();
        let order: Vec<u32> = fresh.iter().map(|p| p.pid).collect();
        super::trace::note(&format!(
            "owner walk: {} process(es) started since the survey",
            order.len()
        ));
        let more = walk_parallel(
            &order,
            Some(if early { &missing } else { want }),
            early,
            budget.saturating_sub(found.links),
            1,
        );
        found.absorb(more);
        procs.extend(fresh);
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
        let mut more = walk_parallel(&small, Some(want), false, usize::MAX, 1);
        for pid in large {
            if let Some(dir) = FdDir::open(pid, &mut more) {
                dir.match_links(pid, &fd_numbers, Some(want), &mut more);
            }
        }
        pairs.append(&mut more.pairs);
        unreadable += more.unreadable;
        denied.append(&mut more.denied);
    }
    if reach == Reach::Shared {
        super::trace::note("owner walk: relatives done");
    }
    scan_of(pairs, unreadable, denied, cut_short)
}

/// The answer of a walk: (inode, pid) pairs sorted, without repeats.
fn scan_of(
    pairs: Vec<(u64, u32, u32)>,
    unreadable: usize,
    mut denied: Vec<u32>,
    cut_short: bool,
) -> Scan {
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

/// Processes that are not in `known` (started after a survey), surveyed the same way; and
/// how many of them an ordinary user cannot read.
fn fresh_processes(known: &[Proc]) -> (Vec<Proc>, usize) {
    let known: HashSet<u32> = known.iter().map(|p| p.pid).collect();
    let fresh = pids().into_iter().filter(|p| !known.contains(p)).collect();
    readable(ProcRoot::open().map_or_else(Vec::new, |r| survey(&r, fresh)))
}

/// What to do ahead of a socket dump, in a thread, while the kernel dumps ([`head_start`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HeadStart {
    /// Survey every process and read each one's newest socket: the start of a walk that
    /// looks for a few sockets (`who-owns`, `timewait`).
    Survey,
    /// Read every fd link of the host: the walk of a command that wants the owner of nearly
    /// every socket (`inspect`). `ss -p` reads the same links, and also before its dump.
    Links,
}

/// What the head start gathered.
enum Head {
    Survey(Survey),
    Links(Links),
}

/// A whole-host walk done ahead: every socket link of every readable process.
struct Links {
    survey: Survey,
    found: Found,
}

/// A head start older than this when its walk is asked for is not used: the walk is made
/// afresh. A dump of a whole host takes under a second at 100,000 sockets here; `ss -p`
/// uses a walk as old as its dump.
const HEAD_FRESH: std::time::Duration = std::time::Duration::from_secs(10);

/// A head start in progress: its thread, and (for [`HeadStart::Links`]) the walk's shared
/// work list, published once the survey is done, so that the caller can join the walk as
/// one more walker when its dump is over.
struct Pending {
    started: std::time::Instant,
    handle: std::thread::JoinHandle<Head>,
    work: std::sync::Arc<Mutex<Option<std::sync::Arc<Shared<'static>>>>>,
}

static HEAD: Mutex<Option<Pending>> = Mutex::new(None);

/// Starts the owner walk's first part in a thread, to run while the caller's socket dump
/// (kernel time, one core) is in progress; the next [`owners`] call uses it. On one CPU
/// there is nothing to overlap, so nothing is started. A head start nobody uses costs its
/// thread's work only (the process exits without waiting for it).
///
/// The whole-host walk ([`HeadStart::Links`]) runs on one thread fewer than a walk after the
/// dump would (the dump holds a core); the caller joins it when its dump is done, so the
/// machine never runs more walkers than cores.
pub fn head_start(kind: HeadStart) {
    head_start_then(kind, Box::new(|| {}));
}

/// [`head_start`], and `first` run in the same thread before the survey: other work of the
/// caller's that does not need its dump's answer (`timewait` dumps the listeners there), so
/// that the machine still runs no more threads than the dump and one helper. `first` is
/// dropped without running when no head start is made (one CPU, `NETKIT_HEAD_START=0`), so
/// a caller that waits for its result sees a closed channel and does the work itself.
pub fn head_start_then(kind: HeadStart, first: Box<dyn FnOnce() + Send>) {
    // NETKIT_HEAD_START=0: no head start (to measure what it saves: scripts/bench-inspect).
    if crate::cores() < 2 || std::env::var_os("NETKIT_HEAD_START").is_some_and(|v| v == "0") {
        return;
    }
    super::trace::note(&format!("owner walk: head start ({kind:?})"));
    let work: std::sync::Arc<Mutex<Option<std::sync::Arc<Shared<'static>>>>> =
        std::sync::Arc::default();
    let published = work.clone();
    let spawned = std::thread::Builder::new()
        .name("owner-head".into())
        .spawn(move || {
            first();
            head_work(kind, &published)
        });
    if let (Ok(handle), Ok(mut slot)) = (spawned, HEAD.lock()) {
        *slot = Some(Pending {
            started: std::time::Instant::now(),
            handle,
            work,
        });
    }
}

/// The head start's own work, in its thread: the survey, or the whole-host walk (published
/// in `published` for the caller to join).
fn head_work(kind: HeadStart, published: &Mutex<Option<std::sync::Arc<Shared<'static>>>>) -> Head {
    match kind {
        HeadStart::Survey => {
            let survey = Survey::take(true);
            super::trace::note(&format!(
                "owner walk: head start's survey done ({} processes)",
                survey.procs.len()
            ));
            Head::Survey(survey)
        }
        HeadStart::Links => {
            let survey = Survey::take(false);
            let order: Vec<u32> = survey.procs.iter().map(|p| p.pid).collect();
            let shared = std::sync::Arc::new(Shared::new(
                std::borrow::Cow::Owned(order),
                None,
                false,
                usize::MAX,
                false,
            ));
            if let Ok(mut slot) = published.lock() {
                *slot = Some(shared.clone());
            }
            let threads = walker_threads().saturating_sub(1).max(1);
            let mut found = Found::default();
            std::thread::scope(|scope| {
                let others: Vec<_> = (1..threads)
                    .map(|_| scope.spawn(|| walk(&shared)))
                    .collect();
                found.absorb(walk(&shared));
                for h in others {
                    if let Ok(f) = h.join() {
                        found.absorb(f);
                    }
                }
            });
            Head::Links(Links { survey, found })
        }
    }
}

/// The head start's result, if one was started and is fresh; a whole-host walk still in
/// progress is joined by this thread first.
fn take_head() -> Option<Head> {
    let pending = HEAD.lock().ok()?.take()?;
    let shared = pending.work.lock().ok().and_then(|mut w| w.take());
    let helped = shared.map(|s| walk(&s));
    let mut head = pending.handle.join().ok()?;
    if let (Head::Links(links), Some(mine)) = (&mut head, helped) {
        links.found.absorb(mine);
    }
    let fresh = pending.started.elapsed() < HEAD_FRESH;
    super::trace::note(&format!(
        "owner walk: head start joined{}",
        if fresh { "" } else { " (stale, not used)" }
    ));
    fresh.then_some(head)
}

/// [`owners`] from a whole-host walk done ahead: the wanted sockets among every socket link
/// read, then the processes started since (a socket opened after its process was read is
/// missed, as with `ss -p`, which also walks before it dumps).
fn from_links(want: &HashSet<u64>, reach: Reach, links: Links) -> Scan {
    let Links { survey, mut found } = links;
    let mut unreadable = survey.unreadable + found.unreadable;
    let mut denied = std::mem::take(&mut found.denied);
    let mut pairs: Vec<(u64, u32, u32)> = found
        .pairs
        .into_iter()
        .filter(|p| want.contains(&p.0))
        .collect();
    let links_read = found.links;
    let mut visited = found.visited.len();
    if !found_all(&pairs, want) {
        let seen: HashSet<u64> = pairs.iter().map(|p| p.0).collect();
        let missing: HashSet<u64> = want.difference(&seen).copied().collect();
        let (fresh, fresh_unreadable) = fresh_processes(&survey.procs);
        unreadable += fresh_unreadable;
        let order: Vec<u32> = fresh.iter().map(|p| p.pid).collect();
        let early = reach != Reach::All;
        let mut more = walk_parallel(
            &order,
            Some(if early { &missing } else { want }),
            early,
            usize::MAX,
            1,
        );
        visited += more.visited.len();
        unreadable += more.unreadable;
        denied.append(&mut more.denied);
        pairs.append(&mut more.pairs);
    }
    if super::trace::on() {
        let seen: HashSet<u64> = pairs.iter().map(|p| p.0).collect();
        super::trace::note(&format!(
            "owner walk (ahead, {reach:?}): {visited} processes visited, {links_read} fd links read, {} of {} sockets found",
            seen.len(),
            want.len()
        ));
    }
    scan_of(pairs, unreadable, denied, false)
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
    crate::cores().clamp(1, 4)
}

fn walk_parallel(
    order: &[u32],
    want: Option<&HashSet<u64>>,
    early: bool,
    budget: usize,
    threads: usize,
) -> Found {
    walk_ordered(order, want, early, budget, threads, false)
}

/// [`walk_parallel`], reading each process's fds from both ends inwards when `ends_first`.
fn walk_ordered(
    order: &[u32],
    want: Option<&HashSet<u64>>,
    early: bool,
    budget: usize,
    threads: usize,
    ends_first: bool,
) -> Found {
    if order.is_empty() {
        return Found::default();
    }
    let shared = Shared::new(
        std::borrow::Cow::Borrowed(order),
        want,
        early,
        budget,
        ends_first,
    );
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
    for p in parts {
        all.absorb(p);
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
        if shared.ends_first
            && let Some(n) = dir.count().filter(|&n| n > 0)
        {
            // Both ends by number before any listing: a listing instantiates a dentry per
            // fd (0.3-0.5 ms for the benchmark parent's 519 fds, more than the reads it
            // orders), and a table without holes has its ends at 0 and count - 1.
            let guess = ends_first_guess(n, GUESS_ENDS);
            read_chunks(shared, &dir, pid, &guess, &mut found);
            if shared.early && shared.stop.load(Ordering::Relaxed) {
                continue;
            }
            let mut tried = guess;
            tried.sort_unstable();
            dir.list(&mut fds);
            fds.retain(|fd| tried.binary_search(fd).is_err());
            ends_first(&mut fds);
        } else {
            dir.list(&mut fds);
            if shared.ends_first {
                ends_first(&mut fds);
            }
        }
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

/// Orders fd numbers from both ends inwards: highest, lowest, second highest, second
/// lowest, ... A probe candidate's wanted sockets are its newest fds (the probe found its
/// newest socket near a wanted inode: a holder that just opened them) or its oldest (a
/// server's listeners, opened at start-up before every connection, pipe and file it holds
/// since). Reading from the top alone read all 519 links of the benchmark's parent, whose
/// listeners sit at fd 3 and fds 516–518, to find the one at fd 3; from both ends the first
/// 8 links hold all four (read by number before any listing, [`ends_first_guess`]).
/// Either kind is found within twice the reads of the better one-sided order.
fn ends_first(fds: &mut Vec<u32>) {
    fds.sort_unstable();
    let mut out = Vec::with_capacity(fds.len());
    let (mut lo, mut hi) = (0usize, fds.len());
    while lo < hi {
        hi -= 1;
        out.push(fds[hi]);
        if lo < hi {
            out.push(fds[lo]);
            lo += 1;
        }
    }
    *fds = out;
}

/// How many fd numbers a probe candidate has read from both ends before its fd directory
/// is listed ([`ends_first_guess`]).
const GUESS_ENDS: u32 = 16;

/// The first `k` fd numbers of [`ends_first`] order over a table of `n` fds without holes:
/// `n - 1, 0, n - 2, 1, ...`.
fn ends_first_guess(n: u32, k: u32) -> Vec<u32> {
    let mut all: Vec<u32> = (0..n.min(2 * k)).collect();
    if n > 2 * k {
        // Only the k lowest and k highest can come first.
        all = (0..k).chain(n - k..n).collect();
    }
    ends_first(&mut all);
    all.truncate(k as usize);
    all
}

/// Reads `fds` of one process in chunks, so that a stop raised by a find (here or in
/// another thread) or a spent budget ends the reading of a large fd table too, not only
/// the walk to the next process. The chunks grow from 8 links to [`CHUNK`]: the probe's
/// candidates usually hold what is wanted within their first few reads.
fn read_chunks(shared: &Shared<'_>, dir: &FdDir, pid: u32, mut fds: &[u32], found: &mut Found) {
    let mut size = 8;
    while !fds.is_empty() {
        let (chunk, rest) = fds.split_at(size.min(fds.len()));
        fds = rest;
        size = (size * 2).min(CHUNK);
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
    let Some(want) = shared.want else {
        return;
    };
    if !shared.early || new.is_empty() {
        return;
    }
    if let Ok(mut seen) = shared.seen.lock() {
        seen.extend(new.iter().map(|p| p.0));
        if seen.len() >= want.len() {
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

    /// How many fds the process has open: `st_size` of the directory (Linux ≥ 6.2; `None`
    /// before, or when fstat fails).
    fn count(&self) -> Option<u32> {
        // SAFETY: self.0 is a valid open DIR*.
        let dfd = unsafe { libc::dirfd(self.0) };
        // SAFETY: stat is plain data that fstat fills; zeroed is a valid value.
        let mut st: libc::stat = unsafe { std::mem::zeroed() };
        // SAFETY: dfd is an open fd and st is writable.
        let r = unsafe { libc::fstat(dfd, &mut st) };
        (r == 0).then(|| u32::try_from(st.st_size).ok()).flatten()
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

    /// Reads the link of each fd and records the wanted socket inodes (`None`: every socket).
    fn match_links(&self, pid: u32, fds: &[u32], want: Option<&HashSet<u64>>, found: &mut Found) {
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
                && want.is_none_or(|w| w.contains(&inode))
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

/// Command name and command line of each PID (`/proc/<pid>/comm` and `/proc/<pid>/cmdline`),
/// for those PIDs only. PIDs that vanished are left out.
///
/// Read directly rather than through sysinfo: its per-process refresh reads `status`, `stat`
/// and `cmdline` with a `statx` and `lseek` around each (~20 syscalls, measured 47 µs per
/// process for 511 owners in `inspect --tcp`), where two small reads (6 syscalls) say the
/// same. Many PIDs are split over two threads.
pub fn describe(pids: &[u32]) -> HashMap<u32, (String, String)> {
    const PER_THREAD: usize = 128;
    if pids.len() <= PER_THREAD || walker_threads() < 2 {
        return pids
            .iter()
            .filter_map(|&p| describe_one(p).map(|d| (p, d)))
            .collect();
    }
    let (a, b) = pids.split_at(pids.len() / 2);
    let (mut left, right) = std::thread::scope(|scope| {
        let other = scope.spawn(|| describe(b));
        let here = describe(a);
        (here, other.join().unwrap_or_default())
    });
    left.extend(right);
    left
}

/// (command name, command line) of one process; `None` when it is gone.
fn describe_one(pid: u32) -> Option<(String, String)> {
    let mut buf = Vec::with_capacity(256);
    read_proc(&format!("/proc/{pid}/comm"), &mut buf).ok()?;
    let name = String::from_utf8_lossy(buf.strip_suffix(b"\n").unwrap_or(&buf)).into_owned();
    buf.clear();
    // A kernel thread's or a zombie's command line is empty; an unreadable one stays empty.
    let _ = read_proc(&format!("/proc/{pid}/cmdline"), &mut buf);
    Some((name, cmdline_of(&buf)))
}

/// The arguments of a `/proc/<pid>/cmdline` (NUL-separated, NUL-terminated) joined by spaces.
///
/// ```
/// assert_eq!(netkit::inspect::procfd::cmdline_of(b"python3\0-m\0http.server\0"), "python3 -m http.server");
/// assert_eq!(netkit::inspect::procfd::cmdline_of(b""), "");
/// ```
pub fn cmdline_of(raw: &[u8]) -> String {
    let raw = raw.strip_suffix(b"\0").unwrap_or(raw);
    if raw.is_empty() {
        return String::new();
    }
    raw.split(|&b| b == 0)
        .map(String::from_utf8_lossy)
        .collect::<Vec<_>>()
        .join(" ")
}

/// Reads a small /proc file whole: open, reads until end of file, close (no `statx`).
fn read_proc(path: &str, out: &mut Vec<u8>) -> std::io::Result<()> {
    use std::io::Read;
    let mut f = std::fs::File::open(path)?;
    let mut chunk = [0u8; 4096];
    loop {
        match f.read(&mut chunk) {
            Ok(0) => return Ok(()),
            Ok(n) => out.extend_from_slice(&chunk[..n]),
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A listener of this process on loopback, and its socket inode.
    fn own_listener() -> (std::net::TcpListener, u64) {
        use std::os::unix::fs::MetadataExt;
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let fd = std::os::fd::AsRawFd::as_raw_fd(&l);
        let ino = std::fs::metadata(format!("/proc/self/fd/{fd}"))
            .unwrap()
            .ino();
        (l, ino)
    }

    #[test]
    fn finds_own_socket_inode() {
        let (_l, ino) = own_listener();
        let scan = owners_of(&HashSet::from([ino]));
        assert_eq!(scan.pids_of(ino), &[std::process::id()]);
        assert!(scan.pids_of(ino + 1).is_empty());
    }

    #[test]
    fn probe_candidates_are_read_from_both_ends_inwards() {
        let mut fds: Vec<u32> = vec![4, 0, 5, 2, 1, 3, 6];
        ends_first(&mut fds);
        assert_eq!(fds, [6, 0, 5, 1, 4, 2, 3]);
        let mut even: Vec<u32> = vec![10, 3, 7, 8];
        ends_first(&mut even);
        assert_eq!(even, [10, 3, 8, 7]);
        let mut none: Vec<u32> = Vec::new();
        ends_first(&mut none);
        assert!(none.is_empty());
    }

    #[test]
    fn the_guess_by_number_takes_both_ends_of_a_table_without_holes() {
        assert_eq!(ends_first_guess(519, 4), [518, 0, 517, 1]);
        assert_eq!(ends_first_guess(5, 16), [4, 0, 3, 1, 2]);
        assert_eq!(ends_first_guess(1, 16), [0]);
        assert_eq!(ends_first_guess(40, 16).len(), 16);
    }

    #[test]
    fn a_candidate_socket_above_the_fd_count_is_found_by_the_listing() {
        use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
        let (l, ino) = own_listener();
        // A hole-ridden table: the socket far above the fd count, where no guess by number
        // reaches (within RLIMIT_NOFILE).
        let mut lim = libc::rlimit {
            rlim_cur: 0,
            rlim_max: 0,
        };
        // SAFETY: getrlimit writes the struct it is given.
        assert_eq!(unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) }, 0);
        let high = (lim.rlim_cur.min(1000) - 1) as i32;
        // SAFETY: dup2 onto a number this test owns from here; the result is checked.
        let r = unsafe { libc::dup2(l.as_raw_fd(), high) };
        assert_eq!(r, high, "dup2 onto fd {high}");
        // SAFETY: fd `high` was just created by dup2 and is owned only here.
        let moved = unsafe { OwnedFd::from_raw_fd(high) };
        drop(l);
        let want = HashSet::from([ino]);
        let me = [std::process::id()];
        let found = walk_ordered(&me, Some(&want), true, usize::MAX, 1, true);
        assert!(
            found.pairs.iter().any(|p| p.0 == ino && p.2 == high as u32),
            "{:?}",
            found.pairs
        );
        drop(moved);
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

    /// A python3 child holding a listener it opened itself; killed on drop.
    struct Holder {
        child: std::process::Child,
        inode: u64,
    }

    impl Holder {
        fn start() -> Option<Holder> {
            use std::io::BufRead;
            let script = "import os, socket, sys\n\
                          s = socket.socket()\n\
                          s.bind(('127.0.0.1', 0))\n\
                          s.listen()\n\
                          print(os.fstat(s.fileno()).st_ino, flush=True)\n\
                          sys.stdin.read()\n";
            let mut child = std::process::Command::new("python3")
                .args(["-c", script])
                .stdin(std::process::Stdio::piped())
                .stdout(std::process::Stdio::piped())
                .spawn()
                .ok()?;
            let mut line = String::new();
            std::io::BufReader::new(child.stdout.take()?)
                .read_line(&mut line)
                .ok()?;
            let inode = line.trim().parse().ok()?;
            Some(Holder { child, inode })
        }
    }

    impl Drop for Holder {
        fn drop(&mut self) {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }

    #[test]
    fn a_survey_taken_ahead_still_finds_a_process_started_after_it() {
        let survey = Survey::take(true);
        let Some(h) = Holder::start() else {
            eprintln!("skipped: python3 is not available");
            return;
        };
        let want = HashSet::from([h.inode]);
        // Walked as if the survey were current, the new process is never visited...
        let stale = walk_owners(&want, Reach::First, Survey::take_from(&survey), false);
        assert!(stale.pids_of(h.inode).is_empty());
        // ...so a head start's walk also visits the processes started since.
        let scan = walk_owners(&want, Reach::First, survey, true);
        assert_eq!(scan.pids_of(h.inode), &[h.child.id()]);
    }

    #[test]
    fn a_whole_host_walk_done_ahead_still_finds_a_process_started_after_it() {
        let survey = Survey::take(false);
        let order: Vec<u32> = survey.procs.iter().map(|p| p.pid).collect();
        let found = walk_parallel(&order, None, false, usize::MAX, walker_threads());
        let Some(h) = Holder::start() else {
            eprintln!("skipped: python3 is not available");
            return;
        };
        let want = HashSet::from([h.inode]);
        let scan = from_links(&want, Reach::Shared, Links { survey, found });
        assert_eq!(scan.pids_of(h.inode), &[h.child.id()]);
    }

    #[test]
    fn a_whole_host_walk_done_ahead_holds_every_socket_of_the_processes_it_read() {
        let (_l, ino) = own_listener();
        let survey = Survey::take(false);
        let order: Vec<u32> = survey.procs.iter().map(|p| p.pid).collect();
        let found = walk_parallel(&order, None, false, usize::MAX, walker_threads());
        assert!(found.pairs.iter().any(|p| p.0 == ino));
        let scan = from_links(
            &HashSet::from([ino]),
            Reach::Shared,
            Links { survey, found },
        );
        assert_eq!(scan.pids_of(ino), &[std::process::id()]);
    }

    #[test]
    fn names_and_command_lines_come_from_proc() {
        let me = std::process::id();
        let d = describe(&[me]);
        let (name, cmdline) = d.get(&me).cloned().unwrap_or_default();
        let comm = std::fs::read_to_string("/proc/self/comm").unwrap();
        assert_eq!(name, comm.trim_end());
        let args: Vec<String> = std::env::args().collect();
        assert_eq!(cmdline, args.join(" "));
        // Many PIDs take the two-thread path; every one still gets its own name.
        let many = vec![me; 300];
        assert_eq!(describe(&many).get(&me).map(|d| d.0.clone()), Some(name));
    }
}
