//! The blocking architectures of the lab server: `single` (the book's iterative loop) and
//! `threaded` (a thread per connection, bounded). Plain std sockets; the accept loop and each
//! connection wake every [`TICK`] to notice a shutdown request, so no signal has to interrupt
//! a blocked syscall.

use std::io::{self, Read, Write};
use std::net::{Shutdown as Half, SocketAddr, TcpListener, TcpStream};
use std::os::fd::AsRawFd;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use super::{Backoff, End, ServeOpts, refused_status};
use crate::cli::run::Mode;
use crate::lab::admission::{Admission, Ticket};
use crate::lab::protocol::Session;
use crate::lab::status::Status;
use crate::sockopt;

/// How often blocked calls wake up to check for shutdown.
const TICK: Duration = Duration::from_millis(200);

/// Open connections and the condition variable the accept loop and the drain wait on.
#[derive(Default)]
struct Active {
    count: Mutex<usize>,
    changed: Condvar,
}

impl Active {
    fn count(&self) -> usize {
        *self.count.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn add(&self, d: isize) {
        let mut c = self.count.lock().unwrap_or_else(|p| p.into_inner());
        *c = c.saturating_add_signed(d);
        self.changed.notify_all();
    }

    /// Waits up to `d` for the count to change; returns the count.
    fn wait(&self, d: Duration) -> usize {
        let c = self.count.lock().unwrap_or_else(|p| p.into_inner());
        let (c, _) = self
            .changed
            .wait_timeout(c, d)
            .unwrap_or_else(|p| p.into_inner());
        *c
    }
}

/// Runs the accept loop until `stop`, then drains. Called on a dedicated thread.
pub(super) fn serve(
    listener: TcpListener,
    opts: ServeOpts,
    stop: Arc<AtomicBool>,
) -> io::Result<()> {
    let opts = Arc::new(opts);
    let active = Arc::new(Active::default());
    let abort = Arc::new(AtomicBool::new(false));
    // `single` is the book's loop: one connection at a time, the next one is accepted only
    // when it is over. It runs as the threaded loop with a cap of one, so the accept thread
    // can still close the listener the moment shutdown is asked for.
    let single = opts.mode == Mode::Single;
    let max = if single { 1 } else { opts.max_conns.max(1) };
    // `threaded` admits through the shared policy (evict the idlest at the cap, per-client
    // limit, first-request deadline); `single` keeps the book's behaviour on purpose.
    let adm = (!single).then(|| Admission::new(opts.limits()));
    let mut backoff = Backoff::default();
    let mut at_cap = false;
    while !stop.load(Ordering::SeqCst) {
        match &adm {
            None if active.count() >= max => {
                // Back-pressure: stop accepting; clients wait in the listen queue.
                active.wait(TICK);
                continue;
            }
            None => {}
            Some(adm) => {
                let full = adm.is_full();
                if full && !at_cap {
                    opts.log.emit(&Status::AtCapacity { max_conns: max });
                }
                at_cap = full;
                if !adm.room_blocking(TICK) {
                    continue;
                }
            }
        }
        if !readable(&listener, TICK)? {
            continue;
        }
        let (stream, peer) = match listener.accept() {
            Ok(a) => a,
            Err(e) => {
                if let Some(pause) = backoff.failure(&e, &opts.log) {
                    sleep_unless(&stop, pause);
                }
                continue;
            }
        };
        backoff.success(&opts.log);
        let ticket = match &adm {
            None => None,
            Some(adm) => match adm.admit(peer.ip(), stream.as_raw_fd()) {
                Ok((t, _)) => Some(t),
                Err(why) => {
                    opts.log.emit(&refused_status(peer, Some(why)));
                    continue;
                }
            },
        };
        if let Err(e) = sockopt::apply_to(&stream, &opts.sock, peer) {
            opts.log.emit(&End::Error(e.source).status(peer));
            continue;
        }
        opts.log.emit(&Status::Accepted { peer });
        active.add(1);
        let (o, a, s, ab) = (opts.clone(), active.clone(), stop.clone(), abort.clone());
        let spawned = std::thread::Builder::new()
            .name(format!("netkit-conn-{peer}"))
            .spawn(move || {
                let mut stream = stream;
                let end = connection(&mut stream, peer, &o, &s, &ab, ticket.as_ref());
                let end = match &ticket {
                    Some(t) if t.evicted() => End::Evicted,
                    _ => end,
                };
                // The slot forgets the fd before the socket is closed.
                drop(ticket);
                drop(stream);
                o.log.emit(&end.status(peer));
                a.add(-1);
            });
        if let Err(e) = spawned {
            // The stream moved into the failed closure and is closed with it.
            active.add(-1);
            opts.log.emit(&End::Error(e).status(peer));
        }
    }
    drop(listener);
    let in_flight = active.count();
    opts.log.emit(&Status::ShuttingDown {
        in_flight,
        drain_s: opts.drain.as_secs_f64(),
    });
    let deadline = Instant::now() + opts.drain;
    let mut left = in_flight;
    while left > 0 {
        let now = Instant::now();
        if now >= deadline {
            break;
        }
        left = active.wait((deadline - now).min(TICK));
    }
    abort.store(true, Ordering::SeqCst);
    opts.log.emit(&Status::Stopped { aborted: left });
    Ok(())
}

fn sleep_unless(stop: &AtomicBool, d: Duration) {
    let until = Instant::now() + d;
    while !stop.load(Ordering::SeqCst) {
        let now = Instant::now();
        if now >= until {
            return;
        }
        std::thread::sleep((until - now).min(TICK));
    }
}

/// poll(2) for POLLIN on the listener, up to `d`.
fn readable(l: &TcpListener, d: Duration) -> io::Result<bool> {
    let mut fds = [libc::pollfd {
        fd: l.as_raw_fd(),
        events: libc::POLLIN,
        revents: 0,
    }];
    // SAFETY: `fds` is a valid array of one pollfd for the duration of the call, and the fd
    // belongs to `l`, which outlives it.
    let n = unsafe { libc::poll(fds.as_mut_ptr(), 1, d.as_millis() as libc::c_int) };
    if n < 0 {
        let e = io::Error::last_os_error();
        return if e.kind() == io::ErrorKind::Interrupted {
            Ok(false)
        } else {
            Err(e)
        };
    }
    Ok(n > 0)
}

/// One blocking connection, as in the async mode; reads wake every [`TICK`] to check idle
/// time and shutdown.
fn connection(
    stream: &mut TcpStream,
    peer: SocketAddr,
    opts: &ServeOpts,
    stop: &AtomicBool,
    abort: &AtomicBool,
    ticket: Option<&Ticket>,
) -> End {
    let _ = peer;
    let mut session = Session::new(opts.protocol);
    let mut buf = vec![0u8; 16 * 1024];
    let mut last = Instant::now();
    // Until the first reply, the first-request deadline applies (threaded mode).
    let first_due = ticket.map(|t| t.first_request_due().into_std());
    let mut answered = false;
    let mut timeout = None;
    if let Err(e) = stream.set_write_timeout(Some(opts.idle_timeout)) {
        return End::Error(e);
    }
    loop {
        if abort.load(Ordering::SeqCst) {
            return End::Shutdown;
        }
        if stop.load(Ordering::SeqCst) && !session.has_pending() {
            return End::Shutdown;
        }
        let want = TICK.min(opts.idle_timeout);
        if timeout != Some(want) {
            if let Err(e) = stream.set_read_timeout(Some(want)) {
                return End::Error(e);
            }
            timeout = Some(want);
        }
        let mut eof = false;
        let out = match stream.read(&mut buf) {
            Ok(0) => {
                eof = true;
                session.eof()
            }
            Ok(n) => {
                last = Instant::now();
                if let Some(t) = ticket {
                    t.touch();
                }
                session.feed(&buf[..n])
            }
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                ) =>
            {
                if !answered && first_due.is_some_and(|d| Instant::now() >= d) {
                    return End::FirstRequest;
                } else if last.elapsed() >= opts.idle_timeout {
                    return End::Idle;
                } else {
                    continue;
                }
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return End::Error(e),
        };
        answered |= !out.reply.is_empty();
        for message in out.received {
            opts.log.emit(&Status::Received { peer, message });
        }
        if let Err(e) = stream.write_all(&out.reply) {
            return if matches!(
                e.kind(),
                io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
            ) {
                End::Idle
            } else {
                End::Error(e)
            };
        }
        if out.close {
            let _ = stream.shutdown(Half::Write);
            if let Some(part) = out.incomplete {
                return End::Incomplete(super::incomplete(&part));
            }
            if out.bare && !eof {
                // As in the async mode: count what the client still sends, then close.
                let until = Instant::now() + opts.idle_timeout.min(super::LINGER);
                while session.trailing() < super::MAX_TRAILING && !abort.load(Ordering::SeqCst) {
                    let left = until.saturating_duration_since(Instant::now());
                    if left.is_zero() || stream.set_read_timeout(Some(left.min(TICK))).is_err() {
                        break;
                    }
                    match stream.read(&mut buf) {
                        Ok(0) => break,
                        Ok(n) => drop(session.feed(&buf[..n])),
                        Err(e)
                            if matches!(
                                e.kind(),
                                io::ErrorKind::WouldBlock
                                    | io::ErrorKind::TimedOut
                                    | io::ErrorKind::Interrupted
                            ) => {}
                        Err(_) => break,
                    }
                }
                if session.trailing() > 0 {
                    return End::Incomplete(super::trailing(session.trailing()));
                }
            }
            return if eof { End::Eof } else { End::Done };
        }
    }
}
