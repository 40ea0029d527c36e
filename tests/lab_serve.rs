//! The library entry point `lab::server::serve` on an already-bound listener (mini-redis
//! style), with a manual shutdown handle and tokio's paused clock for the timeouts: the
//! default 60 s idle timeout and the 5 s drain pass in virtual time.

use std::time::Duration;

use netkit::cli::run::Mode;
use netkit::lab::protocol::Kind;
use netkit::lab::server::{ServeOpts, serve};
use netkit::lab::shutdown::Shutdown;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::time::Instant;

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

#[tokio::test(start_paused = true)]
async fn silent_client_is_closed_after_the_default_idle_timeout() {
    let (l, addr) = bind();
    let (tx, sd) = Shutdown::manual();
    let server = tokio::spawn(serve(l, ServeOpts::new(Kind::Zen, Mode::Async), sd));
    let mut c = TcpStream::connect(addr).await.unwrap();
    assert_eq!(ask(&mut c, b"Beautiful is better than?").await, b"Ugly.");
    let t = Instant::now();
    let mut buf = [0u8; 8];
    assert_eq!(c.read(&mut buf).await.unwrap(), 0);
    let waited = t.elapsed();
    assert!(
        (Duration::from_secs(60)..Duration::from_secs(61)).contains(&waited),
        "{waited:?}"
    );
    tx.send(true).unwrap();
    server.await.unwrap().unwrap();
}

#[tokio::test(start_paused = true)]
async fn shutdown_answers_the_request_in_flight_and_cuts_off_after_the_drain() {
    let (l, addr) = bind();
    let (tx, sd) = Shutdown::manual();
    let mut opts = ServeOpts::new(Kind::Zen, Mode::Async);
    // Longer than the drain, so the drain (not the first-request deadline) cuts `stuck`.
    opts.first_request = Duration::from_secs(60);
    let server = tokio::spawn(serve(l, opts, sd));
    let mut finishing = TcpStream::connect(addr).await.unwrap();
    let mut stuck = TcpStream::connect(addr).await.unwrap();
    let mut idle = TcpStream::connect(addr).await.unwrap();
    finishing.write_all(b"Simple is").await.unwrap();
    stuck.write_all(b"Explicit").await.unwrap();
    assert_eq!(ask(&mut idle, b"Beautiful is better than?").await, b"Ugly.");
    tokio::time::sleep(Duration::from_millis(10)).await;
    let t = Instant::now();
    tx.send(true).unwrap();
    // An idle connection is closed at once; the one mid-request gets its answer.
    let mut buf = [0u8; 8];
    assert_eq!(idle.read(&mut buf).await.unwrap(), 0);
    assert_eq!(ask(&mut finishing, b" better than?").await, b"Complex.");
    // New clients are refused: the listener is closed.
    assert!(TcpStream::connect(addr).await.is_err());
    // The one that never finishes is cut off when the 5 s drain ends, and serve returns.
    server.await.unwrap().unwrap();
    let took = t.elapsed();
    assert!(
        (Duration::from_secs(5)..Duration::from_secs(6)).contains(&took),
        "{took:?}"
    );
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
