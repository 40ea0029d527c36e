//! Port arguments as ss/lsof/fuser users type them, against real loopback sockets held by
//! this test process (ports from 0).

use std::net::{TcpListener, UdpSocket};

use assert_cmd::Command;
use serde_json::Value;

fn netkit() -> Command {
    Command::cargo_bin("netkit").expect("binary")
}

/// Runs netkit with --json; returns (decoded stdout, exit code).
fn json(args: &[&str]) -> (Value, i32) {
    let out = netkit().args(args).arg("--json").output().expect("run");
    let code = out.status.code().expect("exit code");
    let v = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "netkit {args:?}: no JSON ({e}), exit {code}\n{}",
            String::from_utf8_lossy(&out.stderr)
        )
    });
    (v, code)
}

/// The (proto, local_addr, local_port) of the sockets in a listing held by this process.
fn mine(v: &Value) -> Vec<(String, String, u64)> {
    let me = u64::from(std::process::id());
    v["sockets"]
        .as_array()
        .expect("sockets")
        .iter()
        .filter(|s| {
            s["owners"]
                .as_array()
                .is_some_and(|o| o.iter().any(|o| o["pid"].as_u64() == Some(me)))
        })
        .map(|s| {
            (
                s["proto"].as_str().unwrap_or("").to_string(),
                s["local_addr"].as_str().unwrap_or("").to_string(),
                s["local_port"].as_u64().unwrap_or(0),
            )
        })
        .collect()
}

fn listener() -> (TcpListener, u16) {
    let l = TcpListener::bind("127.0.0.1:0").expect("bind");
    let p = l.local_addr().expect("addr").port();
    (l, p)
}

#[test]
fn every_single_port_spelling_finds_the_listener() {
    let (_l, p) = listener();
    for spec in [
        p.to_string(),
        format!(":{p}"),
        format!("*:{p}"),
        format!("{p}/tcp"),
        format!("{p}/TCP"),
        format!("127.0.0.1:{p}"),
        format!("localhost:{p}"),
        format!("127.0.0.1:{p}/tcp"),
    ] {
        let (v, code) = json(&["who-owns", &spec]);
        assert_eq!(code, 0, "{spec}: {v}");
        assert_eq!(
            mine(&v),
            vec![("tcp".into(), "127.0.0.1".into(), u64::from(p))],
            "{spec}"
        );
        assert_eq!(v["port"].as_u64(), Some(u64::from(p)), "{spec}");
    }
}

#[test]
fn protocol_suffix_and_host_narrow_what_matches() {
    let (_l, p) = listener();
    // A UDP socket on the same port number: `/udp` finds it and not the TCP listener.
    let Ok(u) = UdpSocket::bind(("127.0.0.1", p)) else {
        println!("skip: UDP port {p} is taken by someone else");
        return;
    };
    let (v, code) = json(&["who-owns", &format!("{p}/udp")]);
    assert_eq!(code, 0);
    assert_eq!(
        mine(&v),
        vec![("udp".into(), "127.0.0.1".into(), u64::from(p))]
    );
    let (v, _) = json(&["who-owns", &p.to_string()]);
    assert_eq!(mine(&v).len(), 2, "{v}");
    drop(u);
    // Another loopback address does not hold 127.0.0.1's socket.
    let out = netkit()
        .args(["who-owns", &format!("127.0.0.2:{p}")])
        .output()
        .expect("run");
    let err = String::from_utf8_lossy(&out.stderr);
    if out.status.code() == Some(1) {
        assert!(
            err.contains(&format!("nothing holds local port 127.0.0.2:{p}")),
            "{err}"
        );
    } else {
        println!("note: another process holds a wildcard on port {p}: {err}");
    }
}

#[test]
fn a_wildcard_listener_holds_every_address_of_the_port() {
    let l = TcpListener::bind("0.0.0.0:0").expect("bind");
    let p = l.local_addr().expect("addr").port();
    let (v, code) = json(&["who-owns", &format!("127.0.0.9:{p}")]);
    assert_eq!(code, 0, "{v}");
    assert_eq!(
        mine(&v),
        vec![("tcp".into(), "0.0.0.0".into(), u64::from(p))]
    );
}

#[test]
fn ipv6_in_brackets() {
    let Ok(l) = TcpListener::bind("[::1]:0") else {
        println!("skip: no IPv6 loopback here");
        return;
    };
    let p = l.local_addr().expect("addr").port();
    let (v, code) = json(&["who-owns", &format!("[::1]:{p}")]);
    assert_eq!(code, 0);
    assert_eq!(mine(&v), vec![("tcp".into(), "::1".into(), u64::from(p))]);
    // (Another process may hold 127.0.0.1 on the same number: only ours must be absent.)
    let (v, _) = json(&["who-owns", &format!("127.0.0.1:{p}/tcp")]);
    assert!(
        mine(&v).is_empty(),
        "an IPv6 socket on ::1 is not on 127.0.0.1: {v}"
    );
}

#[test]
fn lists_and_ranges_take_several_ports() {
    let (_a, pa) = listener();
    let (_b, pb) = listener();
    let want = |v: &Value| {
        let mut m: Vec<u64> = mine(v).into_iter().map(|x| x.2).collect();
        m.sort();
        m
    };
    let mut both = vec![u64::from(pa), u64::from(pb)];
    both.sort();
    for args in [
        vec!["who-owns".to_string(), format!("{pa},{pb}")],
        vec!["who-owns".to_string(), pa.to_string(), pb.to_string()],
        vec!["who-owns".to_string(), format!("{pa}/tcp,127.0.0.1:{pb}")],
        vec![
            "listening".to_string(),
            "--port".into(),
            format!("{pa},{pb}"),
        ],
        vec![
            "listening".to_string(),
            "-p".into(),
            pa.to_string(),
            "-p".into(),
            pb.to_string(),
        ],
        vec!["inspect".to_string(), "--port".into(), format!("{pa},{pb}")],
    ] {
        let a: Vec<&str> = args.iter().map(String::as_str).collect();
        let (v, code) = json(&a);
        assert_eq!(code, 0, "{args:?}");
        assert_eq!(want(&v), both, "{args:?}");
        assert!(
            v["port"].is_null(),
            "several ports: no single `port` ({args:?})"
        );
    }
    let (lo, hi) = (pa.min(pb), pa.max(pb));
    let (v, code) = json(&["who-owns", &format!("{lo}-{hi}")]);
    assert_eq!(code, 0);
    // Other processes -- and this test binary's other tests, running in parallel in the same
    // process -- may hold ports in between; ours must both be there, and nothing outside the range.
    let got = want(&v);
    assert!(got.contains(&both[0]) && got.contains(&both[1]), "{got:?}");
    assert!(
        got.iter()
            .all(|&p| (u64::from(lo)..=u64::from(hi)).contains(&p)),
        "{got:?} outside {lo}-{hi}"
    );
}

#[test]
fn inspect_port_is_the_local_port() {
    let (l, p) = listener();
    let c = std::net::TcpStream::connect(("127.0.0.1", p)).expect("connect");
    let (_s, _) = l.accept().expect("accept");
    let cport = c.local_addr().expect("addr").port();
    let (v, code) = json(&["inspect", "--port", &p.to_string()]);
    assert_eq!(code, 0);
    let ports: Vec<u64> = v["sockets"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["local_port"].as_u64().unwrap())
        .collect();
    assert!(ports.iter().all(|&x| x == u64::from(p)), "{ports:?}");
    assert!(!ports.contains(&u64::from(cport)));
}

#[test]
fn service_names_come_from_etc_services() {
    let Ok(text) = std::fs::read_to_string("/etc/services") else {
        println!("skip: no /etc/services (apt-get install netbase)");
        return;
    };
    if !text.lines().any(|l| l.starts_with("ssh")) {
        println!("skip: /etc/services has no ssh entry");
        return;
    }
    for spec in ["ssh", "ssh/tcp", "SSH", "localhost:ssh"] {
        let (v, code) = json(&["who-owns", spec]);
        assert!(code == 0 || code == 1, "{spec}");
        assert_eq!(v["port"].as_u64(), Some(22), "{spec}");
    }
    let out = netkit()
        .args(["explain", "http", "--json"])
        .output()
        .expect("run");
    assert!(matches!(out.status.code(), Some(0 | 1)), "{out:?}");
}

#[test]
fn zero_and_garbage_are_one_line_exit_2() {
    for (args, line) in [
        (
            vec!["who-owns", "abc"],
            "netkit: invalid port 'abc': expected 1-65535, :PORT, PORT/tcp, HOST:PORT, a range A-B or a service name\n",
        ),
        (
            vec!["who-owns", "0"],
            "netkit: invalid port '0': expected 1-65535, :PORT, PORT/tcp, HOST:PORT, a range A-B or a service name\n",
        ),
        (
            vec!["listening", "--port", "70000"],
            "netkit: invalid port '70000': expected 1-65535, :PORT, PORT/tcp, HOST:PORT, a range A-B or a service name\n",
        ),
        (
            vec!["explain", "6000-6010"],
            "netkit: invalid port '6000-6010': this command takes one port, not a list or range\n",
        ),
        (
            vec!["who-owns", "6010-6000"],
            "netkit: invalid port range '6010-6000': the first port is above the last\n",
        ),
    ] {
        netkit()
            .args(&args)
            .assert()
            .code(2)
            .stdout("")
            .stderr(line);
    }
}
