//! Pure decoder tests on real sock_diag captures (fixtures/sock_diag/*.hex), and a
//! cross-check of the sock_diag decoder against the /proc/net parser on captures taken at the
//! same moment in the same network namespace (fixtures/README.md, scripts/capture-fixtures.py).
//! No sockets are opened here.

use std::collections::BTreeSet;
use std::net::IpAddr;

use netkit::inspect::diag::{DiagMsg, parse_dump, to_entry};
use netkit::inspect::procnet::parse_table;
use netkit::inspect::{Family, InspectError, Proto, SockState, SocketEntry, canonical};

macro_rules! diag_fixture {
    ($name:literal) => {
        include_str!(concat!("../fixtures/sock_diag/", $name, ".hex"))
    };
}
macro_rules! proc_fixture {
    ($table:literal, $name:literal) => {
        include_str!(concat!("../fixtures/proc_net/", $table, "/", $name, ".txt"))
    };
}

fn unhex(line: &str) -> Vec<u8> {
    assert!(line.len().is_multiple_of(2), "odd hex line");
    (0..line.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&line[i..i + 2], 16).expect("hex digit"))
        .collect()
}

/// Decodes every datagram of a capture; checks the dump ends with NLMSG_DONE on its last one.
fn decode(hex: &str) -> Vec<DiagMsg> {
    let grams: Vec<Vec<u8>> = hex
        .lines()
        .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
        .map(|l| unhex(l.trim()))
        .collect();
    assert!(!grams.is_empty());
    let mut out = Vec::new();
    for (i, g) in grams.iter().enumerate() {
        let done = parse_dump(g, &mut out).expect("capture decodes");
        assert_eq!(
            done,
            i + 1 == grams.len(),
            "NLMSG_DONE only on the last datagram"
        );
    }
    out
}

fn entries(proto: Proto, hex: &str) -> Vec<SocketEntry> {
    decode(hex).iter().map(|m| to_entry(proto, m)).collect()
}

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

fn find<'a>(v: &'a [SocketEntry], addr: &str, port: u16, state: SockState) -> &'a SocketEntry {
    v.iter()
        .find(|e| e.local_addr == ip(addr) && e.local_port == port && e.state == state)
        .unwrap_or_else(|| panic!("no {state} {addr}:{port} in {v:#?}"))
}

#[test]
fn listeners_carry_uid_inode_and_backlog() {
    let v = entries(Proto::Tcp, diag_fixture!("listen_6000_tcp"));
    assert_eq!(v.len(), 3);
    let l = find(&v, "127.0.0.1", 6000, SockState::Listen);
    assert_eq!(l.family, Family::Inet);
    assert_eq!((l.uid, l.remote_addr, l.remote_port), (Some(0), None, None));
    assert_ne!(l.inode, 0);
    // For a listener sock_diag puts the backlog in idiag_wqueue (tcp_diag_get_info).
    assert_eq!(l.send_q, 128);
    assert_eq!(l.expires_ms, None);
    assert_eq!(
        find(&v, "127.0.0.1", 6005, SockState::Listen).uid,
        Some(65534)
    );
    find(&v, "0.0.0.0", 6002, SockState::Listen);

    let v6 = entries(Proto::Tcp, diag_fixture!("listen_6000_tcp6"));
    assert!(v6.iter().all(|e| e.family == Family::Inet6));
    find(&v6, "::1", 6000, SockState::Listen);
    assert_eq!(find(&v6, "::", 6001, SockState::Listen).send_q, 5);
}

#[test]
fn time_wait_has_timer_3_expiry_in_ms_and_no_owner() {
    for (hex, addr) in [
        (diag_fixture!("timewait_tcp"), "127.0.0.1"),
        (diag_fixture!("timewait_tcp6"), "::1"),
    ] {
        let raw = decode(hex);
        let tw: Vec<&DiagMsg> = raw.iter().filter(|m| m.state == 6).collect();
        assert_eq!(tw.len(), 2);
        for m in tw {
            assert_eq!((m.timer, m.uid, m.inode), (3, 0, 0));
            let e = to_entry(Proto::Tcp, m);
            assert_eq!(e.state, SockState::TimeWait);
            assert_eq!(e.local_addr, ip(addr));
            assert_eq!(e.remote_addr, Some(ip(addr)));
            assert_eq!(
                (e.uid, e.inode),
                (None, 0),
                "uid 0 of a TIME_WAIT is nobody"
            );
            let ms = e.expires_ms.expect("expiry");
            assert!((59_000..=60_000).contains(&ms), "{ms}");
        }
    }
}

#[test]
fn bound_only_sockets_come_as_state_7_and_decode_as_bound() {
    for (hex, addr) in [
        (diag_fixture!("bound_only_tcp"), "127.0.0.1"),
        (diag_fixture!("bound_only_tcp6"), "::1"),
    ] {
        let raw = decode(hex);
        let b = raw.iter().find(|m| m.sport == 6003).expect("bound socket");
        assert_eq!(
            b.state, 7,
            "TCP_BOUND_INACTIVE sockets are reported as TCP_CLOSE"
        );
        let e = to_entry(Proto::Tcp, b);
        assert_eq!(e.state, SockState::Bound);
        assert_eq!(e.local_addr, ip(addr));
        assert_eq!((e.remote_addr, e.remote_port), (None, None));
        assert!(e.uid.is_some() && e.inode != 0);
    }
}

#[test]
fn v4_mapped_rows_stay_inet6_and_fold_to_ipv4() {
    let v = entries(Proto::Tcp, diag_fixture!("v4_mapped_tcp6"));
    let est = find(&v, "::ffff:127.0.0.1", 6000, SockState::Established);
    assert_eq!(est.family, Family::Inet6);
    assert_eq!(canonical(est.local_addr), ip("127.0.0.1"));
    assert_eq!(est.remote_addr, Some(ip("::ffff:127.0.0.1")));
    let tw = find(&v, "::ffff:127.0.0.1", 6000, SockState::TimeWait);
    assert_eq!(tw.uid, None);
    find(&v, "::", 6000, SockState::Listen);

    let u = entries(Proto::Udp, diag_fixture!("v4_mapped_udp6"));
    let c = find(&u, "::ffff:127.0.0.1", 5353, SockState::Established);
    assert_eq!(c.remote_port, Some(5354));
}

#[test]
fn orphan_fin_wait2_is_ownerless_with_a_timer() {
    let raw = decode(diag_fixture!("fin_wait2_orphan_tcp"));
    let m = raw.iter().find(|m| m.state == 5).expect("FIN_WAIT2");
    assert_eq!((m.timer, m.inode), (3, 0));
    let e = to_entry(Proto::Tcp, m);
    assert!(e.is_ownerless());
    assert_eq!(e.uid, None);
    assert!(e.expires_ms.is_some_and(|ms| ms > 55_000));
    let v = entries(Proto::Tcp, diag_fixture!("fin_wait2_orphan_tcp"));
    let cw = v.iter().find(|e| e.state == SockState::CloseWait).unwrap();
    assert!(cw.uid.is_some() && !cw.is_ownerless());
}

#[test]
fn udp_states_map_to_unconn_and_established() {
    let raw = decode(diag_fixture!("udp_udp"));
    let v: Vec<SocketEntry> = raw.iter().map(|m| to_entry(Proto::Udp, m)).collect();
    assert_eq!(v.len(), 4);
    let srv = find(&v, "127.0.0.1", 5353, SockState::Unconn);
    assert_eq!(
        raw.iter().find(|m| m.sport == 5353).unwrap().state,
        7,
        "UDP reuses TCP_CLOSE for unconnected"
    );
    assert_eq!((srv.remote_addr, srv.remote_port), (None, None));
    assert_eq!(srv.recv_q, 0x340);
    let c = find(&v, "127.0.0.1", 5354, SockState::Established);
    assert_eq!(c.remote_port, Some(5353));
    find(&v, "0.0.0.0", 5355, SockState::Unconn);
    assert!(v.iter().all(|e| e.expires_ms.is_none()));
    let v6 = entries(Proto::Udp, diag_fixture!("udp_udp6"));
    find(&v6, "::1", 5353, SockState::Unconn);
}

#[test]
fn truncated_captures_are_errors_not_panics() {
    let hex = diag_fixture!("timewait_tcp");
    let g = unhex(hex.lines().find(|l| !l.starts_with('#')).unwrap());
    for cut in 0..g.len() {
        let mut out = Vec::new();
        match parse_dump(&g[..cut], &mut out) {
            Ok(_) | Err(InspectError::Decode(_)) => {}
            Err(e) => panic!("cut {cut}: unexpected {e}"),
        }
    }
}

/// What both sources must agree on for one socket.
type Key = (
    Family,
    IpAddr,
    u16,
    Option<IpAddr>,
    Option<u16>,
    SockState,
    Option<u32>,
    u64,
    u32,
);

fn key(e: &SocketEntry) -> Key {
    (
        e.family,
        e.local_addr,
        e.local_port,
        e.remote_addr,
        e.remote_port,
        e.state,
        e.uid,
        e.inode,
        e.recv_q,
    )
}

fn same_sockets(proto: Proto, family: Family, proc_text: &str, hex: &str) {
    let from_proc = parse_table(proc_text, proto, family).unwrap();
    let from_diag: Vec<SocketEntry> = entries(proto, hex)
        .into_iter()
        // /proc/net/tcp cannot show bound-only sockets (KERNEL-FACTS.md).
        .filter(|e| e.state != SockState::Bound)
        .collect();
    let a: BTreeSet<Key> = from_proc.iter().map(key).collect();
    let b: BTreeSet<Key> = from_diag.iter().map(key).collect();
    assert_eq!(a, b);
    // The two reads were a few ms apart; USER_HZ ticks vs ms differ by < 10 ms more.
    for p in &from_proc {
        let d = from_diag.iter().find(|d| key(d) == key(p)).unwrap();
        match (p.expires_ms, d.expires_ms) {
            (None, None) => {}
            (Some(x), Some(y)) => assert!(x.abs_diff(y) < 250, "{x} vs {y}"),
            other => panic!("expiry mismatch {other:?}"),
        }
    }
}

#[test]
fn proc_net_and_sock_diag_captures_agree() {
    use Family::{Inet, Inet6};
    use Proto::{Tcp, Udp};
    same_sockets(
        Tcp,
        Inet,
        proc_fixture!("tcp", "listen_6000"),
        diag_fixture!("listen_6000_tcp"),
    );
    same_sockets(
        Tcp,
        Inet6,
        proc_fixture!("tcp6", "listen_6000"),
        diag_fixture!("listen_6000_tcp6"),
    );
    same_sockets(
        Tcp,
        Inet,
        proc_fixture!("tcp", "timewait"),
        diag_fixture!("timewait_tcp"),
    );
    same_sockets(
        Tcp,
        Inet6,
        proc_fixture!("tcp6", "timewait"),
        diag_fixture!("timewait_tcp6"),
    );
    same_sockets(
        Tcp,
        Inet,
        proc_fixture!("tcp", "v4_mapped"),
        diag_fixture!("v4_mapped_tcp"),
    );
    same_sockets(
        Tcp,
        Inet6,
        proc_fixture!("tcp6", "v4_mapped"),
        diag_fixture!("v4_mapped_tcp6"),
    );
    same_sockets(
        Tcp,
        Inet,
        proc_fixture!("tcp", "fin_wait2_orphan"),
        diag_fixture!("fin_wait2_orphan_tcp"),
    );
    same_sockets(
        Tcp,
        Inet,
        proc_fixture!("tcp", "bound_only"),
        diag_fixture!("bound_only_tcp"),
    );
    same_sockets(
        Udp,
        Inet,
        proc_fixture!("udp", "udp"),
        diag_fixture!("udp_udp"),
    );
    same_sockets(
        Udp,
        Inet6,
        proc_fixture!("udp6", "udp"),
        diag_fixture!("udp_udp6"),
    );
    same_sockets(
        Udp,
        Inet6,
        proc_fixture!("udp6", "v4_mapped"),
        diag_fixture!("v4_mapped_udp6"),
    );
}
