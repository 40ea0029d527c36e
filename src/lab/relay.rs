//! Moving bytes between two TCP connections in both directions, for the proxy's relay mode:
//! zero-copy with `splice(2)` through a pipe per direction, or a copy loop through a buffer
//! when pipes are not available (out of file descriptors) or not wanted (`--no-splice`).
//!
//! The copy loop's buffer grows with the stream: a read that fills it doubles it, up to
//! [`COPY_MAX`], the part past [`COPY_BUF`] charged to the proxy's shared buffer budget
//! (`--buffer-budget`; when it is spent the buffer keeps its size). Large reads and writes
//! are what a bulk transfer through the proxy needs on loopback: the proxy, the sender and
//! the receiver share the CPUs, and every wake-up of the proxy costs a round of scheduling.
//!
//! Half-close is propagated: when one side sends FIN, the other side gets `shutdown(SHUT_WR)`
//! once everything before the FIN has been written, and the opposite direction keeps
//! flowing. An error on either side (RST) ends both. The relay ends when both directions
//! have seen EOF, on an error, or after `idle` with no byte moved either way.

use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use tokio::io::Interest;
use tokio::net::TcpStream;

use crate::lab::proxy::budget::{BufferBudget, FREE_PER_CONN, Lease};

/// Bytes moved by one relay, per direction.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Moved {
    /// Client to upstream.
    pub up: u64,
    /// Upstream to client.
    pub down: u64,
}

/// How a relay ended.
#[derive(Debug)]
pub enum Ended {
    /// Both sides closed their write direction.
    Closed(Moved),
    /// No byte moved for the idle timeout.
    Idle(Moved),
    /// A socket error (reset, broken pipe) on one side.
    Error(io::Error),
}

/// Size asked for each pipe (fcntl F_SETPIPE_SZ; capped by /proc/sys/fs/pipe-max-size,
/// 1 MiB by default, fs/pipe.c `pipe_set_size`).
const PIPE_SIZE: i32 = 1 << 20;
/// Buffer of the copy loop once a stream is bulk (not charged to the budget).
pub const COPY_BUF: usize = 256 * 1024;
/// Largest buffer of the copy loop (the part past [`COPY_BUF`] is charged to the budget).
///
/// Measured with scripts/bench-proxy's bulk client (2 GiB, one connection) through
/// scripts/ref/relay_epoll.c, three rounds each against direct in the same minute: a
/// 256 KiB buffer 0.50-0.64x direct, 1 MiB 0.68-0.80x, 2 MiB 0.74-0.77x, 4 MiB 0.73-1.02x,
/// 8 MiB 0.73-0.86x; splice through 1 MiB pipes 0.59-0.71x (64 KiB and 256 KiB pipes, a
/// 64 KiB splice cap, 4 MiB pipes and 4 MiB SO_RCVBUF/SO_SNDBUF no better).
pub const COPY_MAX: usize = 4 << 20;
/// First buffer of each direction; a read that fills it marks the stream as bulk.
const SMALL_BUF: usize = 8 * 1024;

/// A pipe used as the splice buffer of one direction.
struct Pipe {
    r: OwnedFd,
    w: OwnedFd,
    cap: usize,
}

impl Pipe {
    fn new() -> io::Result<Pipe> {
        let mut fds = [0 as RawFd; 2];
        // SAFETY: pipe2 writes two fds into the array on success.
        if unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_NONBLOCK | libc::O_CLOEXEC) } != 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: both fds were just created and are owned by nobody else.
        let (r, w) = unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) };
        // SAFETY: fcntl on our own pipe fd; failure keeps the default size (64 KiB).
        let got = unsafe { libc::fcntl(w.as_raw_fd(), libc::F_SETPIPE_SZ, PIPE_SIZE) };
        let cap = if got > 0 { got as usize } else { 65536 };
        Ok(Pipe { r, w, cap })
    }
}

fn splice(from: RawFd, to: RawFd, len: usize) -> io::Result<usize> {
    // SAFETY: plain syscall on fds we hold for the duration; null offsets (sockets, pipes).
    let n = unsafe {
        libc::splice(
            from,
            std::ptr::null_mut(),
            to,
            std::ptr::null_mut(),
            len,
            libc::SPLICE_F_MOVE | libc::SPLICE_F_NONBLOCK,
        )
    };
    if n < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(n as usize)
    }
}

fn shutdown_write(s: &TcpStream) {
    // SAFETY: shutdown on a socket fd we hold; an error (peer already gone) is harmless.
    unsafe { libc::shutdown(s.as_raw_fd(), libc::SHUT_WR) };
}

/// Which directions have seen EOF. The direction that ends second does not half-close its
/// destination: the relay closes both sockets right after, and close() sends the same FIN
/// (one shutdown(2) less per connection; neither socket has unread bytes by then, so the
/// close is not a reset).
#[derive(Default)]
struct Ends {
    up: AtomicBool,
    down: AtomicBool,
}

/// Marks the direction `mine` as ended and half-closes `dst` unless the other one ended first.
fn end_direction(dst: &TcpStream, mine: &AtomicBool, other: &AtomicBool) {
    mine.store(true, Ordering::Relaxed);
    if !other.load(Ordering::Relaxed) {
        shutdown_write(dst);
    }
}

/// Shared "last byte moved" clock of a relay, in ms since its start.
struct Clock {
    start: Instant,
    last_ms: AtomicU64,
}

impl Clock {
    fn touch(&self) {
        let ms = self.start.elapsed().as_millis() as u64;
        self.last_ms.store(ms, Ordering::Relaxed);
    }

    fn idle_for(&self) -> Duration {
        let now = self.start.elapsed().as_millis() as u64;
        Duration::from_millis(now.saturating_sub(self.last_ms.load(Ordering::Relaxed)))
    }
}

/// One direction with splice: socket → pipe → socket. Returns at EOF.
///
/// While the pipe holds bytes the destination has not taken yet, more is spliced in from the
/// source (up to the pipe's size) before waiting, so the two sockets work in parallel instead
/// of strictly "fill, then drain". Those top-ups are raw syscalls outside tokio's readiness
/// tracking: an EAGAIN there may mean "pipe full" rather than "socket empty", and must not
/// clear the source's read readiness (that would wait for an edge that already came).
async fn pump_splice(
    src: &TcpStream,
    dst: &TcpStream,
    clock: &Clock,
    pipe: Pipe,
    total: &AtomicU64,
    ends: (&AtomicBool, &AtomicBool),
) -> io::Result<()> {
    let mut held = 0usize;
    let mut eof = false;
    loop {
        if held == 0 {
            if eof {
                end_direction(dst, ends.0, ends.1);
                return Ok(());
            }
            // The pipe is empty here, so EAGAIN from socket → pipe means "socket not readable".
            src.readable().await?;
            match src.try_io(Interest::READABLE, || {
                splice(src.as_raw_fd(), pipe.w.as_raw_fd(), pipe.cap)
            }) {
                Ok(0) => eof = true,
                Ok(n) => {
                    held = n;
                    clock.touch();
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                Err(e) => return Err(e),
            }
            continue;
        }
        dst.writable().await?;
        match dst.try_io(Interest::WRITABLE, || {
            splice(pipe.r.as_raw_fd(), dst.as_raw_fd(), held)
        }) {
            Ok(m) => {
                held -= m;
                total.fetch_add(m as u64, Ordering::Relaxed);
                clock.touch();
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
            Err(e) => return Err(e),
        }
        if !eof && held > 0 && held < pipe.cap {
            match splice(src.as_raw_fd(), pipe.w.as_raw_fd(), pipe.cap - held) {
                Ok(0) => eof = true,
                Ok(n) => {
                    held += n;
                    clock.touch();
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                Err(e) => return Err(e),
            }
        }
    }
}

/// One direction, starting with a small user-space buffer. Request/reply traffic stays
/// there (no pipes to create: two pipe2 + F_SETPIPE_SZ per connection cost more than the
/// copies they save on a 4-byte reply). When a read fills the buffer the stream is bulk:
/// with `use_splice` the rest goes through a pipe with splice(2), otherwise the buffer grows
/// to [`COPY_BUF`], then doubles at each full read up to [`COPY_MAX`] as far as `lease`
/// covers.
async fn pump(
    src: &TcpStream,
    dst: &TcpStream,
    clock: &Clock,
    use_splice: bool,
    total: &AtomicU64,
    ends: (&AtomicBool, &AtomicBool),
    mut lease: Lease<'_>,
) -> io::Result<()> {
    let mut buf = vec![0u8; SMALL_BUF];
    loop {
        let n = loop {
            src.readable().await?;
            match src.try_read(&mut buf) {
                Ok(n) => break n,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => continue,
                Err(e) => return Err(e),
            }
        };
        if n == 0 {
            end_direction(dst, ends.0, ends.1);
            return Ok(());
        }
        // A read shorter than the buffer may have stopped at the sender's FIN: look before
        // writing (see `read_behind`), so that the bytes and the FIN can leave in one segment.
        let (n, behind) = if n < buf.len() {
            read_behind(src, &mut buf, n)
        } else {
            (n, Behind::Open)
        };
        let eof = matches!(behind, Behind::Eof);
        // MSG_MORE holds the last bytes back for the FIN that `end_direction` sends next
        // (tcp_send_fin puts the FIN on the unsent segment). The direction that ends second
        // does not half-close (the close follows), so it sends as usual.
        let more = eof && !ends.1.load(Ordering::Relaxed);
        clock.touch();
        let mut off = 0;
        while off < n {
            dst.writable().await?;
            match dst.try_io(Interest::WRITABLE, || send(dst, &buf[off..n], more)) {
                Ok(m) => {
                    off += m;
                    total.fetch_add(m as u64, Ordering::Relaxed);
                    clock.touch();
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => continue,
                Err(e) => return Err(e),
            }
        }
        match behind {
            Behind::Open => {}
            Behind::Eof => {
                end_direction(dst, ends.0, ends.1);
                return Ok(());
            }
            // The bytes before the error are delivered, as when the next read meets it.
            Behind::Failed(e) => return Err(e),
        }
        if n == buf.len() && buf.len() < COPY_MAX {
            if buf.len() < COPY_BUF {
                // Without a pipe (EMFILE/ENFILE from pipe2) the copy loop carries on.
                if use_splice && let Ok(pipe) = Pipe::new() {
                    return pump_splice(src, dst, clock, pipe, total, ends).await;
                }
                buf = vec![0u8; COPY_BUF];
            } else {
                let want = (buf.len() * 2).min(COPY_MAX);
                if lease.cover(charged(want)) {
                    // Everything read has been written: the old bytes need not be kept.
                    buf.clear();
                    buf.shrink_to_fit();
                    buf.resize(want, 0);
                }
            }
        }
    }
}

/// What a copy buffer of `len` bytes asks of a [`Lease`]: the part past [`COPY_BUF`] (the
/// lease's first [`FREE_PER_CONN`] bytes are free).
fn charged(len: usize) -> usize {
    len.saturating_sub(COPY_BUF) + FREE_PER_CONN
}

/// After a short read of `n` bytes into `buf`: one more non-blocking `recv` into the rest of
/// the buffer. Returns the bytes now in `buf` and what lies behind them.
///
/// A request/reply peer (a lab server answers and closes) has usually sent its FIN by the time
/// its answer is read; knowing it before writing lets the answer and the FIN go out as one
/// segment (haproxy does the same: MSG_MORE, then shutdown). Measured with nstat in a private
/// namespace: 20 TCP segments per relayed request -> 18 (haproxy 18.9). The
/// `recv` is the one the copy loop would make next anyway: when it finds the socket empty
/// (EAGAIN), the source's readiness is cleared as tokio would, so no read is added.
fn read_behind(src: &TcpStream, buf: &mut [u8], n: usize) -> (usize, Behind) {
    // SAFETY: recv into the unused tail of a buffer we own, on a socket we hold.
    let m = unsafe {
        libc::recv(
            src.as_raw_fd(),
            buf[n..].as_mut_ptr().cast(),
            buf.len() - n,
            libc::MSG_DONTWAIT,
        )
    };
    if m > 0 {
        return (n + m as usize, Behind::Open);
    }
    if m == 0 {
        return (n, Behind::Eof);
    }
    let e = io::Error::last_os_error();
    match e.kind() {
        io::ErrorKind::WouldBlock => {
            // Tell tokio the socket is drained (no syscall): the next read waits for an edge.
            let _ = src.try_io(Interest::READABLE, || {
                Err::<(), _>(io::Error::from(io::ErrorKind::WouldBlock))
            });
            (n, Behind::Open)
        }
        io::ErrorKind::Interrupted => (n, Behind::Open),
        // A reset is reported once (sk_err is cleared by reading it): keep it.
        _ => (n, Behind::Failed(e)),
    }
}

/// What [`read_behind`] found after the bytes read.
enum Behind {
    /// Nothing more yet, or more bytes: the stream goes on.
    Open,
    /// The sender's FIN.
    Eof,
    /// A socket error (reset), to report once the bytes are written.
    Failed(io::Error),
}

/// `send(2)` without blocking or SIGPIPE; `more` adds MSG_MORE.
fn send(s: &TcpStream, buf: &[u8], more: bool) -> io::Result<usize> {
    let mut flags = libc::MSG_NOSIGNAL | libc::MSG_DONTWAIT;
    if more {
        flags |= libc::MSG_MORE;
    }
    // SAFETY: send from a buffer we own, on a socket we hold.
    let n = unsafe { libc::send(s.as_raw_fd(), buf.as_ptr().cast(), buf.len(), flags) };
    if n < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(n as usize)
    }
}

/// True for EMFILE/ENFILE (out of file descriptors, per process or system-wide).
pub fn is_fd_exhaustion(e: &io::Error) -> bool {
    matches!(e.raw_os_error(), Some(libc::EMFILE) | Some(libc::ENFILE))
}

/// Relays between `client` and `upstream` until both directions closed, an error, or `idle`
/// without traffic. Uses splice(2) when `use_splice` (falling back to copying when a pipe
/// cannot be made); the copy loop's buffers past [`COPY_BUF`] are charged to `budget`.
pub async fn relay(
    client: &TcpStream,
    upstream: &TcpStream,
    idle: Duration,
    use_splice: bool,
    budget: &BufferBudget,
) -> Ended {
    let clock = Clock {
        start: Instant::now(),
        last_ms: AtomicU64::new(0),
    };
    let (up_bytes, down_bytes) = (AtomicU64::new(0), AtomicU64::new(0));
    let ends = Ends::default();
    let up = pump(
        client,
        upstream,
        &clock,
        use_splice,
        &up_bytes,
        (&ends.up, &ends.down),
        budget.lease(),
    );
    let down = pump(
        upstream,
        client,
        &clock,
        use_splice,
        &down_bytes,
        (&ends.down, &ends.up),
        budget.lease(),
    );
    tokio::pin!(up, down);
    let moved = || Moved {
        up: up_bytes.load(Ordering::Relaxed),
        down: down_bytes.load(Ordering::Relaxed),
    };
    let (mut up_done, mut down_done) = (false, false);
    loop {
        let wait = idle.saturating_sub(clock.idle_for());
        tokio::select! {
            r = &mut up, if !up_done => match r {
                Ok(()) => up_done = true,
                Err(e) => return Ended::Error(e),
            },
            r = &mut down, if !down_done => match r {
                Ok(()) => down_done = true,
                Err(e) => return Ended::Error(e),
            },
            _ = tokio::time::sleep(wait) => {
                if clock.idle_for() >= idle {
                    return Ended::Idle(moved());
                }
            }
        }
        if up_done && down_done {
            return Ended::Closed(moved());
        }
    }
}

#[cfg(test)]
mod tests {
    use std::io::{Read, Write};
    use std::net::{Shutdown, TcpListener};

    use super::*;

    /// A connected pair: (our std end, the relay's tokio end).
    fn pair() -> (std::net::TcpStream, TcpStream) {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let ours = std::net::TcpStream::connect(l.local_addr().unwrap()).unwrap();
        let (theirs, _) = l.accept().unwrap();
        theirs.set_nonblocking(true).unwrap();
        (ours, TcpStream::from_std(theirs).unwrap())
    }

    #[tokio::test]
    async fn issue_10_bulk_copy_buffers_grow_against_the_budget_and_give_it_back() {
        let (mut sender, client) = pair();
        let (mut receiver, upstream) = pair();
        let budget = BufferBudget::new(64 << 20);
        const TOTAL: usize = 32 << 20;
        let writer = std::thread::spawn(move || {
            let chunk = vec![0x5au8; 1 << 20];
            for _ in 0..TOTAL >> 20 {
                sender.write_all(&chunk).unwrap();
            }
            sender.shutdown(Shutdown::Write).unwrap();
            let mut rest = Vec::new();
            sender.read_to_end(&mut rest).unwrap();
        });
        let (reader, ended) = {
            let relay = relay(&client, &upstream, Duration::from_secs(30), false, &budget);
            tokio::pin!(relay);
            // The receiver does not read yet: the relay's reads fill its buffer, which grows.
            let grown = tokio::time::timeout(Duration::from_secs(10), async {
                loop {
                    tokio::select! {
                        _ = &mut relay => panic!("the relay ended before the receiver read"),
                        () = tokio::time::sleep(Duration::from_millis(5)) => {}
                    }
                    if budget.used() > 0 {
                        break budget.used();
                    }
                }
            })
            .await
            .expect("the copy buffer never grew past its free 256 KiB");
            assert!(grown <= COPY_MAX - COPY_BUF, "charged {grown}");
            let reader = std::thread::spawn(move || {
                let mut sink = vec![0u8; 1 << 20];
                let mut got = 0;
                loop {
                    match receiver.read(&mut sink) {
                        Ok(0) | Err(_) => break,
                        Ok(n) => got += n,
                    }
                }
                drop(receiver);
                got
            });
            (reader, relay.await)
        };
        match ended {
            Ended::Closed(m) => assert_eq!(m.up, TOTAL as u64),
            other => panic!("relay ended with {other:?}"),
        }
        drop((client, upstream));
        assert_eq!(reader.join().unwrap(), TOTAL);
        writer.join().unwrap();
        assert_eq!(
            budget.used(),
            0,
            "the leases are given back when the relay ends"
        );
    }
}
