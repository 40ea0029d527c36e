//! Ports and sockets the tests make themselves: ports from port 0 (never fixed ones), a
//! TIME_WAIT maker, and small blocking socket I/O.

use std::io::Read;
use std::net::{SocketAddr, TcpListener, TcpStream, UdpSocket};
use std::time::Duration;

/// A port number nobody holds right now in TCP or UDP, IPv4 or IPv6 (checked by binding the
/// wildcards — the `[::]` binds are dual-stack — then released). The kernel picks it from
/// the ephemeral range, so other tests' port-0 sockets rarely land on it, but nothing keeps
/// it free: a test that needs it to STAY free must check what it finds on it (the inode,
/// the owner), not merely that something is there.
pub fn free_port() -> u16 {
    for _ in 0..100 {
        let port = TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("bind 127.0.0.1:0")
            .port();
        let free = TcpListener::bind(("0.0.0.0", port)).is_ok()
            && TcpListener::bind(("::", port)).is_ok()
            && UdpSocket::bind(("0.0.0.0", port)).is_ok()
            && UdpSocket::bind(("::", port)).is_ok();
        if free {
            return port;
        }
    }
    panic!("no port free in both TCP and UDP after 100 tries");
}

/// Makes one server-side TIME_WAIT on `listener`'s address: connect, accept, the server
/// closes first, the client sees EOF and closes. Returns the client's local address.
pub fn make_time_wait(listener: &TcpListener) -> SocketAddr {
    let addr = listener.local_addr().expect("listener address");
    let mut client = TcpStream::connect(addr).expect("connect");
    let (server, _) = listener.accept().expect("accept");
    drop(server);
    client
        .set_read_timeout(Some(Duration::from_secs(5)))
        .expect("timeout");
    let mut buf = [0u8; 1];
    assert_eq!(client.read(&mut buf).expect("read EOF"), 0);
    let local = client.local_addr().expect("client address");
    drop(client);
    local
}

/// Connects (5 s connect timeout) with a read timeout.
pub fn connect(a: SocketAddr, read_timeout: Duration) -> TcpStream {
    let s = TcpStream::connect_timeout(&a, Duration::from_secs(5)).expect("connect");
    s.set_read_timeout(Some(read_timeout)).unwrap();
    s
}

/// The book's `recv_until(sock, b'.')`: reads until the data ends with `suffix`. Returns what
/// arrived (possibly incomplete) when the timeout or EOF comes first.
pub fn recv_until(s: &mut TcpStream, suffix: u8) -> Vec<u8> {
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    while got.last() != Some(&suffix) {
        match s.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => got.extend_from_slice(&buf[..n]),
        }
    }
    got
}

/// Reads to EOF (or timeout).
pub fn read_all(s: &mut TcpStream) -> Vec<u8> {
    let mut v = Vec::new();
    let _ = s.read_to_end(&mut v);
    v
}

/// True (with the reason printed) when this namespace's TIME_WAIT table is (nearly) full:
/// past `net.ipv4.tcp_max_tw_buckets` the kernel makes no TIME_WAIT (nor FIN_WAIT2 orphan)
/// at all, so a test of one cannot run. Seen on a machine shared with load benchmarks
/// (131,070 of 131,072; TcpExtTCPTimeWaitOverflow climbing); a fresh CI machine never is.
pub fn time_wait_table_full() -> bool {
    let max: u64 = std::fs::read_to_string("/proc/sys/net/ipv4/tcp_max_tw_buckets")
        .ok()
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(u64::MAX);
    let tw: u64 = std::fs::read_to_string("/proc/net/sockstat")
        .ok()
        .and_then(|s| {
            let l = s.lines().find(|l| l.starts_with("TCP:"))?.to_string();
            let mut w = l.split_whitespace();
            w.position(|x| x == "tw")?;
            w.next()?.parse().ok()
        })
        .unwrap_or(0);
    let full = tw.saturating_add(1024) >= max;
    if full {
        eprintln!(
            "skipped: the TIME_WAIT table is full ({tw} of tcp_max_tw_buckets {max}): the kernel makes no TIME_WAIT now"
        );
    }
    full
}
