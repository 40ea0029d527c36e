//! `netkit explain --connect HOST:PORT` (issue 8): a real trial connect, then causes with
//! evidence from the inventory. Loopback, plus private network namespaces (root only; named
//! `nk-*` and deleted).

mod support;

use std::net::TcpListener;
use std::process::{Command, Stdio};
use std::time::Duration;

use serde_json::Value;
use support::cli::netkit;
use support::is_root;
use support::listeners::free_port;
use support::netns::{Netns, ip};
use support::python::python;

/// `netkit explain --json --connect TARGET [--timeout T]`: (exit code, JSON).
fn connect(target: &str, timeout: Option<&str>) -> (i32, Value) {
    let mut a = vec!["explain", "--json", "--connect", target];
    if let Some(t) = timeout {
        a.extend(["--timeout", t]);
    }
    let (code, out, err) = netkit(&a);
    let v: Value =
        serde_json::from_str(&out).unwrap_or_else(|e| panic!("bad JSON ({e}): {out}\n{err}"));
    (code, v)
}

fn kinds(v: &Value) -> Vec<String> {
    v["causes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["kind"].as_str().unwrap().to_string())
        .collect()
}

fn cause<'a>(v: &'a Value, kind: &str) -> &'a Value {
    v["causes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["kind"] == kind)
        .unwrap_or_else(|| panic!("no {kind} in {v:#}"))
}

#[test]
fn a_listener_connects_and_exits_0() {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let p = l.local_addr().unwrap().port();
    let (code, v) = connect(&format!("127.0.0.1:{p}"), None);
    assert_eq!(code, 0, "{v:#}");
    assert_eq!(v["mode"], "connect");
    assert_eq!(v["connected"], true);
    assert_eq!(v["bindable"], Value::Null);
    assert_eq!(v["target_addr"], "127.0.0.1");
    assert_eq!(v["target_port"], p);
    let c = cause(&v, "connected");
    assert_eq!(
        c["sockets"][0]["owners"][0]["pid"],
        std::process::id(),
        "{c:#}"
    );
}

#[test]
fn nothing_listens_is_refused_with_that_cause() {
    let p = free_port();
    let (code, v) = connect(&format!("127.0.0.1:{p}"), None);
    assert_eq!(code, 1);
    assert_eq!(v["connected"], false);
    assert_eq!(v["errno"], "ECONNREFUSED");
    assert_eq!(v["stage"], "connect");
    assert_eq!(kinds(&v), vec!["nothing_listens"]);
}

/// The classic: the client dials ::1 (what `localhost` often resolves to first) but the
/// server listens on 127.0.0.1 only.
#[test]
fn listener_on_the_other_family_is_named() {
    let p = free_port();
    let l = TcpListener::bind(("127.0.0.1", p)).unwrap();
    let (code, v) = connect(&format!("[::1]:{p}"), None);
    assert_eq!(code, 1);
    let c = cause(&v, "listens_elsewhere");
    assert_eq!(c["sockets"][0]["owners"][0]["pid"], std::process::id());
    assert!(c["fix"].as_str().unwrap().contains("127.0.0.1"), "{c:#}");
    drop(l);
}

/// Backlog 1 and two connections nobody accepts: the queue holds more than the backlog, the
/// kernel drops the trial's SYN, the connect times out, and sock_diag shows the queue.
#[test]
fn a_full_accept_queue_times_out_and_says_why() {
    let s = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).unwrap();
    s.bind(
        &"127.0.0.1:0"
            .parse::<std::net::SocketAddr>()
            .unwrap()
            .into(),
    )
    .unwrap();
    s.listen(1).unwrap();
    let l: TcpListener = s.into();
    let p = l.local_addr().unwrap().port();
    let _held: Vec<_> = (0..2)
        .map(|_| std::net::TcpStream::connect(("127.0.0.1", p)).unwrap())
        .collect();
    // connect() returns before the listener's side has handled the last ACK (softirq work a
    // loaded machine may defer): wait, bounded, until `ss` shows both queued (Recv-Q 2).
    let queued = support::poll(Duration::from_secs(10), || {
        (support::ss::ss_accept_queue("127.0.0.1", p) == Some(2)).then_some(())
    });
    assert!(
        queued.is_some(),
        "the accept queue never held both connections"
    );
    let (code, v) = connect(&format!("127.0.0.1:{p}"), Some("1"));
    assert_eq!(code, 1);
    assert_eq!(v["errno"], "ETIMEDOUT", "{v:#}");
    let c = cause(&v, "accept_queue_full");
    assert_eq!(c["sockets"][0]["recv_q"], 2, "{c:#}");
    assert_eq!(c["sockets"][0]["send_q"], 1);
}

#[test]
fn bad_targets_are_one_line_errors() {
    for t in [
        "nonsense",
        "::1",
        "127.0.0.1:99999",
        "no-such-host.invalid:80",
    ] {
        let (code, out, err) = netkit(&["explain", "--connect", t]);
        assert_eq!(code, 2, "{t}: {out} {err}");
        assert!(
            err.starts_with("netkit: ") && err.trim().lines().count() == 1,
            "{err}"
        );
    }
}

#[test]
fn a_listener_in_another_namespace_is_seen_and_named() {
    if !is_root() {
        eprintln!("skipped: needs root to create a network namespace");
        return;
    }
    let Some(ns) = Netns::new("other") else {
        eprintln!("skipped: cannot create a network namespace here");
        return;
    };
    let p = free_port().to_string();
    let mut child = Command::new("ip")
        .args(["netns", "exec", &ns.0, python(), "-c"])
        .arg("import socket,sys,time\ns=socket.socket(); s.bind(('127.0.0.1', int(sys.argv[1]))); s.listen(4)\nprint('READY', flush=True); time.sleep(60)")
        .arg(&p)
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut line = String::new();
    std::io::BufRead::read_line(
        &mut std::io::BufReader::new(child.stdout.as_mut().unwrap()),
        &mut line,
    )
    .unwrap();
    assert_eq!(line.trim(), "READY");
    let (code, v) = connect(&format!("127.0.0.1:{p}"), None);
    let _ = child.kill();
    let _ = child.wait();
    assert_eq!(code, 1);
    assert_eq!(v["errno"], "ECONNREFUSED");
    let c = cause(&v, "listener_in_other_netns");
    assert!(c["message"].as_str().unwrap().contains(&ns.0), "{c:#}");
}

/// Rule 13 from the connect side: in a private namespace with a 2-port range, two held
/// connections to one destination leave no source port for a third.
#[test]
fn exhausted_source_ports_are_eaddrnotavail() {
    if !is_root() {
        eprintln!("skipped: needs root to create a network namespace");
        return;
    }
    let script = format!(
        r#"
import socket, subprocess
s = socket.socket(); s.bind(("127.0.0.1", 0)); s.listen(8); p = s.getsockname()[1]
held = [socket.create_connection(("127.0.0.1", p)) for _ in range(2)]
r = subprocess.run(["{}", "explain", "--json", "--connect", "127.0.0.1:%d" % p], capture_output=True, text=True)
print(r.returncode); print(r.stdout.strip())
"#,
        env!("CARGO_BIN_EXE_netkit")
    );
    let sh = format!(
        "ip link set lo up && sysctl -qw net.ipv4.ip_local_port_range='40000 40001' && exec {} -c \"$0\"",
        python()
    );
    let o = Command::new("unshare")
        .args(["-n", "sh", "-c", &sh, &script])
        .output()
        .unwrap();
    if !o.status.success() {
        eprintln!(
            "skipped: cannot create a network namespace here: {}",
            String::from_utf8_lossy(&o.stderr)
        );
        return;
    }
    let out = String::from_utf8_lossy(&o.stdout);
    let mut lines = out.lines();
    assert_eq!(lines.next(), Some("1"), "{out}");
    let v: Value = serde_json::from_str(lines.next().unwrap()).unwrap();
    assert_eq!(v["errno"], "EADDRNOTAVAIL", "{v:#}");
    let c = cause(&v, "ephemeral_exhausted");
    assert!(
        c["message"].as_str().unwrap().contains("40000-40001"),
        "{c:#}"
    );
}

/// "No answer": in a namespace of its own, a destination on a veth whose far end (in a second
/// namespace) has no address; a permanent neighbour entry sends the SYNs there, where they are
/// dropped silently. The trial connect times out and explain says what it cannot see. (This
/// kernel has no netem qdisc, so loss cannot be simulated on lo.)
#[test]
fn a_silently_dropped_syn_times_out_and_says_what_netkit_cannot_see() {
    if !is_root() {
        eprintln!("skipped: needs root to create network namespaces");
        return;
    }
    let (Some(a), Some(b)) = (Netns::new("to-a"), Netns::new("to-b")) else {
        eprintln!("skipped: cannot create network namespaces here");
        return;
    };
    let made = ip(&[
        "-n", &a.0, "link", "add", "v0", "type", "veth", "peer", "name", "v1", "netns", &b.0,
    ]) && ip(&["-n", &a.0, "addr", "add", "10.99.0.1/24", "dev", "v0"])
        && ip(&["-n", &a.0, "link", "set", "v0", "up"])
        && ip(&["-n", &b.0, "link", "set", "v1", "up"]);
    if !made {
        eprintln!("skipped: cannot make a veth pair here");
        return;
    }
    let link = Command::new("ip")
        .args(["-n", &b.0, "-o", "link", "show", "v1"])
        .output()
        .expect("ip link show");
    let text = String::from_utf8_lossy(&link.stdout);
    let mac = text
        .split_whitespace()
        .skip_while(|w| *w != "link/ether")
        .nth(1)
        .expect("v1's MAC")
        .to_string();
    assert!(ip(&[
        "-n",
        &a.0,
        "neigh",
        "add",
        "10.99.0.2",
        "lladdr",
        &mac,
        "dev",
        "v0",
        "nud",
        "permanent"
    ]));
    let (code, out, err) = netkit(&[
        "explain",
        "--json",
        "--connect",
        "10.99.0.2:80",
        "--timeout",
        "1",
        "--netns",
        &a.0,
    ]);
    let v: Value =
        serde_json::from_str(&out).unwrap_or_else(|e| panic!("bad JSON ({e}): {out}\n{err}"));
    assert_eq!(code, 1, "{v:#}");
    assert_eq!(v["errno"], "ETIMEDOUT", "{v:#}");
    let c = cause(&v, "timed_out");
    let msg = c["message"].as_str().unwrap_or_default();
    assert!(msg.contains("cannot see"), "{c:#}");
}
