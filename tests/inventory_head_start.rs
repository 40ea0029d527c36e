//! The owner walk's head start (a survey, or the whole host's fd links, read while the kernel
//! dumps) must not change an answer: every inventory command names the same owners with it
//! as without it (`NETKIT_HEAD_START=0`), for a listener held by two processes (fork), one
//! held by a single process, a connection and a TIME_WAIT whose listener is named.

mod support;

use std::collections::BTreeSet;
use std::net::TcpListener;

use support::cli::*;
use support::inventory::*;
use support::listeners::*;
use support::python::{Py, PyHolder};

/// Runs `netkit ARGS --json` with the head start on or off.
fn json_with<T: serde::de::DeserializeOwned>(args: &[&str], head_start: bool) -> (T, i32) {
    let mut all = args.to_vec();
    all.push("--json");
    let mut cmd = netkit_cmd();
    cmd.args(&all).stdin(std::process::Stdio::null());
    if !head_start {
        cmd.env("NETKIT_HEAD_START", "0");
    }
    let out = cmd.output().expect("run netkit");
    decode(&out, &all)
}

/// (local port, state, remote port, owner PIDs) of this test's sockets on 127.0.0.1.
type Row = (u16, String, Option<u16>, BTreeSet<u32>);

fn rows(r: SocketsJson, ports: &[u16]) -> BTreeSet<Row> {
    r.only("127.0.0.1")
        .sockets
        .into_iter()
        .filter(|s| ports.contains(&s.local_port))
        .map(|s| {
            let pids = s.pids().into_iter().collect();
            (s.local_port, s.state, s.remote_port, pids)
        })
        .collect()
}

#[test]
fn every_inventory_command_names_the_same_owners_with_and_without_the_head_start() {
    let Some(forked) = Py::start(PyHolder::ForkedListen, false) else {
        return;
    };
    let Some(single) = Py::start(PyHolder::Listen, false) else {
        return;
    };
    // A listener of this process with a connection and a TIME_WAIT on its port.
    let mine = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = mine.local_addr().unwrap().port();
    let _tw = make_time_wait(&mine);
    let client = std::net::TcpStream::connect(mine.local_addr().unwrap()).unwrap();
    let (_server, _) = mine.accept().unwrap();
    let me = std::process::id();
    let ports = [forked.port, single.port, port];

    for p in ports {
        let args = ["who-owns", &p.to_string(), "--tcp"];
        let (on, code_on) = json_with::<SocketsJson>(&args, true);
        let (off, code_off) = json_with::<SocketsJson>(&args, false);
        assert_eq!((code_on, code_off), (0, 0));
        let (on, off) = (rows(on, &ports), rows(off, &ports));
        assert_eq!(on, off, "who-owns {p}");
        assert!(!on.is_empty(), "who-owns {p} found nothing");
    }
    // The forked listener has both holders, the single one its process, ours this test.
    let (who, _) = json_with::<SocketsJson>(&["who-owns", &forked.port.to_string()], true);
    let listen: Vec<_> = rows(who, &ports)
        .into_iter()
        .filter(|r| r.1 == "LISTEN")
        .collect();
    assert_eq!(
        listen.first().map(|r| r.3.clone()),
        Some(forked.pids.iter().copied().collect())
    );

    for args in [vec!["inspect", "--tcp"], vec!["listening", "--tcp"]] {
        let (on, code_on) = json_with::<SocketsJson>(&args, true);
        let (off, code_off) = json_with::<SocketsJson>(&args, false);
        assert_eq!((code_on, code_off), (0, 0), "{args:?}");
        let (on, off) = (rows(on, &ports), rows(off, &ports));
        assert_eq!(on, off, "{args:?}");
        let ours = on
            .iter()
            .find(|r| r.0 == port && r.1 == "LISTEN")
            .map(|r| r.3.clone());
        assert_eq!(ours, Some(BTreeSet::from([me])), "{args:?}: {on:?}");
    }

    // timewait names the listener of the port that holds the TIME_WAIT.
    let args = ["timewait", "--port", &port.to_string()];
    let (on, _) = json_with::<TimewaitJson>(&args, true);
    let (off, _) = json_with::<TimewaitJson>(&args, false);
    let named = |t: &TimewaitJson| -> Vec<(u16, Option<u32>)> {
        t.ports
            .iter()
            .filter(|p| p.local_addr == "127.0.0.1" && p.local_port == port)
            .map(|p| (p.local_port, p.listener.as_ref().and_then(|l| l.pid())))
            .collect()
    };
    assert_eq!(named(&on), named(&off));
    // On a machine whose TIME_WAIT table is full (load benchmarks) the kernel made none.
    if support::ss::ss_timewait_ms("127.0.0.1", port).is_empty() && named(&on).is_empty() {
        eprintln!("skipped the timewait part: the kernel made no TIME_WAIT (its table is full)");
    } else {
        assert_eq!(named(&on), vec![(port, Some(me))]);
    }
    // A plain summary takes its listeners from the head start's thread (a dump of every
    // listener), or without one from a dump filtered by the ports with entries: the same
    // listener either way.
    let listener_of = |t: &TimewaitJson| -> Vec<(u16, Option<(String, u16)>)> {
        t.ports
            .iter()
            .filter(|p| p.local_addr == "127.0.0.1" && p.local_port == port)
            .map(|p| {
                let l = p
                    .listener
                    .as_ref()
                    .map(|l| (l.local_addr.clone(), l.local_port));
                (p.local_port, l)
            })
            .collect()
    };
    let (on, _) = json_with::<TimewaitJson>(&["timewait"], true);
    let (off, _) = json_with::<TimewaitJson>(&["timewait"], false);
    assert_eq!(listener_of(&on), listener_of(&off));
    if !named(&on).is_empty() {
        assert_eq!(
            listener_of(&on),
            vec![(port, Some(("127.0.0.1".to_string(), port)))]
        );
    }
    drop(client);
}
