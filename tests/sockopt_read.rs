//! `netkit sockopt PID`: reads back options a python3 process set on its own socket
//! (SO_REUSEPORT, keepalive, SO_SNDBUF, TCP_USER_TIMEOUT, SO_LINGER) through pidfd_getfd;
//! EPERM gives a clear exit 2.

mod support;

use support::cli::{netkit, netkit_json_validated};
use support::is_root;
use support::python::Helper;
use support::sockopt::Target;

#[derive(serde::Deserialize)]
struct Opts {
    reuseaddr: Option<bool>,
    reuseport: Option<bool>,
    keepalive: Option<bool>,
    keepidle: Option<u32>,
    sndbuf: Option<usize>,
}

#[derive(serde::Deserialize)]
struct Entry {
    fd: i32,
    proto: String,
    local_addr: String,
    local_port: Option<u16>,
    options: Opts,
}

#[derive(serde::Deserialize)]
struct Process {
    pid: u32,
    command: String,
}

#[derive(serde::Deserialize)]
struct Out {
    schema_version: u32,
    command: String,
    process: Process,
    sockets: Vec<Entry>,
}

#[test]
fn reads_options_set_by_another_process() {
    let h = Helper::start(
        "listen",
        &["--addr", "127.0.0.1", "--rp", "--ka", "--sndbuf", "65536"],
        false,
    );
    let pid = h.pid().to_string();
    let port = h.port().to_string();
    let (code, out, err) = netkit(&["sockopt", &pid, "--port", &port, "--json"]);
    assert_eq!(code, 0, "{err}");
    let o: Out = serde_json::from_str(&out).unwrap();
    assert_eq!((o.schema_version, o.command.as_str()), (1, "sockopt"));
    assert_eq!(
        (o.process.pid, o.process.command.as_str()),
        (h.pid(), "python3")
    );
    assert_eq!(o.sockets.len(), 1);
    let s = &o.sockets[0];
    assert_eq!((s.proto.as_str(), s.local_port), ("tcp", Some(h.port())));
    assert_eq!(s.local_addr, "127.0.0.1");
    assert_eq!(s.options.reuseport, Some(true));
    assert_eq!(s.options.reuseaddr, Some(false));
    assert_eq!(s.options.keepalive, Some(true));
    assert_eq!(s.options.keepidle, Some(30));
    // The kernel doubles SO_SNDBUF on set.
    assert_eq!(s.options.sndbuf, Some(131072));
    // --fd picks the same socket; the human form shows the options.
    let fd = s.fd.to_string();
    let (code, out, _) = netkit(&["sockopt", &pid, "--fd", &fd]);
    assert_eq!(code, 0);
    assert!(
        out.contains("reuseport on") && out.contains("sndbuf 131072"),
        "{out}"
    );
}

#[test]
fn no_permission_or_no_process_is_a_clear_error() {
    let (code, _, err) = netkit(&["sockopt", "4194303"]);
    assert_eq!(code, 2);
    assert!(err.starts_with("netkit: no such process"), "{err}");
    if !is_root() {
        eprintln!("skipped: the EPERM case needs root to start a process of another user");
        return;
    }
    let h = Helper::start("listen", &["--addr", "127.0.0.1"], false);
    let o = std::process::Command::new("setpriv")
        .args([
            "--reuid=65534",
            "--regid=65534",
            "--clear-groups",
            env!("CARGO_BIN_EXE_netkit"),
        ])
        .args(["sockopt", &h.pid().to_string()])
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(2));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("ptrace") && err.contains("root"), "{err}");
    assert_eq!(err.trim().lines().count(), 1);
}

#[test]
fn user_timeout_and_linger_are_read_as_the_target_itself_reads_them() {
    // target.py sets both on its listener; the accepted connection inherits them
    // (sk_clone_lock copies sk_lingertime, SOCK_LINGER and icsk_user_timeout).
    let mut t = Target::start(&["--user-timeout", "4000", "--linger", "3"]);
    let pid = t.pid().to_string();
    let (code, _, err) = netkit(&["sockopt", &pid]);
    if code == 2 && err.contains("EPERM") {
        eprintln!("skipped: pidfd_getfd on our own child is not permitted here: {err}");
        return;
    }
    let c = std::net::TcpStream::connect(("127.0.0.1", t.port)).unwrap();
    let me = c.local_addr().unwrap().port();
    let inside = t.conn(me);
    assert_eq!(
        (&inside["user_timeout"], &inside["linger"]),
        (&4000.into(), &3.into())
    );
    let port = t.port.to_string();
    let (code, out, err) = netkit_json_validated(&["sockopt", &pid, "--port", &port]);
    assert_eq!(code, 0, "{err}");
    let socks = out["sockets"].as_array().unwrap();
    assert_eq!(socks.len(), 2, "{out}");
    let dump = t.dump();
    for s in socks {
        let own = if s["state"] == "LISTEN" {
            &dump["listener"]
        } else {
            assert_eq!(s["remote_port"], me);
            &inside
        };
        assert_eq!(s["options"]["user_timeout"], own["user_timeout"], "{s}");
        assert_eq!(s["options"]["linger"], own["linger"], "{s}");
    }
    let (code, human, _) = netkit(&["sockopt", &pid, "--port", &port]);
    assert_eq!(code, 0);
    assert_eq!(
        human.matches("user-timeout 4000ms, linger 3s").count(),
        2,
        "{human}"
    );
    // The defaults: 0 (the kernel's retransmission limit) and off, as the target reads them.
    let mut d = Target::start(&[]);
    let _c = std::net::TcpStream::connect(("127.0.0.1", d.port)).unwrap();
    let own = d.conn(_c.local_addr().unwrap().port());
    assert_eq!(
        (&own["user_timeout"], &own["linger"]),
        (&0.into(), &serde_json::Value::Null)
    );
    let (code, out, _) = netkit_json_validated(&["sockopt", &d.pid().to_string()]);
    assert_eq!(code, 0);
    for s in out["sockets"].as_array().unwrap() {
        assert_eq!(s["options"]["user_timeout"], 0, "{s}");
        assert_eq!(s["options"]["linger"], false, "{s}");
    }
    let (_, human, _) = netkit(&["sockopt", &d.pid().to_string()]);
    assert!(
        human.contains("user-timeout default, linger off"),
        "{human}"
    );
    // SO_LINGER is a socket-level option, so a UDP socket has it; TCP_USER_TIMEOUT is null.
    let u = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    let up = u.local_addr().unwrap().port().to_string();
    let me = std::process::id().to_string();
    let (code, out, _) = netkit_json_validated(&["sockopt", &me, "--port", &up]);
    assert_eq!(code, 0);
    let o = &out["sockets"][0]["options"];
    assert_eq!(
        (&o["user_timeout"], &o["linger"]),
        (&serde_json::Value::Null, &false.into())
    );
}
