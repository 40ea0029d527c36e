//! Oracles: netkit's inventory of one port, made here with real sockets, against two
//! independent readers of the same kernel state — the /proc/net parser
//! (`inspect::procnet::read_all`) and netstat2 (`get_sockets_info`, sock_diag + full /proc walk);
//! and the /proc/net fallback end to end, with sock_diag made unavailable by strace.

mod support;

use std::collections::BTreeSet;
use std::net::{IpAddr, TcpListener, TcpStream, UdpSocket};

use netkit::inspect::{Proto, Query, procnet};
use netstat2::{AddressFamilyFlags, ProtocolFlags, ProtocolSocketInfo, get_sockets_info};
use support::cli::*;
use support::have;
use support::inventory::*;
use support::listeners::*;

/// (proto, local addr, local port, remote port, state, inode)
type Row = (String, IpAddr, u16, Option<u16>, String, u64);

/// The addresses this test's sockets use. Other processes may hold the same port number on
/// other loopback addresses and come and go between the reads, so rows are compared on these.
fn is_ours(addr: &IpAddr) -> bool {
    *addr == IpAddr::from([127, 0, 0, 1]) || *addr == IpAddr::from(std::net::Ipv6Addr::LOCALHOST)
}

fn netkit_rows(port: u16) -> (Vec<Row>, Vec<SockJson>) {
    let (r, code) = netkit_json::<SocketsJson>(&["who-owns", &port.to_string()]);
    assert_eq!(code, 0);
    let socks: Vec<SockJson> = r
        .sockets
        .into_iter()
        .filter(|s| is_ours(&s.local_addr.parse().unwrap()))
        .collect();
    let rows = socks
        .iter()
        .map(|s| {
            (
                s.proto.clone(),
                s.local_addr.parse().unwrap(),
                s.local_port,
                s.remote_port,
                s.state.clone(),
                s.inode,
            )
        })
        .collect();
    (rows, socks)
}

fn sorted(v: Vec<Row>) -> BTreeSet<Row> {
    v.into_iter().collect()
}

/// A port with a listener, an accepted connection, a TIME_WAIT and, when the number is free
/// there, a UDP socket on 127.0.0.1 and TCP and UDP sockets on [::1].
struct Population {
    _l: TcpListener,
    _pair: (TcpStream, TcpStream),
    _udp: Option<UdpSocket>,
    v6: (Option<TcpListener>, Option<UdpSocket>),
    port: u16,
}

fn population() -> Population {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = l.local_addr().unwrap().port();
    make_time_wait(&l);
    let c = TcpStream::connect(("127.0.0.1", port)).unwrap();
    let (s, _) = l.accept().unwrap();
    let udp = UdpSocket::bind(("127.0.0.1", port)).ok();
    let v6 = (
        TcpListener::bind(("::1", port)).ok(),
        UdpSocket::bind(("::1", port)).ok(),
    );
    Population {
        _l: l,
        _pair: (c, s),
        _udp: udp,
        v6,
        port,
    }
}

#[test]
fn netkit_agrees_with_the_proc_net_parser() {
    let p = population();
    let started = std::time::Instant::now();
    let (ours, socks) = netkit_rows(p.port);
    let q = Query {
        local_port: Some(p.port),
        ..Query::default()
    };
    let theirs: Vec<Row> = procnet::read_all(&q)
        .expect("read /proc/net")
        .into_iter()
        .filter(|e| is_ours(&e.local_addr))
        .map(|e| {
            (
                e.proto.to_string(),
                e.local_addr,
                e.local_port,
                e.remote_port,
                e.state.to_string(),
                e.inode,
            )
        })
        .collect();
    assert!(ours.len() >= 3, "{ours:?}");
    if p.v6.0.is_some() {
        assert!(
            socks
                .iter()
                .any(|s| s.family == "inet6" && s.state == "LISTEN")
        );
    }
    assert_eq!(sorted(ours), sorted(theirs));
    // The TIME_WAIT expiry read both ways agrees, allowing for the time between the reads
    // (/proc was read after netkit, so it shows less time left) and 10 ms tick rounding.
    let tw = socks.iter().find(|s| s.state == "TIME_WAIT").unwrap();
    let ptw = procnet::read_all(&q)
        .unwrap()
        .into_iter()
        .find(|e| e.state.name() == "TIME_WAIT" && is_ours(&e.local_addr))
        .unwrap();
    let between = started.elapsed().as_millis() as u64;
    let (a, b) = (tw.expires_ms.unwrap(), ptw.expires_ms.unwrap());
    assert!(
        b <= a + 50 && a - b.min(a) <= between + 50,
        "netkit {a} ms vs /proc {b} ms read {between} ms apart"
    );
    assert_eq!((ptw.uid, tw.uid), (None, None));
}

#[test]
fn netkit_agrees_with_netstat2_including_owners() {
    let p = population();
    let (ours, socks) = netkit_rows(p.port);
    let infos = get_sockets_info(
        AddressFamilyFlags::IPV4 | AddressFamilyFlags::IPV6,
        ProtocolFlags::TCP | ProtocolFlags::UDP,
    )
    .expect("netstat2");
    let mut theirs: Vec<Row> = Vec::new();
    for si in infos
        .iter()
        .filter(|s| s.local_port() == p.port && is_ours(&s.local_addr()))
    {
        let row = match &si.protocol_socket_info {
            ProtocolSocketInfo::Tcp(t) => {
                let state = match t.state {
                    netstat2::TcpState::Listen => "LISTEN".to_string(),
                    netstat2::TcpState::FinWait1 => "FIN_WAIT1".to_string(),
                    netstat2::TcpState::FinWait2 => "FIN_WAIT2".to_string(),
                    other => other.to_string(),
                };
                let peerless = state == "LISTEN";
                (
                    "tcp".to_string(),
                    t.local_addr,
                    t.local_port,
                    (!peerless).then_some(t.remote_port),
                    state,
                    u64::from(si.inode),
                )
            }
            // netstat2 gives UDP sockets without remote or state; ours are unconnected.
            ProtocolSocketInfo::Udp(u) => (
                "udp".to_string(),
                u.local_addr,
                u.local_port,
                None,
                "UNCONN".to_string(),
                u64::from(si.inode),
            ),
        };
        theirs.push(row);
        // Owners: netstat2's full /proc walk and netkit's targeted one find the same PIDs.
        if si.inode != 0 {
            let mine = socks
                .iter()
                .find(|s| s.inode == u64::from(si.inode))
                .expect("netkit has the inode");
            let mut want = si.associated_pids.clone();
            want.sort_unstable();
            assert_eq!(mine.pids(), want, "inode {}", si.inode);
            assert_eq!(mine.uid, Some(si.uid));
        }
    }
    assert_eq!(sorted(ours), sorted(theirs));
    assert!(
        socks
            .iter()
            .any(|s| s.proto == Proto::Tcp.to_string() && s.pids() == vec![std::process::id()])
    );
}

#[test]
fn without_sock_diag_who_owns_falls_back_to_proc_net() {
    if !have("strace") {
        eprintln!("skipped: strace not installed (used to make socket(2) fail)");
        return;
    }
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = l.local_addr().unwrap().port();
    make_time_wait(&l);
    // strace fault injection: every socket(2) of netkit fails with EACCES, as in a sandbox
    // that forbids NETLINK_SOCK_DIAG.
    let args = ["who-owns", &port.to_string(), "--tcp", "--json"];
    let out = std::process::Command::new("strace")
        .args(["-f", "-qq", "-o", "/dev/null", "-e", "trace=socket"])
        .args(["-e", "inject=socket:error=EACCES"])
        .arg(env!("CARGO_BIN_EXE_netkit"))
        .args(args)
        .output()
        .expect("strace");
    if String::from_utf8_lossy(&out.stderr).contains("ptrace") {
        eprintln!("skipped: ptrace not permitted here");
        return;
    }
    let (r, code): (SocketsJson, i32) = decode(&out, &args);
    assert_eq!(code, 0);
    assert!(
        r.notes.iter().any(|n| n.contains("/proc/net")),
        "{:?}",
        r.notes
    );
    let r = r.only("127.0.0.1");
    let listen = r.sockets.iter().find(|s| s.state == "LISTEN").unwrap();
    assert_eq!(listen.pids(), vec![std::process::id()]);
    let tw = r.sockets.iter().find(|s| s.state == "TIME_WAIT").unwrap();
    assert_eq!((tw.uid, tw.user.as_deref()), (None, None));
    assert!(tw.expires_ms.is_some_and(|ms| ms > 50_000));
    assert_eq!(
        tw.listener.as_ref().and_then(|l| l.pid()),
        Some(std::process::id())
    );
}
