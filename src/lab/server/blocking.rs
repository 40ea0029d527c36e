//! The blocking architectures of the lab server: `single` (the book's iterative loop) and
//! `threaded` (a thread per connection, bounded). Plain std sockets; the accept loop and each
//! connection wake every [`TICK`] to notice a shutdown request, so no signal has to interrupt
//! a blocked syscall.
//!
//! Connection threads come from a [`Pool`]: a thread serves one connection at a time and then
//! waits for the next one, so the accept loop does not pay clone(2) (and the thread its stack
//! set-up and teardown) per connection. Measured under a reconnect storm (2,000 clients that
//! are evicted and reconnect at once, `scripts/hostile-load`), spawning a thread per admission
//! was 40% of the accept thread's time (perf), and a normal client's p99 was 145-206 ms.
//! The pool grows on demand up to `--max-conns` + [`SPARE_WORKERS`] threads (evicted
//! connections finish on theirs while their successors start) and never shrinks; the accept
//! thread only accepts, admits and hands the socket over (socket options and the `accepted`
//! line are the worker's).

use std::collections::VecDeque;
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

/// Threads beyond `--max-conns` the pool may start: an evicted connection still ends on its
/// thread for a moment while its successor is handed over.
const SPARE_WORKERS: usize = 64;

/// One accepted connection, handed from the accept loop to a worker.
struct Job {
    // Declared first so it drops first: the slot forgets the fd before the socket closes.
    ticket: Option<Ticket>,
    stream: TcpStream,
    peer: SocketAddr,
}

/// What every worker shares.
struct Ctx {
    opts: Arc<ServeOpts>,
    active: Arc<Active>,
    stop: Arc<AtomicBool>,
    abort: Arc<AtomicBool>,
}

#[derive(Default)]
struct Queue {
    jobs: VecDeque<Job>,
    /// Workers waiting for a job.
    idle: usize,
    /// Workers started.
    workers: usize,
    closed: bool,
}

/// Reusable connection threads (see the module doc).
struct Pool {
    queue: Mutex<Queue>,
    ready: Condvar,
    max_workers: usize,
    ctx: Ctx,
}

impl Pool {
    fn lock(&self) -> std::sync::MutexGuard<'_, Queue> {
        self.queue.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Queues `job` for an idle worker, starting a new one when none is idle and the pool
    /// is below its bound (otherwise the job waits for a worker to finish its connection).
    ///
    /// # Errors
    /// The first worker cannot be started (the job is dropped: its socket closed).
    fn submit(self: &Arc<Self>, job: Job) -> io::Result<()> {
        let mut q = self.lock();
        q.jobs.push_back(job);
        if q.idle >= q.jobs.len() {
            drop(q);
            self.ready.notify_one();
            return Ok(());
        }
        if q.workers >= self.max_workers {
            return Ok(());
        }
        q.workers += 1;
        drop(q);
        let pool = self.clone();
        let started = std::thread::Builder::new()
            .name("netkit-conn".into())
            .spawn(move || pool.work());
        match started {
            Ok(_) => Ok(()),
            Err(e) => {
                let mut q = self.lock();
                q.workers -= 1;
                if q.workers == 0 {
                    // Nobody would ever take the queued jobs: close them.
                    let dropped = q.jobs.len();
                    q.jobs.clear();
                    drop(q);
                    self.ctx.active.add(-(dropped as isize));
                    return Err(e);
                }
                // The running workers take the job when they finish theirs.
                Ok(())
            }
        }
    }

    /// A worker: one connection after another until the pool is closed.
    fn work(&self) {
        loop {
            let job = {
                let mut q = self.lock();
                loop {
                    if let Some(job) = q.jobs.pop_front() {
                        break job;
                    }
                    if q.closed {
                        q.workers -= 1;
                        return;
                    }
                    q.idle += 1;
                    q = self.ready.wait(q).unwrap_or_else(|p| p.into_inner());
                    q.idle -= 1;
                }
            };
            serve_job(job, &self.ctx);
        }
    }

    /// Lets idle workers end; busy ones end after their connection.
    fn close(&self) {
        self.lock().closed = true;
        self.ready.notify_all();
    }
}

/// Runs one connection on a worker thread and logs how it ended.
fn serve_job(job: Job, ctx: &Ctx) {
    let Job {
        mut stream,
        peer,
        ticket,
    } = job;
    let o = &ctx.opts;
    let end = match sockopt::apply_to(&stream, &o.sock, peer) {
        Ok(()) => {
            o.log.emit(&Status::Accepted { peer });
            connection(&mut stream, peer, o, &ctx.stop, &ctx.abort, ticket.as_ref())
        }
        Err(e) => End::Error(e.source),
    };
    let end = match &ticket {
        Some(t) if t.evicted() => End::Evicted,
        _ => end,
    };
    // The slot forgets the fd before the socket is closed.
    drop(ticket);
    drop(stream);
    o.log.emit(&end.status(peer));
    ctx.active.add(-1);
}

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
    let pool = Arc::new(Pool {
        queue: Mutex::new(Queue::default()),
        ready: Condvar::new(),
        max_workers: if single { 1 } else { max + SPARE_WORKERS },
        ctx: Ctx {
            opts: opts.clone(),
            active: active.clone(),
            stop: stop.clone(),
            abort: abort.clone(),
        },
    });
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
        active.add(1);
        let job = Job {
            stream,
            peer,
            ticket,
        };
        if let Err(e) = pool.submit(job) {
            // The queued sockets were closed with their jobs.
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
    pool.close();
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
