//! Filters in ss's vocabulary against real loopback sockets: --state values and groups,
//! short flags, who-owns --pid/--user/-l.

use std::net::{TcpListener, TcpStream, UdpSocket};

use assert_cmd::Command;
use serde_json::Value;

fn json(args: &[&str]) -> (Value, i32) {
    let out = Command::cargo_bin("netkit")
        .expect("binary")
        .args(args)
        .arg("--json")
        .output()
        .expect("run");
    let code = out.status.code().expect("exit code");
    let v = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "netkit {args:?}: no JSON ({e}), exit {code}\n{}",
            String::from_utf8_lossy(&out.stderr)
        )
    });
    (v, code)
}

/// (proto, state) of the rows on local port `port` of 127.0.0.1, sorted.
fn rows(v: &Value, port: u16) -> Vec<(String, String)> {
    let mut r: Vec<(String, String)> = v["sockets"]
        .as_array()
        .expect("sockets")
        .iter()
        .filter(|s| s["local_port"].as_u64() == Some(u64::from(port)))
        .filter(|s| s["local_addr"] == "127.0.0.1")
        .map(|s| {
            (
                s["proto"].as_str().unwrap().to_string(),
                s["state"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    r.sort();
    r
}

/// A listener with one accepted connection and a UDP socket on the same port number.
struct Scene {
    port: u16,
    _l: TcpListener,
    _c: TcpStream,
    _s: TcpStream,
    _u: Option<UdpSocket>,
}

fn scene() -> Scene {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = l.local_addr().unwrap().port();
    let c = TcpStream::connect(("127.0.0.1", port)).unwrap();
    let (s, _) = l.accept().unwrap();
    let u = UdpSocket::bind(("127.0.0.1", port)).ok();
    Scene {
        port,
        _l: l,
        _c: c,
        _s: s,
        _u: u,
    }
}

fn t(p: &str, s: &str) -> (String, String) {
    (p.to_string(), s.to_string())
}

#[test]
fn state_takes_several_values_groups_and_kernel_spellings() {
    let sc = scene();
    let p = sc.port.to_string();
    let udp = sc._u.is_some();
    let (v, code) = json(&["inspect", "--port", &p, "--state", "listening,established"]);
    assert_eq!(code, 0);
    assert_eq!(
        rows(&v, sc.port),
        vec![t("tcp", "ESTABLISHED"), t("tcp", "LISTEN")]
    );
    let (v2, _) = json(&[
        "inspect", "--port", &p, "--state", "LISTEN", "--state", "estab",
    ]);
    assert_eq!(rows(&v, sc.port), rows(&v2, sc.port));
    let (v, _) = json(&["inspect", "--port", &p, "--state", "connected"]);
    assert_eq!(rows(&v, sc.port), vec![t("tcp", "ESTABLISHED")]);
    let (v, _) = json(&["inspect", "--port", &p, "--state", "closed"]);
    assert_eq!(
        rows(&v, sc.port),
        if udp {
            vec![t("udp", "UNCONN")]
        } else {
            vec![]
        }
    );
    let (v, _) = json(&["inspect", "--port", &p, "--state", "all"]);
    let mut all = vec![t("tcp", "ESTABLISHED"), t("tcp", "LISTEN")];
    if udp {
        all.push(t("udp", "UNCONN"));
    }
    assert_eq!(rows(&v, sc.port), all);
    let (v, _) = json(&["inspect", "--port", &p, "--state", "big"]);
    assert_eq!(rows(&v, sc.port), all);
    let (v, code) = json(&["inspect", "--port", &p, "--state", "bucket"]);
    assert_eq!(rows(&v, sc.port), vec![]);
    // Exit 1 = nothing listed. Other programs may have TIME_WAITs on this port number on
    // other loopback addresses (a load generator's 127.0.0.9:P source port): then exit 0.
    let listed = !v["sockets"].as_array().expect("sockets").is_empty();
    assert_eq!(code, if listed { 0 } else { 1 }, "{v}");
}

#[test]
fn short_flags_t_u_l() {
    let sc = scene();
    let p = sc.port.to_string();
    let (v, _) = json(&["inspect", "-t", "--port", &p]);
    assert!(rows(&v, sc.port).iter().all(|r| r.0 == "tcp"));
    assert_eq!(rows(&v, sc.port).len(), 2);
    let (v, _) = json(&["inspect", "-tl", "--port", &p]);
    assert_eq!(rows(&v, sc.port), vec![t("tcp", "LISTEN")]);
    if sc._u.is_some() {
        let (v, _) = json(&["inspect", "-u", "--port", &p]);
        assert_eq!(rows(&v, sc.port), vec![t("udp", "UNCONN")]);
        let (v, _) = json(&["who-owns", "-ul", &p]);
        assert_eq!(rows(&v, sc.port), vec![t("udp", "UNCONN")]);
    }
    let (v, _) = json(&["who-owns", "-l", "-4", &p]);
    assert!(rows(&v, sc.port).iter().all(|r| r.1 != "ESTABLISHED"));
}

#[test]
fn who_owns_pid_and_user_filter() {
    let sc = scene();
    let p = sc.port.to_string();
    let me = std::process::id().to_string();
    let (v, code) = json(&["who-owns", &p, "--pid", &me]);
    assert_eq!(code, 0);
    assert!(!rows(&v, sc.port).is_empty());
    // A live process that holds nothing on the port: nothing found, exit 1.
    let (v, code) = json(&["who-owns", &p, "--pid", "1"]);
    assert_eq!((code, rows(&v, sc.port)), (1, vec![]));
    let uid = unsafe_uid();
    let (v, code) = json(&["who-owns", &p, "--user", &uid.to_string()]);
    assert_eq!(code, 0);
    assert!(!rows(&v, sc.port).is_empty());
    let out = Command::cargo_bin("netkit")
        .unwrap()
        .args(["who-owns", &p, "--user", "no-such-user-netkit"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert_eq!(
        String::from_utf8_lossy(&out.stderr),
        "netkit: no such user: \"no-such-user-netkit\"\n"
    );
}

fn unsafe_uid() -> u32 {
    use std::os::unix::fs::MetadataExt;
    std::fs::metadata("/proc/self").unwrap().uid()
}

#[test]
fn bad_state_lists_the_choices_in_one_line() {
    let out = Command::cargo_bin("netkit")
        .unwrap()
        .args(["inspect", "--state", "bogus"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.starts_with("netkit: invalid value 'bogus' for --state: expected one of all, connected, synchronized, bucket, big, listening,"),
        "{err}"
    );
    assert!(err.lines().count() <= 2, "{err}");
}

#[test]
fn a_connection_in_the_accept_queue_names_its_listener_not_a_question_mark() {
    // Connected, never accepted: the server side has no file (inode 0) until accept().
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = l.local_addr().unwrap().port();
    let c = TcpStream::connect(("127.0.0.1", port)).unwrap();
    let cport = c.local_addr().unwrap().port();
    let me = std::process::id();
    let want = format!("(accept queue of PID {me})");
    for args in [
        vec!["who-owns".to_string(), port.to_string()],
        vec!["inspect".to_string(), "--port".into(), port.to_string()],
        vec![
            "inspect".to_string(),
            "--state".into(),
            "established".into(),
            "--port".into(),
            port.to_string(),
        ],
    ] {
        let out = Command::cargo_bin("netkit")
            .unwrap()
            .args(&args)
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&out.stdout);
        let row = text
            .lines()
            .find(|r| {
                r.contains("ESTABLISHED")
                    && r.contains(&format!("127.0.0.1:{cport}"))
                    && r.contains(&format!("127.0.0.1:{port} "))
            })
            .unwrap_or_else(|| panic!("{args:?}: no server-side row in\n{text}"));
        assert!(row.contains(&want), "{args:?}: {row}");
    }
    // Once accepted, the row has its real owner.
    let (_s, _) = l.accept().unwrap();
    let out = Command::cargo_bin("netkit")
        .unwrap()
        .args(["who-owns", &port.to_string()])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(!text.contains("accept queue"), "{text}");
}
