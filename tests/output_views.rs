//! `--pids` (like `lsof -t`) and `--watch [SECS]` (like `watch ss`) on real loopback sockets.

mod support;

use std::io::{BufRead, BufReader};
use std::net::{TcpListener, UdpSocket};
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use support::cli::{netkit_cmd, netkit_output};
use support::listeners::{free_port, make_time_wait};
use support::python::{Py, PyHolder};

fn stdout_lines(args: &[&str]) -> (Vec<String>, i32, String) {
    let out = netkit_output(args);
    (
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .map(String::from)
            .collect(),
        out.status.code().unwrap(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn pids_prints_each_owner_once() {
    let Some(py) = Py::start(PyHolder::ForkedListen, false) else {
        return;
    };
    // Our address only: other programs may hold the same port number on other loopback
    // addresses (a load generator's 127.0.0.9:P source port), with their own PIDs.
    let p = format!("127.0.0.1:{}", py.port);
    let mut want: Vec<String> = py.pids.iter().map(|p| p.to_string()).collect();
    want.sort_by_key(|p| p.parse::<u32>().unwrap());
    for args in [
        vec!["who-owns", &p, "--pids"],
        vec!["listening", "--port", &p, "--pids"],
        vec!["inspect", "--port", &p, "--pids"],
    ] {
        let (lines, code, err) = stdout_lines(&args);
        assert_eq!((code, &lines), (0, &want), "{args:?}: {err}");
    }
    // One process, two sockets (TCP and UDP) on the port: its PID once.
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = l.local_addr().unwrap().port();
    let _u = UdpSocket::bind(("127.0.0.1", port)).unwrap();
    let _c = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    let _a = l.accept().unwrap();
    let (lines, code, _) = stdout_lines(&["who-owns", &format!("127.0.0.1:{port}"), "--pids"]);
    assert_eq!(code, 0);
    assert_eq!(lines, vec![std::process::id().to_string()]);
}

#[test]
fn pids_keeps_the_exit_codes_and_refuses_json_and_kill() {
    // Our address only (see pids_prints_each_owner_once).
    let f = format!("127.0.0.1:{}", free_port());
    let (lines, code, _) = stdout_lines(&["who-owns", &f, "--pids"]);
    assert_eq!((code, lines.len()), (1, 0));
    // Only kernel-held sockets: found (exit 0), but no PID to print.
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = format!("127.0.0.1:{}", l.local_addr().unwrap().port());
    make_time_wait(&l);
    drop(l);
    let (lines, code, _) = stdout_lines(&["who-owns", &port, "--pids", "--tcp"]);
    assert_eq!((code, lines.len()), (0, 0), "{lines:?}");
    for args in [
        vec!["who-owns", &f, "--pids", "--json"],
        vec!["who-owns", &f, "--kill", "--pids", "--yes"],
        vec!["who-owns", &f, "--watch", "0"],
    ] {
        let out = netkit_output(&args);
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{args:?}");
        assert_eq!(err.lines().count(), 1, "{args:?}: {err}");
        assert!(err.starts_with("netkit: "), "{err}");
    }
}

/// Spawns `netkit ARGS` with stdout piped; reads lines until `enough` says so (or 20 s),
/// sends SIGINT, and returns the lines and the exit code.
fn watch_piped(args: &[&str], enough: impl Fn(&[String]) -> bool) -> (Vec<String>, Option<i32>) {
    let mut child: Child = netkit_cmd()
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut lines = Vec::new();
    let mut r = BufReader::new(child.stdout.take().unwrap());
    let end = Instant::now() + Duration::from_secs(20);
    while !enough(&lines) && Instant::now() < end {
        let mut l = String::new();
        if r.read_line(&mut l).unwrap_or(0) == 0 {
            break;
        }
        lines.push(l.trim_end().to_string());
    }
    // SAFETY: kill(2) on the child this test started.
    unsafe { libc::kill(child.id() as i32, libc::SIGINT) };
    // Drain the rest so the child never blocks on a full pipe while stopping.
    let mut rest = String::new();
    let _ = std::io::Read::read_to_string(&mut r, &mut rest);
    lines.extend(rest.lines().map(String::from));
    let end = Instant::now() + Duration::from_secs(10);
    let code = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s.code();
        }
        if Instant::now() > end {
            let _ = child.kill();
            let _ = child.wait();
            panic!("--watch did not stop on SIGINT");
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    (lines, code)
}

fn headers(lines: &[String]) -> usize {
    lines.iter().filter(|l| l.starts_with("--- ")).count()
}

#[test]
fn watch_piped_appends_timestamped_blocks_and_ctrl_c_exits_0() {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let p = l.local_addr().unwrap().port().to_string();
    make_time_wait(&l);
    for args in [
        vec!["who-owns", &p, "--watch", "0.2"],
        vec!["listening", "--port", &p, "--watch", "0.2"],
        vec!["inspect", "--port", &p, "--watch", "0.2"],
        vec!["timewait", "--port", &p, "--watch", "0.2"],
        vec!["who-owns", &p, "--pids", "--watch", "0.2"],
    ] {
        let (lines, code) = watch_piped(&args, |l| headers(l) >= 3);
        assert_eq!(code, Some(0), "{args:?}: {lines:?}");
        assert!(headers(&lines) >= 2, "{args:?}: {lines:?}");
        let h = lines.iter().find(|l| l.starts_with("--- ")).unwrap();
        // `--- 2026-12-01T09:15:33.123Z netkit who-owns P --watch 0.2`
        let ts = h.split_whitespace().nth(1).unwrap();
        assert!(ts.ends_with('Z') && ts.len() == 24, "{h}");
        assert!(h.ends_with(&args.join(" ")), "{h}");
        // Each block carries the listing, not only headers.
        let body = lines
            .iter()
            .filter(|l| l.contains(&p) && !l.starts_with("--- "));
        if !args.contains(&"--pids") {
            assert!(body.count() >= 2, "{args:?}: {lines:?}");
        } else {
            let me = std::process::id().to_string();
            assert!(lines.iter().filter(|l| **l == me).count() >= 2, "{lines:?}");
        }
    }
}

#[test]
fn watch_json_prints_one_valid_object_per_frame_with_ts() {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let p = l.local_addr().unwrap().port().to_string();
    make_time_wait(&l);
    for (command, args) in [
        (
            "listening",
            vec!["listening", "--port", &p, "--watch", "0.2", "--json"],
        ),
        (
            "timewait",
            vec!["timewait", "--port", &p, "--watch", "0.2", "--json"],
        ),
        ("who-owns", vec!["who-owns", &p, "--watch", "0.2", "--json"]),
    ] {
        let (lines, code) = watch_piped(&args, |l| l.len() >= 3);
        assert_eq!(code, Some(0));
        assert!(lines.len() >= 2, "{lines:?}");
        let v = support::schema::validate_lines(command, lines.join("\n").as_bytes());
        let ts: Vec<&str> = v.iter().map(|o| o["ts"].as_str().unwrap()).collect();
        assert!(ts.windows(2).all(|w| w[0] < w[1]), "{ts:?}");
    }
}

#[test]
fn watch_on_a_terminal_redraws_in_place() {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let p = l.local_addr().unwrap().port().to_string();
    let t = support::tty::on_tty_interrupted(
        &["who-owns", &p, "--watch", "0.2"],
        80,
        Duration::from_millis(1500),
    );
    assert_eq!(t.code, Some(0), "{}", t.text);
    let frames = t.text.matches("\x1b[H\x1b[2J").count();
    assert!(frames >= 2, "{frames} frames: {:?}", t.text);
    assert!(
        t.text
            .contains(&format!("Every 0.2s: netkit who-owns {p} --watch 0.2"))
    );
    assert!(
        !t.text.contains("--- "),
        "no appended headers on a terminal"
    );
}
