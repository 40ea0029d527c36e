//! The kernel-side filters `timewait` relies on at scale (issue 15), checked against what
//! the kernel and `ss` say about real sockets on loopback:
//! - the listener dump by port (an inet_diag bytecode program, or a user-side filter past
//!   `BYTECODE_PORTS` ports) returns exactly the listeners on the ports asked;
//! - the summary without `--port` (TIME_WAIT asked of the kernel by state, listeners by
//!   port, owners within a budget) counts what `ss -tan state time-wait` counts and names
//!   the listener, or says that it did not look for its owner;
//! - the budgeted owner walk says when it gave up.

mod support;

use std::collections::{BTreeSet, HashSet};
use std::net::TcpListener;
use std::process::Command;
use std::time::Duration;

use netkit::inspect::diag::{self, BYTECODE_PORTS};
use netkit::inspect::procfd::{self, Reach};
use netkit::inspect::{SockState, diag::tcp_state_mask};
use support::cli::*;
use support::have;
use support::inventory::*;
use support::listeners::*;
use support::ss::*;
use support::wait::poll;

/// `(local address, local port)` of the LISTEN sockets `ss` shows on `ports`.
fn ss_listeners(ports: &[u16]) -> BTreeSet<(String, u16)> {
    let expr = ports
        .iter()
        .map(|p| format!("sport = :{p}"))
        .collect::<Vec<_>>()
        .join(" or ");
    let out = Command::new("ss")
        .args(["-Htln", &expr])
        .output()
        .expect("run ss");
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| {
            let local = l.split_whitespace().nth(3)?;
            let (addr, port) = local.rsplit_once(':')?;
            Some((
                addr.trim_matches(['[', ']']).to_string(),
                port.parse().ok()?,
            ))
        })
        .collect()
}

fn our_dump(ports: &[u16]) -> BTreeSet<(String, u16)> {
    let mut out = BTreeSet::new();
    diag::dump_tcp_ports(tcp_state_mask(&[SockState::Listen]), ports, |m| {
        assert_eq!(m.state, 10, "only LISTEN was asked for: {m:?}");
        out.insert((m.src.to_string(), m.sport));
    })
    .expect("sock_diag dump");
    out
}

#[test]
fn listener_dump_by_port_returns_the_listeners_on_those_ports_only() {
    if !have("ss") {
        eprintln!("skipped: ss (iproute2) is not installed");
        return;
    }
    let ls: Vec<TcpListener> = (0..3)
        .map(|_| TcpListener::bind("127.0.0.1:0").unwrap())
        .collect();
    let p: Vec<u16> = ls.iter().map(|l| l.local_addr().unwrap().port()).collect();
    let asked = [p[0], p[2]];
    let ours = (String::from("127.0.0.1"), p[0]);
    let theirs = (String::from("127.0.0.1"), p[2]);

    // The bytecode path (two ports) and the user-side path (more than BYTECODE_PORTS ports,
    // ours among ports nobody else is likely to listen on) give the same answer.
    let mut many: Vec<u16> = asked.to_vec();
    many.extend((1..=BYTECODE_PORTS as u16 + 10).filter(|x| !p.contains(x)));
    for (what, got) in [
        ("bytecode", our_dump(&asked)),
        ("user side", our_dump(&many)),
    ] {
        assert!(
            got.contains(&ours) && got.contains(&theirs),
            "{what}: {got:?}"
        );
        let allowed: HashSet<u16> = if what == "bytecode" {
            asked.iter().copied().collect()
        } else {
            many.iter().copied().collect()
        };
        assert!(
            got.iter().all(|(_, port)| allowed.contains(port)),
            "{what}: a listener on a port not asked for: {got:?}"
        );
        assert!(
            !got.iter().any(|(_, port)| *port == p[1]),
            "{what}: {got:?}"
        );
    }
    // What ss sees on those two ports (other addresses may share the port numbers).
    let ss = ss_listeners(&asked);
    assert!(ss.contains(&ours) && ss.contains(&theirs), "ss: {ss:?}");
    let got = our_dump(&asked);
    for x in got.iter().filter(|x| x.0 == "127.0.0.1") {
        assert!(ss.contains(x), "{x:?} not in ss's {ss:?}");
    }
    drop(ls);
}

#[test]
fn timewait_summary_without_port_counts_what_ss_counts_and_names_the_listener() {
    if !have("ss") {
        eprintln!("skipped: ss (iproute2) is not installed");
        return;
    }
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = l.local_addr().unwrap().port();
    for _ in 0..3 {
        make_time_wait(&l);
    }
    // Entries only expire (60 s) and none can be added on our address:port by anyone else
    // (only our listener accepts there), so ss's count read just after netkit's is the same
    // unless one expired in between, which is 50 s away.
    let (r, code) = poll(Duration::from_secs(3), || {
        let (r, code) = netkit_json::<TimewaitJson>(&["timewait"]);
        r.ports
            .iter()
            .any(|e| e.local_addr == "127.0.0.1" && e.local_port == port && e.count == 3)
            .then_some((r, code))
    })
    .expect("our three TIME_WAIT entries in the summary within 3 s");
    assert_eq!(code, 0);
    assert_eq!(r.total, r.ports.iter().map(|e| e.count).sum::<usize>());
    let ss = ss_timewait_ms("127.0.0.1", port);
    assert_eq!(ss.len(), 3, "ss -tan state time-wait src 127.0.0.1:{port}");
    let e = r
        .ports
        .iter()
        .find(|e| e.local_addr == "127.0.0.1" && e.local_port == port)
        .unwrap();
    assert!(e.max_expires_ms <= 60_000 && e.min_expires_ms <= e.max_expires_ms);
    let lref = e.listener.as_ref().expect("the port's listener is named");
    assert_eq!(
        (lref.local_addr.as_str(), lref.local_port),
        ("127.0.0.1", port)
    );
    // Its owner is this process, unless the budgeted walk (oldest processes first; a test
    // binary is young) gave up first — and then the summary says so, naming the port.
    match lref.pid() {
        Some(pid) => assert_eq!(pid, std::process::id()),
        None => assert!(
            r.notes
                .iter()
                .any(|n| n.contains("was not looked for") && n.contains(&port.to_string())),
            "no owner and no note: {:?}",
            r.notes
        ),
    }
    // With --port the walk does not give up: the owner is always named.
    let (r, _) = netkit_json::<TimewaitJson>(&["timewait", "--port", &port.to_string()]);
    let e = r
        .ports
        .iter()
        .find(|e| e.local_addr == "127.0.0.1")
        .expect("our entry");
    assert_eq!(
        e.listener.as_ref().and_then(|l| l.pid()),
        Some(std::process::id())
    );
    assert!(!r.notes.iter().any(|n| n.contains("was not looked for")));
}

#[test]
fn a_budgeted_owner_walk_says_when_it_gave_up() {
    use std::os::unix::fs::MetadataExt;
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let fd = std::os::fd::AsRawFd::as_raw_fd(&l);
    let ino = std::fs::metadata(format!("/proc/self/fd/{fd}"))
        .unwrap()
        .ino();
    // An inode no process holds (socket inodes are never 1): a walk without budget reads
    // everything and is not "cut short"; with a budget of one link it stops after its first
    // chunk and says so.
    let nobody = HashSet::from([1u64]);
    assert!(!procfd::owners(&nobody, Reach::First).cut_short);
    assert!(procfd::owners(&nobody, Reach::Within(1)).cut_short);
    // A budget larger than the host's fd count finds our listener like an unbounded walk.
    let mine = HashSet::from([ino]);
    let s = procfd::owners(&mine, Reach::Within(usize::MAX / 2));
    assert_eq!(s.pids_of(ino), &[std::process::id()]);
    assert!(!s.cut_short);
}
