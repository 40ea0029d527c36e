//! The load generator's workers: one thread drives its share of the connections with one
//! `mio` poll (epoll, edge-triggered), each connection a small state machine (connect, write
//! the request, read the reply, wait for its rate slot or a back-off).
//!
//! Why not tokio tasks (the first version): the load client is the instrument, and on
//! loopback it runs on a CPU of its own beside the server under test. With a tokio task per
//! connection it cost 5.8-6.1 µs per zen request and sat at 96-99 % of its CPU, while a
//! netkit server under it needed 5.5-5.8 µs: the client, not the server, set the rate
//! (`perf stat`, issue 10). Tokio's share was the wake, schedule and poll of a task per
//! reply, two futures (timeout, exchange) polled per request and three clock reads. Here a
//! reply costs one `recvfrom`, the next request one `sendto`, one clock read for both (the
//! reply's time is the next request's start), and a share of an `epoll_wait`.
//!
//! Timeouts: requests start in time order on a thread and all get the same `--timeout`, so
//! the oldest request in flight has the earliest deadline. The poll sleeps until the
//! earliest deadline (or pacing slot, or back-off) noted so far, and only when that passes
//! are the connections scanned (and the next deadline found) — not once per request.

use std::io::{self, Read, Write};
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;
use mio::net::TcpStream;
use mio::{Events, Interest, Poll, Token};

use super::{ErrorKind, Plan, Shared, new_hist};

/// Where one connection is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    /// Between requests, before [`Engine::begin`] moves it on (never left so).
    Idle,
    /// connect() in progress.
    Connecting,
    /// `usize` bytes of the request written (the rest waits for room).
    Writing(usize),
    /// `usize` bytes of the reply read.
    Reading(usize),
    /// Waiting for its rate slot.
    Paced(Instant),
    /// After a refused connect or an unexpected error: retry at this time (at most 1000
    /// connects per second per connection, so a dead target is not spun on).
    Backoff(Instant),
    /// No more requests (the run's `--requests` are all taken, or its end is near).
    Done,
}

struct Conn {
    stream: Option<TcpStream>,
    phase: Phase,
    /// When the request in flight started (its latency is measured from here).
    t0: Instant,
    /// Its deadline: `t0 + --timeout`.
    due: Instant,
    /// An edge arrived while no reply was expected (a close, stray bytes): the next
    /// request's read goes first instead of waiting for another edge that would never come.
    readable: bool,
    /// The peer shut down its side (sticky until the connection is replaced, as tokio keeps
    /// READ_CLOSED): its FIN may have come in the same read as the last reply, and no new
    /// edge will say so again.
    peer_closed: bool,
    /// Got at least one correct reply (a server that serves one connection at a time
    /// starves the others).
    served: bool,
}

/// One worker thread's state.
struct Engine<'a> {
    plan: &'a Plan,
    shared: &'a Shared,
    poll: Poll,
    conns: Vec<Conn>,
    buf: Vec<u8>,
    hist: Histogram<u64>,
    start: Instant,
    end: Instant,
    /// No deadline, slot or back-off of any connection is earlier than this.
    earliest: Instant,
    /// Correct replies not yet added to `shared.ok` (added once per poll round).
    ok: u64,
    /// Connections not `Done`.
    live: usize,
}

/// What one thread's connections did.
pub(super) struct Share {
    /// Latencies of correct replies, microseconds.
    pub(super) hist: Histogram<u64>,
    /// Connections that got at least one correct reply.
    pub(super) served: usize,
}

/// Drives `n` connections of `plan` from `start` until `end` (or until `--requests` are
/// all taken) on this thread; returns their latencies.
pub(super) fn run(plan: &Plan, shared: &Shared, n: usize, start: Instant, end: Instant) -> Share {
    let poll = match Poll::new() {
        Ok(p) => p,
        Err(e) => {
            shared.error(ErrorKind::Other, Some(&e));
            return Share {
                hist: new_hist(),
                served: 0,
            };
        }
    };
    let mut eng = Engine {
        plan,
        shared,
        poll,
        conns: (0..n)
            .map(|_| Conn {
                stream: None,
                phase: Phase::Idle,
                t0: start,
                due: start,
                readable: false,
                peer_closed: false,
                served: false,
            })
            .collect(),
        buf: vec![0u8; plan.expect.len() + 4096],
        hist: new_hist(),
        start,
        end,
        earliest: end,
        ok: 0,
        live: n,
    };
    eng.drive();
    Share {
        served: eng.conns.iter().filter(|c| c.served).count(),
        hist: eng.hist,
    }
}

impl Engine<'_> {
    fn drive(&mut self) {
        let mut events = Events::with_capacity(self.conns.len().clamp(16, 1024));
        let mut now = Instant::now();
        for i in 0..self.conns.len() {
            self.begin(i, now);
        }
        while self.live > 0 && now < self.end {
            let wait = self.earliest.min(self.end).saturating_duration_since(now);
            match self.poll.poll(&mut events, Some(wait)) {
                Ok(()) => {}
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => {
                    self.shared.error(ErrorKind::Other, Some(&e));
                    break;
                }
            }
            for ev in events.iter() {
                let i = ev.token().0;
                if i < self.conns.len() {
                    self.conns[i].peer_closed |= ev.is_read_closed();
                    self.ready(i, ev.is_readable() || ev.is_read_closed() || ev.is_error());
                }
            }
            self.shared.ok.fetch_add(
                std::mem::take(&mut self.ok),
                std::sync::atomic::Ordering::Relaxed,
            );
            now = Instant::now();
            if now >= self.earliest {
                self.scan(now);
            }
        }
        // Requests still in flight were cut by the end of the run: not measured.
        let cut = self
            .conns
            .iter()
            .filter(|c| {
                matches!(
                    c.phase,
                    Phase::Connecting | Phase::Writing(_) | Phase::Reading(_)
                )
            })
            .count() as u64;
        self.shared
            .unfinished
            .fetch_add(cut, std::sync::atomic::Ordering::Relaxed);
        self.shared
            .ok
            .fetch_add(self.ok, std::sync::atomic::Ordering::Relaxed);
    }

    /// Connection `i` is between requests at `now`: starts the next one, or parks it until
    /// its rate slot, or retires it.
    fn begin(&mut self, i: usize, now: Instant) {
        let plan = self.plan;
        let stop = now >= self.end
            || plan.requests.is_some_and(|n| {
                self.shared
                    .tickets
                    .fetch_update(
                        std::sync::atomic::Ordering::Relaxed,
                        std::sync::atomic::Ordering::Relaxed,
                        |t| (t < n).then_some(t + 1),
                    )
                    .is_err()
            });
        if !stop && let Some(r) = plan.rate {
            // The k-th request of the run is due at start + k / rate (one schedule for all).
            let k = self
                .shared
                .rate_slot
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            let at = self.start + Duration::from_secs_f64(k as f64 / r);
            if at >= self.end {
                self.retire(i);
            } else if at > now {
                self.conns[i].phase = Phase::Paced(at);
                self.earliest = self.earliest.min(at);
            } else {
                self.request(i, now);
            }
            return;
        }
        if stop {
            self.retire(i);
        } else {
            self.request(i, now);
        }
    }

    fn retire(&mut self, i: usize) {
        let c = &mut self.conns[i];
        if c.phase != Phase::Done {
            c.phase = Phase::Done;
            self.live -= 1;
        }
        if let Some(mut s) = c.stream.take() {
            let _ = self.poll.registry().deregister(&mut s);
        }
    }

    /// Starts a request on connection `i` at `now` (connecting first if it has none).
    fn request(&mut self, i: usize, now: Instant) {
        let due = now + self.plan.timeout;
        let c = &mut self.conns[i];
        c.t0 = now;
        c.due = due;
        self.earliest = self.earliest.min(due);
        if c.stream.is_some() {
            self.write(i, 0);
            return;
        }
        let mut s = match TcpStream::connect(self.plan.target) {
            Ok(s) => s,
            Err(e) => return self.fail(i, ErrorKind::of(&e), Some(e), now),
        };
        if let Err(e) =
            self.poll
                .registry()
                .register(&mut s, Token(i), Interest::READABLE | Interest::WRITABLE)
        {
            return self.fail(i, ErrorKind::Other, Some(e), now);
        }
        let c = &mut self.conns[i];
        c.stream = Some(s);
        c.readable = false;
        c.peer_closed = false;
        c.phase = Phase::Connecting;
    }

    /// Writes the request from byte `sent` on.
    fn write(&mut self, i: usize, mut sent: usize) {
        let plan = self.plan;
        let req = &plan.request;
        let Some(s) = self.conns[i].stream.as_mut() else {
            return;
        };
        while sent < req.len() {
            match s.write(&req[sent..]) {
                Ok(n) => sent += n,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    self.conns[i].phase = Phase::Writing(sent);
                    return;
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return self.fail(i, ErrorKind::of(&e), None, Instant::now()),
            }
        }
        let c = &mut self.conns[i];
        c.phase = Phase::Reading(0);
        if std::mem::take(&mut c.readable) || c.peer_closed {
            self.read(i, 0);
        }
    }

    /// Reads what has come of the reply (`got` bytes so far). A differing byte, or a byte
    /// beyond the reply, is a wrong reply at once.
    fn read(&mut self, i: usize, mut got: usize) {
        let plan = self.plan;
        let expect = &plan.expect;
        let Some(s) = self.conns[i].stream.as_mut() else {
            return;
        };
        loop {
            match s.read(&mut self.buf) {
                Ok(0) => return self.fail(i, ErrorKind::Reset, None, Instant::now()),
                Ok(n) => {
                    if got + n > expect.len() || self.buf[..n] != expect[got..got + n] {
                        return self.fail(i, ErrorKind::WrongReply, None, Instant::now());
                    }
                    got += n;
                    if got == expect.len() {
                        return self.answered(i);
                    }
                    // A short read emptied the receive queue: the rest comes with a new edge.
                    if n < self.buf.len() {
                        self.conns[i].phase = Phase::Reading(got);
                        return;
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    self.conns[i].phase = Phase::Reading(got);
                    return;
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return self.fail(i, ErrorKind::of(&e), None, Instant::now()),
            }
        }
    }

    /// The whole reply is in: records the latency; the same clock reading starts the next
    /// request.
    fn answered(&mut self, i: usize) {
        let now = Instant::now();
        if now <= self.end {
            let us = (now - self.conns[i].t0).as_micros().clamp(1, 3_600_000_000) as u64;
            let _ = self.hist.record(us);
            self.ok += 1;
            self.conns[i].served = true;
        } else {
            // Answered after the end: not measured.
            self.shared
                .unfinished
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        }
        if self.plan.new_conn
            && let Some(mut s) = self.conns[i].stream.take()
        {
            let _ = self.poll.registry().deregister(&mut s);
        }
        self.begin(i, now);
    }

    /// The request in flight on `i` failed: counted, the connection dropped, and the next
    /// request started (after a pause for a refused or unexpected failure).
    fn fail(&mut self, i: usize, kind: ErrorKind, e: Option<io::Error>, now: Instant) {
        self.shared.error(kind, e.as_ref());
        if let Some(mut s) = self.conns[i].stream.take() {
            let _ = self.poll.registry().deregister(&mut s);
        }
        if matches!(kind, ErrorKind::Refused | ErrorKind::Other) {
            let at = now + Duration::from_millis(1);
            self.conns[i].phase = Phase::Backoff(at);
            self.earliest = self.earliest.min(at);
        } else {
            self.begin(i, now);
        }
    }

    /// An event for connection `i` (`readable`: data, a close or an error may be waiting).
    fn ready(&mut self, i: usize, readable: bool) {
        match self.conns[i].phase {
            Phase::Connecting => {
                let Some(s) = self.conns[i].stream.as_ref() else {
                    return;
                };
                // mio's recipe for a non-blocking connect: an error, or a peer address.
                match s.take_error() {
                    Ok(Some(e)) | Err(e) => {
                        return self.fail(i, ErrorKind::of(&e), Some(e), Instant::now());
                    }
                    Ok(None) => {}
                }
                match s.peer_addr() {
                    Ok(_) => {
                        let _ = s.set_nodelay(true);
                        self.conns[i].readable = readable;
                        self.write(i, 0);
                    }
                    Err(e) if e.kind() == io::ErrorKind::NotConnected => {}
                    Err(e) => self.fail(i, ErrorKind::of(&e), Some(e), Instant::now()),
                }
            }
            Phase::Writing(sent) => {
                self.conns[i].readable |= readable;
                self.write(i, sent);
            }
            Phase::Reading(got) => {
                if readable {
                    self.read(i, got);
                }
            }
            Phase::Idle | Phase::Paced(_) | Phase::Backoff(_) => {
                self.conns[i].readable |= readable;
            }
            Phase::Done => {}
        }
    }

    /// The earliest deadline, slot or back-off has passed: handles every connection that is
    /// due and notes the next earliest.
    fn scan(&mut self, now: Instant) {
        self.earliest = self.end;
        for i in 0..self.conns.len() {
            match self.conns[i].phase {
                Phase::Connecting | Phase::Writing(_) | Phase::Reading(_) => {
                    // Past its deadline before the end: a timeout (one that the end cut
                    // is counted as unfinished when the run stops).
                    let due = self.conns[i].due;
                    if now >= due && due <= self.end {
                        self.fail(i, ErrorKind::Timeout, None, now);
                    }
                }
                Phase::Paced(at) if at <= now => self.request(i, now),
                Phase::Backoff(at) if at <= now => self.begin(i, now),
                _ => {}
            }
            let wake = match self.conns[i].phase {
                Phase::Connecting | Phase::Writing(_) | Phase::Reading(_) => self.conns[i].due,
                Phase::Paced(at) | Phase::Backoff(at) => at,
                Phase::Idle | Phase::Done => self.end,
            };
            self.earliest = self.earliest.min(wake);
        }
    }
}

#[cfg(test)]
mod tests {
    use std::io::{Read, Write};
    use std::net::{SocketAddr, TcpListener};
    use std::sync::atomic::Ordering;
    use std::time::{Duration, Instant};

    use super::super::{ErrorKind, Plan, Shared};

    /// A one-thread server on 127.0.0.1:0 that hands each accepted connection to `serve`
    /// (at most `conns` connections, then it stops accepting).
    fn server(conns: usize, serve: fn(std::net::TcpStream)) -> SocketAddr {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = l.local_addr().unwrap();
        std::thread::spawn(move || {
            for s in l.incoming().take(conns) {
                let s = s.unwrap();
                std::thread::spawn(move || serve(s));
            }
        });
        addr
    }

    fn plan(target: SocketAddr, timeout_ms: u64, duration_ms: u64) -> Plan {
        Plan {
            target,
            request: b"Beautiful is better than?".to_vec(),
            expect: b"Ugly.".to_vec(),
            conns: 1,
            new_conn: false,
            hold: 0,
            rate: None,
            timeout: Duration::from_millis(timeout_ms),
            duration: Duration::from_millis(duration_ms),
            requests: None,
            threads: 1,
        }
    }

    fn go(p: &Plan, conns: usize) -> (Shared, super::Share) {
        let shared = Shared::default();
        let start = Instant::now();
        let share = super::run(p, &shared, conns, start, start + p.duration);
        (shared, share)
    }

    fn errors(s: &Shared, k: ErrorKind) -> u64 {
        s.errors[k as usize].load(Ordering::Relaxed)
    }

    /// Reads one zen request (up to `?`).
    fn request(s: &mut std::net::TcpStream) -> bool {
        let mut b = [0u8; 1];
        loop {
            match s.read(&mut b) {
                Ok(1) if b[0] == b'?' => return true,
                Ok(1) => {}
                _ => return false,
            }
        }
    }

    #[test]
    fn a_reply_split_over_two_segments_is_one_correct_answer() {
        let addr = server(1, |mut s| {
            s.set_nodelay(true).unwrap();
            while request(&mut s) {
                s.write_all(b"Ug").unwrap();
                std::thread::sleep(Duration::from_millis(20));
                if s.write_all(b"ly.").is_err() {
                    return;
                }
            }
        });
        let mut p = plan(addr, 2000, 5000);
        p.requests = Some(3);
        let (shared, share) = go(&p, 1);
        assert_eq!(shared.ok.load(Ordering::Relaxed), 3);
        assert_eq!(shared.errors_total(), 0);
        assert_eq!(share.served, 1);
        // Each latency covers both halves.
        assert!(share.hist.min() >= 20_000, "{}", share.hist.min());
    }

    #[test]
    fn a_silent_server_is_a_timeout() {
        let addr = server(10, |mut s| {
            let mut b = [0u8; 64];
            while matches!(s.read(&mut b), Ok(n) if n > 0) {}
        });
        // Timeouts after 50 ms; a run of 300 ms holds at most 6 (fewer on a busy machine).
        let (shared, share) = go(&plan(addr, 50, 300), 1);
        let t = errors(&shared, ErrorKind::Timeout);
        assert!((1..=6).contains(&t), "{t}");
        assert_eq!(shared.ok.load(Ordering::Relaxed), 0);
        assert_eq!(share.served, 0);
    }

    #[test]
    fn a_request_cut_by_the_end_is_unfinished_not_a_timeout() {
        let addr = server(1, |mut s| {
            let mut b = [0u8; 64];
            while matches!(s.read(&mut b), Ok(n) if n > 0) {}
        });
        let (shared, _) = go(&plan(addr, 60_000, 100), 1);
        assert_eq!(errors(&shared, ErrorKind::Timeout), 0);
        assert_eq!(shared.unfinished.load(Ordering::Relaxed), 1);
    }

    #[test]
    fn a_fin_that_comes_with_the_reply_is_a_reset_on_the_next_request_not_a_timeout() {
        // One answer per connection, then a half-close, reading on (as the lab server does
        // after a bare message): the FIN follows the reply at once, nothing answers the next
        // request with a reset, and the kept connection's next request must see the FIN.
        let addr = server(2, |mut s| {
            // Corked, the FIN leaves on the reply's own segment: one edge for both.
            socket2::SockRef::from(&s).set_tcp_cork(true).unwrap();
            if request(&mut s) {
                let _ = s.write_all(b"Ugly.");
                let _ = s.shutdown(std::net::Shutdown::Write);
                let mut b = [0u8; 64];
                while matches!(s.read(&mut b), Ok(n) if n > 0) {}
            }
        });
        let mut p = plan(addr, 2_000, 60_000);
        p.requests = Some(2);
        let (shared, _) = go(&p, 1);
        assert_eq!(shared.ok.load(Ordering::Relaxed), 1);
        assert_eq!(errors(&shared, ErrorKind::Reset), 1);
        assert_eq!(errors(&shared, ErrorKind::Timeout), 0);
    }

    #[test]
    fn a_new_connection_per_request_serves_every_connection() {
        let addr = server(20, |mut s| {
            if request(&mut s) {
                let _ = s.write_all(b"Ugly.");
            }
        });
        let mut p = plan(addr, 2000, 5000);
        p.new_conn = true;
        p.requests = Some(20);
        let (shared, share) = go(&p, 4);
        assert_eq!(shared.ok.load(Ordering::Relaxed), 20);
        assert_eq!(shared.errors_total(), 0);
        assert_eq!(share.served, 4);
    }

    #[test]
    fn a_run_with_fewer_requests_than_connections_ends_when_they_are_answered() {
        let addr = server(10, |mut s| {
            while request(&mut s) {
                if s.write_all(b"Ugly.").is_err() {
                    return;
                }
            }
        });
        let mut p = plan(addr, 2_000, 20_000);
        p.requests = Some(5);
        let t = Instant::now();
        let (shared, share) = go(&p, 10);
        assert_eq!(shared.ok.load(Ordering::Relaxed), 5);
        assert_eq!(share.served, 5);
        // The connections that got no request are retired at once: the run does not wait
        // for its end (it did, when they were counted as live).
        assert!(t.elapsed() < p.duration, "{:?}", t.elapsed());
    }

    #[test]
    fn a_refused_connect_is_counted_and_retried_after_a_pause() {
        // A bound socket that does not listen (kept for the test): connects are refused.
        let sock =
            socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).unwrap();
        sock.bind(&SocketAddr::from(([127, 0, 0, 1], 0)).into())
            .unwrap();
        let addr = sock.local_addr().unwrap().as_socket().unwrap();
        let (shared, _) = go(&plan(addr, 1000, 100), 1);
        let refused = errors(&shared, ErrorKind::Refused);
        // At most one connect per millisecond: ~100 in 100 ms, never thousands.
        assert!((1..=150).contains(&refused), "{refused}");
    }
}
