//! Connection admission for the lab's threaded and async servers and the proxy: who gets a
//! connection slot, for how long, and what happens at the bound. One [`Admission`] is shared
//! by every accept loop of a component (the proxy's serving threads share one).
//!
//! # The policy (as haproxy and nginx document theirs)
//!
//! - **`--max-conns N`** connections are served at once. At the cap, a newcomer takes the slot
//!   of the connection that has been **idle longest** (least recent byte received, or accept
//!   time if none), which is closed with a FIN. This is nginx's answer to running out of
//!   `worker_connections` (it closes the least recently used keep-alive connections,
//!   `ngx_drain_connections`), extended to connections that are silent in the middle of a
//!   request: a client that sends nothing, or one byte, can no longer hold a slot while a
//!   newcomer waits. An active client is by definition the most recently heard from, so it
//!   is the last one to go. Connections the proxy is busy on (waiting for the target's reply,
//!   or relaying) are never evicted; when every slot is busy the newcomer waits in the
//!   kernel's listen queue (back-pressure, as haproxy's `maxconn`).
//! - **`--max-conns-per-client N`** (default: half of `--max-conns`, at least 64) connections per client
//!   address (IPv4-mapped addresses count as IPv4). A client at its limit that opens another
//!   connection gives up its own idlest one; one address can never take every slot. nginx's
//!   `limit_conn` refuses with 503 instead; here the client competes only with itself.
//! - **`--first-request-timeout S`** (default 5 s): a new connection must complete its first
//!   request within S, separately from `--idle-timeout` (which bounds the silence between
//!   later requests). haproxy's `timeout http-request` and nginx's `client_header_timeout`
//!   play this part against slowloris clients.
//!
//! Eviction needs no cooperation from the connection's task: the slot holds the socket's fd
//! and `shutdown(SHUT_RDWR)` wakes a blocked or polled read with EOF (net/ipv4/af_inet.c
//! `inet_shutdown` sets `sk_shutdown` and calls `sk_state_change`). The owner of a
//! [`Ticket`] must drop it before closing the socket, so an evictor never shuts down a reused
//! fd number. The shutdown itself (on loopback it also runs the peer's receive path, and wakes
//! the evicted connection) is done by one evictor thread per [`Admission`], not by the accept
//! loop that admitted the newcomer: the slot is taken over at once, the old connection gets
//! its FIN a moment later. Under a reconnect storm `shutdown` was 20% of the threaded
//! server's accept thread (perf), time every connection in the listen queue waited for.

use std::collections::{BTreeSet, HashMap};
use std::net::IpAddr;
use std::os::fd::{OwnedFd, RawFd};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc::Sender;
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant};

/// The bounds, as set by flags.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Connections served at once.
    pub max_conns: usize,
    /// Connections per client address.
    pub per_client: usize,
    /// Time a new connection has to complete its first request.
    pub first_request: Duration,
}

/// Default `--first-request-timeout`.
pub const FIRST_REQUEST_DEFAULT: Duration = Duration::from_secs(5);

impl Limits {
    /// `per_client` of `None` means half of `max_conns`, but at least 64 (or `max_conns`
    /// if smaller): a small cap in a lab, where every client is 127.0.0.1, stays usable.
    pub fn new(max_conns: usize, per_client: Option<usize>, first_request: Duration) -> Limits {
        let max_conns = max_conns.max(1);
        let default = (max_conns / 2).max(max_conns.min(64));
        Limits {
            max_conns,
            per_client: per_client.unwrap_or(default).clamp(1, max_conns),
            first_request,
        }
    }
}

/// Why a newcomer was not admitted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refused {
    /// Every slot is taken by a connection that cannot be evicted (busy).
    Full,
    /// The client's address is at its limit and none of its connections can be evicted.
    PerClient,
}

/// What happened to make room for a newcomer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Made {
    /// A free slot.
    Free,
    /// The idlest connection of all was closed.
    EvictedIdlest,
    /// The client's own idlest connection was closed (per-client limit).
    EvictedOwn,
}

/// One admitted connection's shared state.
#[derive(Debug)]
struct Slot {
    ip: IpAddr,
    /// Milliseconds since [`Admission::epoch`] of the last byte received (or accept).
    last_ms: AtomicU64,
    /// The `last_ms` this slot is filed under in [`State::order`] (changed under the lock).
    indexed_ms: AtomicU64,
    busy: AtomicBool,
    evicted: AtomicBool,
    /// The socket, while its owner holds the ticket.
    fd: Mutex<Option<RawFd>>,
}

#[derive(Debug, Default)]
struct State {
    slots: HashMap<u64, Arc<Slot>>,
    per_ip: HashMap<IpAddr, usize>,
    /// `(indexed_ms, id)` of every slot: idleness, kept lazily. [`Ticket::touch`] only
    /// stores `last_ms` (no lock per read), so an entry may be older than its slot's last
    /// byte; [`idlest`] refreshes such entries as it meets them. Since no entry is newer than
    /// its slot, the first entry that is up to date is the idlest slot of all. A scan of every
    /// slot per admission was 19% of the proxy's thread under a reconnect storm (perf).
    order: BTreeSet<(u64, u64)>,
    next_id: u64,
    /// Threads in [`Admission::room_blocking`]: a release wakes the condvar only when some
    /// wait (std's futex condvar makes a `futex` syscall per `notify_all`, waiters or not:
    /// one syscall per closed connection, measured with strace -c).
    blocking_waiters: usize,
}

/// Counters over the component's life.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Counts {
    /// Connections closed to make room for a newcomer.
    pub evicted: u64,
    /// Newcomers closed at once (see [`Refused`]).
    pub refused: u64,
}

/// The shared admission state (see the module doc).
#[derive(Debug)]
pub struct Admission {
    limits: Limits,
    epoch: Instant,
    state: Mutex<State>,
    /// Blocking waiters (threaded server).
    freed: Condvar,
    /// Async waiters.
    notify: tokio::sync::Notify,
    evicted: AtomicU64,
    refused: AtomicU64,
    at_cap: AtomicBool,
    /// The evictor thread's queue, started at the first eviction (see the module doc).
    evictor: Mutex<Option<Sender<Chore>>>,
}

/// Work for the evictor thread.
enum Chore {
    /// Shut an evicted connection down (FIN both ways).
    Shut(Arc<Slot>),
    /// Close an evicted connection's socket once its owner is done with it.
    Close(OwnedFd),
}

/// A connection's slot; dropping it frees the slot. Drop it before closing the socket.
#[derive(Debug)]
pub struct Ticket {
    adm: Arc<Admission>,
    id: u64,
    slot: Arc<Slot>,
    /// When the connection was admitted (for the first-request deadline); tokio's clock, so
    /// a paused test clock applies.
    pub admitted: tokio::time::Instant,
}

fn canonical_ip(ip: IpAddr) -> IpAddr {
    ip.to_canonical()
}

impl Admission {
    /// A new, empty admission state.
    pub fn new(limits: Limits) -> Arc<Admission> {
        Arc::new(Admission {
            limits,
            epoch: Instant::now(),
            state: Mutex::new(State::default()),
            freed: Condvar::new(),
            notify: tokio::sync::Notify::new(),
            evicted: AtomicU64::new(0),
            refused: AtomicU64::new(0),
            at_cap: AtomicBool::new(false),
            evictor: Mutex::new(None),
        })
    }

    /// The bounds.
    pub fn limits(&self) -> Limits {
        self.limits
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn now_ms(&self) -> u64 {
        self.epoch.elapsed().as_millis() as u64
    }

    /// Connections open now.
    pub fn open(&self) -> usize {
        self.lock().slots.len()
    }

    /// Evictions and refusals so far.
    pub fn counts(&self) -> Counts {
        Counts {
            evicted: self.evicted.load(Ordering::Relaxed),
            refused: self.refused.load(Ordering::Relaxed),
        }
    }

    /// True when a newcomer would be admitted now: a free slot, or a connection that can
    /// be evicted.
    pub fn has_room(&self) -> bool {
        let st = self.lock();
        st.slots.len() < self.limits.max_conns
            || st.slots.values().any(|s| !s.busy.load(Ordering::Relaxed))
    }

    /// True when every slot is taken (for the "at capacity" log line).
    pub fn is_full(&self) -> bool {
        self.lock().slots.len() >= self.limits.max_conns
    }

    /// True once per episode of being full, for the accept loop that should log it (several
    /// loops may share one admission); re-armed when a slot is free again.
    pub fn became_full(&self) -> bool {
        if self.is_full() {
            !self.at_cap.swap(true, Ordering::Relaxed)
        } else {
            self.at_cap.store(false, Ordering::Relaxed);
            false
        }
    }

    /// Waits (async) until [`Admission::has_room`].
    pub async fn room(&self) {
        loop {
            let wait = self.notify.notified();
            tokio::pin!(wait);
            wait.as_mut().enable();
            if self.has_room() {
                return;
            }
            // A busy connection becoming idle does not notify; look again now and then.
            let _ = tokio::time::timeout(Duration::from_millis(50), wait).await;
        }
    }

    /// Waits (blocking) up to `d` for [`Admission::has_room`]; returns whether there is room.
    pub fn room_blocking(&self, d: Duration) -> bool {
        let st = self.lock();
        let room = |st: &State| {
            st.slots.len() < self.limits.max_conns
                || st.slots.values().any(|s| !s.busy.load(Ordering::Relaxed))
        };
        if room(&st) {
            return true;
        }
        let mut st = st;
        st.blocking_waiters += 1;
        let (mut st, _) = self
            .freed
            .wait_timeout(st, d)
            .unwrap_or_else(|p| p.into_inner());
        st.blocking_waiters -= 1;
        room(&st)
    }

    /// Admits a connection from `peer` whose socket is `fd`, evicting as the policy says.
    ///
    /// # Errors
    /// [`Refused`] when no slot can be made; the caller closes the newcomer.
    pub fn admit(self: &Arc<Self>, peer: IpAddr, fd: RawFd) -> Result<(Ticket, Made), Refused> {
        let ip = canonical_ip(peer);
        let mut st = self.lock();
        let mut made = Made::Free;
        if st.per_ip.get(&ip).copied().unwrap_or(0) >= self.limits.per_client {
            match idlest(&mut st, Some(ip)) {
                Some(id) => {
                    self.evict(&mut st, id);
                    made = Made::EvictedOwn;
                }
                // Every slot taken, all busy: the newcomer waits like any other.
                None if st.slots.len() >= self.limits.max_conns => return Err(Refused::Full),
                None => {
                    self.refused.fetch_add(1, Ordering::Relaxed);
                    return Err(Refused::PerClient);
                }
            }
        } else if st.slots.len() >= self.limits.max_conns {
            match idlest(&mut st, None) {
                Some(id) => {
                    self.evict(&mut st, id);
                    made = Made::EvictedIdlest;
                }
                None => return Err(Refused::Full),
            }
        }
        let id = st.next_id;
        st.next_id += 1;
        let now = self.now_ms();
        st.order.insert((now, id));
        let slot = Arc::new(Slot {
            ip,
            indexed_ms: AtomicU64::new(now),
            last_ms: AtomicU64::new(now),
            busy: AtomicBool::new(false),
            evicted: AtomicBool::new(false),
            fd: Mutex::new(Some(fd)),
        });
        st.slots.insert(id, slot.clone());
        *st.per_ip.entry(ip).or_insert(0) += 1;
        drop(st);
        Ok((
            Ticket {
                adm: self.clone(),
                id,
                slot,
                admitted: tokio::time::Instant::now(),
            },
            made,
        ))
    }

    /// [`Admission::admit`], waiting (async) while every slot is busy; `None` when `stop`
    /// ends first or the client is over its limit.
    pub async fn admit_wait(
        self: &Arc<Self>,
        peer: IpAddr,
        fd: RawFd,
        stop: impl std::future::Future<Output = ()>,
    ) -> Result<(Ticket, Made), Option<Refused>> {
        tokio::pin!(stop);
        loop {
            match self.admit(peer, fd) {
                Err(Refused::Full) => {}
                other => return other.map_err(Some),
            }
            tokio::select! {
                () = self.room() => {}
                () = &mut stop => return Err(None),
            }
        }
    }

    fn evict(&self, st: &mut State, id: u64) {
        if let Some(slot) = remove(st, id) {
            slot.evicted.store(true, Ordering::SeqCst);
            self.evicted.fetch_add(1, Ordering::Relaxed);
            if let Err(Chore::Shut(slot)) = self.hand_to_evictor(Chore::Shut(slot)) {
                shut(&slot);
            }
        }
    }

    /// Queues `chore` for the evictor thread, starting it if needed; gives it back when no
    /// thread can be started (the caller does it itself).
    fn hand_to_evictor(&self, chore: Chore) -> Result<(), Chore> {
        let mut ev = self.evictor.lock().unwrap_or_else(|p| p.into_inner());
        if ev.is_none() {
            let (tx, rx) = std::sync::mpsc::channel::<Chore>();
            // Ends when the admission (the only sender) is dropped.
            let started = std::thread::Builder::new()
                .name("netkit-evict".into())
                .spawn(move || {
                    for chore in rx {
                        match chore {
                            Chore::Shut(slot) => shut(&slot),
                            Chore::Close(fd) => drop(fd),
                        }
                    }
                });
            if started.is_err() {
                return Err(chore);
            }
            *ev = Some(tx);
        }
        let Some(tx) = ev.as_ref() else {
            return Err(chore);
        };
        tx.send(chore).map_err(|e| e.0)
    }

    fn release(&self, id: u64) {
        let mut st = self.lock();
        remove(&mut st, id);
        let waiters = st.blocking_waiters > 0;
        drop(st);
        if waiters {
            self.freed.notify_all();
        }
        self.notify.notify_waiters();
    }
}

/// Shuts an evicted connection's socket down (FIN both ways), if its owner still holds it.
fn shut(slot: &Slot) {
    if let Some(fd) = *slot.fd.lock().unwrap_or_else(|p| p.into_inner()) {
        // SAFETY: the fd is open: the ticket's owner clears it (under this lock) before
        // closing the socket. An error (already shut) is harmless.
        unsafe { libc::shutdown(fd, libc::SHUT_RDWR) };
    }
}

fn remove(st: &mut State, id: u64) -> Option<Arc<Slot>> {
    let slot = st.slots.remove(&id)?;
    st.order
        .remove(&(slot.indexed_ms.load(Ordering::Relaxed), id));
    if let Some(n) = st.per_ip.get_mut(&slot.ip) {
        *n -= 1;
        if *n == 0 {
            st.per_ip.remove(&slot.ip);
        }
    }
    Some(slot)
}

/// The connection heard from least recently (ties: the oldest), not busy, optionally only
/// from `ip`. Without `ip` it walks [`State::order`] from the idlest end, refreshing stale
/// entries and stepping over busy slots; with `ip` (a client at its own limit) it scans.
fn idlest(st: &mut State, ip: Option<IpAddr>) -> Option<u64> {
    if ip.is_some() {
        return idlest_by_scan(st, ip);
    }
    let mut busy = Vec::new();
    let mut found = None;
    // Each refresh moves an entry forward; bounded in case touches keep racing with us.
    for _ in 0..st.slots.len().saturating_mul(2).max(16) {
        let Some(&(at, id)) = st.order.first() else {
            break;
        };
        let Some(slot) = st.slots.get(&id) else {
            st.order.pop_first();
            continue;
        };
        let last = slot.last_ms.load(Ordering::Relaxed);
        if last != at {
            st.order.pop_first();
            st.order.insert((last, id));
            slot.indexed_ms.store(last, Ordering::Relaxed);
        } else if slot.busy.load(Ordering::Relaxed) {
            st.order.pop_first();
            busy.push((at, id));
        } else {
            found = Some(id);
            break;
        }
    }
    st.order.extend(busy);
    found.or_else(|| idlest_by_scan(st, None))
}

/// [`idlest`] by looking at every slot.
fn idlest_by_scan(st: &State, ip: Option<IpAddr>) -> Option<u64> {
    st.slots
        .iter()
        .filter(|(_, s)| ip.is_none_or(|ip| s.ip == ip) && !s.busy.load(Ordering::Relaxed))
        .min_by_key(|&(id, s)| (s.last_ms.load(Ordering::Relaxed), *id))
        .map(|(id, _)| *id)
}

impl Ticket {
    /// Records activity (bytes received): the connection is not idle now.
    pub fn touch(&self) {
        self.slot
            .last_ms
            .store(self.adm.now_ms(), Ordering::Relaxed);
    }

    /// [`Ticket::touch`] with a time the caller already read (one clock read per request
    /// on the server's hot path instead of two).
    pub fn touch_at(&self, now: std::time::Instant) {
        let ms = now.saturating_duration_since(self.adm.epoch).as_millis() as u64;
        self.slot.last_ms.store(ms, Ordering::Relaxed);
    }

    /// While busy (the proxy waits for a target, or relays), the connection is not evicted.
    pub fn set_busy(&self, busy: bool) {
        self.slot.busy.store(busy, Ordering::Relaxed);
        if !busy {
            self.touch();
        }
    }

    /// True once the connection was closed to make room for another.
    pub fn evicted(&self) -> bool {
        self.slot.evicted.load(Ordering::SeqCst)
    }

    /// Frees the slot now (the slot forgets the fd); the [`Closer`] then closes the socket.
    pub fn release(self) -> Closer {
        let closer = Closer {
            adm: self.adm.clone(),
            evicted: self.evicted(),
        };
        drop(self);
        closer
    }

    /// When the first request must be complete.
    pub fn first_request_due(&self) -> tokio::time::Instant {
        self.admitted + self.adm.limits.first_request
    }
}

/// Closes a released connection's socket: on the evictor thread if it was evicted (its close
/// sends the last segments and, on loopback, runs the peer's receive path: 15% of the
/// proxy's thread under a reconnect storm, perf), here otherwise.
#[derive(Debug)]
pub struct Closer {
    adm: Arc<Admission>,
    evicted: bool,
}

impl Closer {
    /// Closes `socket` (see [`Closer`]).
    pub fn close(self, socket: OwnedFd) {
        if self.evicted {
            // Given back (no thread): dropped, so closed, here.
            let _ = self.adm.hand_to_evictor(Chore::Close(socket));
        }
    }
}

impl Drop for Ticket {
    fn drop(&mut self) {
        // Forget the fd first: the owner closes the socket right after.
        *self.slot.fd.lock().unwrap_or_else(|p| p.into_inner()) = None;
        self.adm.release(self.id);
    }
}

/// The policy in one line, for start-up and at-capacity messages.
pub fn describe(l: &Limits) -> String {
    format!(
        "at {} connections the one idle longest is closed for a newcomer; {} per client address; first request within {}",
        l.max_conns,
        l.per_client,
        crate::lab::proxy::forward::secs(l.first_request)
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::{TcpListener, TcpStream};
    use std::os::fd::AsRawFd;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    fn pair(l: &TcpListener) -> (TcpStream, TcpStream) {
        let c = TcpStream::connect(l.local_addr().unwrap()).unwrap();
        let (s, _) = l.accept().unwrap();
        (c, s)
    }

    #[test]
    fn at_the_cap_the_idlest_connection_is_evicted_with_a_fin() {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let adm = Admission::new(Limits::new(2, Some(2), FIRST_REQUEST_DEFAULT));
        let (mut c1, s1) = pair(&l);
        let (_c2, s2) = pair(&l);
        let (t1, m) = adm.admit(ip("10.0.0.1"), s1.as_raw_fd()).unwrap();
        assert_eq!(m, Made::Free);
        std::thread::sleep(Duration::from_millis(5));
        let (t2, _) = adm.admit(ip("10.0.0.2"), s2.as_raw_fd()).unwrap();
        std::thread::sleep(Duration::from_millis(5));
        t1.touch(); // c1 spoke last: c2 is now the idlest
        let (_c3, s3) = pair(&l);
        let (t3, m) = adm.admit(ip("10.0.0.3"), s3.as_raw_fd()).unwrap();
        assert_eq!(m, Made::EvictedIdlest);
        assert!(t2.evicted() && !t1.evicted() && !t3.evicted());
        assert_eq!(adm.open(), 2);
        assert_eq!(adm.counts().evicted, 1);
        // The evicted side was shut down: its peer reads EOF.
        let mut b = [0u8; 1];
        c1.set_read_timeout(Some(Duration::from_millis(50)))
            .unwrap();
        assert!(
            std::io::Read::read(&mut c1, &mut b).is_err(),
            "c1 not evicted"
        );
        let mut s2r = &s2;
        assert_eq!(std::io::Read::read(&mut s2r, &mut b).unwrap(), 0);
        drop(t2);
        assert_eq!(
            adm.open(),
            2,
            "dropping an evicted ticket frees nothing twice"
        );
    }

    #[test]
    fn a_client_at_its_limit_gives_up_its_own_idlest_connection() {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let adm = Admission::new(Limits::new(10, Some(2), FIRST_REQUEST_DEFAULT));
        let conns: Vec<_> = (0..4).map(|_| pair(&l)).collect();
        let (other, _) = adm.admit(ip("10.0.0.9"), conns[0].1.as_raw_fd()).unwrap();
        let (a1, _) = adm
            .admit(ip("::ffff:10.0.0.1"), conns[1].1.as_raw_fd())
            .unwrap();
        std::thread::sleep(Duration::from_millis(3));
        let (a2, _) = adm.admit(ip("10.0.0.1"), conns[2].1.as_raw_fd()).unwrap();
        let (a3, m) = adm.admit(ip("10.0.0.1"), conns[3].1.as_raw_fd()).unwrap();
        assert_eq!(m, Made::EvictedOwn);
        assert!(a1.evicted() && !a2.evicted() && !a3.evicted() && !other.evicted());
        assert_eq!(adm.open(), 3);
    }

    #[test]
    fn busy_connections_are_never_evicted() {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let adm = Admission::new(Limits::new(1, None, FIRST_REQUEST_DEFAULT));
        let (_c, s) = pair(&l);
        let (t, _) = adm.admit(ip("10.0.0.1"), s.as_raw_fd()).unwrap();
        t.set_busy(true);
        let (_c2, s2) = pair(&l);
        assert_eq!(
            adm.admit(ip("10.0.0.2"), s2.as_raw_fd()).unwrap_err(),
            Refused::Full
        );
        assert!(!adm.has_room());
        assert!(!adm.room_blocking(Duration::from_millis(10)));
        t.set_busy(false);
        assert!(adm.has_room());
        drop(t);
        assert_eq!(adm.open(), 0);
    }

    #[test]
    fn the_lazy_idleness_index_agrees_with_a_scan_of_every_slot() {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let adm = Admission::new(Limits::new(64, Some(64), FIRST_REQUEST_DEFAULT));
        let conns: Vec<_> = (0..40).map(|_| pair(&l)).collect();
        let mut tickets: Vec<Ticket> = conns
            .iter()
            .map(|(_, s)| adm.admit(ip("10.0.0.1"), s.as_raw_fd()).unwrap().0)
            .collect();
        // Touch a changing subset over several milliseconds; mark a few busy.
        for round in 0..6u64 {
            std::thread::sleep(Duration::from_millis(2));
            for (i, t) in tickets.iter().enumerate() {
                if (i as u64 * 7 + round).is_multiple_of(5) {
                    t.touch();
                }
            }
        }
        tickets[3].set_busy(true);
        tickets[11].set_busy(true);
        for _ in 0..30 {
            let mut st = adm.lock();
            let want = idlest_by_scan(&st, None);
            let got = idlest(&mut st, None);
            assert_eq!(got, want);
            assert_eq!(st.order.len(), st.slots.len());
            let id = got.unwrap();
            drop(st);
            let pos = tickets.iter().position(|t| t.id == id).unwrap();
            drop(tickets.remove(pos));
        }
    }

    #[test]
    fn per_client_defaults_to_half_the_cap() {
        assert_eq!(
            Limits::new(1024, None, FIRST_REQUEST_DEFAULT).per_client,
            512
        );
        assert_eq!(Limits::new(100, None, FIRST_REQUEST_DEFAULT).per_client, 64);
        assert_eq!(Limits::new(2, None, FIRST_REQUEST_DEFAULT).per_client, 2);
        assert_eq!(Limits::new(1, None, FIRST_REQUEST_DEFAULT).per_client, 1);
        assert_eq!(
            Limits::new(4, Some(100), FIRST_REQUEST_DEFAULT).per_client,
            4
        );
    }
}
