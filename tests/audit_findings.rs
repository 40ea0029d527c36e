//! `netkit audit`: each finding is made on real sockets by the test, found by the audit, and
//! its claim proven against the kernel (another user binds and gets the traffic, a connect()
//! fails, a bind fails). Cross-user steps run `nobody` through setpriv (root only) and are
//! skipped with a printed reason elsewhere; namespace tests need root and `ip netns`.

mod support;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream, UdpSocket};
use std::time::Duration;

use socket2::{Domain, Protocol, Socket, Type};
use support::cli::*;
use support::netns::*;
use support::proc::*;
use support::python::*;
use support::sockopt::*;
use support::{can_setpriv, is_root, poll};

fn sa(s: &str) -> SocketAddr {
    s.parse().unwrap()
}

fn udp_ra(addr: &str) -> UdpSocket {
    let s = Socket::new(Domain::IPV4, Type::DGRAM, Some(Protocol::UDP)).unwrap();
    s.set_reuse_address(true).unwrap();
    s.bind(&sa(addr).into()).unwrap();
    s.into()
}

fn port_of(u: &UdpSocket) -> u16 {
    u.local_addr().unwrap().port()
}

/// Sends `n` datagrams to 127.0.0.1:`port` from one client socket.
fn send(port: u16, n: usize) {
    let c = UdpSocket::bind("127.0.0.1:0").unwrap();
    for i in 0..n {
        c.send_to(format!("d{i}").as_bytes(), ("127.0.0.1", port))
            .unwrap();
        std::thread::sleep(Duration::from_millis(2));
    }
}

/// Datagrams waiting on `u` (non-blocking drain).
fn drain(u: &UdpSocket) -> usize {
    u.set_nonblocking(true).unwrap();
    let mut buf = [0u8; 64];
    let mut n = 0;
    while u.recv(&mut buf).is_ok() {
        n += 1;
    }
    n
}

fn me() -> u32 {
    std::process::id()
}

fn owned_by(f: &serde_json::Value, pid: u32) -> bool {
    f["evidence"].as_array().unwrap().iter().any(|s| {
        s["owners"]
            .as_array()
            .unwrap()
            .iter()
            .any(|o| o["pid"] == pid)
    })
}

#[test]
fn udp_reuseaddr_lets_another_user_take_the_datagrams() {
    let mine = udp_ra("127.0.0.1:0");
    let port = port_of(&mine);
    let (code, r) = audit(None, &[]);
    assert_eq!(r["schema_version"], 1);
    assert_eq!(r["command"], "audit");
    let f = findings_on(&r, "udp_reuseaddr", port);
    assert_eq!(f.len(), 1, "{r}");
    assert_eq!(f[0]["rule"], "U2");
    assert!(owned_by(&f[0], me()));
    let want = if is_root() { "high" } else { "warn" };
    assert_eq!(f[0]["severity"], want, "{}", f[0]);
    assert_eq!(code, 1);
    // The claim: another user binds the same port and silently gets every datagram.
    let nobody = can_setpriv();
    if !nobody {
        eprintln!("skipped the cross-user half: needs root and setpriv (same user instead)");
    }
    let p = peer("udp-recv", &["127.0.0.1", &port.to_string(), "16"], nobody);
    assert_eq!(p.line(), "READY");
    send(port, 16);
    assert_eq!(p.line(), "GOT 16");
    assert_eq!(drain(&mine), 0, "the older socket got nothing");
}

#[test]
fn tcp_bound_with_reuseaddr_can_be_taken_over_before_listen() {
    let s = Socket::new(Domain::IPV4, Type::STREAM, Some(Protocol::TCP)).unwrap();
    s.set_reuse_address(true).unwrap();
    s.bind(&sa("127.0.0.1:0").into()).unwrap();
    let port = s.local_addr().unwrap().as_socket().unwrap().port();
    let (_, r) = audit(None, &[]);
    let f = findings_on(&r, "tcp_bound_reuseaddr", port);
    assert_eq!(f.len(), 1, "{r}");
    assert_eq!(f[0]["rule"], "6b");
    assert_eq!(f[0]["evidence"][0]["state"], "BOUND");
    let b = findings_on(&r, "bound_only", port);
    assert_eq!(b.len(), 1);
    assert!(b[0]["details"]["holder_age_s"].is_u64(), "{}", b[0]);
    let nobody = can_setpriv();
    if !nobody {
        eprintln!("skipped the cross-user half: needs root and setpriv (same user instead)");
    }
    let mut p = peer("tcp-take", &[&port.to_string()], nobody);
    assert_eq!(p.line(), "OK", "the other user listens on our port");
    let e = s.listen(4).expect_err("our listen() after the takeover");
    assert_eq!(e.raw_os_error(), Some(libc::EADDRINUSE));
    p.say("done");
}

#[test]
fn bound_only_socket_is_invisible_to_ss_and_blocks_the_port() {
    let s = Socket::new(Domain::IPV4, Type::STREAM, Some(Protocol::TCP)).unwrap();
    s.bind(&sa("127.0.0.1:0").into()).unwrap();
    let port = s.local_addr().unwrap().as_socket().unwrap().port();
    let (_, r) = audit(None, &[]);
    let f = findings_on(&r, "bound_only", port);
    assert_eq!(f.len(), 1, "{r}");
    assert!(owned_by(&f[0], me()));
    assert!(findings_on(&r, "tcp_bound_reuseaddr", port).is_empty());
    // Only our address: other programs on this machine may use the same port number on
    // other loopback addresses (a load generator's 127.0.0.9:P source port, say).
    let ss = std::process::Command::new("ss")
        .args(["-tanH", "src", &format!("127.0.0.1:{port}")])
        .output()
        .unwrap();
    assert!(
        ss.stdout.is_empty(),
        "ss sees it: {}",
        String::from_utf8_lossy(&ss.stdout)
    );
    let t = Socket::new(Domain::IPV4, Type::STREAM, Some(Protocol::TCP)).unwrap();
    let e = t
        .bind(&sa(&format!("127.0.0.1:{port}")).into())
        .unwrap_err();
    assert_eq!(e.raw_os_error(), Some(libc::EADDRINUSE));
}

#[test]
fn reuseport_group_of_two_programs_splits_the_connections() {
    let s = Socket::new(Domain::IPV4, Type::STREAM, Some(Protocol::TCP)).unwrap();
    s.set_reuse_port(true).unwrap();
    s.bind(&sa("127.0.0.1:0").into()).unwrap();
    s.listen(64).unwrap();
    let port = s.local_addr().unwrap().as_socket().unwrap().port();
    let p = peer("rp-listen", &[&port.to_string()], false);
    assert_eq!(p.line(), "READY");
    let (_, r) = audit(None, &[]);
    let f = findings_on(&r, "reuseport_group", port);
    assert_eq!(f.len(), 1, "{r}");
    assert_eq!(f[0]["severity"], "warn");
    assert_eq!(f[0]["details"]["members"], 2);
    assert_eq!(f[0]["details"]["same_program"], false);
    assert!(owned_by(&f[0], me()) && owned_by(&f[0], p.pid()));
    // The claim: the other program takes a share of the connections.
    for _ in 0..32 {
        drop(TcpStream::connect(("127.0.0.1", port)).unwrap());
    }
    std::thread::sleep(Duration::from_millis(200));
    s.set_nonblocking(true).unwrap();
    let mut mine = 0;
    while s.accept().is_ok() {
        mine += 1;
    }
    let mut theirs = 0;
    while theirs + mine < 32 {
        assert_eq!(p.line(), "ACCEPT");
        theirs += 1;
    }
    assert!(mine > 0 && theirs > 0, "split {mine}/{theirs}");
}

#[test]
fn dev_server_on_the_wildcard_answers_on_every_address() {
    let mut cmd = std::process::Command::new(python());
    cmd.args(["-u", "-m", "http.server", "--bind", "0.0.0.0", "0"]);
    let p = GroupChild::spawn(cmd);
    let l = p.line();
    let port: u16 = l
        .split(" port ")
        .nth(1)
        .and_then(|x| x.split_whitespace().next())
        .and_then(|x| x.parse().ok())
        .unwrap_or_else(|| panic!("{l}"));
    let (_, r) = audit(None, &[]);
    let f = findings_on(&r, "dev_server_on_wildcard", port);
    assert_eq!(f.len(), 1, "{r}");
    assert_eq!(f[0]["severity"], "warn");
    assert_eq!(f[0]["evidence"][0]["local_addr"], "0.0.0.0");
    // The claim: it answers on an address other than the one a developer tries.
    let mut c = TcpStream::connect(("127.0.0.2", port)).unwrap();
    c.write_all(b"GET / HTTP/1.0\r\n\r\n").unwrap();
    let mut reply = String::new();
    c.read_to_string(&mut reply).unwrap();
    assert!(reply.starts_with("HTTP/1.0 200"), "{reply}");
}

#[test]
fn specific_udp_bind_shadows_the_wildcard_in_either_order() {
    let nobody = can_setpriv();
    if !nobody {
        eprintln!("skipped the cross-user half: needs root and setpriv (same user instead)");
    }
    // Wildcard first, then the specific socket.
    let wild = udp_ra("0.0.0.0:0");
    let port = port_of(&wild);
    let p = peer("udp-recv", &["127.0.0.1", &port.to_string(), "8"], nobody);
    assert_eq!(p.line(), "READY");
    let (_, r) = audit(None, &[]);
    let f = findings_on(&r, "shadowed_wildcard", port);
    assert_eq!(f.len(), 1, "{r}");
    assert_eq!(f[0]["severity"], if nobody { "high" } else { "warn" });
    assert_eq!(f[0]["evidence"][0]["local_addr"], "127.0.0.1");
    assert_eq!(f[0]["evidence"][1]["local_addr"], "0.0.0.0");
    send(port, 8);
    assert_eq!(p.line(), "GOT 8");
    assert_eq!(drain(&wild), 0);
    drop(p);
    // Specific first, then the wildcard: the specific socket still gets them.
    let probe = UdpSocket::bind("127.0.0.1:0").unwrap();
    let port = port_of(&probe);
    drop(probe);
    let p = peer("udp-recv", &["127.0.0.1", &port.to_string(), "8"], nobody);
    assert_eq!(p.line(), "READY");
    let wild = udp_ra(&format!("0.0.0.0:{port}"));
    send(port, 8);
    assert_eq!(p.line(), "GOT 8");
    assert_eq!(drain(&wild), 0);
}

#[test]
fn ephemeral_ports_per_destination_and_exit_codes_in_a_small_range() {
    let Some(ns) = Netns::new("eph") else { return };
    let (code, r) = audit(Some(&ns.0), &[]);
    assert_eq!(
        (code, r["findings"].as_array().unwrap().len()),
        (0, 0),
        "{r}"
    );
    ns.exec(&[
        "sysctl",
        "-q",
        "-w",
        "net.ipv4.ip_local_port_range=40000 40009",
    ]);
    // 5 of 10: warn.
    let p = peer_in(&ns, "fill", &["5000", "5"]);
    assert_eq!(p.line(), "READY");
    let (code, r) = audit(Some(&ns.0), &[]);
    let f = findings_on_range(&r, "ephemeral_ports", 40000..=40009);
    assert_eq!(f.len(), 1, "{r}");
    assert_eq!(
        (
            f[0]["severity"].as_str(),
            f[0]["details"]["in_use"].as_u64()
        ),
        (Some("warn"), Some(5))
    );
    assert_eq!(f[0]["details"]["range_size"], 10);
    assert_eq!(code, 1);
    assert_eq!(audit(Some(&ns.0), &["--fail-on", "high"]).0, 0);
    assert_eq!(audit(Some(&ns.0), &["--fail-on", "warn"]).0, 1);
    drop(p);
    // 8 of 10: high; and the claim: two more connects work, the next gets EADDRNOTAVAIL.
    std::thread::sleep(Duration::from_millis(100));
    let mut p = peer_in(&ns, "fill", &["5001", "8"]);
    assert_eq!(p.line(), "READY");
    let (code, r) = audit(Some(&ns.0), &["--fail-on", "high"]);
    let f: Vec<_> = r["findings"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|f| f["kind"] == "ephemeral_ports" && f["details"]["destination_port"] == 5001)
        .cloned()
        .collect();
    assert_eq!(f.len(), 1, "{r}");
    assert_eq!(f[0]["severity"], "high");
    assert_eq!(code, 1);
    p.say("more");
    let l = p.line();
    assert!(l.starts_with("ERR EADDRNOTAVAIL after "), "{l}");
}

#[test]
fn timewait_pile_on_a_port_blocks_a_plain_rebind() {
    // In a private namespace: its own TIME_WAIT table (tcp_max_tw_buckets is per namespace),
    // so a benchmark filling the host's table cannot stop the kernel from making ours.
    let Some(ns) = Netns::new("tw") else { return };
    let mut p = peer_in(&ns, "timewait", &["1000"]);
    let l = p.line();
    let port: u16 = l.split_whitespace().nth(1).unwrap().parse().unwrap();
    let (code, r) = audit(Some(&ns.0), &[]);
    let f = findings_on(&r, "timewait_per_port", port);
    assert_eq!(f.len(), 1, "{}", r["findings"]);
    assert_eq!(f[0]["details"]["time_wait"], 1000);
    assert_eq!(f[0]["severity"], "warn");
    assert_eq!(
        f[0]["evidence"].as_array().unwrap().len(),
        10,
        "evidence is capped"
    );
    assert_eq!(code, 1);
    // The claim: a new server on the port, without SO_REUSEADDR, gets EADDRINUSE (rule 7).
    p.say("bind");
    assert_eq!(p.line(), "EADDRINUSE");
}

#[test]
fn full_accept_queue_drops_new_connections() {
    let s = Socket::new(Domain::IPV4, Type::STREAM, Some(Protocol::TCP)).unwrap();
    s.bind(&sa("127.0.0.1:0").into()).unwrap();
    s.listen(4).unwrap();
    let addr = s.local_addr().unwrap().as_socket().unwrap();
    // The kernel queues backlog + 1 (sk_acceptq_is_full is `>`).
    let held: Vec<TcpStream> = (0..5).map(|_| TcpStream::connect(addr).unwrap()).collect();
    // connect() returns before the listener's side has handled the last ACK (softirq work
    // a loaded machine may defer): wait, bounded, until the queue holds all five.
    let queued = |r: &serde_json::Value| {
        findings_on(r, "accept_queue", addr.port())
            .first()
            .is_some_and(|f| f["details"]["queued"] == 5)
    };
    let r = poll(Duration::from_secs(10), || {
        let (_, r) = audit(None, &[]);
        queued(&r).then_some(r)
    })
    .unwrap_or_else(|| audit(None, &[]).1);
    let f = findings_on(&r, "accept_queue", addr.port());
    assert_eq!(f.len(), 1, "{r}");
    assert_eq!(f[0]["severity"], "high");
    assert_eq!(
        (
            f[0]["details"]["queued"].as_u64(),
            f[0]["details"]["backlog"].as_u64()
        ),
        (Some(5), Some(4))
    );
    let e = TcpStream::connect_timeout(&addr, Duration::from_millis(1500)).unwrap_err();
    assert_eq!(e.kind(), std::io::ErrorKind::TimedOut, "{e}");
    drop(held);
}

#[test]
fn close_wait_piles_up_in_a_process_that_never_closes() {
    let p = peer("hold", &[], false);
    let l = p.line();
    let port: u16 = l.split_whitespace().nth(1).unwrap().parse().unwrap();
    // Held by the process (accepted) before the peers close: a connection still in the
    // accept queue has no fd and no owner.
    let clients: Vec<TcpStream> = (0..12)
        .map(|_| TcpStream::connect(("127.0.0.1", port)).unwrap())
        .collect();
    for n in 1..=12 {
        assert_eq!(p.line(), format!("ACCEPTED {n}"));
    }
    drop(clients);
    // The FINs are handled in softirq context, which a loaded machine may defer: wait,
    // bounded, until all twelve are in CLOSE_WAIT.
    let all_there = |r: &serde_json::Value| {
        r["findings"].as_array().unwrap().iter().any(|f| {
            f["kind"] == "close_wait"
                && f["details"]["process"]["pid"] == p.pid()
                && f["details"]["close_wait"] == 12
        })
    };
    let r = poll(Duration::from_secs(10), || {
        let (_, r) = audit(None, &[]);
        all_there(&r).then_some(r)
    })
    .unwrap_or_else(|| audit(None, &[]).1);
    let f: Vec<_> = r["findings"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|f| f["kind"] == "close_wait" && f["details"]["process"]["pid"] == p.pid())
        .cloned()
        .collect();
    assert_eq!(f.len(), 1, "{r}");
    assert_eq!(f[0]["details"]["close_wait"], 12);
    // No timer ends them: still there, still the process's fds, a second later.
    std::thread::sleep(Duration::from_secs(1));
    let ss = std::process::Command::new("ss")
        .args([
            "-tanpH",
            "state",
            "close-wait",
            &format!("( sport = :{port} )"),
        ])
        .output()
        .unwrap();
    let out = String::from_utf8_lossy(&ss.stdout);
    assert_eq!(out.lines().count(), 12, "{out}");
    assert!(
        out.lines().all(|l| l.contains(&format!("pid={}", p.pid()))),
        "{out}"
    );
}

#[test]
fn human_output_names_severity_rule_and_fix() {
    let mine = udp_ra("127.0.0.1:0");
    let port = port_of(&mine).to_string();
    let (code, out, _) = netkit(&["audit"]);
    assert_eq!(code, 1);
    // Each finding: a head line (severity, rule, kind), the message and the fix indented
    // under it, then the evidence table.
    let lines: Vec<&str> = out.lines().collect();
    let at = lines
        .iter()
        .position(|l| l.starts_with("      UDP 127.0.0.1:") && l.contains(&format!(":{port} ")))
        .unwrap_or_else(|| panic!("{out}"));
    let head: Vec<&str> = lines[at - 1].split_whitespace().collect();
    assert!(matches!(head[0], "HIGH" | "WARN"), "{}", lines[at - 1]);
    assert_eq!(head[1..], ["U2", "udp_reuseaddr"], "{}", lines[at - 1]);
    assert!(
        lines[at + 1].starts_with("      fix: Drop SO_REUSEADDR"),
        "{out}"
    );
    assert!(lines[at + 2].starts_with("      PROTO"), "{out}");
    assert!(out.lines().last().unwrap().contains("finding(s):"));
}

#[test]
fn netns_and_all_netns_audit_other_namespaces_with_their_own_sysctls() {
    let Some(ns) = Netns::new("all") else { return };
    ns.exec(&[
        "sysctl",
        "-q",
        "-w",
        "net.ipv4.ip_local_port_range=40000 40009",
    ]);
    let p = peer_in(&ns, "fill", &["5000", "8"]);
    assert_eq!(p.line(), "READY");
    let u = peer_in(&ns, "udp-recv", &["0.0.0.0", "5514", "1"]);
    assert_eq!(u.line(), "READY");
    let (code, r) = audit(None, &["--netns", &ns.0]);
    assert_eq!(code, 1);
    let eph = findings_on_range(&r, "ephemeral_ports", 40000..=40009);
    assert_eq!(eph.len(), 1, "{r}");
    // The namespace's own ip_local_port_range (10 ports), read from inside it.
    assert_eq!(eph[0]["details"]["range_size"], 10);
    assert_eq!(eph[0]["severity"], "high");
    assert_eq!(eph[0]["netns"]["name"], ns.0.as_str());
    let udp = findings_on(&r, "udp_reuseaddr", 5514);
    assert_eq!(udp.len(), 1, "{r}");
    assert!(owned_by(&udp[0], u.pid()));
    // --all-netns sees the same namespace next to this one.
    let (_, all) = audit(None, &["--all-netns"]);
    let mine: Vec<_> = all["findings"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|f| f["netns"]["name"] == ns.0.as_str())
        .collect();
    assert!(mine.iter().any(|f| f["kind"] == "udp_reuseaddr"), "{all}");
    assert!(mine.iter().any(|f| f["kind"] == "ephemeral_ports"));
    // A namespace that does not exist is a one-line error, exit 2.
    let (code, _, err) = netkit(&["audit", "--netns", "nk-sockopt-does-not-exist"]);
    assert_eq!(code, 2, "{err}");
    assert_eq!(err.trim().lines().count(), 1, "{err}");
}
