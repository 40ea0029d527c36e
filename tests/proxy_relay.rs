//! `netkit run proxy --relay`: byte-exact large transfers both ways (splice and copy loop),
//! half-close in both directions, `--deny-client`, an unreachable upstream, the idle timeout.

mod support;

use std::io::{Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, mpsc};
use std::time::{Duration, Instant};

use support::listeners::free_port;
use support::proxy::ProxyProc;

/// An upstream that echoes every byte until EOF, then sends `BYE` and closes: both
/// directions carry the whole transfer, and the reply after the client's FIN proves that
/// half-close is propagated rather than turned into a full close.
fn echo_then_bye() -> (std::net::SocketAddr, Arc<AtomicUsize>) {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = l.local_addr().unwrap();
    let conns = Arc::new(AtomicUsize::new(0));
    let c = conns.clone();
    std::thread::spawn(move || {
        for s in l.incoming() {
            let Ok(s) = s else { continue };
            c.fetch_add(1, Ordering::SeqCst);
            std::thread::spawn(move || {
                let mut r = s.try_clone().unwrap();
                let mut w = s;
                if std::io::copy(&mut r, &mut w).is_ok() {
                    let _ = w.write_all(b"BYE");
                }
                let _ = w.shutdown(Shutdown::Write);
            });
        }
    });
    (addr, conns)
}

/// A 1 MiB block of pseudo-random bytes (xorshift), sent `total / 1 MiB` times.
fn block() -> Vec<u8> {
    let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
    (0..1 << 20)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x >> 32) as u8
        })
        .collect()
}

fn transfer(extra: &[&str], total: usize) {
    let (up, _) = echo_then_bye();
    let mut args = vec!["--relay", &*Box::leak(up.to_string().into_boxed_str())];
    args.extend_from_slice(extra);
    let p = ProxyProc::start(&args);
    let data = Arc::new(block());
    let s = TcpStream::connect(p.addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    let mut w = s.try_clone().unwrap();
    let d = data.clone();
    let writer = std::thread::spawn(move || {
        for _ in 0..total / d.len() {
            w.write_all(&d).unwrap();
        }
        w.shutdown(Shutdown::Write).unwrap();
    });
    let mut r = s;
    let mut got = 0usize;
    let mut buf = vec![0u8; 256 * 1024];
    let mut tail = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        assert!(Instant::now() < deadline, "transfer took too long");
        let n = r.read(&mut buf).unwrap();
        if n == 0 {
            break;
        }
        let mut chunk = &buf[..n];
        while !chunk.is_empty() && got < total {
            let off = got % data.len();
            let k = chunk.len().min(data.len() - off).min(total - got);
            assert!(
                chunk[..k] == data[off..off + k],
                "bytes differ at offset {got}"
            );
            got += k;
            chunk = &chunk[k..];
        }
        tail.extend_from_slice(chunk);
    }
    writer.join().unwrap();
    assert_eq!(got, total, "echoed bytes");
    assert_eq!(tail, b"BYE", "data after the client's FIN");
    let line = p.wait_line("relay closed", |l| l.contains("\"event\":\"relay\""));
    assert!(line.contains("\"closed\""), "{line}");
    assert!(line.contains(&format!("\"up\":{total}")), "{line}");
}

#[test]
fn relay_moves_64_mib_both_ways_byte_exact_with_splice() {
    transfer(&["--splice"], 64 << 20);
}

#[test]
fn relay_moves_64_mib_both_ways_byte_exact_with_the_default_copy_loop() {
    transfer(&[], 64 << 20);
}

#[test]
fn relay_moves_16_mib_both_ways_byte_exact_with_no_splice() {
    transfer(&["--no-splice"], 16 << 20);
}

/// Pipes the proxy process holds now (splice makes one per bulk direction).
fn pipes_of(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd"))
        .unwrap()
        .filter_map(|e| std::fs::read_link(e.ok()?.path()).ok())
        .filter(|t| t.to_string_lossy().starts_with("pipe:"))
        .count()
}

/// Pipes held by a proxy started with `extra` while a bulk upload is stuck behind an
/// upstream that does not read, minus those it held before the transfer.
fn pipes_during_bulk(extra: &[&str]) -> usize {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let up = l.local_addr().unwrap().to_string();
    let mut args = vec!["--relay", up.as_str()];
    args.extend_from_slice(extra);
    let p = ProxyProc::start(&args);
    let before = pipes_of(p.child.id());
    let mut c = TcpStream::connect(p.addr).unwrap();
    let (_held, _) = l.accept().unwrap();
    c.set_write_timeout(Some(Duration::from_millis(200)))
        .unwrap();
    let chunk = vec![7u8; 1 << 20];
    // Fill every buffer on the way: the proxy's reads fill its buffer, so the stream is bulk.
    for _ in 0..64 {
        if c.write(&chunk).is_err() {
            break;
        }
    }
    let pipes = pipes_of(p.child.id());
    pipes.saturating_sub(before)
}

#[test]
fn issue_10_the_relay_copies_by_default_and_splices_with_the_flag() {
    assert_eq!(
        pipes_during_bulk(&[]),
        0,
        "the default relay makes no pipes"
    );
    assert_eq!(pipes_during_bulk(&["--no-splice"]), 0);
    assert_eq!(
        pipes_during_bulk(&["--splice"]),
        2,
        "one pipe (two fds) for the bulk direction"
    );
}

#[test]
fn server_side_half_close_reaches_the_client_and_the_client_can_still_send() {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let up = l.local_addr().unwrap().to_string();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let (mut s, _) = l.accept().unwrap();
        s.write_all(b"hello").unwrap();
        s.shutdown(Shutdown::Write).unwrap();
        let mut rest = Vec::new();
        s.read_to_end(&mut rest).unwrap();
        tx.send(rest).unwrap();
    });
    let p = ProxyProc::start(&["--relay", &up]);
    let mut c = TcpStream::connect(p.addr).unwrap();
    c.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let mut got = Vec::new();
    c.read_to_end(&mut got).unwrap();
    assert_eq!(got, b"hello", "server's FIN arrives as EOF");
    c.write_all(b"late").unwrap();
    c.shutdown(Shutdown::Write).unwrap();
    assert_eq!(rx.recv_timeout(Duration::from_secs(10)).unwrap(), b"late");
}

#[test]
fn denied_clients_are_closed_without_touching_upstream() {
    let (up, conns) = echo_then_bye();
    let p = ProxyProc::start(&["--relay", &up.to_string(), "--deny-client", "127.0.0.0/8"]);
    let mut c = TcpStream::connect(p.addr).unwrap();
    c.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let _ = c.write_all(b"x");
    let mut buf = [0u8; 8];
    assert!(matches!(c.read(&mut buf), Ok(0) | Err(_)));
    let line = p.wait_line("denied", |l| l.contains("\"denied\""));
    assert!(line.contains("127.0.0.0/8"), "{line}");
    assert_eq!(conns.load(Ordering::SeqCst), 0);
    let open = ProxyProc::start(&["--relay", &up.to_string(), "--deny-client", "10.0.0.0/8"]);
    let mut c = TcpStream::connect(open.addr).unwrap();
    c.write_all(b"ok").unwrap();
    c.shutdown(Shutdown::Write).unwrap();
    let mut got = Vec::new();
    c.read_to_end(&mut got).unwrap();
    assert_eq!(got, b"okBYE");
}

#[test]
fn unreachable_upstream_closes_the_client_and_is_logged() {
    let up = format!("127.0.0.1:{}", free_port());
    let p = ProxyProc::start(&["--relay", &up]);
    let mut c = TcpStream::connect(p.addr).unwrap();
    c.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let mut buf = [0u8; 8];
    assert!(matches!(c.read(&mut buf), Ok(0) | Err(_)));
    let line = p.wait_line("unreachable", |l| l.contains("\"unreachable\""));
    assert!(line.contains("connection refused"), "{line}");
}

#[test]
fn idle_relay_connections_are_closed() {
    let (up, _) = echo_then_bye();
    let p = ProxyProc::start(&["--relay", &up.to_string(), "--idle-timeout", "0.3"]);
    let mut c = TcpStream::connect(p.addr).unwrap();
    c.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    c.write_all(b"ping").unwrap();
    let mut buf = [0u8; 8];
    assert_eq!(c.read(&mut buf).unwrap(), 4);
    let t = Instant::now();
    assert!(matches!(c.read(&mut buf), Ok(0) | Err(_)));
    assert!(t.elapsed() < Duration::from_secs(3));
    let line = p.wait_line("idle", |l| l.contains("\"idle\""));
    let v: serde_json::Value = serde_json::from_str(&line).unwrap();
    assert_eq!(
        (v["up"].as_u64(), v["down"].as_u64()),
        (Some(4), Some(4)),
        "{line}"
    );
}

/// Segments the socket has received (TCP_INFO `tcpi_segs_in`).
fn segments_in(s: &TcpStream) -> u32 {
    use std::os::fd::AsRawFd;
    // SAFETY: tcp_info is plain data; getsockopt fills at most `len` bytes of it.
    let mut info: libc::tcp_info = unsafe { std::mem::zeroed() };
    let mut len = std::mem::size_of::<libc::tcp_info>() as libc::socklen_t;
    // SAFETY: a valid socket, a pointer to `info` and its size.
    let rc = unsafe {
        libc::getsockopt(
            s.as_raw_fd(),
            libc::IPPROTO_TCP,
            libc::TCP_INFO,
            (&mut info as *mut libc::tcp_info).cast(),
            &mut len,
        )
    };
    assert_eq!(rc, 0, "TCP_INFO: {}", std::io::Error::last_os_error());
    info.tcpi_segs_in
}

/// A server that answers and closes has its answer and its FIN relayed as one segment (the
/// relay looks behind a short read for the FIN, then sends with MSG_MORE and half-closes):
/// the client, which sends nothing, receives the SYN-ACK and one segment. Before, the reply
/// and the FIN were two (3 segments). The upstream sends its reply and FIN in one segment
/// too, so the proxy always finds both at its first read: no timing involved.
#[test]
fn a_reply_and_the_fin_after_it_reach_the_client_in_one_segment() {
    use std::os::fd::AsRawFd;
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let up = l.local_addr().unwrap();
    std::thread::spawn(move || {
        for s in l.incoming() {
            let Ok(s) = s else { continue };
            // SAFETY: send on a connected socket from a static buffer.
            let n =
                unsafe { libc::send(s.as_raw_fd(), b"DONE".as_ptr().cast(), 4, libc::MSG_MORE) };
            assert_eq!(n, 4);
            let _ = s.shutdown(Shutdown::Write);
            let mut b = [0u8; 16];
            while matches!((&s).read(&mut b), Ok(n) if n > 0) {}
        }
    });
    let up = up.to_string();
    let p = ProxyProc::start(&["--relay", &up]);
    for _ in 0..3 {
        let mut s = TcpStream::connect(p.addr).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
        let mut got = Vec::new();
        s.read_to_end(&mut got).unwrap();
        assert_eq!(got, b"DONE");
        assert_eq!(
            segments_in(&s),
            2,
            "the SYN-ACK, then DONE with the FIN on it"
        );
    }
}
