//! `netkit sockopt PID --set`: live re-tune of another process's sockets through pidfd_getfd.
//! Each option is checked from inside the target (target.py's own getsockopt) and, where the
//! kernel shows it to other processes, from outside (`ss -tinmo`: keepalive timer, skmem
//! buffers, the data segments a burst of small writes took for TCP_NODELAY; an RST for
//! linger=0). Needs pidfd_getfd rights over our own children.

mod support;

use std::io::Read;
use std::net::TcpStream;
use std::process::Command;
use std::time::Duration;

use serde_json::Value;
use support::can_setpriv;
use support::cli::*;
use support::netns::*;
use support::proc::*;
use support::sockopt::*;
use support::ss::*;

fn change<'a>(out: &'a Value, fd_peer: u16, opt: &str) -> &'a Value {
    out["sockets"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|s| s["remote_port"] == fd_peer)
        .flat_map(|s| s["changes"].as_array().unwrap())
        .find(|c| c["option"] == opt)
        .unwrap_or_else(|| panic!("no change {opt} for peer {fd_peer}: {out}"))
}

fn permitted(pid: u32) -> bool {
    let (code, _, err) = netkit(&["sockopt", &pid.to_string()]);
    if code == 2 && err.contains("EPERM") {
        eprintln!("skipped: pidfd_getfd on our own child is not permitted here: {err}");
        return false;
    }
    true
}

#[test]
fn every_option_changes_inside_the_target_and_shows_outside() {
    let mut t = Target::start(&["--keepalive", "75"]);
    if !permitted(t.pid()) {
        return;
    }
    let mut c = TcpStream::connect(("127.0.0.1", t.port)).unwrap();
    let me = c.local_addr().unwrap().port();
    let before = t.conn(me);
    assert_eq!(
        (before["keepalive"].as_bool(), before["keepidle"].as_u64()),
        (Some(true), Some(75))
    );
    let t0 = keepalive_timer_s(&ss_conn(t.port, me)).expect("keepalive timer before");
    assert!(t0 > 60.0 && t0 <= 75.0, "timer before: {t0}");

    let pid = t.pid().to_string();
    let port = t.port.to_string();
    let sets = [
        "keepidle=30",
        "keepintvl=7",
        "keepcnt=4",
        "sndbuf=65536",
        "rcvbuf=49152",
        "nodelay=on",
        "user-timeout=4000",
        "linger=3",
    ];
    let mut args = vec!["sockopt", &pid, "--port", &port];
    for s in &sets {
        args.extend(["--set", s]);
    }
    let (code, out, err) = netkit_json_validated(&args);
    assert_eq!(code, 0, "{err}");
    assert_eq!(out["schema_version"], 1);
    assert_eq!(out["command"], "sockopt");
    assert_eq!(out["process"]["pid"], t.pid());
    assert_eq!(out["process"]["command"], "python3");
    for (opt, before, after) in [
        ("keepidle", 75, 30),
        ("keepintvl", 75, 7),
        ("keepcnt", 9, 4),
        ("sndbuf", before["sndbuf"].as_u64().unwrap(), 131072),
        ("rcvbuf", before["rcvbuf"].as_u64().unwrap(), 98304),
        ("user-timeout", 0, 4000),
        ("linger", 0, 3),
    ] {
        let ch = change(&out, me, opt);
        if opt != "linger" {
            assert_eq!(ch["before"], before, "{opt}: {ch}");
        }
        assert_eq!(ch["after"], after, "{opt}: {ch}");
        assert_eq!(ch["outcome"], "changed", "{opt}: {ch}");
    }
    assert_eq!(change(&out, me, "linger")["before"], false);
    assert_eq!(change(&out, me, "nodelay")["after"], true);

    // Inside: the target's own getsockopt sees every new value on the accepted socket.
    let inside = t.conn(me);
    assert_eq!(inside["keepalive"], true);
    assert_eq!(inside["keepidle"], 30);
    assert_eq!(inside["keepintvl"], 7);
    assert_eq!(inside["keepcnt"], 4);
    assert_eq!(inside["sndbuf"], 131072);
    assert_eq!(inside["rcvbuf"], 98304);
    assert_eq!(inside["nodelay"], true);
    assert_eq!(inside["user_timeout"], 4000);
    assert_eq!(inside["linger"], 3);
    // The listener was re-tuned too (--port selects every socket on the port), and a
    // connection accepted after the change copies the listener's new values.
    assert_eq!(t.dump()["listener"]["keepidle"], 30);
    let later = TcpStream::connect(("127.0.0.1", t.port)).unwrap();
    let fresh = t.conn(later.local_addr().unwrap().port());
    assert_eq!(
        (
            &fresh["keepidle"],
            &fresh["keepintvl"],
            &fresh["keepcnt"],
            &fresh["user_timeout"]
        ),
        (
            &Value::from(30),
            &Value::from(7),
            &Value::from(4),
            &Value::from(4000)
        ),
        "{fresh}"
    );

    // Outside: the established connection's keepalive timer restarted with the new idle time,
    // and the socket's memory limits are the new buffers.
    let ss = ss_conn(t.port, me);
    let t1 = keepalive_timer_s(&ss).expect("keepalive timer after");
    assert!(
        t1 <= 30.0 && t1 > 20.0,
        "timer after keepidle=30: {t1} ({ss})"
    );
    assert_eq!(skmem_bufs(&ss), (Some(131072), Some(98304)), "{ss}");

    // keepintvl from outside: after idle expiry the kernel re-arms the timer with
    // TCP_KEEPINTVL (net/ipv4/tcp_timer.c tcp_keepalive_timer), not TCP_KEEPIDLE.
    let (code, _, err) = netkit(&["sockopt", &pid, "--port", &port, "--set", "keepidle=1"]);
    assert_eq!(code, 0, "{err}");
    // While TCP_KEEPIDLE (1 s) runs the timer is at most 1 s; once the first probe went out
    // it is TCP_KEEPINTVL (7 s). Poll (the machine may be loaded) for a value only the
    // interval can explain.
    let start = std::time::Instant::now();
    let mut t2 = 0.0;
    while start.elapsed() < Duration::from_secs(10) && t2 <= 1.5 {
        std::thread::sleep(Duration::from_millis(100));
        t2 = keepalive_timer_s(&ss_conn(t.port, me)).expect("keepalive timer after probe");
    }
    assert!(t2 > 1.5 && t2 <= 7.0, "timer after the first probe: {t2}");

    // linger=0 from outside: close() now sends an RST instead of a FIN.
    let (code, _, err) = netkit(&["sockopt", &pid, "--port", &port, "--set", "linger=0"]);
    assert_eq!(code, 0, "{err}");
    t.proc.say("close");
    assert_eq!(t.proc.line(), "CLOSED");
    c.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let mut buf = [0u8; 1];
    let e = c.read(&mut buf).expect_err("read after an RST");
    assert_eq!(e.kind(), std::io::ErrorKind::ConnectionReset, "{e}");
}

#[test]
fn keepalive_off_then_on_and_dry_run_changes_nothing() {
    let mut t = Target::start(&[]);
    if !permitted(t.pid()) {
        return;
    }
    let _c = TcpStream::connect(("127.0.0.1", t.port)).unwrap();
    let me = _c.local_addr().unwrap().port();
    assert_eq!(t.conn(me)["keepalive"], false);
    assert!(keepalive_timer_s(&ss_conn(t.port, me)).is_none());
    let pid = t.pid().to_string();
    let port = t.port.to_string();
    // A timer change alone does not switch keepalive on, and says so.
    let (code, out, _) =
        netkit_json_validated(&["sockopt", &pid, "--port", &port, "--set", "keepidle=40"]);
    assert_eq!(code, 0);
    let ch = change(&out, me, "keepidle");
    assert!(
        ch["note"].as_str().unwrap().contains("SO_KEEPALIVE is off"),
        "{ch}"
    );
    assert_eq!(t.conn(me)["keepalive"], false);
    // Dry run: reported, not applied.
    let (code, out, _) = netkit_json_validated(&[
        "sockopt",
        &pid,
        "--port",
        &port,
        "--set",
        "keepalive=on",
        "--dry-run",
    ]);
    assert_eq!(code, 0);
    assert_eq!(out["dry_run"], true);
    assert_eq!(change(&out, me, "keepalive")["outcome"], "would_change");
    assert_eq!(t.conn(me)["keepalive"], false);
    // For real: the timer starts at once with the idle time set earlier.
    let (code, out, _) =
        netkit_json_validated(&["sockopt", &pid, "--port", &port, "--set", "keepalive=on"]);
    assert_eq!(code, 0);
    assert_eq!(change(&out, me, "keepalive")["after"], true);
    assert_eq!(t.conn(me)["keepalive"], true);
    let timer = keepalive_timer_s(&ss_conn(t.port, me)).expect("timer after keepalive=on");
    assert!(timer > 30.0 && timer <= 40.0, "{timer}");
    // Off again: the timer is gone from ss.
    let (code, _, _) = netkit(&["sockopt", &pid, "--port", &port, "--set", "keepalive=off"]);
    assert_eq!(code, 0);
    assert_eq!(t.conn(me)["keepalive"], false);
    assert!(keepalive_timer_s(&ss_conn(t.port, me)).is_none());
}

#[test]
fn sndbuf_beyond_wmem_max_is_reported_clamped_with_the_sysctl() {
    let mut t = Target::start(&[]);
    if !permitted(t.pid()) {
        return;
    }
    let c = TcpStream::connect(("127.0.0.1", t.port)).unwrap();
    let me = c.local_addr().unwrap().port();
    t.conn(me);
    let max: u64 = std::fs::read_to_string("/proc/sys/net/core/wmem_max")
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    let ask = format!("sndbuf={}", max * 4);
    let pid = t.pid().to_string();
    let (code, out, _) = netkit_json_validated(&["sockopt", &pid, "--all", "--set", &ask]);
    assert_eq!(code, 0);
    let ch = change(&out, me, "sndbuf");
    assert_eq!(ch["outcome"], "clamped");
    assert_eq!(ch["after"], max * 2);
    assert!(
        ch["note"].as_str().unwrap().contains("net.core.wmem_max"),
        "{ch}"
    );
    assert_eq!(t.conn(me)["sndbuf"], max * 2);
    // --all is TCP only, and the human form shows before → after.
    let (code, human, _) = netkit(&["sockopt", &pid, "--all", "--set", &ask]);
    assert_eq!(code, 0);
    assert!(
        human.contains("SO_SNDBUF") && human.contains(&format!("{} → {}", max * 2, max * 2)),
        "{human}"
    );
}

#[test]
fn bad_and_refused_settings_are_one_line_exit_2() {
    let t = Target::start(&[]);
    let pid = t.pid().to_string();
    for (args, want) in [
        (
            vec!["--port", "1", "--set", "keepidle=abc"],
            "not a whole number",
        ),
        (
            vec!["--port", "1", "--set", "keepcnt=500"],
            "outside what the kernel accepts",
        ),
        (vec!["--port", "1", "--set", "nodelay"], "NAME=VALUE"),
        (vec!["--port", "1", "--set", "reuseaddr=on"], "refused"),
        (vec!["--port", "1", "--set", "reuseport=on"], "refused"),
        (vec!["--port", "1", "--set", "v6only=on"], "EINVAL"),
        (vec!["--set", "keepidle=5"], "--fd N, --port P or --all"),
    ] {
        let mut a = vec!["sockopt", pid.as_str()];
        a.extend(args);
        let (code, out, err) = netkit(&a);
        assert_eq!(code, 2, "{a:?}: {out}{err}");
        assert!(err.contains(want), "{a:?}: {err}");
        assert_eq!(err.trim().lines().count(), 1, "{err}");
    }
}

#[test]
fn udp_socket_refuses_tcp_options() {
    let u = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    let port = u.local_addr().unwrap().port().to_string();
    let me = std::process::id().to_string();
    let (code, out, _) =
        netkit_json_validated(&["sockopt", &me, "--port", &port, "--set", "keepidle=5"]);
    assert_eq!(code, 2);
    let ch = &out["sockets"][0]["changes"][0];
    assert_eq!(ch["outcome"], "refused");
    // Buffers apply to UDP.
    let (code, out, _) =
        netkit_json_validated(&["sockopt", &me, "--port", &port, "--set", "rcvbuf=32768"]);
    assert_eq!(code, 0);
    assert_eq!(out["sockets"][0]["changes"][0]["after"], 65536);
}

#[test]
fn another_users_process_gets_the_ptrace_rule_in_one_line() {
    if !can_setpriv() {
        eprintln!("skipped: needs root and setpriv to run netkit as nobody");
        return;
    }
    let t = Target::start(&[]);
    let o = Command::new("setpriv")
        .args(["--reuid=65534", "--regid=65534", "--clear-groups"])
        .arg(env!("CARGO_BIN_EXE_netkit"))
        .args([
            "sockopt",
            &t.pid().to_string(),
            "--port",
            &t.port.to_string(),
        ])
        .args(["--set", "keepidle=5"])
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(2));
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(err.trim().lines().count(), 1, "{err}");
    assert!(
        err.contains("ptrace") && err.contains("root") && err.contains("ptrace_scope"),
        "{err}"
    );
}

#[test]
fn lab_proxy_keepalive_is_retuned_live() {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_netkit"));
    cmd.args([
        "run",
        "proxy",
        "--listen",
        "127.0.0.1:0",
        "--keepalive",
        "75",
    ])
    .args(["--idle-timeout", "300", "--quiet"]);
    let p = GroupChild::spawn(cmd);
    let _first = p.line();
    let pid = p.pid().to_string();
    if !permitted(p.pid()) {
        return;
    }
    let (code, out, err) = netkit_json_validated(&["sockopt", &pid]);
    assert_eq!(code, 0, "{err}");
    let listener = out["sockets"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["state"] == "LISTEN")
        .unwrap_or_else(|| panic!("no listener: {out}"));
    assert_eq!(listener["options"]["keepidle"], 75);
    let port = listener["local_port"].as_u64().unwrap() as u16;
    let c = TcpStream::connect(("127.0.0.1", port)).unwrap();
    let me = c.local_addr().unwrap().port();
    let mut t0 = None;
    for _ in 0..100 {
        t0 = keepalive_timer_s(&ss_conn(port, me));
        if t0.is_some() {
            break;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let t0 = t0.expect("proxy's accepted socket has a keepalive timer");
    assert!(t0 > 60.0, "{t0}");
    let ps = port.to_string();
    let (code, out, err) =
        netkit_json_validated(&["sockopt", &pid, "--port", &ps, "--set", "keepidle=30"]);
    assert_eq!(code, 0, "{err}");
    assert_eq!(change(&out, me, "keepidle")["after"], 30);
    let t1 = keepalive_timer_s(&ss_conn(port, me)).unwrap();
    assert!(t1 <= 30.0 && t1 > 20.0, "{t1}");
}

/// Seconds from `t` until the connection `sport`→`dport` is gone from `ss` inside `ns` (None
/// if it outlives `limit` after `t`).
fn time_to_drop(
    ns: &Netns,
    sport: u16,
    dport: u16,
    t: std::time::Instant,
    limit: Duration,
) -> Option<f64> {
    while t.elapsed() < limit {
        if !ns.ss(sport).contains(&format!(":{dport} ")) {
            return Some(t.elapsed().as_secs_f64());
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    None
}

#[test]
fn keepcnt_keepintvl_and_user_timeout_end_a_silent_connection_on_time() {
    // The outside view of the options ss cannot print: a peer that stops answering (lo set
    // down inside a private namespace, so probes and retransmits go unanswered) is dropped
    // after keepidle + keepcnt × keepintvl, or after user-timeout, as set live by netkit.
    let Some(ns) = Netns::new("ka") else { return };
    let mut t = Target::start_in(&ns, &[]);
    if !permitted(t.pid()) {
        return;
    }
    let port = t.port.to_string();
    let mut c1 = peer_in(&ns, "client", &[&port]);
    let p1: u16 = c1
        .line()
        .split_whitespace()
        .nth(1)
        .unwrap()
        .parse()
        .unwrap();
    let mut c2 = peer_in(&ns, "client", &[&port]);
    let p2: u16 = c2
        .line()
        .split_whitespace()
        .nth(1)
        .unwrap()
        .parse()
        .unwrap();
    t.conn(p1);
    t.conn(p2);
    let pid = t.pid().to_string();
    let fd_of = |peer: u16| -> String {
        let (_, out, _) = netkit_json_validated(&["sockopt", &pid, "--port", &port]);
        out["sockets"]
            .as_array()
            .unwrap()
            .iter()
            .find(|s| s["remote_port"] == peer)
            .map(|s| s["fd"].to_string())
            .unwrap()
    };
    let (fd1, fd2) = (fd_of(p1), fd_of(p2));
    let (code, _, err) = netkit(&[
        "sockopt",
        &pid,
        "--fd",
        &fd1,
        "--set",
        "keepalive=on",
        "--set",
        "keepidle=1",
        "--set",
        "keepintvl=1",
        "--set",
        "keepcnt=2",
    ]);
    assert_eq!(code, 0, "{err}");
    let (code, _, err) = netkit(&["sockopt", &pid, "--fd", &fd2, "--set", "user-timeout=1500"]);
    assert_eq!(code, 0, "{err}");
    let inside = t.conn(p1);
    assert_eq!(
        (
            inside["keepidle"].as_u64(),
            inside["keepintvl"].as_u64(),
            inside["keepcnt"].as_u64()
        ),
        (Some(1), Some(1), Some(2))
    );
    assert_eq!(t.conn(p2)["user_timeout"], 1500);
    ns.exec(&["ip", "link", "set", "lo", "down"]);
    // Unacked data on the second connection starts its retransmission clock.
    t.proc.say(&format!("send {p2}"));
    assert_eq!(t.proc.line(), "SENT");
    let start = std::time::Instant::now();
    // Probes are counted in ss's timer (the third field) while they go unanswered.
    let mut probes = 0;
    while start.elapsed() < Duration::from_secs(4) && probes == 0 {
        probes = keepalive_probes(&ns.ss(t.port)).unwrap_or(0);
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(probes >= 1, "no unanswered probe in ss");
    let d2 =
        time_to_drop(&ns, t.port, p2, start, Duration::from_secs(8)).expect("user-timeout drop");
    let d1 = time_to_drop(&ns, t.port, p1, start, Duration::from_secs(8))
        .unwrap_or_else(|| panic!("keepalive drop: {}", ns.ss(t.port)));
    // keepidle 1 + keepcnt 2 × keepintvl 1 = 3 s after the last ACK (the defaults would take
    // 7200 + 9 × 75 s); user-timeout 1.5 s (the default retransmits for about 15 minutes).
    eprintln!("measured: keepalive drop {d1:.2}s, user-timeout drop {d2:.2}s after lo down");
    assert!((1.5..=4.5).contains(&d1), "keepalive drop after {d1:.2}s");
    assert!(
        (1.2..=3.5).contains(&d2),
        "user-timeout drop after {d2:.2}s"
    );
    // Inside: the target's recv() saw both drops as ETIMEDOUT.
    let mut dropped = vec![t.proc.line(), t.proc.line()];
    dropped.sort();
    let mut want = vec![
        format!("DROPPED {p1} ETIMEDOUT"),
        format!("DROPPED {p2} ETIMEDOUT"),
    ];
    want.sort();
    assert_eq!(dropped, want);
    c1.say("x");
    c2.say("x");
}

/// `data_segs_out` minus retransmissions (`retrans:A/TOTAL`) of the connection `sport`→`dport`
/// in `ss -ti`, read once nothing is unacknowledged or waiting to be sent (bounded: 10 s).
/// A tail-loss probe re-sends a segment already counted, so it is taken off.
fn new_data_segments(sport: u16, dport: u16) -> u64 {
    let field = |ss: &str, k: &str| -> u64 {
        ss.split_whitespace()
            .find_map(|w| w.strip_prefix(k)?.parse().ok())
            .unwrap_or(0)
    };
    for _ in 0..1000 {
        let ss = ss_conn(sport, dport);
        assert!(ss.contains("127.0.0.1"), "connection gone: {ss:?}");
        if !ss.contains(" unacked:") && !ss.contains(" notsent:") {
            let retrans = ss
                .split_whitespace()
                .find_map(|w| w.strip_prefix("retrans:")?.split('/').nth(1)?.parse().ok())
                .unwrap_or(0);
            return field(&ss, "data_segs_out:") - retrans;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    panic!(
        "{sport}->{dport} still has data in flight: {}",
        ss_conn(sport, dport)
    );
}

/// The target sends 5 × 10 bytes with 5 back-to-back send() calls to us while our socket
/// delays its ACKs (TCP_QUICKACK off); returns the data segments its kernel sent for them.
///
/// Nagle (tcp(7), RFC 896 with Minshall's rule, net/ipv4/tcp_output.c tcp_nagle_check)
/// holds a small segment while an earlier small one is unacknowledged. On loopback the ACK
/// of a quick-acking peer is back before the next send(), so Nagle alone changes nothing
/// (measured: 5 segments either way); with delayed ACKs (TCP_DELACK_MIN, 40 ms) the first
/// send goes out and the other four wait, coalesced in one skb, for the ACK: 2 segments.
/// With TCP_NODELAY each send() is a segment: 5 (cwnd 10 does not limit them).
/// The count is exact when the 5 calls take well under 40 ms (about 60 µs measured); a burst
/// preempted longer is tried again (bounded), since the ACK may then have come in between.
fn burst_segments(t: &mut Target, c: &TcpStream, me: u16) -> u64 {
    for attempt in 1..=5 {
        // Re-armed each time: the kernel leaves this pingpong (delayed-ACK) mode when a
        // delayed ACK fires (net/ipv4/tcp_timer.c tcp_delack_timer_handler).
        socket2::SockRef::from(c).set_tcp_quickack(false).unwrap();
        let before = new_data_segments(t.port, me);
        t.proc.say(&format!("burst {me} 5 10"));
        let l = t.proc.line();
        let us: u64 = l
            .strip_prefix("BURST ")
            .and_then(|u| u.parse().ok())
            .unwrap_or_else(|| panic!("{l}"));
        let segs = new_data_segments(t.port, me) - before;
        if us < 10_000 {
            return segs;
        }
        eprintln!(
            "attempt {attempt}: the 5 send() calls took {us} µs (preempted), not well inside the 40 ms delayed ACK ({segs} segments); again"
        );
    }
    panic!("5 bursts of 5 send() calls each took more than 10 ms");
}

#[test]
fn nodelay_is_seen_from_outside_as_one_segment_per_write() {
    let mut t = Target::start(&[]);
    if !permitted(t.pid()) {
        return;
    }
    let c = TcpStream::connect(("127.0.0.1", t.port)).unwrap();
    let me = c.local_addr().unwrap().port();
    assert_eq!(t.conn(me)["nodelay"], false);
    let pid = t.pid().to_string();
    let port = t.port.to_string();
    // Nagle on (the default): the first write goes out, the other four wait for its ACK.
    assert_eq!(burst_segments(&mut t, &c, me), 2, "Nagle on");
    let (code, out, err) =
        netkit_json_validated(&["sockopt", &pid, "--port", &port, "--set", "nodelay=on"]);
    assert_eq!(code, 0, "{err}");
    assert_eq!(change(&out, me, "nodelay")["after"], true);
    assert_eq!(t.conn(me)["nodelay"], true);
    // TCP_NODELAY, set live by netkit: every write is its own segment.
    assert_eq!(burst_segments(&mut t, &c, me), 5, "TCP_NODELAY on");
    let (code, out, err) =
        netkit_json_validated(&["sockopt", &pid, "--port", &port, "--set", "nodelay=off"]);
    assert_eq!(code, 0, "{err}");
    assert_eq!(change(&out, me, "nodelay")["before"], true);
    assert_eq!(t.conn(me)["nodelay"], false);
    assert_eq!(burst_segments(&mut t, &c, me), 2, "Nagle on again");
}
