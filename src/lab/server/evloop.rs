//! The async server's event loops (`--mode async`): each loop is one thread with one `mio`
//! poll (epoll, edge-triggered) and a state machine per connection, as `netkit load`'s
//! engine (`src/lab/load/engine.rs`) does for the client. Loop 0 also owns the listener: it
//! accepts, admits ([`Admission`]) and hands the connection to the loops round robin (to
//! another loop through its inbox and [`Waker`]; a connection stays on one loop for its life).
//!
//! Why not a tokio task per connection (the version before issue 10's fifth session): on
//! loopback a zen request costs the server ~5.7 µs, 92 % of it in the kernel, and tokio's
//! wake, schedule and poll of a task per request (with its select over read, drain signal and
//! idle timer) were most of the rest: the server reached 0.88-0.98× of a minimal C epoll
//! server (`scripts/ref/zen_epoll.c`). Here a request costs what the C server's costs: one
//! `recvfrom` (a read shorter than the buffer ends the connection's turn: an edge-triggered
//! epoll reports bytes that arrive later as a new edge), one `sendto`, a share of an
//! `epoll_wait`, and one clock read per poll round (not per request).
//!
//! Timers are lazy, as the tokio version's were: a connection has one entry in the loop's
//! heap (its earliest possible deadline: first request, idle, slow reader, linger); a read
//! only stores the time, and an entry that fires early is re-filed at the real deadline.
//!
//! Shutdown: the tokio side (signals) sets [`Control::stop`] and wakes loop 0, which closes
//! the listener, prints `shutting_down`, and tells every loop to drain: a connection with no
//! partial request is closed at once (`shutdown`), the others finish the request they are in
//! the middle of; when `--drain` runs out the rest are cut (counted in `aborted`).

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::io::{self, Read, Write};
use std::net::{Shutdown as Half, SocketAddr};
use std::os::fd::AsRawFd;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use mio::event::Event;
use mio::net::{TcpListener, TcpStream};
use mio::{Events, Interest, Poll, Token, Waker};

use super::{Backoff, End, LINGER, MAX_TRAILING, ServeOpts, incomplete, refused_status, trailing};
use crate::lab::admission::{Admission, Refused, Ticket};
use crate::lab::protocol::{Output, Session};
use crate::lab::status::Status;
use crate::sockopt;

const LISTENER: Token = Token(0);
const WAKE: Token = Token(1);
/// Connection `i` is `Token(i + FIRST)`.
const FIRST: usize = 2;

/// How often a paused accept (every slot busy) looks for room again.
const ROOM_RECHECK: Duration = Duration::from_millis(50);

/// A connection accepted and admitted by loop 0 for another loop.
struct Handoff {
    // Declared first so it drops first: the slot forgets the fd before the socket closes.
    ticket: Ticket,
    stream: TcpStream,
    peer: SocketAddr,
}

/// What the loops and the tokio side share.
pub(super) struct Control {
    /// Shutdown was asked for (loop 0 acts on it).
    stop: AtomicBool,
    /// The listener is closed: every loop drains.
    drain: AtomicBool,
    loops: Vec<Remote>,
}

/// How to reach one loop from another thread.
struct Remote {
    waker: Waker,
    inbox: Mutex<Vec<Handoff>>,
}

impl Control {
    /// Asks loop 0 to stop accepting and every loop to drain.
    pub(super) fn request_stop(&self) {
        self.stop.store(true, Ordering::SeqCst);
        let _ = self.loops[0].waker.wake();
    }

    /// After a loop failed (or could not start): every loop drains now.
    pub(super) fn fail(&self) {
        self.stop.store(true, Ordering::SeqCst);
        self.drain.store(true, Ordering::SeqCst);
        for l in &self.loops {
            let _ = l.waker.wake();
        }
    }
}

/// Creates `n` (at least one) loops' polls; loop 0 gets `listener`. Returns the loops, ready
/// to [`Loop::run`] on threads of their own, and their shared control.
pub(super) fn build(
    listener: std::net::TcpListener,
    opts: Arc<ServeOpts>,
    adm: Arc<Admission>,
    n: usize,
) -> io::Result<(Vec<Loop>, Arc<Control>)> {
    listener.set_nonblocking(true)?;
    let mut listener = TcpListener::from_std(listener);
    let mut polls = Vec::new();
    let mut loops = Vec::new();
    for i in 0..n.max(1) {
        let poll = Poll::new()?;
        let waker = Waker::new(poll.registry(), WAKE)?;
        if i == 0 {
            poll.registry()
                .register(&mut listener, LISTENER, Interest::READABLE)?;
        }
        polls.push(poll);
        loops.push(Remote {
            waker,
            inbox: Mutex::new(Vec::new()),
        });
    }
    let ctl = Arc::new(Control {
        stop: AtomicBool::new(false),
        drain: AtomicBool::new(false),
        loops,
    });
    let mut listener = Some(listener);
    let now = Instant::now();
    let loops = polls
        .into_iter()
        .enumerate()
        .map(|(id, poll)| Loop {
            id,
            poll,
            ctl: ctl.clone(),
            opts: opts.clone(),
            adm: adm.clone(),
            listener: if id == 0 { listener.take() } else { None },
            running: 1,
            conns: Vec::new(),
            free: Vec::new(),
            live: 0,
            timers: BinaryHeap::new(),
            next_epoch: 0,
            buf: vec![0; 16 * 1024],
            now,
            backoff: Backoff::default(),
            at_cap: false,
            accept_after: None,
            waiting: None,
            next_loop: 0,
            drain_until: None,
        })
        .collect();
    Ok((loops, ctl))
}

/// Where a connection is.
enum Phase {
    /// Reading requests and answering them.
    Serving,
    /// A reply waits for room in the socket's send buffer (a slow reader), until `due`.
    Writing {
        pending: Vec<u8>,
        sent: usize,
        due: Instant,
        then: After,
    },
    /// A bare message was answered and our side shut down: counting what the client still
    /// sends until it closes (or `until`).
    Linger { until: Instant },
}

/// What follows a reply that had to wait for room.
enum After {
    Serve,
    Close {
        eof: bool,
        incomplete: Option<Vec<u8>>,
        bare: bool,
    },
}

struct Conn {
    /// Dropped before the stream is closed (declared first): the slot forgets the fd first.
    ticket: Option<Ticket>,
    stream: TcpStream,
    peer: SocketAddr,
    session: Session,
    /// Reused for every request's reply.
    out: Output,
    phase: Phase,
    answered: bool,
    first_due: Instant,
    /// Time of the last read that returned bytes.
    last: Instant,
    /// The time of this connection's live timer entry (other entries are stale).
    timer_at: Instant,
    /// Wants a timer entry earlier than `timer_at`.
    arm: Option<Instant>,
    epoch: u64,
    draining: bool,
    writable_wanted: bool,
}

/// One event loop (see the module doc).
pub(super) struct Loop {
    id: usize,
    poll: Poll,
    ctl: Arc<Control>,
    opts: Arc<ServeOpts>,
    adm: Arc<Admission>,
    listener: Option<TcpListener>,
    /// Loops that run (loop 0 hands connections out to these).
    running: usize,
    conns: Vec<Option<Conn>>,
    free: Vec<usize>,
    live: usize,
    timers: BinaryHeap<Reverse<(Instant, usize, u64)>>,
    next_epoch: u64,
    buf: Vec<u8>,
    /// The clock, read once per poll round.
    now: Instant,
    backoff: Backoff,
    at_cap: bool,
    /// Accepting is paused until then (accept failures' back-off, or no room).
    accept_after: Option<Instant>,
    /// Accepted while every slot was busy: admitted when room is made.
    waiting: Option<(TcpStream, SocketAddr)>,
    next_loop: usize,
    /// Draining since shutdown, until then.
    drain_until: Option<Instant>,
}

impl Loop {
    /// Tells loop 0 how many loops (0..n) are running to take connections.
    pub(super) fn set_running(&mut self, n: usize) {
        self.running = n.max(1);
    }

    /// Thread name of this loop.
    pub(super) fn name(&self) -> String {
        format!("netkit-conn-{}", self.id)
    }

    /// Serves until the drain is over; returns the connections cut when it ran out.
    ///
    /// # Errors
    /// Only when the poll itself fails (every other loop is then told to drain).
    pub(super) fn run(mut self) -> io::Result<usize> {
        let r = self.run_inner();
        if r.is_err() {
            self.ctl.fail();
        }
        r
    }

    fn run_inner(&mut self) -> io::Result<usize> {
        let mut events = Events::with_capacity(1024);
        loop {
            // From the round's clock, not a fresh read (a clock read costs ~0.1 µs on this
            // VM, 0.5 % of a request with two per round): a deadline fires late by at most
            // the time the round took.
            let timeout = self
                .next_wake()
                .map(|t| t.saturating_duration_since(self.now));
            if let Err(e) = self.poll.poll(&mut events, timeout)
                && e.kind() != io::ErrorKind::Interrupted
            {
                return Err(e);
            }
            self.now = Instant::now();
            for ev in events.iter() {
                match ev.token() {
                    LISTENER => self.accept_all(),
                    WAKE => self.on_wake(),
                    Token(t) => self.on_event(t - FIRST, ev),
                }
            }
            if self.accept_after.is_some_and(|t| self.now >= t) {
                self.accept_after = None;
                self.accept_all();
            }
            self.fire_timers();
            if let Some(until) = self.drain_until {
                if self.live == 0 && self.inbox_empty() {
                    return Ok(0);
                }
                if self.now >= until {
                    return Ok(self.abort_all());
                }
            }
        }
    }

    fn next_wake(&self) -> Option<Instant> {
        let t = self.timers.peek().map(|Reverse((t, _, _))| *t);
        [t, self.accept_after, self.drain_until]
            .into_iter()
            .flatten()
            .min()
    }

    fn inbox_empty(&self) -> bool {
        self.ctl.loops[self.id]
            .inbox
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .is_empty()
    }

    fn on_wake(&mut self) {
        let handed = std::mem::take(
            &mut *self.ctl.loops[self.id]
                .inbox
                .lock()
                .unwrap_or_else(|p| p.into_inner()),
        );
        for h in handed {
            self.add(h.stream, h.peer, h.ticket);
        }
        if self.id == 0 && self.listener.is_some() && self.ctl.stop.load(Ordering::SeqCst) {
            self.shut_listener();
        }
        if self.drain_until.is_none() && self.ctl.drain.load(Ordering::SeqCst) {
            self.begin_drain();
        }
    }

    /// Loop 0 at shutdown: no more accepts; every loop drains.
    fn shut_listener(&mut self) {
        self.listener = None;
        self.accept_after = None;
        if let Some((_, peer)) = self.waiting.take() {
            self.opts.log.emit(&refused_status(peer, None));
        }
        self.opts.log.emit(&Status::ShuttingDown {
            in_flight: self.adm.open(),
            drain_s: self.opts.drain.as_secs_f64(),
        });
        self.ctl.drain.store(true, Ordering::SeqCst);
        for l in &self.ctl.loops[1..] {
            let _ = l.waker.wake();
        }
    }

    fn begin_drain(&mut self) {
        self.drain_until = Some(self.now + self.opts.drain);
        for i in 0..self.conns.len() {
            let Some(c) = self.conns[i].as_mut() else {
                continue;
            };
            if matches!(c.phase, Phase::Serving) {
                // Bytes that arrived but were not read yet (their edge is in a later poll
                // round) are part of a request too: read and answer them first.
                let r = c.serve(&mut self.buf, &self.opts, self.now, false);
                self.after(i, r);
            }
            let Some(c) = self.conns[i].as_mut() else {
                continue;
            };
            c.draining = true;
            if matches!(c.phase, Phase::Serving) && !c.session.has_pending() {
                self.close(i, End::Shutdown);
            }
        }
    }

    /// The drain ran out: the connections still open are cut (no `closed` line, as tokio's
    /// aborted tasks had none); returns how many.
    fn abort_all(&mut self) -> usize {
        let mut n = 0;
        for slot in &mut self.conns {
            if let Some(mut c) = slot.take() {
                drop(c.ticket.take());
                n += 1;
            }
        }
        let handed = std::mem::take(
            &mut *self.ctl.loops[self.id]
                .inbox
                .lock()
                .unwrap_or_else(|p| p.into_inner()),
        );
        n += handed.len();
        self.live = 0;
        n
    }

    fn accept_all(&mut self) {
        while self.listener.is_some() && self.accept_after.is_none() {
            if let Some((stream, peer)) = self.waiting.take() {
                self.admit(stream, peer);
                continue;
            }
            // One line per episode: logged when the cap is hit, re-armed once a slot is free.
            let full = self.adm.is_full();
            if full && !self.at_cap {
                self.opts.log.emit(&Status::AtCapacity {
                    max_conns: self.adm.limits().max_conns,
                });
            }
            self.at_cap = full;
            if full && !self.adm.has_room() {
                // Back-pressure: newcomers wait in the listen queue.
                self.accept_after = Some(self.now + ROOM_RECHECK);
                return;
            }
            let Some(l) = &self.listener else { return };
            match l.accept() {
                Ok((stream, peer)) => {
                    self.backoff.success(&self.opts.log);
                    self.admit(stream, peer);
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
                Err(e) => {
                    if let Some(pause) = self.backoff.failure(&e, &self.opts.log) {
                        self.accept_after = Some(self.now + pause);
                    }
                }
            }
        }
    }

    fn admit(&mut self, stream: TcpStream, peer: SocketAddr) {
        match self.adm.admit(peer.ip(), stream.as_raw_fd()) {
            Ok((ticket, _)) => {
                let to = self.next_loop % self.running;
                self.next_loop = self.next_loop.wrapping_add(1);
                if to == self.id {
                    self.add(stream, peer, ticket);
                } else {
                    let remote = &self.ctl.loops[to];
                    remote
                        .inbox
                        .lock()
                        .unwrap_or_else(|p| p.into_inner())
                        .push(Handoff {
                            stream,
                            peer,
                            ticket,
                        });
                    let _ = remote.waker.wake();
                }
            }
            Err(Refused::Full) => {
                // Every slot is busy: wait (holding the newcomer) until one is made.
                self.waiting = Some((stream, peer));
                self.accept_after = Some(self.now + ROOM_RECHECK);
            }
            Err(why) => self.opts.log.emit(&refused_status(peer, Some(why))),
        }
    }

    /// Starts serving an admitted connection on this loop.
    fn add(&mut self, mut stream: TcpStream, peer: SocketAddr, ticket: Ticket) {
        if let Err(e) = sockopt::apply_to(&stream, &self.opts.sock, peer) {
            drop(ticket);
            drop(stream);
            self.opts.log.emit(&End::Error(e.source).status(peer));
            return;
        }
        self.opts.log.emit(&Status::Accepted { peer });
        let i = self.free.pop().unwrap_or_else(|| {
            self.conns.push(None);
            self.conns.len() - 1
        });
        if let Err(e) =
            self.poll
                .registry()
                .register(&mut stream, Token(i + FIRST), Interest::READABLE)
        {
            self.free.push(i);
            let end = if ticket.evicted() {
                End::Evicted
            } else {
                End::Error(e)
            };
            drop(ticket);
            drop(stream);
            self.opts.log.emit(&end.status(peer));
            return;
        }
        let first_due = ticket.first_request_due().into_std();
        let timer_at = first_due.min(self.now + self.opts.idle_timeout);
        let epoch = self.next_epoch;
        self.next_epoch += 1;
        self.conns[i] = Some(Conn {
            stream,
            peer,
            ticket: Some(ticket),
            session: Session::new(self.opts.protocol),
            out: Output::default(),
            phase: Phase::Serving,
            answered: false,
            first_due,
            last: self.now,
            timer_at,
            arm: None,
            epoch,
            draining: self.drain_until.is_some(),
            writable_wanted: false,
        });
        self.live += 1;
        self.timers.push(Reverse((timer_at, i, epoch)));
        if self.drain_until.is_some() {
            // Handed over as the drain began: nothing pending, so it ends now.
            self.close(i, End::Shutdown);
        }
    }

    fn on_event(&mut self, i: usize, ev: &Event) {
        let Some(c) = self.conns.get_mut(i).and_then(Option::as_mut) else {
            return;
        };
        let hup = ev.is_read_closed() || ev.is_error();
        let r = match c.phase {
            Phase::Serving => c.serve(&mut self.buf, &self.opts, self.now, hup),
            Phase::Writing { .. } => {
                if ev.is_writable() || ev.is_error() || ev.is_write_closed() {
                    c.flush(&mut self.buf, &self.opts, self.now)
                } else {
                    Ok(())
                }
            }
            Phase::Linger { .. } => c.linger(&mut self.buf),
        };
        self.after(i, r);
    }

    /// Files a connection's new earlier deadline, or closes it.
    fn after(&mut self, i: usize, r: Result<(), End>) {
        match r {
            Err(end) => self.close(i, end),
            Ok(()) => {
                let Some(c) = self.conns[i].as_mut() else {
                    return;
                };
                if let Some(t) = c.arm.take()
                    && t < c.timer_at
                {
                    c.timer_at = t;
                    self.timers.push(Reverse((t, i, c.epoch)));
                }
                if matches!(c.phase, Phase::Writing { .. }) && !c.writable_wanted {
                    // A reply waits for room: ask for writable edges too. Re-registering
                    // looks at the socket again, so room made meanwhile is not missed.
                    c.writable_wanted = true;
                    let r = self.poll.registry().reregister(
                        &mut c.stream,
                        Token(i + FIRST),
                        Interest::READABLE | Interest::WRITABLE,
                    );
                    if let Err(e) = r {
                        self.close(i, End::Error(e));
                    }
                }
            }
        }
    }

    fn fire_timers(&mut self) {
        while let Some(&Reverse((t, i, epoch))) = self.timers.peek() {
            if t > self.now {
                break;
            }
            self.timers.pop();
            let Some(c) = self.conns.get_mut(i).and_then(Option::as_mut) else {
                continue;
            };
            if c.epoch != epoch || c.timer_at != t {
                continue; // stale
            }
            match c.on_timer(self.now, &self.opts, &mut self.buf) {
                Ok(next) => {
                    c.timer_at = next;
                    self.timers.push(Reverse((next, i, epoch)));
                }
                Err(end) => self.close(i, end),
            }
        }
    }

    fn close(&mut self, i: usize, end: End) {
        let Some(mut c) = self.conns[i].take() else {
            return;
        };
        self.free.push(i);
        self.live -= 1;
        let end = match &c.ticket {
            Some(t) if t.evicted() => End::Evicted,
            _ => end,
        };
        // The slot forgets the fd before the socket is closed.
        drop(c.ticket.take());
        let peer = c.peer;
        drop(c);
        self.opts.log.emit(&end.status(peer));
        // Closed connections leave their timer entries behind until those fire (up to the
        // idle timeout later): with a new connection per request they would pile up.
        if self.timers.len() > 2 * self.live + 1024 {
            let conns = &self.conns;
            self.timers.retain(|&Reverse((t, i, epoch))| {
                conns[i]
                    .as_ref()
                    .is_some_and(|c| c.epoch == epoch && c.timer_at == t)
            });
        }
    }
}

impl Conn {
    /// Reads and answers requests until the socket is empty (a short read), the connection
    /// ends, or a reply has to wait for room.
    fn serve(
        &mut self,
        buf: &mut [u8],
        opts: &ServeOpts,
        now: Instant,
        hup: bool,
    ) -> Result<(), End> {
        loop {
            if self.draining && !self.session.has_pending() {
                return Err(End::Shutdown);
            }
            match (&self.stream).read(buf) {
                Ok(0) => {
                    self.out = self.session.eof();
                    return self.answer(buf, opts, now, true);
                }
                Ok(n) => {
                    self.last = now;
                    if let Some(t) = &self.ticket {
                        t.touch_at(now);
                    }
                    self.session.feed_into(&buf[..n], &mut self.out);
                    self.answer(buf, opts, now, false)?;
                    if !matches!(self.phase, Phase::Serving) {
                        return Ok(());
                    }
                    // A short read emptied the socket: later bytes come as a new edge. Not
                    // so for a FIN already seen with this edge: read on to its EOF.
                    if n < buf.len() && !hup {
                        if self.draining && !self.session.has_pending() {
                            return Err(End::Shutdown);
                        }
                        return Ok(());
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(()),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(End::Error(e)),
            }
        }
    }

    /// Logs what the session received and writes its reply (see [`Conn::serve`]).
    fn answer(
        &mut self,
        buf: &mut [u8],
        opts: &ServeOpts,
        now: Instant,
        eof: bool,
    ) -> Result<(), End> {
        self.answered |= !self.out.reply.is_empty();
        for message in self.out.received.drain(..) {
            opts.log.emit(&Status::Received {
                peer: self.peer,
                message,
            });
        }
        let mut sent = 0;
        while sent < self.out.reply.len() {
            match (&self.stream).write(&self.out.reply[sent..]) {
                Ok(0) => return Err(End::Error(io::ErrorKind::WriteZero.into())),
                Ok(n) => sent += n,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    let then = if self.out.close {
                        After::Close {
                            eof,
                            incomplete: self.out.incomplete.take(),
                            bare: self.out.bare,
                        }
                    } else {
                        After::Serve
                    };
                    let due = now + opts.idle_timeout;
                    self.phase = Phase::Writing {
                        pending: self.out.reply[sent..].to_vec(),
                        sent: 0,
                        due,
                        then,
                    };
                    self.arm = Some(due);
                    return Ok(());
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(End::Error(e)),
            }
        }
        if self.out.close {
            let part = self.out.incomplete.take();
            let bare = self.out.bare;
            return self.closing(buf, now, opts, eof, part, bare);
        }
        Ok(())
    }

    /// After the closing reply was sent: half-close, and end now or linger.
    fn closing(
        &mut self,
        buf: &mut [u8],
        now: Instant,
        opts: &ServeOpts,
        eof: bool,
        part: Option<Vec<u8>>,
        bare: bool,
    ) -> Result<(), End> {
        let _ = self.stream.shutdown(Half::Write);
        if let Some(part) = part {
            return Err(End::Incomplete(incomplete(&part)));
        }
        if bare && !eof {
            // Read (and count) whatever else the client sends until it closes, so a message
            // written in pieces is reported, not mistaken for a clean exchange. Bytes already
            // queued raise no new edge: look now.
            let until = now + opts.idle_timeout.min(LINGER);
            self.phase = Phase::Linger { until };
            self.arm = Some(until);
            return self.linger(buf);
        }
        Err(if eof { End::Eof } else { End::Done })
    }

    /// Writes the reply that waited for room; then serves on (or closes).
    fn flush(&mut self, buf: &mut [u8], opts: &ServeOpts, now: Instant) -> Result<(), End> {
        let Phase::Writing { pending, sent, .. } = &mut self.phase else {
            return Ok(());
        };
        while *sent < pending.len() {
            match (&self.stream).write(&pending[*sent..]) {
                Ok(0) => return Err(End::Error(io::ErrorKind::WriteZero.into())),
                Ok(n) => *sent += n,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(()),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(End::Error(e)),
            }
        }
        let Phase::Writing { then, .. } = std::mem::replace(&mut self.phase, Phase::Serving) else {
            return Ok(());
        };
        match then {
            // Requests may have queued meanwhile (no edge for them now): read at once.
            After::Serve => self.serve(buf, opts, now, true),
            After::Close {
                eof,
                incomplete,
                bare,
            } => self.closing(buf, now, opts, eof, incomplete, bare),
        }
    }

    /// Counts the bytes a client sends after its bare message was answered.
    fn linger(&mut self, buf: &mut [u8]) -> Result<(), End> {
        loop {
            if self.session.trailing() >= MAX_TRAILING {
                break;
            }
            match (&self.stream).read(buf) {
                Ok(0) => break,
                Ok(n) => drop(self.session.feed(&buf[..n])),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(()),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(_) => break,
            }
        }
        Err(self.linger_end())
    }

    fn linger_end(&self) -> End {
        if self.session.trailing() > 0 {
            End::Incomplete(trailing(self.session.trailing()))
        } else {
            End::Done
        }
    }

    /// The connection's timer entry fired: its end, or when to look again.
    fn on_timer(&mut self, now: Instant, opts: &ServeOpts, buf: &mut [u8]) -> Result<Instant, End> {
        match &self.phase {
            Phase::Serving => {
                if !self.answered && now >= self.first_due {
                    return Err(End::FirstRequest);
                }
                let due = self.last + opts.idle_timeout;
                if now >= due {
                    return Err(End::Idle);
                }
                Ok(if self.answered {
                    due
                } else {
                    due.min(self.first_due)
                })
            }
            Phase::Writing { due, .. } => {
                if now >= *due {
                    Err(End::Idle)
                } else {
                    Ok(*due)
                }
            }
            &Phase::Linger { until } => {
                if now >= until {
                    // One last look: bytes that came with the deadline still count.
                    self.linger(buf)?;
                    Err(self.linger_end())
                } else {
                    Ok(until)
                }
            }
        }
    }
}
