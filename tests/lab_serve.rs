//! The library entry point `lab::server::serve` on an already-bound listener (mini-redis
//! style), with a manual shutdown handle. The async server's connections live on event
//! loops of their own threads with the real clock (not tokio's, so a paused test clock does
//! not reach them): the timeouts here are short ones set in the options, and only their
//! lower bound (nothing closes early) is checked, with generous limits for "it happened".

use std::time::Duration;

use netkit::cli::run::Mode;
use netkit::lab::protocol::Kind;
use netkit::lab::server::{ServeOpts, serve};
use netkit::lab::shutdown::Shutdown;
use std::time::Instant;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

fn bind() -> (std::net::TcpListener, std::net::SocketAddr) {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let a = l.local_addr().unwrap();
    (l, a)
}

async fn ask(c: &mut TcpStream, q: &[u8]) -> Vec<u8> {
    c.write_all(q).await.unwrap();
    let mut got = Vec::new();
    let mut buf = [0u8; 64];
    while got.last() != Some(&b'.') {
        let n = c.read(&mut buf).await.unwrap();
        if n == 0 {
            break;
        }
        got.extend_from_slice(&buf[..n]);
    }
    got
}

/// Generous bound for "the server did it" (never a timing claim).
const EVENTUALLY: Duration = Duration::from_secs(30);

#[test]
fn the_default_idle_timeout_is_a_minute_and_the_drain_five_seconds() {
    let o = ServeOpts::new(Kind::Zen, Mode::Async);
    assert_eq!(o.idle_timeout, Duration::from_secs(60));
    assert_eq!(o.drain, Duration::from_secs(5));
}

#[tokio::test]
async fn silent_client_is_closed_after_the_idle_timeout() {
    let (l, addr) = bind();
    let (tx, sd) = Shutdown::manual();
    let mut opts = ServeOpts::new(Kind::Zen, Mode::Async);
    opts.idle_timeout = Duration::from_secs(2);
    let server = tokio::spawn(serve(l, opts, sd));
    let mut c = TcpStream::connect(addr).await.unwrap();
    assert_eq!(ask(&mut c, b"Beautiful is better than?").await, b"Ugly.");
    let t = Instant::now();
    let mut buf = [0u8; 8];
    let n = tokio::time::timeout(EVENTUALLY, c.read(&mut buf))
        .await
        .expect("closed by the idle timeout")
        .unwrap();
    assert_eq!(n, 0);
    // Idle time counts from the server's last read, a moment before our clock started (up
    // to a second before it on a loaded machine: only "not closed early" is checked).
    let waited = t.elapsed();
    assert!(waited >= Duration::from_secs(1), "{waited:?}");
    tx.send(true).unwrap();
    tokio::time::timeout(EVENTUALLY, server)
        .await
        .expect("serve returns")
        .unwrap()
        .unwrap();
}

#[tokio::test]
async fn shutdown_answers_the_request_in_flight_and_cuts_off_after_the_drain() {
    let (l, addr) = bind();
    let (tx, sd) = Shutdown::manual();
    let mut opts = ServeOpts::new(Kind::Zen, Mode::Async);
    // Longer than the drain, so the drain (not the first-request deadline) cuts `stuck`.
    opts.first_request = Duration::from_secs(60);
    opts.drain = Duration::from_secs(1);
    let server = tokio::spawn(serve(l, opts, sd));
    let mut finishing = TcpStream::connect(addr).await.unwrap();
    let mut stuck = TcpStream::connect(addr).await.unwrap();
    let mut idle = TcpStream::connect(addr).await.unwrap();
    finishing.write_all(b"Simple is").await.unwrap();
    stuck.write_all(b"Explicit").await.unwrap();
    assert_eq!(ask(&mut idle, b"Beautiful is better than?").await, b"Ugly.");
    // The partial requests are in the server's receive queues (loopback delivers them
    // within write()); the drain reads what has arrived before it decides which
    // connections are mid-request, so it does not depend on the server having read them.
    // The pause only makes that the less travelled path.
    tokio::time::sleep(Duration::from_millis(50)).await;
    let t = Instant::now();
    tx.send(true).unwrap();
    // An idle connection is closed at once; the one mid-request gets its answer.
    let mut buf = [0u8; 8];
    assert_eq!(idle.read(&mut buf).await.unwrap(), 0);
    assert_eq!(ask(&mut finishing, b" better than?").await, b"Complex.");
    // New clients are refused: the listener is closed.
    assert!(TcpStream::connect(addr).await.is_err());
    // The one that never finishes is cut off when the drain ends, and serve returns.
    tokio::time::timeout(EVENTUALLY, server)
        .await
        .expect("serve returns")
        .unwrap()
        .unwrap();
    let took = t.elapsed();
    assert!(took >= Duration::from_millis(900), "{took:?}");
    assert_eq!(stuck.read(&mut buf).await.unwrap_or(0), 0);
}

#[tokio::test]
async fn threaded_serve_stops_on_the_manual_handle() {
    let (l, addr) = bind();
    let (tx, sd) = Shutdown::manual();
    let mut opts = ServeOpts::new(Kind::Echo, Mode::Threaded);
    opts.max_conns = 4;
    let server = tokio::spawn(serve(l, opts, sd));
    let mut c = TcpStream::connect(addr).await.unwrap();
    c.write_all(b"ping.").await.unwrap();
    let mut buf = [0u8; 5];
    c.read_exact(&mut buf).await.unwrap();
    assert_eq!(&buf, b"ping.");
    drop(c);
    tx.send(true).unwrap();
    tokio::time::timeout(Duration::from_secs(5), server)
        .await
        .expect("serve returns")
        .unwrap()
        .unwrap();
}

/// Runs `serve` on a runtime of its own (the test drives blocking std sockets).
fn start(opts: ServeOpts) -> (std::net::SocketAddr, tokio::runtime::Runtime, Stop) {
    let (l, addr) = bind();
    let (tx, sd) = Shutdown::manual();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let server = rt.spawn(serve(l, opts, sd));
    (addr, rt, Stop { tx, server })
}

struct Stop {
    tx: tokio::sync::watch::Sender<bool>,
    server: tokio::task::JoinHandle<std::io::Result<()>>,
}

impl Stop {
    fn stop(self, rt: &tokio::runtime::Runtime) {
        self.tx.send(true).unwrap();
        rt.block_on(async { tokio::time::timeout(EVENTUALLY, self.server).await })
            .expect("serve returns")
            .unwrap()
            .unwrap();
    }
}

/// A std client whose receive buffer is small, so the server's replies back up quickly.
fn small_window_client(addr: std::net::SocketAddr) -> std::net::TcpStream {
    let s = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).unwrap();
    s.set_recv_buffer_size(4096).unwrap();
    s.connect(&addr.into()).unwrap();
    let s: std::net::TcpStream = s.into();
    s.set_read_timeout(Some(EVENTUALLY)).unwrap();
    s
}

fn std_ask(addr: std::net::SocketAddr, q: &[u8]) -> Vec<u8> {
    use std::io::{Read, Write};
    let mut c = std::net::TcpStream::connect(addr).unwrap();
    c.set_read_timeout(Some(EVENTUALLY)).unwrap();
    c.write_all(q).unwrap();
    let mut got = Vec::new();
    let mut buf = [0u8; 64];
    while got.last() != Some(&b'.') {
        let n = c.read(&mut buf).unwrap();
        if n == 0 {
            break;
        }
        got.extend_from_slice(&buf[..n]);
    }
    got
}

#[test]
fn a_client_that_reads_its_replies_late_gets_every_one_and_others_are_served_meanwhile() {
    use std::io::{Read, Write};
    let mut opts = ServeOpts::new(Kind::Zen, Mode::Async);
    // A small send buffer (no autotuning) and a small client window: 8 MB of answers back
    // up within the first few thousand, and the server's writes to this client wait for room.
    opts.sock.sndbuf = Some(4096);
    let (addr, rt, stop) = start(opts);
    // 1,000,000 pipelined questions (22 MB).
    const N: usize = 1_000_000;
    let q = b"Simple is better than?";
    let mut slow = small_window_client(addr);
    let mut w = slow.try_clone().unwrap();
    let writer = std::thread::spawn(move || {
        let chunk: Vec<u8> = q.repeat(10_000);
        for _ in 0..N / 10_000 {
            w.write_all(&chunk).unwrap();
        }
    });
    // While that client's replies back up, the server answers everyone else.
    std::thread::sleep(Duration::from_millis(100));
    for _ in 0..3 {
        assert_eq!(std_ask(addr, b"Beautiful is better than?"), b"Ugly.");
    }
    let want = N * b"Complex.".len();
    let mut got = 0;
    let mut buf = vec![0u8; 64 * 1024];
    let mut tail = Vec::new();
    while got < want {
        let n = slow.read(&mut buf).unwrap();
        assert!(n > 0, "closed after {got} of {want} bytes");
        got += n;
        tail.extend_from_slice(&buf[..n]);
        let keep = tail.len().min(8);
        tail.drain(..tail.len() - keep);
    }
    assert_eq!(got, want);
    assert_eq!(tail, b"Complex.");
    writer.join().unwrap();
    stop.stop(&rt);
}

#[test]
fn a_client_that_never_reads_is_closed_after_the_idle_timeout() {
    use std::io::Write;
    let mut opts = ServeOpts::new(Kind::Zen, Mode::Async);
    opts.idle_timeout = Duration::from_secs(1);
    opts.sock.sndbuf = Some(4096);
    let (addr, rt, stop) = start(opts);
    let mut c = small_window_client(addr);
    c.set_write_timeout(Some(EVENTUALLY)).unwrap();
    let chunk = b"Simple is better than?".repeat(10_000);
    // Writes until the server, stuck with replies nobody reads, gives up on the client.
    let t = Instant::now();
    let mut failed = None;
    for _ in 0..10_000 {
        if let Err(e) = c.write_all(&chunk) {
            failed = Some(e);
            break;
        }
    }
    let e = failed.expect("the server closed the connection");
    assert!(
        matches!(
            e.kind(),
            std::io::ErrorKind::ConnectionReset | std::io::ErrorKind::BrokenPipe
        ),
        "{e:?}"
    );
    assert!(
        t.elapsed() >= Duration::from_millis(900),
        "{:?}",
        t.elapsed()
    );
    // The server itself is fine.
    assert_eq!(std_ask(addr, b"Beautiful is better than?"), b"Ugly.");
    stop.stop(&rt);
}
