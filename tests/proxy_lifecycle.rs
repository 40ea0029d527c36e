//! The proxy's life: SIGTERM/SIGINT with requests in flight (no reply lost, exit 0), the
//! drain deadline, a second signal, running out of file descriptors, and the socket options
//! from flags as the kernel reports them on the proxy's real sockets.

mod support;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::os::fd::{FromRawFd, OwnedFd};
use std::process::Command;
use std::time::{Duration, Instant};

use support::cli::netkit_bin;
use support::eventually;
use support::proxy::{DoneServer, ProxyProc, ask_bare, lab_request};
use support::ss::ss_accept_queue;

fn requests_in_flight_survive(sig: i32, args: &[&str]) {
    let srv = DoneServer::with_delay(Duration::from_millis(400));
    let mut p = ProxyProc::start(args);
    let req = lab_request("127.0.0.1", srv.port(), "tgmr");
    let clients: Vec<_> = (0..16)
        .map(|_| {
            let (addr, req) = (p.addr, req.clone());
            std::thread::spawn(move || ask_bare(addr, &req))
        })
        .collect();
    // Every request has reached the server: all are in flight.
    assert!(
        eventually(Duration::from_secs(10), || { srv.conns() == 16 }),
        "timed out waiting for 16 requests at the server"
    );
    p.signal(sig);
    let replies: Vec<String> = clients.into_iter().map(|c| c.join().unwrap()).collect();
    assert!(replies.iter().all(|r| r == "DONE"), "{replies:?}");
    let st = p
        .wait_exit(Duration::from_secs(10))
        .expect("proxy did not exit");
    assert_eq!(st.code(), Some(0));
    let last = p.wait_line("stopped", |l| l.contains("\"stopped\""));
    assert!(last.contains("\"aborted\":0"), "{last}");
    assert!(
        TcpStream::connect(p.addr).is_err(),
        "still accepting after shutdown"
    );
}

#[test]
fn sigterm_with_requests_in_flight_loses_no_reply() {
    requests_in_flight_survive(libc::SIGTERM, &[]);
}

#[test]
fn sigterm_with_requests_in_flight_on_several_threads_loses_no_reply() {
    requests_in_flight_survive(libc::SIGTERM, &["--threads", "3"]);
}

#[test]
fn sigint_with_requests_in_flight_loses_no_reply() {
    requests_in_flight_survive(libc::SIGINT, &[]);
}

#[test]
fn connected_client_whose_request_arrives_just_after_the_signal_is_served() {
    let srv = DoneServer::start();
    let mut p = ProxyProc::start(&[]);
    let mut c = TcpStream::connect(p.addr).unwrap();
    c.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    // The proxy must have accept()ed it before the signal (one still in the listen queue
    // at shutdown is reset): wait, bounded, until the queue is empty.
    assert!(
        eventually(Duration::from_secs(10), || {
            ss_accept_queue("127.0.0.1", p.addr.port()) == Some(0)
        }),
        "the proxy never accepted the connection"
    );
    p.signal(libc::SIGTERM);
    std::thread::sleep(Duration::from_millis(50));
    c.write_all(lab_request("127.0.0.1", srv.port(), "late").as_bytes())
        .unwrap();
    let mut buf = [0u8; 16];
    let n = c.read(&mut buf).unwrap();
    assert_eq!(&buf[..n], b"DONE");
    assert_eq!(p.wait_exit(Duration::from_secs(5)).unwrap().code(), Some(0));
}

#[test]
fn drain_deadline_cuts_stuck_requests_and_still_exits_0() {
    let srv = DoneServer::with_delay(Duration::from_secs(8));
    let mut p = ProxyProc::start(&["--drain", "0.3"]);
    let addr = p.addr;
    let req = lab_request("127.0.0.1", srv.port(), "stuck");
    let c = std::thread::spawn(move || {
        let mut s = TcpStream::connect(addr).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        s.write_all(req.as_bytes()).unwrap();
        let mut out = Vec::new();
        let _ = s.read_to_end(&mut out);
        out
    });
    assert!(
        eventually(Duration::from_secs(5), || { srv.conns() == 1 }),
        "timed out waiting for request at the server"
    );
    let t = Instant::now();
    p.signal(libc::SIGTERM);
    assert_eq!(p.wait_exit(Duration::from_secs(5)).unwrap().code(), Some(0));
    assert!(t.elapsed() < Duration::from_secs(3), "{:?}", t.elapsed());
    assert!(c.join().unwrap().is_empty(), "a cut request gets no reply");
    let last = p.wait_line("stopped", |l| l.contains("\"stopped\""));
    assert!(last.contains("\"aborted\":1"), "{last}");
}

#[test]
fn a_second_signal_exits_at_once() {
    let srv = DoneServer::with_delay(Duration::from_secs(8));
    let mut p = ProxyProc::start(&[]);
    let addr = p.addr;
    let req = lab_request("127.0.0.1", srv.port(), "stuck");
    let _c = std::thread::spawn(move || ask_bare(addr, &req));
    assert!(
        eventually(Duration::from_secs(5), || { srv.conns() == 1 }),
        "timed out waiting for request at the server"
    );
    p.signal(libc::SIGTERM);
    // Two signals sent before the proxy handles the first merge into one (a pending signal
    // is not queued twice): send the second once it says it is shutting down.
    assert!(
        eventually(Duration::from_secs(10), || {
            p.stderr().iter().any(|l| l.starts_with("shutting down"))
        }),
        "no shutdown announcement: {:?}",
        p.stderr()
    );
    p.signal(libc::SIGTERM);
    assert_eq!(
        p.wait_exit(Duration::from_secs(3)).unwrap().code(),
        Some(130)
    );
}

#[test]
fn running_out_of_file_descriptors_is_survived() {
    let srv = DoneServer::start();
    let mut cmd = Command::new("sh");
    cmd.args([
        "-c",
        "ulimit -n 48 && exec \"$0\" --json run proxy --listen 127.0.0.1:0",
    ])
    .arg(netkit_bin());
    let p = ProxyProc::start_with(cmd, &[], true);
    // More idle clients than the proxy has descriptors: accept fails with EMFILE.
    let hogs: Vec<TcpStream> = (0..80)
        .filter_map(|_| TcpStream::connect(p.addr).ok())
        .collect();
    assert!(
        eventually(Duration::from_secs(10), || {
            p.stderr().iter().any(|l| l.contains("pausing accepts"))
        }),
        "timed out waiting for EMFILE logged"
    );
    drop(hogs);
    // Once the hogs are gone the proxy serves again, without a restart.
    let deadline = Instant::now() + Duration::from_secs(10);
    let req = lab_request("127.0.0.1", srv.port(), "x");
    loop {
        let r = try_ask(p.addr, &req);
        if matches!(&r, Ok(s) if s == "DONE") {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "never recovered: {r:?}; stderr {:?}",
            p.stderr()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(
        p.stderr().iter().any(|l| l.contains("available again")),
        "{:?}",
        p.stderr()
    );
}

fn try_ask(addr: SocketAddr, req: &str) -> std::io::Result<String> {
    let mut s = TcpStream::connect(addr)?;
    s.set_read_timeout(Some(Duration::from_secs(10)))?;
    s.write_all(req.as_bytes())?;
    let mut buf = [0u8; 64];
    let n = s.read(&mut buf)?;
    Ok(String::from_utf8_lossy(&buf[..n]).into_owned())
}

/// Duplicates every socket of `pid` into this process (pidfd_getfd(2), kernel 5.6+; needs
/// ptrace rights over the target, i.e. root or the same user without Yama restrictions).
fn sockets_of(pid: i32) -> Result<Vec<OwnedFd>, String> {
    // SAFETY: pidfd_open(2) takes a pid and flags and returns a new fd or -1.
    let pidfd = unsafe { libc::syscall(libc::SYS_pidfd_open, pid, 0) };
    if pidfd < 0 {
        return Err(format!("pidfd_open: {}", std::io::Error::last_os_error()));
    }
    // SAFETY: pidfd was just returned to us.
    let pidfd = unsafe { OwnedFd::from_raw_fd(pidfd as i32) };
    let mut out = Vec::new();
    for e in std::fs::read_dir(format!("/proc/{pid}/fd")).map_err(|e| e.to_string())? {
        let e = e.map_err(|e| e.to_string())?;
        let link = std::fs::read_link(e.path()).unwrap_or_default();
        if !link.to_string_lossy().starts_with("socket:") {
            continue;
        }
        let Ok(target) = e.file_name().to_string_lossy().parse::<i32>() else {
            continue;
        };
        // SAFETY: pidfd_getfd(2) duplicates the target's fd into ours, or returns -1.
        let fd = unsafe {
            libc::syscall(
                libc::SYS_pidfd_getfd,
                std::os::fd::AsRawFd::as_raw_fd(&pidfd),
                target,
                0,
            )
        };
        if fd < 0 {
            return Err(format!("pidfd_getfd: {}", std::io::Error::last_os_error()));
        }
        // SAFETY: a new fd owned by us.
        out.push(unsafe { OwnedFd::from_raw_fd(fd as i32) });
    }
    Ok(out)
}

/// (local, peer) of an inet socket; `None` for other families (tokio's signal socketpair).
fn addrs_of(fd: &OwnedFd) -> Option<(SocketAddr, Option<SocketAddr>)> {
    let s = TcpStream::from(fd.try_clone().ok()?);
    Some((s.local_addr().ok()?, s.peer_addr().ok()))
}

#[test]
fn keepalive_and_sndbuf_from_flags_are_on_the_proxys_real_sockets() {
    let srv = DoneServer::with_delay(Duration::from_millis(1500));
    let p = ProxyProc::start(&[
        "--keepalive",
        "75",
        "--keepintvl",
        "10",
        "--sndbuf",
        "65536",
    ]);
    let mut c = TcpStream::connect(p.addr).unwrap();
    c.write_all(lab_request("127.0.0.1", srv.port(), "x").as_bytes())
        .unwrap();
    assert!(
        eventually(Duration::from_secs(5), || { srv.conns() == 1 }),
        "timed out waiting for request at the server"
    );
    let fds = match sockets_of(p.pid()) {
        Ok(f) => f,
        Err(e) => {
            eprintln!(
                "skipped: cannot copy the proxy's sockets ({e}); needs root or ptrace rights"
            );
            return;
        }
    };
    let client_side = c.local_addr().unwrap();
    let mut seen = Vec::new();
    for fd in &fds {
        let role = match addrs_of(fd) {
            Some((_, Some(a))) if a == client_side => "accepted",
            Some((_, Some(a))) if a == srv.addr => "upstream",
            Some((l, None)) if l == p.addr => "listener",
            _ => continue,
        };
        let a = netkit::sockopt::read_back(fd);
        assert_eq!(a.keepalive, Some(true), "{role}: {a}");
        assert_eq!(
            (a.keepidle, a.keepintvl),
            (Some(75), Some(10)),
            "{role}: {a}"
        );
        // socket(7): the kernel doubles SO_SNDBUF.
        assert_eq!(a.sndbuf, Some(131072), "{role}: {a}");
        seen.push(role);
    }
    // One listener copy per serving thread, all checked above.
    seen.sort();
    seen.dedup();
    assert_eq!(seen, ["accepted", "listener", "upstream"]);
    let mut buf = [0u8; 8];
    c.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    assert_eq!(c.read(&mut buf).unwrap(), 4);
    let first = &p.stdout()[0];
    assert!(
        first.contains("\"sndbuf\":131072") && first.contains("\"sndbuf_asked\":65536"),
        "{first}"
    );
}
