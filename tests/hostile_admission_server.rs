//! Issue 11, slot starvation (servers): clients that connect and send nothing, or one byte,
//! outnumber `--max-conns`, and a normal client is still served at once (the idlest
//! connection is evicted for it); the first-request deadline is separate from the idle
//! timeout; one client address is held to `--max-conns-per-client`. Every test uses more
//! hostile connections than the bound. Before the fix the normal client waited in the listen
//! queue until `--idle-timeout` (60 s).

mod support;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use support::cli::*;
use support::eventually;
use support::lab::*;
use support::listeners::*;

const MODES: [&str; 2] = ["threaded", "async"];

/// A connection from `src` (any 127.0.0.0/8 address is this host).
fn connect_from(src: &str, to: SocketAddr) -> TcpStream {
    let s = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).unwrap();
    let from: SocketAddr = format!("{src}:0").parse().unwrap();
    s.bind(&from.into()).unwrap();
    s.connect_timeout(&to.into(), Duration::from_secs(2))
        .unwrap();
    s.into()
}

fn hostile(addr: SocketAddr, n: usize, first: &[u8]) -> Vec<TcpStream> {
    (0..n)
        .map(|i| {
            let mut s = connect_from(&format!("127.0.0.{}", 2 + i % 8), addr);
            if !first.is_empty() {
                s.write_all(first).unwrap();
            }
            s
        })
        .collect()
}

fn normal_client_is_served(addr: SocketAddr, requests: usize, mode: &str) {
    for i in 0..requests {
        let mut c = TcpStream::connect_timeout(&addr, Duration::from_secs(2)).unwrap();
        c.set_read_timeout(Some(Duration::from_secs(3))).unwrap();
        assert_eq!(
            ask(&mut c, "Beautiful is better than?"),
            "Ugly.",
            "{mode}: request {i} starved"
        );
    }
}

#[test]
fn silent_clients_beyond_the_cap_do_not_starve_a_normal_client() {
    for mode in MODES {
        let (srv, addr) = server(&["--protocol", "zen", "--mode", mode, "--max-conns", "8"]);
        let idle = hostile(addr, 24, b"");
        std::thread::sleep(Duration::from_millis(200));
        let t = Instant::now();
        normal_client_is_served(addr, 20, mode);
        assert!(
            t.elapsed() < Duration::from_secs(10),
            "{mode}: {:?}",
            t.elapsed()
        );
        // The server logs evictions as each evicted connection's task ends: wait for the
        // lines, bounded, rather than reading them at once.
        let evicted = || {
            srv.lines()
                .iter()
                .filter(|l| l.event == "closed" && l.reason.as_deref() == Some("evicted"))
                .count()
        };
        eventually(Duration::from_secs(10), || {
            srv.count("at_capacity") >= 1 && evicted() >= 16
        });
        assert!(srv.count("at_capacity") >= 1, "{mode}");
        let evicted = evicted();
        assert!(evicted >= 16, "{mode}: only {evicted} evicted");
        drop(idle);
    }
}

#[test]
fn one_byte_clients_beyond_the_cap_do_not_starve_a_normal_client() {
    for mode in MODES {
        let (_srv, addr) = server(&["--protocol", "zen", "--mode", mode, "--max-conns", "8"]);
        // "B" starts a zen question that never ends.
        let partial = hostile(addr, 24, b"B");
        std::thread::sleep(Duration::from_millis(200));
        normal_client_is_served(addr, 20, mode);
        drop(partial);
    }
}

#[test]
fn the_first_request_deadline_is_separate_from_the_idle_timeout() {
    for mode in MODES {
        let (srv, addr) = server(&[
            "--protocol",
            "zen",
            "--mode",
            mode,
            "--first-request-timeout",
            "1",
            "--idle-timeout",
            "60",
        ]);
        let mut slow = TcpStream::connect(addr).unwrap();
        slow.write_all(b"B").unwrap();
        let mut served = TcpStream::connect(addr).unwrap();
        assert_eq!(ask(&mut served, "Beautiful is better than?"), "Ugly.");
        let t = Instant::now();
        slow.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        assert!(read_all(&mut slow).is_empty());
        let took = t.elapsed();
        assert!(
            took >= Duration::from_millis(700) && took < Duration::from_secs(4),
            "{mode}: closed after {took:?}"
        );
        let l = srv.wait_line(Duration::from_secs(2), |l| {
            l.event == "closed" && l.reason.as_deref() == Some("first_request_timeout")
        });
        assert!(l.is_some(), "{mode}: no first_request_timeout line");
        // The connection that was answered is governed by --idle-timeout (60 s): still open.
        std::thread::sleep(Duration::from_millis(500));
        served
            .set_read_timeout(Some(Duration::from_millis(200)))
            .unwrap();
        let mut b = [0u8; 1];
        assert!(
            served.read(&mut b).is_err(),
            "{mode}: answered connection closed by the first-request deadline"
        );
    }
}

#[test]
fn a_client_address_at_its_limit_gives_up_its_own_idlest_connection() {
    for mode in MODES {
        let (_srv, addr) = server(&[
            "--protocol",
            "zen",
            "--mode",
            mode,
            "--max-conns",
            "16",
            "--max-conns-per-client",
            "2",
        ]);
        let mut other = connect_from("127.0.0.3", addr);
        std::thread::sleep(Duration::from_millis(50));
        let mut mine: Vec<TcpStream> = (0..3)
            .map(|_| {
                let s = connect_from("127.0.0.2", addr);
                std::thread::sleep(Duration::from_millis(50));
                s
            })
            .collect();
        // The first of 127.0.0.2's three was closed; the others and 127.0.0.3's stay.
        mine[0]
            .set_read_timeout(Some(Duration::from_secs(3)))
            .unwrap();
        assert!(read_all(&mut mine[0]).is_empty());
        for s in mine.iter_mut().skip(1).chain(std::iter::once(&mut other)) {
            s.set_read_timeout(Some(Duration::from_millis(200)))
                .unwrap();
            let mut b = [0u8; 1];
            assert!(s.read(&mut b).is_err(), "{mode}: wrong connection closed");
        }
        assert_eq!(ask(&mut mine[2], "Beautiful is better than?"), "Ugly.");
    }
}

#[test]
fn single_mode_says_that_one_idle_client_blocks_everyone() {
    let out = std::process::Command::new(netkit_bin())
        .args([
            "run",
            "server",
            "--mode",
            "single",
            "-p",
            "0",
            "--idle-timeout",
            "7",
        ])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut child = out;
    let mut err = std::io::BufReader::new(child.stderr.take().unwrap());
    let mut text = String::new();
    std::io::BufRead::read_line(&mut err, &mut text).unwrap();
    let _ = child.kill();
    let _ = child.wait();
    assert!(text.contains("blocks every other client"), "{text}");
    assert!(text.contains("--idle-timeout (7 s)"), "{text}");
}
