//! The client-side explanation (for `run client --bind-port`): bind failures get the bind
//! diagnosis; connect() with the same 4-tuple still ESTABLISHED gets EADDRNOTAVAIL and the
//! `same_four_tuple` cause (BIND-RULES.md rule 12).

use std::net::{SocketAddr, TcpListener};
use std::time::Duration;

use netkit::explain::port::connect_failure as explain_connect;
use netkit::sockopt::{self, SockOpts};

#[test]
fn rule12_same_four_tuple_is_eaddrnotavail_at_connect() {
    let srv = TcpListener::bind("127.0.0.1:0").unwrap();
    let remote = srv.local_addr().unwrap();
    let opts = SockOpts {
        reuseaddr: true,
        ..SockOpts::default()
    };
    // First client on a port the kernel picks, then pinned again with SO_REUSEADDR.
    let first = sockopt::connect(
        remote,
        &opts,
        Some("127.0.0.1:0".parse().unwrap()),
        Some(Duration::from_secs(2)),
    )
    .unwrap();
    let (_accepted, _) = srv.accept().unwrap();
    let local: SocketAddr = first.local_addr().unwrap();
    let err = sockopt::connect(remote, &opts, Some(local), Some(Duration::from_secs(2)))
        .expect_err("the same 4-tuple must be refused");
    assert_eq!(err.stage, "connect");
    assert_eq!(err.errno(), Some(libc::EADDRNOTAVAIL));
    let r = explain_connect(Some(local), remote, &opts, &err).unwrap();
    assert_eq!(r.errno, Some("EADDRNOTAVAIL"));
    let c = r
        .causes
        .iter()
        .find(|c| c.kind == "same_four_tuple")
        .expect("same_four_tuple");
    assert_eq!(c.sockets[0].local_port, local.port());
    assert_eq!(c.sockets[0].owners[0].pid, std::process::id());
}

#[test]
fn bind_failure_of_a_client_uses_the_bind_diagnosis() {
    let srv = TcpListener::bind("127.0.0.1:0").unwrap();
    let taken = srv.local_addr().unwrap();
    let opts = SockOpts::default();
    let err = sockopt::connect(taken, &opts, Some(taken), Some(Duration::from_secs(2)))
        .expect_err("binding a listening port must fail");
    assert_eq!(err.stage, "bind");
    let r = explain_connect(Some(taken), taken, &opts, &err).unwrap();
    assert!(!r.bindable);
    assert_eq!(r.errno, Some("EADDRINUSE"));
    assert!(!r.trial.listen);
    assert!(r.causes.iter().any(|c| c.kind == "listening"));
}
