//! Kernel facts that `netkit explain`'s trials depend on, pinned with raw sockets (no
//! netkit): docs/KERNEL-FACTS.md "Bind buckets remember the last SO_REUSEPORT socket". If a
//! kernel changes one of these, the test says which, and the trial policy in
//! `explain::port` must be re-checked.

use std::net::{SocketAddr, TcpListener, TcpStream};
use std::time::Duration;

use socket2::{Domain, Socket, Type};

fn addr(port: u16) -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], port))
}

/// bind + listen with the flags, closed at once: `true` when both passed.
fn bind_listen(port: u16, ra: bool, rp: bool) -> bool {
    let s = Socket::new(Domain::IPV4, Type::STREAM, None).unwrap();
    s.set_reuse_address(ra).unwrap();
    s.set_reuse_port(rp).unwrap();
    s.bind(&addr(port).into()).is_ok() && s.listen(1).is_ok()
}

/// A server-side TIME_WAIT on 127.0.0.1:P left by a listener with these flags (the listener
/// and both connection ends are closed; only the TIME_WAIT keeps the port's bind bucket).
fn server_time_wait(ra: bool, rp: bool) -> u16 {
    let s = Socket::new(Domain::IPV4, Type::STREAM, None).unwrap();
    s.set_reuse_address(ra).unwrap();
    s.set_reuse_port(rp).unwrap();
    s.bind(&addr(0).into()).unwrap();
    s.listen(4).unwrap();
    let l: TcpListener = s.into();
    let port = l.local_addr().unwrap().port();
    let c = TcpStream::connect(addr(port)).unwrap();
    let (a, _) = l.accept().unwrap();
    drop(a); // the server closes first: its side goes to TIME_WAIT
    std::thread::sleep(Duration::from_millis(50));
    drop(c);
    drop(l);
    std::thread::sleep(Duration::from_millis(50));
    port
}

#[test]
fn a_reuseaddr_plus_reuseport_socket_leaves_the_bucket_marked_for_reuseport() {
    let p = server_time_wait(true, false);
    // The TIME_WAIT kept SO_REUSEADDR only: SO_REUSEPORT alone is refused (rule 7b)...
    assert!(!bind_listen(p, false, true));
    // ...SO_REUSEADDR+SO_REUSEPORT passes through the SO_REUSEADDR exemption (rule 7a)...
    assert!(bind_listen(p, true, true));
    // ...and that socket, although gone, left tb->fastreuseport = FASTREUSEPORT_STRICT with
    // our uid and address (inet_csk_update_fastreuse): SO_REUSEPORT alone now passes on the
    // fast path (sk_reuseport_match) although the TIME_WAIT has not changed.
    assert!(
        bind_listen(p, false, true),
        "kernel changed: an RA+RP socket no longer marks the bucket (re-check explain's trials)"
    );
    // Any socket without SO_REUSEPORT that passes resets the mark: the refusal is back.
    assert!(bind_listen(p, true, false));
    assert!(!bind_listen(p, false, true));
}

#[test]
fn single_flag_trials_leave_the_verdicts_alone() {
    // SO_REUSEADDR alone over an RA TIME_WAIT passes and changes nothing for SO_REUSEPORT.
    let p = server_time_wait(true, false);
    assert!(!bind_listen(p, false, true));
    assert!(bind_listen(p, true, false));
    assert!(!bind_listen(p, false, true));
    assert!(!bind_listen(p, false, false));
    // SO_REUSEPORT alone over an RP TIME_WAIT passes and changes nothing for SO_REUSEADDR.
    let p = server_time_wait(false, true);
    assert!(!bind_listen(p, true, false));
    assert!(bind_listen(p, false, true));
    assert!(!bind_listen(p, true, false));
    assert!(bind_listen(p, false, true));
}
