//! netkit run as an ordinary user (uid 65534 via `setpriv`, so the test must run as root):
//! root's sockets still appear, named by the socket's uid, without a PID, with one hint; the
//! user's own sockets keep their PIDs; nothing fails for lack of permission.

mod support;

use std::net::TcpListener;
use std::process::{Command, Output};

use support::cli::*;
use support::inventory::*;
use support::python::*;
use support::{have, is_root};

fn as_nobody(args: &[&str]) -> Option<Output> {
    if !is_root() {
        eprintln!("skipped: needs root to run netkit as uid 65534 with setpriv");
        return None;
    }
    if !have("setpriv") {
        eprintln!("skipped: setpriv (util-linux) not installed");
        return None;
    }
    let out = Command::new("setpriv")
        .args(["--reuid=65534", "--regid=65534", "--clear-groups"])
        .arg(env!("CARGO_BIN_EXE_netkit"))
        .args(args)
        .output()
        .expect("setpriv");
    if out.status.code() == Some(127)
        || String::from_utf8_lossy(&out.stderr).contains("Permission denied")
    {
        eprintln!(
            "skipped: uid 65534 cannot execute the test binary: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        return None;
    }
    Some(out)
}

#[test]
fn root_sockets_show_user_root_without_pid_and_a_hint() {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let p = l.local_addr().unwrap().port().to_string();
    // who-owns on our address only: other programs may hold the same port number on other
    // loopback addresses (a load generator's 127.0.0.9:P source port), with notes of theirs.
    let spec = format!("127.0.0.1:{p}");
    let Some(out) = as_nobody(&["who-owns", &spec, "--tcp", "--json"]) else {
        return;
    };
    let (r, code): (SocketsJson, i32) = decode(&out, &["who-owns", &spec, "--json"]);
    assert_eq!(code, 0, "the port is held, permission or not");
    let s = r
        .sockets
        .iter()
        .find(|s| s.state == "LISTEN")
        .expect("the listener");
    assert_eq!((s.uid, s.user.as_deref()), (Some(0), Some("root")));
    assert!(
        s.owners.is_empty(),
        "nobody cannot read root's /proc/PID/fd"
    );
    assert_eq!(r.notes.len(), 1, "{:?}", r.notes);
    assert!(r.notes[0].contains("root"), "{:?}", r.notes);

    // Table mode: `?` for the owner on stdout, exactly one hint line on stderr.
    let out = as_nobody(&["who-owns", &spec, "--tcp"]).unwrap();
    assert_eq!(out.status.code(), Some(0));
    let text = String::from_utf8_lossy(&out.stdout);
    let row = text.lines().find(|l| l.contains("LISTEN")).expect("row");
    assert!(row.contains("root") && row.contains('?'), "{row}");
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(
        err.lines().filter(|l| l.starts_with("hint:")).count(),
        1,
        "{err}"
    );
    assert!(err.contains("sudo") || err.contains("root"), "{err}");

    // The other listing commands do not fail either.
    for args in [
        &["listening", "--port", p.as_str(), "--json"][..],
        &["inspect", "--port", p.as_str(), "--json"],
    ] {
        let out = as_nobody(args).unwrap();
        let (r, code): (SocketsJson, i32) = decode(&out, args);
        assert_eq!(code, 0, "{args:?}");
        let mine = r
            .sockets
            .iter()
            .find(|s| s.state == "LISTEN" && s.local_port.to_string() == p)
            .expect("the listener");
        assert_eq!(mine.user.as_deref(), Some("root"));
        assert!(mine.owners.is_empty());
    }
}

#[test]
fn own_sockets_keep_their_pid_when_unprivileged() {
    if !is_root() {
        eprintln!("skipped: needs root to start a socket holder as uid 65534");
        return;
    }
    let Some(py) = Py::start(PyHolder::Listen, true) else {
        return;
    };
    let p = py.port.to_string();
    // who-owns on our address only: other programs may hold the same port number on other
    // loopback addresses (a load generator's 127.0.0.9:P source port), with notes of theirs.
    let spec = format!("127.0.0.1:{p}");
    let Some(out) = as_nobody(&["who-owns", &spec, "--tcp", "--json"]) else {
        return;
    };
    let (r, code): (SocketsJson, i32) = decode(&out, &["who-owns", &spec]);
    assert_eq!(code, 0);
    let s = r
        .sockets
        .iter()
        .find(|s| s.state == "LISTEN")
        .expect("the listener");
    assert_eq!((s.uid, s.user.as_deref()), (Some(65534), Some("nobody")));
    assert_eq!(s.pids(), vec![py.pids[0]]);
    assert!(
        r.notes.is_empty(),
        "no hint when every owner was seen: {:?}",
        r.notes
    );
}
