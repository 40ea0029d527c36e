//! `netkit run udp-server` / `udp-client` sharing one port (seed 002, BIND-RULES.md U1/U4):
//! with SO_REUSEADDR, SO_REUSEPORT or both, the connected client gets its peer's datagrams
//! and the server everything else; without them (or with the option on one side only) the
//! second bind fails with EADDRINUSE naming the server. Multicast on `lo` when it works.

mod support;

use std::net::{Ipv4Addr, SocketAddr, UdpSocket};
use std::time::Duration;

use support::cli::*;
use support::lab::*;

/// A free UDP port on 127.0.0.1 (bound with port 0, then released).
fn free_udp_port() -> u16 {
    UdpSocket::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn udp(addr: &str) -> UdpSocket {
    let s = UdpSocket::bind(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    s
}

#[test]
fn server_and_client_share_a_port_and_each_gets_its_own_traffic() {
    for opt in ["--reuseaddr", "--reuseport", "--listen-multiple"] {
        let port = free_udp_port();
        let p = port.to_string();
        let srv = Proc::spawn(&["run", "udp-server", "-p", &p, opt]);
        let shared = srv.listening();
        assert_eq!(shared.port(), port);

        let peer = udp("127.0.0.1:0");
        let to = peer.local_addr().unwrap().to_string();
        let mut client = Proc::spawn(&[
            "run",
            "udp-client",
            "-p",
            &p,
            "--to",
            &to,
            "--message",
            "hello",
            "--wait",
            "10",
            opt,
        ]);
        let mut buf = [0u8; 100];
        let (n, from) = peer
            .recv_from(&mut buf)
            .unwrap_or_else(|e| panic!("{opt}: peer got nothing ({e}):\n{}", client.raw()));
        assert_eq!((&buf[..n], from), (&b"hello"[..], shared), "{opt}");

        // Anyone else's datagram to the shared port goes to the unconnected server.
        let other = udp("127.0.0.1:0");
        other.send_to(b"other", shared).unwrap();
        let (n, _) = other.recv_from(&mut buf).expect("server echo");
        assert_eq!(&buf[..n], b"other", "{opt}");
        // The peer's reply goes to the connected client, not to the server.
        peer.send_to(b"pong", shared).unwrap();
        let st = client
            .wait_exit(Duration::from_secs(10))
            .expect("client exits");
        assert_eq!(st.code(), Some(0), "{opt}: {}", client.raw());
        let reply = client.wait_line(Duration::from_secs(1), |l| l.event == "reply");
        assert!(reply.is_some(), "{opt}: {}", client.raw());
        assert!(
            client.raw().contains(r#""reply":"pong""#),
            "{}",
            client.raw()
        );

        assert!(
            srv.wait_line(Duration::from_secs(5), |l| l.event == "received")
                .is_some()
        );
        let got: Vec<(SocketAddr, String)> = srv
            .lines()
            .into_iter()
            .filter(|l| l.event == "received")
            .map(|l| (l.peer.unwrap(), l.message.unwrap()))
            .collect();
        assert_eq!(
            got,
            [(other.local_addr().unwrap(), "other".to_string())],
            "{opt}"
        );
    }
}

#[test]
fn without_reuse_on_both_sockets_the_second_bind_fails_naming_the_server() {
    let cases: [(Option<&str>, Option<&str>); 3] = [
        (None, None),
        (Some("--reuseaddr"), None),
        (None, Some("--reuseport")),
    ];
    for (server_opt, client_opt) in cases {
        let port = free_udp_port();
        let p = port.to_string();
        let mut sargs = vec!["run", "udp-server", "-p", &p];
        sargs.extend(server_opt);
        let srv = Proc::spawn(&sargs);
        srv.listening();
        let mut cargs = vec!["run", "udp-client", "-p", &p, "--to", "127.0.0.1:9"];
        cargs.extend(client_opt);
        let (code, _, err) = run(&cargs, Duration::from_secs(10));
        assert_eq!(code, Some(2), "{server_opt:?}: {err}");
        assert!(err.contains("EADDRINUSE (98)"), "{err}");
        assert!(
            err.contains(&format!(
                "udp UNCONN 127.0.0.1:{port} held by pid {}",
                srv.pid()
            )),
            "{err}"
        );
        assert!(err.contains("BOTH set SO_REUSEADDR"), "{err}");
    }
}

#[test]
fn a_client_aimed_at_its_own_address_is_refused() {
    let port = free_udp_port();
    let p = port.to_string();
    let to = format!("127.0.0.1:{port}");
    let (code, _, err) = run(
        &[
            "run",
            "udp-client",
            "-p",
            &p,
            "--listen-multiple",
            "--to",
            &to,
        ],
        Duration::from_secs(10),
    );
    assert_eq!(code, Some(2), "{err}");
    assert!(err.contains("own address"), "{err}");
}

/// True when a multicast datagram sent out of `lo` comes back to a member socket here.
fn multicast_on_lo_works(group: Ipv4Addr) -> bool {
    let r = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::DGRAM, None).unwrap();
    let _ = r.set_reuse_address(true);
    if r.bind(&SocketAddr::from((group, 0)).into()).is_err()
        || r.join_multicast_v4(&group, &Ipv4Addr::LOCALHOST).is_err()
    {
        return false;
    }
    let r: UdpSocket = r.into();
    r.set_read_timeout(Some(Duration::from_millis(500)))
        .unwrap();
    let s = sender();
    let to = SocketAddr::from((group, r.local_addr().unwrap().port()));
    s.send_to(b"probe", to).is_ok() && r.recv_from(&mut [0u8; 16]).is_ok()
}

fn sender() -> UdpSocket {
    let s = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::DGRAM, None).unwrap();
    s.set_multicast_if_v4(&Ipv4Addr::LOCALHOST).unwrap();
    s.set_multicast_loop_v4(true).unwrap();
    s.into()
}

#[test]
fn multicast_group_is_joined_on_loopback() {
    let group = Ipv4Addr::new(239, 255, 42, 99);
    if !multicast_on_lo_works(group) {
        eprintln!("skipped: multicast over lo does not loop back on this host");
        return;
    }
    let port = free_udp_port();
    let p = port.to_string();
    let srv = Proc::spawn(&[
        "run",
        "udp-server",
        "-p",
        &p,
        "--multicast",
        "239.255.42.99",
        "--no-reply",
    ]);
    assert_eq!(srv.listening(), SocketAddr::from((group, port)));
    sender().send_to(b"to the group", (group, port)).unwrap();
    let got = srv.wait_line(Duration::from_secs(5), |l| l.event == "received");
    assert_eq!(
        got.and_then(|l| l.message).as_deref(),
        Some("to the group"),
        "{}",
        srv.raw()
    );
}

#[test]
fn multicast_rejects_a_unicast_group() {
    let (code, _, err) = run(
        &["run", "udp-server", "-p", "0", "--multicast", "10.0.0.1"],
        Duration::from_secs(10),
    );
    assert_eq!(code, Some(2));
    assert!(err.contains("not an IPv4 multicast group"), "{err}");
}
