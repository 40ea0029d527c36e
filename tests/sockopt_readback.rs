//! The managed-socket options, read back from the kernel on the real fds of the running
//! netkit process (a pidfd_getfd(2) copy, read with getsockopt; never set), and as `ss -tion`
//! shows them: listener, accepted and outgoing sockets, in every server mode.

mod support;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::os::fd::{FromRawFd, OwnedFd};
use std::process::Command;
use std::time::Duration;

use netkit::sockopt::{Applied, read_back};
use support::have;
use support::lab::*;
use support::listeners::*;

/// Copies every socket fd of `pid` into this process. `None` when pidfd_getfd is not
/// permitted (needs ptrace rights over the target: root, or the same uid and Yama allowing it).
fn socket_fds(pid: u32) -> Option<Vec<OwnedFd>> {
    // SAFETY: plain syscall with integer arguments; the result is checked.
    let pidfd = unsafe { libc::syscall(libc::SYS_pidfd_open, pid as libc::c_int, 0) };
    if pidfd < 0 {
        return None;
    }
    // SAFETY: pidfd_open returned a new fd that nothing else owns.
    let pidfd = unsafe { OwnedFd::from_raw_fd(pidfd as i32) };
    let mut out = Vec::new();
    for e in std::fs::read_dir(format!("/proc/{pid}/fd")).ok()?.flatten() {
        let Ok(link) = std::fs::read_link(e.path()) else {
            continue;
        };
        if !link.to_string_lossy().starts_with("socket:[") {
            continue;
        }
        let Ok(n) = e.file_name().to_string_lossy().parse::<i32>() else {
            continue;
        };
        use std::os::fd::AsRawFd;
        // SAFETY: integer arguments; the result is checked.
        let fd = unsafe { libc::syscall(libc::SYS_pidfd_getfd, pidfd.as_raw_fd(), n, 0) };
        if fd < 0 {
            let e = std::io::Error::last_os_error();
            if e.raw_os_error() == Some(libc::EPERM) {
                return None;
            }
            continue;
        }
        // SAFETY: pidfd_getfd returned a new fd that nothing else owns.
        out.push(unsafe { OwnedFd::from_raw_fd(fd as i32) });
    }
    Some(out)
}

/// The options of `pid`'s socket whose (local, peer) addresses match.
fn options_of(pid: u32, local: SocketAddr, peer: Option<SocketAddr>) -> Option<Option<Applied>> {
    let fds = socket_fds(pid)?;
    Some(fds.iter().find_map(|fd| {
        let s = socket2::SockRef::from(fd);
        let l = s.local_addr().ok()?.as_socket()?;
        let p = s.peer_addr().ok().and_then(|a| a.as_socket());
        (l == local && p == peer).then(|| read_back(fd))
    }))
}

const OPTS: [&str; 11] = [
    "--keepalive",
    "30",
    "--keepintvl",
    "5",
    "--keepcnt",
    "3",
    "--sndbuf",
    "65536",
    "--rcvbuf",
    "65536",
    "--nodelay",
];

#[test]
fn listener_and_accepted_sockets_carry_the_options_in_every_mode() {
    for mode in ["single", "threaded", "async"] {
        let mut args = vec!["--protocol", "zen", "--mode", mode];
        args.extend(OPTS);
        let (srv, addr) = server(&args);
        let mut c = connect(addr, Duration::from_secs(5));
        assert_eq!(ask(&mut c, "Simple is better than?"), "Complex.");
        let me = c.local_addr().unwrap();

        // What the server printed at start is what the kernel has.
        let l = srv.lines().into_iter().next().unwrap().options.unwrap();
        assert_eq!((l.sndbuf, l.sndbuf_asked), (Some(131072), Some(65536)));
        assert_eq!(l.rcvbuf, Some(131072));
        assert_eq!(
            (l.keepalive, l.keepidle, l.keepintvl, l.keepcnt),
            (Some(true), Some(30), Some(5), Some(3))
        );
        assert_eq!(
            (l.reuseaddr, l.reuseport, l.nodelay),
            (Some(true), Some(false), Some(true))
        );

        let Some(listener) = options_of(srv.pid(), addr, None) else {
            eprintln!("skipped: pidfd_getfd not permitted here");
            return;
        };
        let listener = listener.expect("listener fd");
        assert_eq!(listener.reuseaddr, Some(true), "{mode}");
        assert_eq!(listener.sndbuf, Some(131072), "{mode}");
        let acc = options_of(srv.pid(), addr, Some(me))
            .unwrap()
            .unwrap_or_else(|| panic!("{mode}: accepted socket for {me} not found"));
        assert_eq!(acc.keepalive, Some(true), "{mode}");
        assert_eq!(
            (acc.keepidle, acc.keepintvl, acc.keepcnt),
            (Some(30), Some(5), Some(3)),
            "{mode}"
        );
        assert_eq!(
            (acc.sndbuf, acc.rcvbuf),
            (Some(131072), Some(131072)),
            "{mode}"
        );
        assert_eq!(acc.nodelay, Some(true), "{mode}");
    }
}

#[test]
fn ss_shows_the_keepalive_timer_on_the_accepted_socket() {
    if !have("ss") && Command::new("ss").arg("-V").output().is_err() {
        eprintln!("skipped: ss (iproute2) not installed");
        return;
    }
    let (_srv, addr) = server(&["--protocol", "zen", "--keepalive", "45"]);
    let mut c = connect(addr, Duration::from_secs(5));
    assert_eq!(ask(&mut c, "Simple is better than?"), "Complex.");
    let filter = format!("( sport = :{} )", addr.port());
    let out = Command::new("ss")
        .args(["-tion", "state", "established", &filter])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    let me = c.local_addr().unwrap().to_string();
    let row = text
        .lines()
        .find(|l| l.contains(&me))
        .unwrap_or_else(|| panic!("no row for {me}:\n{text}"));
    // ss -o prints `timer:(keepalive,44sec,0)` while the keepalive timer runs.
    assert!(row.contains("timer:(keepalive,"), "{row}");
    let secs: u32 = row
        .split("timer:(keepalive,")
        .nth(1)
        .and_then(|r| r.split("sec").next())
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("{row}"));
    assert!((40..=45).contains(&secs), "{row}");
}

#[test]
fn outgoing_client_socket_carries_the_options() {
    // A server that holds the reply until the test has looked at the client's socket.
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = l.local_addr().unwrap();
    let mut client = Proc::spawn(&[
        "run",
        "client",
        "--direct",
        "--server",
        &addr.to_string(),
        "--message",
        "x",
        "--keepalive",
        "20",
        "--keepcnt",
        "4",
        "--sndbuf",
        "32768",
        "--nodelay",
    ]);
    let (mut s, peer): (TcpStream, SocketAddr) = l.accept().unwrap();
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let mut b = [0u8; 1];
    s.read_exact(&mut b).unwrap();
    let printed = client
        .wait_line(Duration::from_secs(5), |l| l.event == "connected")
        .and_then(|l| l.options)
        .expect("connected line");
    assert_eq!(
        (printed.keepidle, printed.keepintvl, printed.keepcnt),
        (Some(20), Some(75), Some(4))
    );
    match options_of(client.pid(), peer, Some(addr)) {
        None => eprintln!("skipped: pidfd_getfd not permitted here"),
        Some(o) => {
            let o = o.expect("client socket");
            assert_eq!(o.keepalive, Some(true));
            assert_eq!(
                (o.keepidle, o.keepintvl, o.keepcnt),
                (Some(20), Some(75), Some(4))
            );
            assert_eq!(o.sndbuf, Some(65536));
            assert_eq!(o.nodelay, Some(true));
        }
    }
    s.write_all(b"DONE").unwrap();
    drop(s);
    assert_eq!(
        client
            .wait_exit(Duration::from_secs(5))
            .and_then(|s| s.code()),
        Some(0)
    );
}

#[test]
fn v6only_and_no_reuseaddr_are_applied_to_an_ipv6_listener() {
    if std::net::TcpListener::bind("[::1]:0").is_err() {
        eprintln!("skipped: no IPv6 loopback");
        return;
    }
    let p = Proc::spawn(&[
        "run",
        "server",
        "::1",
        "-p",
        "0",
        "--v6only",
        "--no-reuseaddr",
        "--reuseport",
    ]);
    let addr = p.listening();
    assert!(addr.is_ipv6());
    let o = p.lines()[0].options.clone().unwrap();
    assert_eq!(
        (o.v6only, o.reuseaddr, o.reuseport),
        (Some(true), Some(false), Some(true))
    );
    if let Some(Some(k)) = options_of(p.pid(), addr, None) {
        assert_eq!(
            (k.v6only, k.reuseaddr, k.reuseport),
            (Some(true), Some(false), Some(true))
        );
    }
}

#[test]
fn udp_sockets_report_their_options() {
    let p = Proc::spawn(&[
        "run",
        "udp-server",
        "-p",
        "0",
        "--listen-multiple",
        "--rcvbuf",
        "50000",
    ]);
    let addr = p.listening();
    let o = p.lines()[0].options.clone().unwrap();
    assert_eq!((o.reuseaddr, o.reuseport), (Some(true), Some(true)));
    assert_eq!((o.rcvbuf, o.rcvbuf_asked), (Some(100000), Some(50000)));
    assert_eq!(
        (o.keepidle, o.nodelay),
        (None, None),
        "TCP options do not apply to UDP"
    );
    if let Some(Some(k)) = options_of(p.pid(), addr, None) {
        assert_eq!(k.rcvbuf, Some(100000));
    }
}
