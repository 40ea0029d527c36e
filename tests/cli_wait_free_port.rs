//! wait-free names a live holder (waiting helps only if it exits) and takes several ports;
//! free-port --prefer / --exclude / --both, checked against real binds on loopback.

mod support;

use std::net::{TcpListener, UdpSocket};
use support::cli::netkit_output;

#[test]
fn wait_free_names_the_live_holder_at_once() {
    let l = TcpListener::bind("0.0.0.0:0").unwrap();
    let p = l.local_addr().unwrap().port().to_string();
    let out = netkit_output(&["wait-free", &p, "--timeout", "0.6"]);
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    let me = std::process::id();
    let line = format!("port {p} is held by PID {me} (");
    assert!(err.contains(&line), "{err}");
    assert!(err.contains("waiting helps only if it exits"), "{err}");
    assert_eq!(err.matches(&line).count(), 1, "said once: {err}");
    // The same with --timeout 0 (no countdown at all), and in JSON.
    let out = netkit_output(&["wait-free", &p, "--timeout", "0", "--json"]);
    let v = support::schema::validate_stdout("wait-free", &out);
    assert_eq!(v["bindable"], false);
    assert_eq!(v["holders"][0]["pid"], me);
    assert!(
        v["notes"][0]
            .as_str()
            .unwrap()
            .contains("waiting helps only if it exits")
    );
}

#[test]
fn wait_free_takes_several_ports_and_a_udp_suffix() {
    let a = TcpListener::bind("127.0.0.1:0").unwrap();
    let pa = a.local_addr().unwrap().port();
    drop(a);
    let u = UdpSocket::bind("0.0.0.0:0").unwrap();
    let pu = u.local_addr().unwrap().port();
    // --addr 127.0.0.1: a TIME_WAIT of another program on 127.0.0.9:PA (a load generator's
    // source port) must not count; our UDP socket on 0.0.0.0 still covers 127.0.0.1.
    let out = netkit_output(&[
        "wait-free",
        &format!("{pa},{pu}/udp"),
        "--addr",
        "127.0.0.1",
        "--timeout",
        "0",
        "--json",
    ]);
    let v = support::schema::validate_stdout("wait-free", &out);
    assert_eq!(out.status.code(), Some(1));
    assert!(v["port"].is_null());
    assert_eq!(v["pending"], serde_json::json!([pu]));
    drop(u);
    let out = netkit_output(&[
        "wait-free",
        &format!("{pa},{pu}/udp"),
        "--addr",
        "127.0.0.1",
        "--timeout",
        "2",
    ]);
    assert_eq!(out.status.code(), Some(0), "{out:?}");
}

#[test]
fn free_port_prefer_exclude_both() {
    // A bindable preferred port is printed first.
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let free = l.local_addr().unwrap().port();
    drop(l);
    let out = netkit_output(&[
        "free-port",
        "--range",
        "20000-40000",
        "--prefer",
        &free.to_string(),
        "--json",
    ]);
    let v = support::schema::validate_stdout("free-port", &out);
    if v["ports"][0] != free {
        println!("note: {free} was taken between the check and the call: {v}");
    }
    // A held preferred port: another one, with a note.
    let held = TcpListener::bind("0.0.0.0:0").unwrap();
    let hp = held.local_addr().unwrap().port();
    let out = netkit_output(&["free-port", "--prefer", &hp.to_string()]);
    assert_eq!(out.status.code(), Some(0));
    let text = String::from_utf8_lossy(&out.stdout);
    assert_ne!(text.trim(), hp.to_string());
    assert!(
        String::from_utf8_lossy(&out.stderr)
            .contains(&format!("preferred port {hp} is not bindable"))
    );
    // --exclude everything but one port of a small range.
    let out = netkit_output(&[
        "free-port",
        "--range",
        "30000-30004",
        "--exclude",
        "30000-30003",
        "-n",
        "2",
        "--json",
    ]);
    let v = support::schema::validate_stdout("free-port", &out);
    let ports: Vec<u64> = v["ports"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p.as_u64().unwrap())
        .collect();
    assert!(ports.iter().all(|&p| p == 30004), "{ports:?}");
    assert_eq!(out.status.code(), Some(1), "only one port left to give");
    // --both: a port held by UDP only is never printed; each printed port binds for both.
    let u = UdpSocket::bind("0.0.0.0:0").unwrap();
    let up = u.local_addr().unwrap().port();
    let out = netkit_output(&["free-port", "--both", "--range", &format!("{up}-{up}")]);
    assert_eq!(out.status.code(), Some(1), "UDP holds it");
    let out = netkit_output(&["free-port", "--both", "-n", "3", "--json"]);
    let v = support::schema::validate_stdout("free-port", &out);
    assert_eq!(v["proto"], "both");
    for p in v["ports"].as_array().unwrap() {
        let p = p.as_u64().unwrap() as u16;
        let t = TcpListener::bind(("0.0.0.0", p));
        let d = UdpSocket::bind(("0.0.0.0", p));
        assert!(t.is_ok() && d.is_ok(), "{p} not bindable for both (raced?)");
    }
}

#[test]
fn free_port_help_states_the_race() {
    let out = netkit_output(&["free-port", "--help"]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("another program can take it before yours binds it"),
        "{text}"
    );
}
