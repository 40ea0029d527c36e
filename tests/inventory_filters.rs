//! `netkit listening`, `timewait` and `inspect` with their filters, against real sockets on
//! loopback (ports from 0); JSON decoded into test-side structs.

mod support;

use std::net::{TcpListener, TcpStream, UdpSocket};
use std::time::Duration;

use support::cli::*;
use support::inventory::*;
use support::listeners::*;
use support::python::*;
use support::{is_root, poll};

fn me() -> u32 {
    std::process::id()
}

#[test]
fn listening_filters_by_port_pid_and_user() {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = l.local_addr().unwrap().port();
    let p = port.to_string();
    let Some(py) = Py::start(PyHolder::Listen, false) else {
        return;
    };
    let pp = py.port.to_string();

    // A child another test of this binary is spawning holds copies of our fds between
    // fork() and exec(): retry (bounded) until that moment has passed.
    let (r, code) = poll(Duration::from_secs(10), || {
        let (r, code) = netkit_json::<SocketsJson>(&["listening", "--tcp", "--port", &p]);
        let r = r.only("127.0.0.1");
        (r.sockets.len() == 1 && r.sockets[0].pids() == vec![me()]).then_some((r, code))
    })
    .unwrap_or_else(|| {
        let (r, code) = netkit_json::<SocketsJson>(&["listening", "--tcp", "--port", &p]);
        (r.only("127.0.0.1"), code)
    });
    assert_eq!((code, r.command.as_str()), (0, "listening"));
    assert_eq!(r.sockets.len(), 1);
    assert_eq!(r.sockets[0].pids(), vec![me()]);

    // --pid keeps only that process's sockets.
    let (r, _) = netkit_json::<SocketsJson>(&["listening", "--pid", &me().to_string()]);
    assert!(r.sockets.iter().any(|s| s.local_port == port));
    assert!(r.sockets.iter().all(|s| s.pids().contains(&me())));
    assert!(!r.sockets.iter().any(|s| s.local_port == py.port));
    let (r, _) = netkit_json::<SocketsJson>(&["listening", "--pid", &py.pids[0].to_string()]);
    assert_eq!(r.sockets.len(), 1, "{r:?}");
    assert_eq!(r.sockets[0].local_port, py.port);
    // --pid and --port together: nothing matches → exit 1.
    let (r, code) =
        netkit_json::<SocketsJson>(&["listening", "--pid", &py.pids[0].to_string(), "--port", &p]);
    assert_eq!((r.sockets.len(), code), (0, 1));

    // --user by name and by number.
    let uid = unsafe { libc::geteuid() }.to_string();
    let (r, _) = netkit_json::<SocketsJson>(&["listening", "--tcp", "--user", &uid, "--port", &pp]);
    let r = r.only("127.0.0.1");
    assert_eq!(r.sockets.len(), 1);
    let name = r.sockets[0].user.clone().expect("user name");
    let (r, _) =
        netkit_json::<SocketsJson>(&["listening", "--tcp", "--user", &name, "--port", &pp]);
    assert_eq!(r.only("127.0.0.1").sockets.len(), 1);
    if is_root() {
        let (r, code) =
            netkit_json::<SocketsJson>(&["listening", "--user", "nobody", "--port", &pp]);
        assert!(r.sockets.iter().all(|s| s.uid == Some(65534)), "{r:?}");
        assert_eq!(code, if r.sockets.is_empty() { 1 } else { 0 });
        assert!(
            r.only("127.0.0.1").sockets.is_empty(),
            "root's listener is not nobody's"
        );
        let Some(nob) = Py::start(PyHolder::Listen, true) else {
            return;
        };
        let (r, _) = netkit_json::<SocketsJson>(&["listening", "--user", "nobody"]);
        let s = r
            .sockets
            .iter()
            .find(|s| s.local_port == nob.port)
            .expect("nobody's listener");
        assert_eq!((s.uid, s.user.as_deref()), (Some(65534), Some("nobody")));
        assert_eq!(s.pids(), vec![nob.pids[0]]);
        assert!(r.sockets.iter().all(|s| s.uid == Some(65534)));
    } else {
        eprintln!("skipped: --user with another user's socket needs root to start it");
    }
}

#[test]
fn listening_shows_udp_and_not_established_or_time_wait() {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = l.local_addr().unwrap().port();
    let _c = TcpStream::connect(("127.0.0.1", port)).unwrap();
    let (_s, _) = l.accept().unwrap();
    make_time_wait(&l);
    let u = UdpSocket::bind("127.0.0.1:0").unwrap();
    let (r, _) = netkit_json::<SocketsJson>(&["listening", "--tcp", "--port", &port.to_string()]);
    assert!(
        r.sockets
            .iter()
            .all(|s| s.state == "LISTEN" || s.state == "BOUND")
    );
    let r = r.only("127.0.0.1");
    let states: Vec<&str> = r.sockets.iter().map(|s| s.state.as_str()).collect();
    assert_eq!(states, vec!["LISTEN"]);
    let up = u.local_addr().unwrap().port().to_string();
    let (r, _) = netkit_json::<SocketsJson>(&["listening", "--udp", "--port", &up]);
    let r = r.only("127.0.0.1");
    assert_eq!(r.sockets.len(), 1);
    assert_eq!(r.sockets[0].state, "UNCONN");
    let (r, code) = netkit_json::<SocketsJson>(&["listening", "--tcp", "--port", &up]);
    assert!(r.sockets.iter().all(|x| x.proto == "tcp"), "{r:?}");
    assert_eq!(code, if r.sockets.is_empty() { 1 } else { 0 });
}

#[test]
fn timewait_summary_and_all_list_the_entries_made_here() {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = l.local_addr().unwrap().port();
    let p = port.to_string();
    let c1 = make_time_wait(&l);
    let c2 = make_time_wait(&l);

    // Other processes may have TIME_WAITs on other addresses with the same port number: the
    // entry for 127.0.0.1 is ours.
    let ours = |r: &TimewaitJson| r.ports.iter().position(|e| e.local_addr == "127.0.0.1");
    let (r, code) = poll(Duration::from_secs(3), || {
        let (r, code) = netkit_json::<TimewaitJson>(&["timewait", "--port", &p]);
        ours(&r)
            .is_some_and(|i| r.ports[i].count == 2)
            .then_some((r, code))
    })
    .expect("two TIME_WAIT entries within 3 s");
    assert_eq!((code, r.command.as_str()), (0, "timewait"));
    assert_eq!(r.total, r.ports.iter().map(|e| e.count).sum::<usize>());
    assert!(r.ports.iter().all(|e| e.local_port == port));
    let e = &r.ports[ours(&r).unwrap()];
    assert_eq!(
        (e.local_addr.as_str(), e.local_port, e.count),
        ("127.0.0.1", port, 2)
    );
    assert!(e.min_expires_ms <= e.max_expires_ms);
    assert!((50_000..=60_000).contains(&e.min_expires_ms), "{e:?}");
    assert!(e.max_expires_ms <= 60_000);
    let lref = e.listener.as_ref().expect("listener");
    assert_eq!(lref.pid(), Some(me()));
    assert!(lref.owner.is_some() && lref.user.is_some());

    let out = netkit_output(&["timewait", "--port", &p, "--json"]);
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_keys(&v, &["ports", "notes", "total"]);
    assert_keys(
        &v["ports"][0],
        &[
            "local_addr",
            "local_port",
            "count",
            "min_expires_ms",
            "max_expires_ms",
            "listener",
        ],
    );

    let (all, code) = netkit_json::<SocketsJson>(&["timewait", "--all", "--port", &p]);
    let all = all.only("127.0.0.1");
    assert_eq!(code, 0);
    assert_eq!(all.sockets.len(), 2);
    let mut remotes: Vec<u16> = all.sockets.iter().filter_map(|s| s.remote_port).collect();
    remotes.sort_unstable();
    let mut want = vec![c1.port(), c2.port()];
    want.sort_unstable();
    assert_eq!(remotes, want);
    for s in &all.sockets {
        assert_eq!(s.state, "TIME_WAIT");
        assert_eq!((s.uid, s.user.as_deref()), (None, None));
        assert!(s.expires_ms.is_some());
        assert_eq!(
            s.listener.as_ref().and_then(|l| l.pid()),
            Some(me()),
            "--all names the listener"
        );
    }

    // The table: one summary row with the count and the listener's PID.
    let out = netkit_output(&["timewait", "--port", &p]);
    let text = String::from_utf8_lossy(&out.stdout);
    let row = text
        .lines()
        .find(|l| l.contains(&format!("127.0.0.1:{port}")))
        .expect("summary row");
    assert!(row.split_whitespace().nth(1) == Some("2"), "{row}");
    assert!(row.contains(&me().to_string()), "{row}");
}

#[test]
fn timewait_on_a_quiet_port_exits_1() {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let p = l.local_addr().unwrap().port().to_string();
    let (r, code) = netkit_json::<TimewaitJson>(&["timewait", "--port", &p]);
    assert!(
        !r.ports.iter().any(|e| e.local_addr == "127.0.0.1"),
        "{r:?}"
    );
    assert_eq!(code, if r.total == 0 { 1 } else { 0 });
    assert_eq!(r.total == 0, r.ports.is_empty());
}

#[test]
fn inspect_filters_by_state_port_and_pid() {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = l.local_addr().unwrap().port();
    let p = port.to_string();
    let c = TcpStream::connect(("127.0.0.1", port)).unwrap();
    let (_s, _) = l.accept().unwrap();
    make_time_wait(&l);

    let cport = c.local_addr().unwrap().port();
    // Other processes' connections may have P as their remote port (an ephemeral number of
    // theirs), so keep the rows that are ours: local port P, or our client's end.
    let ours = |s: &SockJson| {
        s.local_addr == "127.0.0.1"
            && (s.local_port == port || (s.local_port == cport && s.remote_port == Some(port)))
    };
    let (r, code) = netkit_json::<SocketsJson>(&["inspect", "--tcp", "--port", &p]);
    assert_eq!((code, r.command.as_str()), (0, "inspect"));
    assert!(r.sockets.iter().all(|s| s.local_port == port));
    let mut states: Vec<&str> = r
        .sockets
        .iter()
        .filter(|s| ours(s))
        .map(|s| s.state.as_str())
        .collect();
    states.sort_unstable();
    // --port is the LOCAL port (as ss's sport): the listener, the server's end, the TIME_WAIT.
    assert_eq!(states, vec!["ESTABLISHED", "LISTEN", "TIME_WAIT"], "{r:?}");
    // --remote-port (ss's dport): our client's end, whatever its own port.
    let (r, _) = netkit_json::<SocketsJson>(&["inspect", "--tcp", "--dport", &p]);
    assert!(r.sockets.iter().all(|s| s.remote_port == Some(port)));
    assert!(r.sockets.iter().any(|s| s.local_port == cport));
    // Both, as one filter each: local or remote port P.
    let (r, code) = netkit_json::<SocketsJson>(&["inspect", "--tcp", "--sport", &p]);
    assert_eq!(code, 0);
    assert!(r.sockets.iter().all(|s| s.local_port == port));
    let mut all = r.sockets.clone();
    let (r, _) = netkit_json::<SocketsJson>(&["inspect", "--tcp", "--remote-port", &p]);
    all.extend(r.sockets);
    let r = SocketsJson { sockets: all, ..r };
    let mut states: Vec<&str> = r
        .sockets
        .iter()
        .filter(|s| ours(s))
        .map(|s| s.state.as_str())
        .collect();
    states.sort_unstable();
    // Local port P or remote port P: the listener, both ends of the pair, the TIME_WAIT.
    assert_eq!(
        states,
        vec!["ESTABLISHED", "ESTABLISHED", "LISTEN", "TIME_WAIT"],
        "{r:?}"
    );

    let (r, _) = netkit_json::<SocketsJson>(&["inspect", "--state", "established", "--port", &p]);
    assert!(r.sockets.iter().all(|s| s.state == "ESTABLISHED"));
    let mine: Vec<&SockJson> = r.sockets.iter().filter(|s| ours(s)).collect();
    assert_eq!(mine.len(), 1, "{r:?}");
    assert!(mine.iter().all(|s| s.local_port == port));
    assert!(mine.iter().all(|s| s.pids() == vec![me()]));

    let (r, _) = netkit_json::<SocketsJson>(&["inspect", "--state", "LISTEN", "--port", &p]);
    assert!(r.sockets.iter().all(|s| s.state == "LISTEN"));
    let r = r.only("127.0.0.1");
    assert_eq!(r.sockets.len(), 1);
    assert_eq!(r.sockets[0].pids(), vec![me()]);

    let (r, _) = netkit_json::<SocketsJson>(&["inspect", "--state", "time-wait", "--port", &p]);
    assert!(r.sockets.iter().all(|s| s.state == "TIME_WAIT"));
    let mine: Vec<&SockJson> = r.sockets.iter().filter(|s| ours(s)).collect();
    assert_eq!(mine.len(), 1, "{r:?}");
    assert_eq!(mine[0].listener.as_ref().and_then(|l| l.pid()), Some(me()));

    // --pid: this process's sockets only; the TIME_WAIT has no owner so it drops out.
    let (r, _) = netkit_json::<SocketsJson>(&["inspect", "--pid", &me().to_string(), "--port", &p]);
    assert_eq!(r.sockets.len(), 2, "{r:?}");
    assert!(r.sockets.iter().all(|s| s.pids().contains(&me())));

    let Some(py) = Py::start(PyHolder::Udp, false) else {
        return;
    };
    let (r, _) = netkit_json::<SocketsJson>(&["inspect", "--pid", &py.pids[0].to_string()]);
    assert_eq!(r.sockets.len(), 1);
    assert_eq!(
        (
            r.sockets[0].proto.as_str(),
            r.sockets[0].state.as_str(),
            r.sockets[0].local_port
        ),
        ("udp", "UNCONN", py.port)
    );
    let (r, _) = netkit_json::<SocketsJson>(&[
        "inspect",
        "--state",
        "unconn",
        "--port",
        &py.port.to_string(),
    ]);
    assert!(r.sockets.iter().all(|s| s.state == "UNCONN"));
    assert_eq!(r.only("127.0.0.1").sockets.len(), 1);
}

#[test]
fn timewait_table_is_capped_by_limit_but_json_keeps_every_pair() {
    let a = TcpListener::bind("127.0.0.1:0").unwrap();
    let b = TcpListener::bind("127.0.0.1:0").unwrap();
    let _ca = make_time_wait(&a);
    let _cb = make_time_wait(&b);
    let (pa, pb) = (
        a.local_addr().unwrap().port(),
        b.local_addr().unwrap().port(),
    );
    let has = |r: &TimewaitJson, p: u16| {
        r.ports
            .iter()
            .any(|e| e.local_addr == "127.0.0.1" && e.local_port == p)
    };
    let (r, _) = poll(Duration::from_secs(3), || {
        let (r, code) = netkit_json::<TimewaitJson>(&["timewait", "--limit", "1"]);
        (has(&r, pa) && has(&r, pb)).then_some((r, code))
    })
    .expect("both TIME_WAIT pairs in the JSON despite --limit 1");
    assert!(r.ports.len() >= 2);

    let out = netkit_output(&["timewait", "--limit", "1"]);
    let text = String::from_utf8_lossy(&out.stdout);
    let rows = text
        .lines()
        .filter(|l| l.starts_with("127.") || l.starts_with('['))
        .count();
    assert_eq!(rows, 1, "{text}");
    assert!(
        text.lines()
            .any(|l| l.starts_with("... and ") && l.contains("--limit 0")),
        "{text}"
    );
    let all = netkit_output(&["timewait", "--limit", "0"]);
    let all = String::from_utf8_lossy(&all.stdout);
    assert!(
        all.contains(&format!("127.0.0.1:{pa} ")) && all.contains(&format!("127.0.0.1:{pb} ")),
        "{all}"
    );
}

#[test]
fn timewait_port_takes_lists_ranges_and_hosts() {
    let a = TcpListener::bind("127.0.0.1:0").unwrap();
    let b = TcpListener::bind("127.0.0.1:0").unwrap();
    let (pa, pb) = (
        a.local_addr().unwrap().port(),
        b.local_addr().unwrap().port(),
    );
    make_time_wait(&a);
    make_time_wait(&b);
    make_time_wait(&b);
    let count = |r: &TimewaitJson, port: u16| {
        r.ports
            .iter()
            .filter(|e| e.local_addr == "127.0.0.1" && e.local_port == port)
            .map(|e| e.count)
            .sum::<usize>()
    };
    let list = format!("{pa},{pb}");
    let (r, code) = poll(Duration::from_secs(3), || {
        let (r, code) = netkit_json::<TimewaitJson>(&["timewait", "--port", &list]);
        (count(&r, pa) == 1 && count(&r, pb) == 2).then_some((r, code))
    })
    .expect("both ports' TIME_WAITs within 3 s");
    assert_eq!(code, 0);
    assert!(
        r.ports
            .iter()
            .all(|e| e.local_port == pa || e.local_port == pb),
        "{r:?}"
    );
    // A host narrows the address: nothing of ours is on 127.0.0.2.
    let (r, _) = netkit_json::<TimewaitJson>(&["timewait", "--port", &format!("127.0.0.2:{pb}")]);
    assert_eq!(count(&r, pb), 0, "{r:?}");
    // --all with two ports lists three sockets of ours.
    let (all, code) = netkit_json::<SocketsJson>(&["timewait", "--all", "--port", &list]);
    assert_eq!(code, 0);
    assert_eq!(all.only("127.0.0.1").sockets.len(), 3);
}
