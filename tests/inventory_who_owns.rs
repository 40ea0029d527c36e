//! `netkit who-owns` against real sockets on loopback (ports from 0): TCP v4/v6 listeners,
//! UDP, a listener shared with a forked child, a bound-only socket, a TIME_WAIT made here
//! (checked against `ss -o`), exit codes, and the JSON schema as a contract.

mod support;

use std::net::{TcpListener, TcpStream, UdpSocket};
use std::time::Duration;

use support::cli::*;
use support::inventory::*;
use support::listeners::*;
use support::python::*;
use support::ss::*;
use support::{have, poll};

fn who_owns(port: u16, extra: &[&str]) -> (SocketsJson, i32) {
    let p = port.to_string();
    let mut args = vec!["who-owns", p.as_str()];
    args.extend_from_slice(extra);
    netkit_json(&args)
}

#[test]
fn tcp_v4_listener_is_owned_by_this_process() {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = l.local_addr().unwrap().port();
    // --tcp: a UDP socket elsewhere may use the same number.
    let (r, code) = who_owns(port, &["--tcp"]);
    let r = r.only("127.0.0.1");
    assert_eq!(code, 0);
    assert_eq!((r.command.as_str(), r.port), ("who-owns", Some(port)));
    assert_eq!(r.sockets.len(), 1, "{r:?}");
    let s = &r.sockets[0];
    assert_eq!(
        (
            s.proto.as_str(),
            s.family.as_str(),
            s.state.as_str(),
            s.local_addr.as_str()
        ),
        ("tcp", "inet", "LISTEN", "127.0.0.1")
    );
    assert_eq!((s.remote_addr.as_deref(), s.remote_port), (None, None));
    assert_eq!(s.pids(), vec![std::process::id()]);
    assert!(!s.owners[0].command.is_empty());
    assert!(
        s.owners[0]
            .cmdline
            .as_deref()
            .is_some_and(|c| c.contains("inventory_who_owns"))
    );
    assert_eq!(s.uid, Some(unsafe { libc::geteuid() }));
    assert!(s.user.is_some());
    assert_ne!(s.inode, 0);
    assert_eq!(s.expires_ms, None);
}

#[test]
fn tcp_v6_listener_is_found_and_filters_by_family() {
    let Ok(l) = TcpListener::bind("[::1]:0") else {
        eprintln!("skipped: IPv6 loopback unavailable");
        return;
    };
    let port = l.local_addr().unwrap().port();
    let (r, code) = who_owns(port, &["-6"]);
    let r = r.only("::1");
    assert_eq!(code, 0);
    assert_eq!(r.sockets.len(), 1);
    let s = &r.sockets[0];
    assert_eq!((s.family.as_str(), s.local_addr.as_str()), ("inet6", "::1"));
    assert_eq!(s.pids(), vec![std::process::id()]);
    // Other processes may use the same number in the other family or protocol, so check
    // that the filter removed ours rather than that nothing is left.
    let (r4, code4) = who_owns(port, &["-4"]);
    assert!(r4.sockets.iter().all(|x| x.family == "inet"), "{r4:?}");
    assert!(!r4.sockets.iter().any(|x| x.inode == s.inode));
    assert_eq!(code4, if r4.sockets.is_empty() { 1 } else { 0 });
    let (ru, codeu) = who_owns(port, &["--udp"]);
    assert!(ru.sockets.iter().all(|x| x.proto == "udp"), "{ru:?}");
    assert_eq!(codeu, if ru.sockets.is_empty() { 1 } else { 0 });
}

#[test]
fn udp_socket_is_unconn_and_owned() {
    let u = UdpSocket::bind("127.0.0.1:0").unwrap();
    let port = u.local_addr().unwrap().port();
    let (r, code) = who_owns(port, &["--udp"]);
    let r = r.only("127.0.0.1");
    assert_eq!(code, 0);
    assert_eq!(r.sockets.len(), 1, "{r:?}");
    let s = &r.sockets[0];
    assert_eq!((s.proto.as_str(), s.state.as_str()), ("udp", "UNCONN"));
    assert_eq!(s.pids(), vec![std::process::id()]);
    let (rt, codet) = who_owns(port, &["--tcp"]);
    assert!(rt.sockets.iter().all(|x| x.proto == "tcp"), "{rt:?}");
    assert_eq!(codet, if rt.sockets.is_empty() { 1 } else { 0 });
}

#[test]
fn listener_shared_with_a_forked_child_lists_both_pids() {
    let Some(py) = Py::start(PyHolder::ForkedListen, false) else {
        return;
    };
    assert_eq!(py.pids.len(), 2);
    let (r, code) = who_owns(py.port, &[]);
    let r = r.only("127.0.0.1");
    assert_eq!(code, 0);
    let l = r
        .sockets
        .iter()
        .find(|s| s.state == "LISTEN")
        .expect("listener");
    let mut want = py.pids.clone();
    want.sort_unstable();
    assert_eq!(l.pids(), want);
    assert!(l.owners.iter().all(|o| o.command.starts_with("python")));
    assert!(
        l.owners
            .iter()
            .all(|o| o.cmdline.as_deref().is_some_and(|c| c.contains("python")))
    );
    // The table joins both owners in one cell.
    let out = netkit_output(&["who-owns", &py.port.to_string()]);
    let text = String::from_utf8_lossy(&out.stdout);
    for pid in &py.pids {
        assert!(text.contains(&format!("{pid}/python")), "{text}");
    }
}

#[test]
fn bound_only_socket_is_reported_as_bound() {
    let Some(py) = Py::start(PyHolder::BoundOnly, false) else {
        return;
    };
    let (r, code) = who_owns(py.port, &["--tcp"]);
    let r = r.only("127.0.0.1");
    assert_eq!(code, 0, "a bound-only socket holds the port");
    assert_eq!(r.sockets.len(), 1, "{r:?}");
    let s = &r.sockets[0];
    assert_eq!(s.state, "BOUND");
    assert_eq!(s.pids(), vec![py.pids[0]]);
    assert!(r.notes.iter().any(|n| n.contains("BOUND")), "{:?}", r.notes);
    // ss -tan cannot see it (KERNEL-FACTS.md), which is why netkit asks for bit 13.
    let (listening, _) =
        netkit_json::<SocketsJson>(&["listening", "--tcp", "--port", &py.port.to_string()]);
    let listening = listening.only("127.0.0.1");
    assert_eq!(listening.sockets.len(), 1);
    assert_eq!(listening.sockets[0].state, "BOUND");
}

#[test]
fn time_wait_made_here_matches_ss_and_names_the_listener() {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = l.local_addr().unwrap().port();
    let client = make_time_wait(&l);
    let (r, code) = poll(Duration::from_secs(3), || {
        let (r, code) = who_owns(port, &[]);
        let r = r.only("127.0.0.1");
        r.sockets
            .iter()
            .any(|s| s.state == "TIME_WAIT")
            .then_some((r, code))
    })
    .expect("TIME_WAIT visible within 3 s");
    assert_eq!(code, 0);
    let tw = r.sockets.iter().find(|s| s.state == "TIME_WAIT").unwrap();
    assert_eq!((tw.local_addr.as_str(), tw.local_port), ("127.0.0.1", port));
    assert_eq!(tw.remote_port, Some(client.port()));
    assert_eq!(tw.remote_addr.as_deref(), Some("127.0.0.1"));
    assert_eq!((tw.uid, tw.user.as_deref()), (None, None), "not root");
    assert!(tw.owners.is_empty());
    assert_eq!(tw.inode, 0);
    let ms = tw.expires_ms.expect("expires_ms");
    assert!((50_000..=60_000).contains(&ms), "{ms}");
    let lref = tw.listener.as_ref().expect("listener of the port");
    assert_eq!(lref.pid(), Some(std::process::id()));
    assert!(r.notes.iter().any(|n| n.contains("TIME_WAIT")));

    if !have("ss") {
        eprintln!("skipped: ss (iproute2) not installed, expiry not compared");
        return;
    }
    // Read both again back to back: ss runs after netkit, so it shows less time left, by at
    // most the time between the reads plus its truncation to whole seconds (>= 10 s left).
    let started = std::time::Instant::now();
    let (r, _) = who_owns(port, &["--tcp"]);
    let ms = r
        .only("127.0.0.1")
        .sockets
        .iter()
        .find(|s| s.state == "TIME_WAIT")
        .and_then(|s| s.expires_ms)
        .expect("still in TIME_WAIT");
    let ss = ss_timewait_ms("127.0.0.1", port);
    let between = started.elapsed().as_millis() as u64;
    assert_eq!(ss.len(), 1, "ss shows {ss:?}");
    assert!(
        ss[0] <= ms + 50 && ms - ss[0].min(ms) <= between + 1_000 + 50,
        "netkit {ms} ms vs ss {} ms, read within {between} ms",
        ss[0]
    );
}

#[test]
fn dual_stack_listener_owns_v4_mapped_connections_and_time_waits() {
    use std::io::Read;
    // std leaves IPV6_V6ONLY at the system default (net.ipv6.bindv6only, 0 = dual-stack).
    if std::fs::read_to_string("/proc/sys/net/ipv6/bindv6only").is_ok_and(|v| v.trim() == "1") {
        eprintln!("skipped: net.ipv6.bindv6only=1, [::] is not dual-stack here");
        return;
    }
    let Ok(l) = TcpListener::bind("[::]:0") else {
        eprintln!("skipped: IPv6 unavailable");
        return;
    };
    let port = l.local_addr().unwrap().port();
    // One connection stays up, one ends server-first in TIME_WAIT; both come from IPv4.
    let _up = TcpStream::connect(("127.0.0.1", port)).unwrap();
    let (_up_srv, _) = l.accept().unwrap();
    let mut c = TcpStream::connect(("127.0.0.1", port)).unwrap();
    let (s, _) = l.accept().unwrap();
    drop(s);
    c.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    assert_eq!(c.read(&mut [0u8; 1]).unwrap(), 0);
    drop(c);

    let r = poll(Duration::from_secs(3), || {
        let (r, _) = who_owns(port, &["--tcp"]);
        r.sockets
            .iter()
            .any(|s| s.state == "TIME_WAIT")
            .then_some(r)
    })
    .expect("TIME_WAIT visible");
    let listen = r.sockets.iter().find(|s| s.state == "LISTEN").unwrap();
    assert_eq!(
        (listen.family.as_str(), listen.local_addr.as_str()),
        ("inet6", "::")
    );
    let est = r
        .sockets
        .iter()
        .find(|s| s.state == "ESTABLISHED")
        .expect("the accepted connection");
    assert_eq!(
        (est.family.as_str(), est.local_addr.as_str()),
        ("inet6", "::ffff:127.0.0.1")
    );
    assert_eq!(est.pids(), vec![std::process::id()]);
    let tw = r.sockets.iter().find(|s| s.state == "TIME_WAIT").unwrap();
    assert_eq!(tw.local_addr, "::ffff:127.0.0.1");
    assert_eq!(
        tw.listener.as_ref().and_then(|l| l.pid()),
        Some(std::process::id()),
        "the [::] listener covers v4-mapped addresses"
    );
}

#[test]
fn established_pair_shows_both_ends_on_the_port() {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = l.local_addr().unwrap().port();
    let c = TcpStream::connect(("127.0.0.1", port)).unwrap();
    let (_s, _) = l.accept().unwrap();
    let (r, _) = who_owns(port, &[]);
    let r = r.only("127.0.0.1");
    let est: Vec<_> = r
        .sockets
        .iter()
        .filter(|s| s.state == "ESTABLISHED")
        .collect();
    // who-owns is about the LOCAL port: the accepted socket, not the client's.
    assert_eq!(est.len(), 1, "{r:?}");
    assert_eq!(est[0].remote_port, Some(c.local_addr().unwrap().port()));
    assert_eq!(est[0].pids(), vec![std::process::id()]);
}

#[test]
fn free_port_exits_1_and_bad_arguments_exit_2() {
    // A port free for bind() can still carry another process's TIME_WAIT on some other
    // loopback address (those do not block a SO_REUSEADDR bind); then who-owns rightly says 0.
    // Try a few ports; at least one must be entirely free.
    let mut saw_free = false;
    for _ in 0..5 {
        let port = free_port();
        let (r, code) = who_owns(port, &[]);
        if r.sockets.iter().any(|s| s.state != "TIME_WAIT") {
            panic!("port {port} passed free_port but netkit found {r:?}");
        }
        assert_eq!(code, if r.sockets.is_empty() { 1 } else { 0 });
        if code == 1 {
            let out = netkit_output(&["who-owns", &port.to_string()]);
            assert_eq!(out.status.code(), Some(1));
            assert!(out.stdout.iter().filter(|b| **b == b'\n').count() <= 1);
            saw_free = true;
            break;
        }
    }
    assert!(saw_free, "no free port found in 5 tries");

    for args in [
        &["who-owns", "no-such-service-netkit"][..],
        &["who-owns", "65536"],
        &["who-owns"],
        &["inspect", "--state", "bogus"],
        &["listening", "--user", "no-such-user-netkit"],
        &["listening", "--pid", "4294967295"],
        &["timewait", "--port", "-1"],
    ] {
        let out = netkit_output(args);
        assert_eq!(out.status.code(), Some(2), "{args:?}");
        assert!(out.stdout.is_empty(), "{args:?}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(!err.contains("panicked"), "{args:?}: {err}");
    }
    // Errors are one line `netkit: reason` (usage errors may add one `try:` line).
    for args in [
        &["inspect", "--state", "bogus"][..],
        &["listening", "--user", "no-such-user-netkit"],
        &["listening", "--pid", "4294967295"],
    ] {
        let out = netkit_output(args);
        let err = String::from_utf8_lossy(&out.stderr);
        let lines: Vec<&str> = err.lines().collect();
        assert!(
            err.starts_with("netkit: ")
                && (lines.len() == 1 || (lines.len() == 2 && lines[1].starts_with("try: "))),
            "{args:?}: {err}"
        );
    }
}

#[test]
fn json_schema_keys_are_present_even_when_null() {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = l.local_addr().unwrap().port();
    make_time_wait(&l);
    let out = netkit_output(&["who-owns", &port.to_string(), "--json"]);
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_keys(&v, &["sockets", "notes"]);
    let socks = v["sockets"].as_array().unwrap();
    assert!(socks.len() >= 2);
    for s in socks {
        assert_keys(s, SOCKET_KEYS);
        assert!(s["local_port"].is_u64() && s["inode"].is_u64());
        for o in s["owners"].as_array().unwrap() {
            assert_keys(o, &["pid", "command", "cmdline"]);
        }
    }
    let listen = socks.iter().find(|s| s["state"] == "LISTEN").unwrap();
    assert!(listen["remote_addr"].is_null() && listen["remote_port"].is_null());
    assert!(listen["expires_ms"].is_null());
    let tw = socks.iter().find(|s| s["state"] == "TIME_WAIT").unwrap();
    assert!(tw["uid"].is_null() && tw["user"].is_null());
    assert!(tw["expires_ms"].is_u64());
    assert_eq!(tw["owners"].as_array().unwrap().len(), 0);
}

#[test]
fn ss_timer_formats_parse_as_bind_rules_section_4_says() {
    assert_eq!(ss_timer_ms("59sec"), Some(59_000));
    assert_eq!(
        ss_timer_ms("8.980ms"),
        Some(8_980),
        "iproute2 6.1 quirk: seconds"
    );
    assert_eq!(ss_timer_ms("676ms"), Some(676));
    assert_eq!(ss_timer_ms(""), Some(0));
    assert_eq!(ss_timer_ms("1min"), Some(60_000));
    assert_eq!(ss_timer_ms("1min5sec"), Some(65_000));
    assert_eq!(ss_timer_ms("soon"), None);
}
