//! `netkit run server` on loopback: the book's zen client (split and pipelined questions),
//! the Python lab client, the single-mode stall against threaded/async, idle timeout,
//! back-pressure at --max-conns, SIGTERM with a request in flight, fd exhaustion under a low
//! `ulimit -n`, and bind failures explained.

mod support;

use std::io::Write;
use std::net::TcpStream;
use std::process::Command;
use std::thread::sleep;
use std::time::{Duration, Instant};

use support::cli::*;
use support::lab::*;
use support::listeners::*;
use support::{eventually, have};

const MODES: [&str; 3] = ["single", "threaded", "async"];

#[test]
fn zen_answers_the_books_client_split_and_pipelined_in_every_mode() {
    for mode in MODES {
        let (_srv, addr) = server(&["--protocol", "zen", "--mode", mode]);
        let mut s = connect(addr, Duration::from_secs(5));
        assert_eq!(ask(&mut s, "Beautiful is better than?"), "Ugly.", "{mode}");
        // Split across writes, with a pause so they arrive as separate reads.
        s.write_all(b"Explicit is bet").unwrap();
        sleep(Duration::from_millis(30));
        assert_eq!(ask(&mut s, "ter than?"), "Implicit.", "{mode}");
        // Three questions in one write: three answers.
        s.write_all(b"Simple is better than?Beautiful is better than?Flat is better than?")
            .unwrap();
        let want = "Complex.Ugly.Error: unknown aphorism.";
        let mut got = String::new();
        while got.len() < want.len() {
            let part = String::from_utf8_lossy(&recv_until(&mut s, b'.')).into_owned();
            if part.is_empty() {
                break;
            }
            got.push_str(&part);
        }
        assert_eq!(got, want, "{mode}");
    }
}

#[test]
fn status_lines_follow_the_books_order_with_the_peer_address() {
    let (srv, addr) = server(&["--protocol", "zen", "--mode", "threaded"]);
    let mut s = connect(addr, Duration::from_secs(5));
    let me = s.local_addr().unwrap();
    assert_eq!(ask(&mut s, "Beautiful is better than?"), "Ugly.");
    drop(s);
    let closed = srv
        .wait_line(Duration::from_secs(5), |l| l.event == "closed")
        .unwrap_or_else(|| panic!("no closed line:\n{}", srv.raw()));
    assert_eq!(closed.peer, Some(me));
    assert_eq!(closed.reason.as_deref(), Some("eof"));
    let events: Vec<String> = srv.lines().into_iter().map(|l| l.event).collect();
    assert_eq!(events, ["listening", "accepted", "closed"]);
}

#[test]
fn human_output_prints_the_books_lines() {
    let mut p = std::process::Command::new(netkit_bin())
        .args(["run", "server", "127.0.0.1", "-p", "0", "--protocol", "zen"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let out = p.stdout.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        use std::io::BufRead;
        for l in std::io::BufReader::new(out).lines().map_while(Result::ok) {
            let _ = tx.send(l);
        }
    });
    let first = rx.recv_timeout(Duration::from_secs(10)).unwrap();
    let addr: std::net::SocketAddr = first
        .strip_prefix("Listening at ")
        .unwrap_or_else(|| panic!("{first}"))
        .parse()
        .unwrap();
    let opts = rx.recv_timeout(Duration::from_secs(5)).unwrap();
    assert!(opts.contains("socket options: reuseaddr on"), "{opts}");
    let s = TcpStream::connect(addr).unwrap();
    let me = s.local_addr().unwrap();
    drop(s);
    let acc = rx.recv_timeout(Duration::from_secs(5)).unwrap();
    assert_eq!(acc, format!("Accepted connection from {me}"));
    let closed = rx.recv_timeout(Duration::from_secs(5)).unwrap();
    assert_eq!(closed, format!("Client socket to {me} has closed"));
    let _ = p.kill();
    let _ = p.wait();
}

#[test]
fn python_lab_client_gets_done_for_json_and_bare_text_in_every_mode() {
    if !have("python3") {
        eprintln!("skipped: python3 not installed");
        return;
    }
    // The seed's client: sendall(json.dumps(...)) without a newline, then recv(1024).
    let script = r#"
import json, socket, sys, time
port = int(sys.argv[1])
for payload in (json.dumps({"server_ip": "127.0.0.1", "server_port": 8888, "message": "tgmr"}).encode(), b"ebvr"):
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.settimeout(5)
    s.connect(("127.0.0.1", port))
    t = time.time()
    s.sendall(payload)
    print(s.recv(1024).decode(), round(time.time() - t, 3))
    s.close()
"#;
    for mode in MODES {
        let (srv, addr) = server(&["--mode", mode]);
        let out = Command::new("python3")
            .args(["-c", script, &addr.port().to_string()])
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&out.stdout);
        let replies: Vec<(&str, f64)> = text
            .lines()
            .filter_map(|l| l.split_once(' '))
            .map(|(r, t)| (r, t.parse().unwrap()))
            .collect();
        assert_eq!(
            replies.len(),
            2,
            "{mode}: {text} {}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(replies.iter().all(|(r, _)| *r == "DONE"), "{mode}: {text}");
        // Both are answered after one read, as the seed's server does: no quiet period.
        assert!(replies[0].1 < 0.4, "{mode}: JSON waited {}s", replies[0].1);
        assert!(
            replies[1].1 < 0.4,
            "{mode}: bare text waited {}s",
            replies[1].1
        );
        let got = srv.wait_line(Duration::from_secs(5), |l| {
            l.event == "received" && l.message.as_deref() == Some("ebvr")
        });
        assert!(got.is_some(), "{mode}:\n{}", srv.raw());
        let json = srv
            .lines()
            .into_iter()
            .find(|l| l.event == "received")
            .and_then(|l| l.message)
            .unwrap();
        assert!(json.contains(r#""message": "tgmr""#), "{json}");
    }
}

#[test]
fn lab_newline_messages_share_one_connection() {
    let (srv, addr) = server(&[]);
    let mut s = connect(addr, Duration::from_secs(5));
    s.write_all(b"one\ntwo\n").unwrap();
    sleep(Duration::from_millis(300)); // line mode: a partial line waits for its newline
    s.write_all(b"thr").unwrap();
    sleep(Duration::from_millis(300));
    s.write_all(b"ee\n").unwrap();
    let mut got = Vec::new();
    while got.iter().filter(|&&b| b == b'\n').count() < 3 {
        let part = recv_until(&mut s, b'\n');
        assert!(!part.is_empty(), "got {:?}", String::from_utf8_lossy(&got));
        got.extend(part);
    }
    assert_eq!(got, b"DONE\nDONE\nDONE\n");
    // The status line is written before the reply, but our reader thread may lag behind.
    eventually(Duration::from_secs(5), || srv.count("received") == 3);
    let msgs: Vec<String> = srv
        .lines()
        .into_iter()
        .filter_map(|l| (l.event == "received").then(|| l.message.unwrap()))
        .collect();
    assert_eq!(msgs, ["one", "two", "three"]);
}

#[test]
fn oversized_or_binary_requests_get_an_error_and_others_keep_being_served() {
    for mode in MODES {
        let (srv, addr) = server(&["--protocol", "zen", "--mode", mode]);
        let mut bad = connect(addr, Duration::from_secs(5));
        // Binary junk with a '?' is an unknown aphorism, not a crash.
        assert_eq!(
            ask(&mut bad, "\u{0}\u{ff}\u{7f}?"),
            "Error: unknown aphorism.",
            "{mode}"
        );
        // 70 KB without a '?' exceeds the request limit: error reply, then close.
        let _ = bad.write_all(&vec![b'x'; 70 * 1024]);
        let reply = read_all(&mut bad);
        assert!(
            reply.ends_with(b"Error: request too long."),
            "{mode}: {:?}",
            String::from_utf8_lossy(&reply)
        );
        let mut good = connect(addr, Duration::from_secs(5));
        assert_eq!(
            ask(&mut good, "Simple is better than?"),
            "Complex.",
            "{mode}"
        );
        drop(srv);
    }
}

#[test]
fn echo_returns_the_bytes() {
    let (_srv, addr) = server(&["--protocol", "echo", "--mode", "threaded"]);
    let mut s = connect(addr, Duration::from_secs(5));
    s.write_all(b"hello?\n").unwrap();
    assert_eq!(recv_until(&mut s, b'\n'), b"hello?\n");
}

/// Connects an idle client, then checks whether a second client is answered within `d`.
/// Returns the server, the verdict, the idle client and the second client.
fn second_client_answered(mode: &str, d: Duration) -> (Proc, bool, TcpStream, TcpStream) {
    let (srv, addr) = server(&["--protocol", "zen", "--mode", mode]);
    let idle = TcpStream::connect(addr).unwrap();
    assert!(
        srv.wait_line(Duration::from_secs(5), |l| l.event == "accepted")
            .is_some()
    );
    let mut second = connect(addr, d);
    let answered = ask(&mut second, "Beautiful is better than?") == "Ugly.";
    (srv, answered, idle, second)
}

#[test]
fn single_mode_is_stalled_by_one_idle_client_as_the_book_warns() {
    let (srv, answered, idle, mut second) =
        second_client_answered("single", Duration::from_millis(700));
    assert!(
        !answered,
        "single mode answered while another client held it"
    );
    assert_eq!(
        srv.count("accepted"),
        1,
        "the second client must wait in the listen queue"
    );
    // Once the idle client leaves, the queued one is served.
    drop(idle);
    second
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    assert_eq!(recv_until(&mut second, b'.'), b"Ugly.");
}

#[test]
fn threaded_and_async_serve_others_while_a_client_idles() {
    for mode in ["threaded", "async"] {
        let (_srv, answered, _idle, _s) = second_client_answered(mode, Duration::from_secs(5));
        assert!(answered, "{mode} stalled behind an idle client");
    }
}

#[test]
fn idle_timeout_closes_silent_clients_in_every_mode() {
    for mode in MODES {
        let (srv, addr) = server(&["--protocol", "zen", "--mode", mode, "--idle-timeout", "1"]);
        let started = Instant::now();
        let mut idle = connect(addr, Duration::from_secs(5));
        let eof = read_all(&mut idle);
        let took = started.elapsed();
        assert!(eof.is_empty());
        assert!(
            took >= Duration::from_millis(900) && took < Duration::from_secs(4),
            "{mode}: closed after {took:?}"
        );
        let l = srv.wait_line(Duration::from_secs(2), |l| l.event == "closed");
        assert_eq!(l.and_then(|l| l.reason).as_deref(), Some("idle"), "{mode}");
    }
}

#[test]
fn max_conns_evicts_the_idlest_connection_for_a_newcomer() {
    for mode in ["threaded", "async"] {
        let (srv, addr) = server(&["--protocol", "zen", "--mode", mode, "--max-conns", "1"]);
        let mut first = connect(addr, Duration::from_secs(5));
        assert_eq!(ask(&mut first, "Beautiful is better than?"), "Ugly.");
        // At the cap, the newcomer takes the slot of the idle first connection at once.
        let mut second = connect(addr, Duration::from_secs(2));
        assert_eq!(
            ask(&mut second, "Simple is better than?"),
            "Complex.",
            "{mode}"
        );
        assert!(
            srv.wait_line(Duration::from_secs(2), |l| l.event == "at_capacity")
                .is_some()
        );
        assert!(read_all(&mut first).is_empty(), "{mode}: first not closed");
        let l = srv.wait_line(Duration::from_secs(2), |l| {
            l.event == "closed" && l.reason.as_deref() == Some("evicted")
        });
        assert!(l.is_some(), "{mode}: no closed/evicted line");
    }
}

#[test]
fn sigterm_lets_a_request_in_flight_finish_then_exits_zero() {
    for mode in MODES {
        let (mut srv, addr) = server(&["--protocol", "zen", "--mode", mode]);
        let mut slow = connect(addr, Duration::from_secs(5));
        slow.write_all(b"Beautiful is").unwrap();
        assert!(
            srv.wait_line(Duration::from_secs(5), |l| l.event == "accepted")
                .is_some()
        );
        sleep(Duration::from_millis(50));
        srv.signal(libc::SIGTERM);
        let sd = srv.wait_line(Duration::from_secs(5), |l| l.event == "shutting_down");
        assert!(sd.is_some(), "{mode}: {}", srv.raw());
        // No longer accepting.
        assert!(
            eventually(Duration::from_secs(2), || TcpStream::connect(addr).is_err()),
            "{mode}: still accepting after SIGTERM"
        );
        // The request in flight completes and is answered.
        assert_eq!(ask(&mut slow, " better than?"), "Ugly.", "{mode}");
        let st = srv.wait_exit(Duration::from_secs(5)).expect("exits");
        assert_eq!(st.code(), Some(0), "{mode}: {}", srv.raw());
    }
}

#[test]
fn second_signal_exits_at_once() {
    let (mut srv, addr) = server(&["--protocol", "zen", "--drain", "30"]);
    let mut slow = connect(addr, Duration::from_secs(5));
    slow.write_all(b"Beautiful is").unwrap();
    assert!(
        srv.wait_line(Duration::from_secs(5), |l| l.event == "accepted")
            .is_some()
    );
    srv.signal(libc::SIGTERM);
    assert!(
        srv.wait_line(Duration::from_secs(5), |l| l.event == "shutting_down")
            .is_some()
    );
    let t = Instant::now();
    srv.signal(libc::SIGINT);
    let st = srv.wait_exit(Duration::from_secs(5)).expect("exits");
    assert!(t.elapsed() < Duration::from_secs(2));
    assert_ne!(st.code(), Some(0));
}

#[test]
fn idle_connections_do_not_hold_up_shutdown() {
    let (mut srv, addr) = server(&["--protocol", "zen", "--mode", "threaded", "--drain", "30"]);
    let _idle = connect(addr, Duration::from_secs(5));
    assert!(
        srv.wait_line(Duration::from_secs(5), |l| l.event == "accepted")
            .is_some()
    );
    let t = Instant::now();
    srv.signal(libc::SIGTERM);
    assert_eq!(
        srv.wait_exit(Duration::from_secs(5)).and_then(|s| s.code()),
        Some(0)
    );
    assert!(t.elapsed() < Duration::from_secs(3), "{:?}", t.elapsed());
}

#[test]
fn running_out_of_file_descriptors_backs_off_and_recovers() {
    if !have("prlimit") {
        eprintln!("skipped: prlimit (util-linux) not installed");
        return;
    }
    for mode in ["async", "threaded"] {
        let mut cmd = Command::new("prlimit");
        cmd.args(["--nofile=40:40", "--", netkit_bin()]);
        let srv = Proc::spawn_cmd(
            cmd,
            &[
                "run",
                "server",
                "127.0.0.1",
                "-p",
                "0",
                "--protocol",
                "zen",
                "--mode",
                mode,
            ],
        );
        let addr = srv.listening();
        // More clients than the server has descriptors; the extra ones wait in the backlog.
        let mut clients: Vec<TcpStream> = (0..60)
            .map(|_| connect(addr, Duration::from_secs(5)))
            .collect();
        let err = srv.wait_line(Duration::from_secs(5), |l| l.event == "accept_error");
        let err = err.unwrap_or_else(|| panic!("{mode}: no accept_error:\n{}", srv.raw()));
        assert_eq!(err.errno_name.as_deref(), Some("EMFILE"), "{mode}");
        // Accepted clients are still served while accept() fails.
        assert_eq!(ask(&mut clients[0], "Simple is better than?"), "Complex.");
        // Free descriptors: every queued client is then served (each closes after its
        // answer, so the server always gets another descriptor back).
        let (first, rest) = clients.split_at_mut(30);
        for s in first.iter() {
            let _ = s.shutdown(std::net::Shutdown::Both);
        }
        for (i, s) in rest.iter_mut().enumerate() {
            s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
            assert_eq!(
                ask(s, "Explicit is better than?"),
                "Implicit.",
                "{mode}: queued client {i} not served:\n{}",
                srv.raw()
            );
            let _ = s.shutdown(std::net::Shutdown::Both);
        }
        assert!(
            srv.wait_line(Duration::from_secs(5), |l| l.event == "accept_recovered")
                .is_some()
        );
        let mut fresh = connect(addr, Duration::from_secs(5));
        assert_eq!(
            ask(&mut fresh, "Beautiful is better than?"),
            "Ugly.",
            "{mode}"
        );
    }
}

#[test]
fn port_in_use_is_explained_with_its_holder() {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = l.local_addr().unwrap().port().to_string();
    let (code, _out, err) = run(
        &["run", "server", "127.0.0.1", "-p", &port],
        Duration::from_secs(10),
    );
    assert_eq!(code, Some(2));
    assert!(err.contains("EADDRINUSE (98)"), "{err}");
    // The explain engine's diagnosis for the server's own options (SO_REUSEADDR on).
    assert!(err.contains("(SO_REUSEADDR): not bindable"), "{err}");
    assert!(
        err.contains(&format!(
            "[listening] PID {} (lab_server",
            std::process::id()
        )),
        "{err}"
    );
    assert!(
        err.lines()
            .last()
            .unwrap()
            .starts_with("netkit: bind 127.0.0.1:"),
        "{err}"
    );
}

#[test]
fn bad_arguments_exit_two_with_one_line() {
    for args in [
        &["run", "server", "--max-conns", "0"][..],
        &["run", "server", "--mode", "forked"][..],
        &["run", "server", "no.such.host.invalid", "-p", "0"][..],
    ] {
        let (code, _, err) = run(args, Duration::from_secs(10));
        assert_eq!(code, Some(2), "{args:?}: {err}");
    }
}

/// The book's `client.py -e`: an incomplete question, then close. The book's server prints
/// `Client ... error: received b'Beautiful is better than' then socket closed`.
#[test]
fn incomplete_zen_question_then_close_is_an_error_in_every_mode() {
    for mode in MODES {
        let (srv, addr) = server(&["--protocol", "zen", "--mode", mode]);
        let mut s = connect(addr, Duration::from_secs(5));
        let me = s.local_addr().unwrap();
        s.write_all(b"Beautiful is better than").unwrap();
        drop(s);
        let closed = srv
            .wait_line(Duration::from_secs(5), |l| l.event == "closed")
            .unwrap_or_else(|| panic!("{mode}: no closed line:\n{}", srv.raw()));
        assert_eq!(closed.peer, Some(me), "{mode}");
        assert_eq!(closed.reason.as_deref(), Some("error"), "{mode}");
        assert_eq!(
            closed.error.as_deref(),
            Some("received b'Beautiful is better than' then socket closed"),
            "{mode}"
        );
        assert_eq!(closed.raw["command"], "run server");
        assert_eq!(closed.raw["schema_version"], 1);
        assert!(closed.raw["ts"].as_str().is_some_and(|t| t.ends_with('Z')));
    }
}

#[test]
fn incomplete_zen_question_is_an_error_line_for_people() {
    let (code_out, text) = human_server_lines(&["--protocol", "zen"], |addr| {
        let mut s = TcpStream::connect(addr).unwrap();
        s.write_all(b"Beautiful is better than").unwrap();
        s.local_addr().unwrap()
    });
    assert!(
        text.contains(&format!(
            "Client {code_out} error: received b'Beautiful is better than' then socket closed"
        )),
        "{text}"
    );
}

/// Runs a human-format server, lets `act` talk to it, returns `act`'s value and the lines
/// printed within a second after it.
fn human_server_lines<T>(
    args: &[&str],
    act: impl FnOnce(std::net::SocketAddr) -> T,
) -> (T, String) {
    use std::io::BufRead;
    let mut p = std::process::Command::new(netkit_bin())
        .args(["run", "server", "127.0.0.1", "-p", "0"])
        .args(args)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let out = p.stdout.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for l in std::io::BufReader::new(out).lines().map_while(Result::ok) {
            let _ = tx.send(l);
        }
    });
    let first = rx.recv_timeout(Duration::from_secs(10)).unwrap();
    let addr: std::net::SocketAddr = first
        .strip_prefix("Listening at ")
        .unwrap_or_else(|| panic!("{first}"))
        .parse()
        .unwrap();
    let v = act(addr);
    let mut text = String::new();
    while let Ok(l) = rx.recv_timeout(Duration::from_millis(1500)) {
        text.push_str(&l);
        text.push('\n');
    }
    let _ = p.kill();
    let _ = p.wait();
    (v, text)
}

#[test]
fn control_characters_from_clients_are_escaped_in_human_lines_in_every_mode() {
    for mode in MODES {
        let evil = b"\x1b]0;pwned\x07\x1b[2J\rAccepted connection from 6.6.6.6:1";
        let ((), text) = human_server_lines(&["--mode", mode], |addr| {
            let mut s = TcpStream::connect(addr).unwrap();
            s.write_all(evil).unwrap();
            let _ = read_all(&mut s);
        });
        assert!(
            !text.bytes().any(|b| b == 0x1b || b == b'\r' || b == 0x07),
            "{mode}: raw control bytes reached the terminal: {text:?}"
        );
        assert!(
            text.contains("Server received: \\u{1b}]0;pwned"),
            "{mode}: {text}"
        );
    }
}

#[test]
fn json_lines_keep_the_clients_bytes_exact() {
    let (srv, addr) = server(&[]);
    let mut s = connect(addr, Duration::from_secs(5));
    s.write_all(b"a\x1b[2Jb\n").unwrap();
    assert_eq!(recv_until(&mut s, b'\n'), b"DONE\n");
    let got = srv
        .wait_line(Duration::from_secs(5), |l| l.event == "received")
        .unwrap();
    assert_eq!(got.message.as_deref(), Some("a\x1b[2Jb"));
}

/// A client writing its bare message one byte per 100 ms is answered for the first byte
/// (a bare message is what one read returns), and the server logs the rest as an error
/// instead of a clean exchange; the client gets DONE then EOF, not a reset.
#[test]
fn slow_bare_writer_is_told_clearly_in_every_mode() {
    for mode in MODES {
        let (srv, addr) = server(&["--mode", mode]);
        let mut s = connect(addr, Duration::from_secs(5));
        for b in b"tgmr" {
            s.write_all(&[*b]).unwrap();
            sleep(Duration::from_millis(100));
        }
        s.shutdown(std::net::Shutdown::Write).unwrap();
        assert_eq!(read_all(&mut s), b"DONE", "{mode}");
        let closed = srv
            .wait_line(Duration::from_secs(5), |l| l.event == "closed")
            .unwrap_or_else(|| panic!("{mode}: {}", srv.raw()));
        assert_eq!(closed.reason.as_deref(), Some("error"), "{mode}");
        let why = closed.error.unwrap_or_default();
        assert!(
            why.starts_with("sent 3 more byte(s) after its bare message was answered"),
            "{mode}: {why}"
        );
        let got = srv.lines();
        let received: Vec<_> = got.iter().filter(|l| l.event == "received").collect();
        assert_eq!(received.len(), 1, "{mode}");
        assert_eq!(received[0].message.as_deref(), Some("t"), "{mode}");
    }
}

#[test]
fn split_json_and_split_lines_are_served_whole() {
    let (srv, addr) = server(&[]);
    let mut s = connect(addr, Duration::from_secs(5));
    s.write_all(br#"{"server_ip": "127.0.0.1", "#).unwrap();
    sleep(Duration::from_millis(100));
    s.write_all(br#""message": "abcd"}"#).unwrap();
    assert_eq!(read_all(&mut s), b"DONE");
    let got = srv
        .wait_line(Duration::from_secs(5), |l| l.event == "received")
        .unwrap();
    assert_eq!(
        got.message.as_deref(),
        Some(r#"{"server_ip": "127.0.0.1", "message": "abcd"}"#)
    );
}

#[test]
fn async_mode_serves_connections_on_the_threads_asked_for() {
    let (srv, addr) = server(&["--protocol", "zen", "--workers", "3"]);
    // Connections are handed out round robin: six of them land on all three runtimes.
    let mut conns: Vec<TcpStream> = (0..6)
        .map(|_| connect(addr, Duration::from_secs(5)))
        .collect();
    for round in 0..2 {
        for s in &mut conns {
            assert_eq!(
                ask(s, "Simple is better than?"),
                "Complex.",
                "round {round}"
            );
        }
    }
    // The runtimes beside the accept loop's own are named threads of the server.
    let names: Vec<String> = std::fs::read_dir(format!("/proc/{}/task", srv.pid()))
        .unwrap()
        .filter_map(|t| std::fs::read_to_string(t.ok()?.path().join("comm")).ok())
        .map(|c| c.trim().to_string())
        .collect();
    for want in ["netkit-conn-0", "netkit-conn-1"] {
        assert!(names.iter().any(|n| n == want), "{names:?}");
    }
}
