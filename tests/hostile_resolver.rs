//! Issue 11, attack 4: a jammed resolver. 600 requests for names that a silent DNS server
//! never answers used to pin every blocking thread (getaddrinfo), and even `localhost`
//! then failed. Now DNS lookups are bounded (32 running, 128 queued, the rest refused at
//! once with `resolver busy`), cancelled with their request, and /etc/hosts names need no
//! lookup slot. The test runs in private network and mount namespaces whose resolv.conf
//! points at a loopback UDP socket that never answers (root only; skipped otherwise).

mod support;

use std::io::{Read, Write};
use std::net::{TcpStream, UdpSocket};
use std::time::{Duration, Instant};

use support::netns::{Inside, enter_netns};
use support::proxy::{DoneServer, ProxyProc, lab_request};

const SETUP: &str = "d=$(mktemp -d); \
    printf 'nameserver 127.0.0.1\\noptions timeout:30 attempts:1\\n' > $d/resolv.conf; \
    printf '127.0.0.1 localhost\\n::1 localhost\\n127.0.0.1 lab-db.test\\n' > $d/hosts; \
    mount --bind $d/resolv.conf /etc/resolv.conf; mount --bind $d/hosts /etc/hosts; rm -rf $d";

const BUSY: &str = "Error, server unreachable: resolver busy";

fn send(p: &ProxyProc, name: &str, port: u16) -> TcpStream {
    let mut c = TcpStream::connect(p.addr).unwrap();
    c.write_all(lab_request(name, port, "x").as_bytes())
        .unwrap();
    c
}

/// What has arrived on `c` so far, without waiting.
fn arrived(c: &TcpStream) -> String {
    c.set_nonblocking(true).unwrap();
    let mut buf = [0u8; 128];
    let n = (&mut &*c).read(&mut buf).unwrap_or(0);
    c.set_nonblocking(false).unwrap();
    String::from_utf8_lossy(&buf[..n]).into_owned()
}

fn reset(c: TcpStream) {
    socket2::SockRef::from(&c)
        .set_linger(Some(Duration::ZERO))
        .unwrap();
}

#[test]
fn a_silent_dns_server_cannot_jam_the_proxy() {
    let inside = Inside {
        setup: SETUP,
        mount: true,
        ..Inside::default()
    };
    if !enter_netns("a_silent_dns_server_cannot_jam_the_proxy", inside) {
        return;
    }
    let _silent_dns = UdpSocket::bind("127.0.0.1:53").unwrap();
    let srv = DoneServer::start();
    // Lookups may take up to 20 s (--connect-timeout bounds them); the DNS server says
    // nothing for 30 s.
    let p = ProxyProc::start(&[
        "-q",
        "--connect-timeout",
        "20",
        "--max-conns-per-client",
        "1024",
    ]);
    let jammed: Vec<TcpStream> = (0..600)
        .map(|i| send(&p, &format!("n{i}.jammed.test"), srv.port()))
        .collect();
    std::thread::sleep(Duration::from_millis(500));
    // /etc/hosts and localhost are answered while DNS is jammed, at once.
    for name in ["localhost", "lab-db.test"] {
        let t = Instant::now();
        let mut c = send(&p, name, srv.port());
        c.set_read_timeout(Some(Duration::from_secs(15))).unwrap();
        let mut got = [0u8; 4];
        c.read_exact(&mut got).unwrap();
        assert_eq!(&got, b"DONE", "{name}");
        // Well below the 20 s a jammed lookup would take, with room for a loaded machine.
        assert!(
            t.elapsed() < Duration::from_secs(10),
            "{name}: {:?}",
            t.elapsed()
        );
    }
    // Past 32 running and 128 queued lookups, requests are refused at once. A loaded machine
    // may take a while to read 600 requests: collect the replies as they come (each read
    // consumes them), bounded, until the refusals are all there.
    let mut replies = vec![String::new(); jammed.len()];
    let collect = |replies: &mut Vec<String>| {
        for (c, r) in jammed.iter().zip(replies.iter_mut()) {
            r.push_str(&arrived(c));
        }
        replies.iter().filter(|r| *r == BUSY).count()
    };
    let deadline = Instant::now() + Duration::from_secs(15);
    let mut busy = collect(&mut replies);
    while busy < 400 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(100));
        busy = collect(&mut replies);
    }
    assert!(
        (400..=440).contains(&busy),
        "{busy} of 600 told 'resolver busy'"
    );
    // Cancellation: the clients go away (reset), their lookups end with them, and the
    // slots are free again long before the 20 s deadline.
    for c in jammed {
        reset(c);
    }
    // The proxy sees the resets when it next polls those connections, which a loaded
    // machine may delay: retry a fresh batch, bounded well inside the 20 s lookup deadline
    // (without cancellation the slots would stay held all that time).
    let deadline = Instant::now() + Duration::from_secs(8);
    let mut round = 0;
    loop {
        std::thread::sleep(Duration::from_millis(500));
        let again: Vec<TcpStream> = (0..150)
            .map(|i| send(&p, &format!("m{round}-{i}.jammed.test"), srv.port()))
            .collect();
        std::thread::sleep(Duration::from_millis(500));
        let busy = again.iter().filter(|c| arrived(c) == BUSY).count();
        for c in again {
            reset(c);
        }
        if busy == 0 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "lookups of gone clients still hold the resolver ({busy} of 150 busy)"
        );
        round += 1;
    }
}
