//! A socket in another network namespace is invisible to a dump made here and visible to one
//! made from a thread that entered that namespace (`inspect::netns::run_in`).

mod support;

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};

use netkit::inspect::{Query, SockState, diag, netns};
use support::is_root;

#[test]
fn a_listener_in_an_anonymous_namespace_is_found_by_entering_it() {
    if !is_root() {
        eprintln!("skipped: entering a network namespace needs root");
        return;
    }
    if Command::new("unshare").arg("--version").output().is_err() {
        eprintln!("skipped: unshare (util-linux) is not installed");
        return;
    }
    // A listener in a fresh namespace (its own loopback, brought up), made by a process that
    // prints its port and waits for stdin to close.
    let script = "import socket,sys,subprocess\n\
subprocess.run(['ip','link','set','lo','up'])\n\
s=socket.socket(); s.bind(('127.0.0.1',0)); s.listen()\n\
print(s.getsockname()[1], flush=True)\n\
sys.stdin.read()\n";
    let mut child = Command::new("unshare")
        .args(["--net", "python3", "-c", script])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("unshare runs");
    let mut line = String::new();
    BufReader::new(child.stdout.take().expect("stdout"))
        .read_line(&mut line)
        .expect("port line");
    let port: u16 = line.trim().parse().expect("a port");
    let pid = child.id();
    let q = Query {
        local_port: Some(port),
        tcp_states: vec![SockState::Listen],
        ..Query::default()
    };
    let spec = netns::NetnsSpec::Pid(pid);
    let there = netns::run_in(&spec.path(), || diag::query(&q))
        .expect("setns as root")
        .expect("dump there");
    assert!(
        there
            .iter()
            .any(|s| s.local_port == port && s.state == SockState::Listen),
        "entered namespace shows the listener: {there:?}"
    );
    let theirs: Vec<u64> = there
        .iter()
        .filter(|s| s.local_port == port)
        .map(|s| s.inode)
        .collect();
    let here = diag::query(&q).expect("dump here");
    assert!(
        here.iter().all(|s| !theirs.contains(&s.inode)),
        "a dump made from this namespace must not show the other namespace's socket: {here:?}"
    );
    let ino = netns::inode_of(&spec).expect("inode");
    assert_ne!(ino, netns::current_inode().expect("own"));
    let (all, _) = netns::list_all();
    let ns = all.iter().find(|n| n.inode == ino).expect("listed");
    assert!(ns.pids.contains(&pid), "{ns:?}");
    drop(child.stdin.take());
    let _ = child.wait();
}

#[test]
fn all_namespaces_snapshot_finds_the_listener_with_its_owner_and_namespace() {
    use netkit::inspect::multi::{self, Scope};
    if !is_root() {
        eprintln!("skipped: entering a network namespace needs root");
        return;
    }
    let script = "import socket,sys,subprocess\n\
subprocess.run(['ip','link','set','lo','up'])\n\
s=socket.socket(); s.bind(('127.0.0.1',0)); s.listen()\n\
print(s.getsockname()[1], flush=True)\n\
sys.stdin.read()\n";
    let Ok(mut child) = Command::new("unshare")
        .args(["--net", "python3", "-c", script])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
    else {
        eprintln!("skipped: unshare (util-linux) is not installed");
        return;
    };
    let mut line = String::new();
    BufReader::new(child.stdout.take().expect("stdout"))
        .read_line(&mut line)
        .expect("port line");
    let port: u16 = line.trim().parse().expect("a port");
    let q = Query {
        local_port: Some(port),
        ..Query::default()
    };
    let snap = multi::snapshot(&q, &Scope::All).expect("snapshot");
    let ino = netns::inode_of(&netns::NetnsSpec::Pid(child.id())).expect("inode");
    let (ns, found) = snap
        .rows()
        .find(|(ns, s)| ns.inode == ino && s.local_port == port)
        .expect("the listener, tagged with its namespace");
    assert!(!ns.current);
    assert!(
        found.owners.iter().any(|o| o.pid == child.id()),
        "owner resolved across namespaces: {:?}",
        found.owners
    );
    let inode = found.inode;
    // `Others` leaves the current namespace out; `Here` sees only it.
    let others = multi::snapshot(&q, &Scope::Others).expect("others");
    assert!(others.parts.iter().all(|p| !p.netns.current));
    let here = multi::snapshot(&q, &Scope::Here).expect("here");
    assert_eq!(here.parts.len(), 1);
    assert!(here.rows().all(|(_, s)| s.inode != inode));
    drop(child.stdin.take());
    let _ = child.wait();
}
