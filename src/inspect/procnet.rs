//! `/proc/net/{tcp,tcp6,udp,udp6}` parsing: the fallback and the test oracle.
//!
//! sock_diag ([`super::diag`]) is the main path; these text tables are what a kernel without
//! `NETLINK_SOCK_DIAG` (or a sandbox that blocks netlink) still offers ([`super::table`]
//! falls back to them), and an independent second opinion for tests. [`parse_table`] is pure
//! and tested on real captures (fixtures/proc_net/); [`read_all`] is the only code in netkit
//! that opens these paths.
//!
//! What the tables cannot show: bound-but-not-listening TCP sockets (they sit in no hash the
//! table walks, KERNEL-FACTS.md), so a [`Query`] asking for `BOUND` gets none from here.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use super::{Family, InspectError, Proto, Query, SockState, SocketEntry};

/// Clock ticks per second of the `tm->when` column.
///
/// The kernel prints the timer with `jiffies_delta_to_clock_t` (net/ipv4/tcp_ipv4.c,
/// `get_tcp4_sock` / `get_timewait4_sock`), i.e. in USER_HZ, which is 100 on every
/// architecture netkit builds for (`sysconf(_SC_CLK_TCK)`); measured in BIND-RULES.md §4:
/// `03:00001734` = 5940 ticks = 59.40 s.
pub const USER_HZ: u64 = 100;

/// `tr` value of the TIME_WAIT timer (net/ipv4/tcp_ipv4.c, `get_timewait4_sock` prints 3).
const TIMER_TIME_WAIT: u8 = 3;

/// The path of the table for a protocol and family, as the kernel names it.
///
/// ```
/// use netkit::inspect::{Family, Proto, procnet::path_of};
/// assert_eq!(path_of(Proto::Tcp, Family::Inet6), "/proc/net/tcp6");
/// assert_eq!(path_of(Proto::Udp, Family::Inet), "/proc/net/udp");
/// ```
pub fn path_of(proto: Proto, family: Family) -> &'static str {
    match (proto, family) {
        (Proto::Tcp, Family::Inet) => "/proc/net/tcp",
        (Proto::Tcp, Family::Inet6) => "/proc/net/tcp6",
        (Proto::Udp, Family::Inet) => "/proc/net/udp",
        (Proto::Udp, Family::Inet6) => "/proc/net/udp6",
    }
}

/// Parses the text of one table (`/proc/net/tcp` for `Proto::Tcp` + `Family::Inet`, etc.).
///
/// The first line is the column header and is skipped. Rows are split on whitespace, so the
/// padding the kernel adds to IPv4 TCP rows (`seq_pad`) and any trailing spaces do not
/// matter; blank lines are skipped. Entries come back in table order, without owners or user
/// names (see [`super::resolve_owners`] and [`super::name_users`]).
///
/// # Errors
/// [`InspectError::Parse`] with the 1-based line number for a row that does not parse; the
/// parser never panics on any input.
pub fn parse_table(
    text: &str,
    proto: Proto,
    family: Family,
) -> Result<Vec<SocketEntry>, InspectError> {
    let path = path_of(proto, family);
    let mut out = Vec::new();
    for (i, line) in text.lines().enumerate().skip(1) {
        if line.trim().is_empty() {
            continue;
        }
        let entry = parse_row(line, proto, family).map_err(|reason| InspectError::Parse {
            path: path.to_string(),
            line: i + 1,
            reason,
        })?;
        out.push(entry);
    }
    Ok(out)
}

/// Parses one data row. Columns (net/ipv4/tcp_ipv4.c `get_tcp4_sock`, net/ipv6/tcp_ipv6.c
/// `get_tcp6_sock`, net/ipv4/udp.c `udp4_format_sock`):
/// `sl local rem st tx_queue:rx_queue tr:tm->when retrnsmt uid timeout inode ...`.
fn parse_row(line: &str, proto: Proto, family: Family) -> Result<SocketEntry, &'static str> {
    let mut cols = line.split_ascii_whitespace();
    let mut next = |what: &'static str| cols.next().ok_or(what);
    let sl = next("missing slot number")?;
    if !sl.ends_with(':') {
        return Err("slot number does not end with ':'");
    }
    let (local_addr, local_port) = parse_endpoint(next("missing local address")?, family)?;
    let (remote_addr, remote_port) = parse_endpoint(next("missing remote address")?, family)?;
    let st = u8::from_str_radix(next("missing state")?, 16).map_err(|_| "state is not hex")?;
    let (tx, rx) = split_pair(next("missing tx_queue:rx_queue")?)?;
    let send_q = u32::from_str_radix(tx, 16).map_err(|_| "tx_queue is not hex")?;
    let recv_q = u32::from_str_radix(rx, 16).map_err(|_| "rx_queue is not hex")?;
    let (tr, when) = split_pair(next("missing tr:tm->when")?)?;
    let tr = u8::from_str_radix(tr, 16).map_err(|_| "timer kind is not hex")?;
    let when = u64::from_str_radix(when, 16).map_err(|_| "tm->when is not hex")?;
    let _retrnsmt = next("missing retrnsmt")?;
    let uid: u32 = next("missing uid")?
        .parse()
        .map_err(|_| "uid is not a number")?;
    let _timeout = next("missing timeout")?;
    let inode: u64 = next("missing inode")?
        .parse()
        .map_err(|_| "inode is not a number")?;

    let state = match (proto, st) {
        // UDP reuses TCP_ESTABLISHED for a connected socket and TCP_CLOSE (7) for a bound,
        // unconnected one (net/ipv4/udp.c, `udp4_format_sock` prints sk_state).
        (Proto::Udp, 1) => SockState::Established,
        (Proto::Udp, _) => SockState::Unconn,
        (Proto::Tcp, n) => SockState::from_tcp_number(n).ok_or("unknown TCP state")?,
    };
    let peerless = matches!(state, SockState::Listen | SockState::Unconn);
    // TIME_WAIT and orphan FIN_WAIT2 rows come from `get_timewait4_sock`, which prints uid 0
    // and inode 0: no process owns them, so uid 0 means nobody here, not root.
    let ownerless = state == SockState::TimeWait || (state == SockState::FinWait2 && inode == 0);
    Ok(SocketEntry {
        proto,
        family,
        local_addr,
        local_port,
        remote_addr: (!peerless).then_some(remote_addr),
        remote_port: (!peerless).then_some(remote_port),
        state,
        uid: (!ownerless).then_some(uid),
        user: None,
        inode,
        owners: Vec::new(),
        expires_ms: (proto == Proto::Tcp && tr == TIMER_TIME_WAIT)
            .then(|| when.saturating_mul(1000) / USER_HZ),
        listener: None,
        recv_q,
        send_q,
        netns: None,
    })
}

fn split_pair(s: &str) -> Result<(&str, &str), &'static str> {
    s.split_once(':').ok_or("expected two fields joined by ':'")
}

/// Parses `0100007F:1770` (IPv4) or 32 hex digits `:PORT` (IPv6).
///
/// net/ipv4/tcp_ipv4.c prints each 32-bit word of the address with `%08X` of the value as
/// it sits in memory (network byte order bytes read as a host-order u32), so
/// `0100007F:1770` is 127.0.0.1:6000 on a little-endian machine. Converting each word back
/// with `to_ne_bytes` restores the address bytes on any endianness. The port is printed
/// after `ntohs`, so it reads directly.
fn parse_endpoint(s: &str, family: Family) -> Result<(IpAddr, u16), &'static str> {
    let (addr, port) = s.split_once(':').ok_or("address without ':PORT'")?;
    if port.len() != 4 {
        return Err("port is not 4 hex digits");
    }
    let port = u16::from_str_radix(port, 16).map_err(|_| "port is not hex")?;
    let word = |hex: &str| u32::from_str_radix(hex, 16).map_err(|_| "address is not hex");
    let ip = match family {
        Family::Inet => {
            if addr.len() != 8 {
                return Err("IPv4 address is not 8 hex digits");
            }
            IpAddr::V4(Ipv4Addr::from(word(addr)?.to_ne_bytes()))
        }
        Family::Inet6 => {
            if addr.len() != 32 || !addr.is_ascii() {
                return Err("IPv6 address is not 32 hex digits");
            }
            let mut b = [0u8; 16];
            for (i, chunk) in b.chunks_exact_mut(4).enumerate() {
                chunk.copy_from_slice(&word(&addr[i * 8..i * 8 + 8])?.to_ne_bytes());
            }
            IpAddr::V6(Ipv6Addr::from(b))
        }
    };
    Ok((ip, port))
}

/// Reads the tables `q` asks for and keeps the rows it selects (protocol, family, TCP
/// states, local port). A missing table (IPv6 disabled, no UDP module) counts as empty.
/// Owners and user names are not filled in.
///
/// # Errors
/// [`InspectError::Read`] when a table exists but cannot be read, [`InspectError::Parse`]
/// when it does not parse.
pub fn read_all(q: &Query) -> Result<Vec<SocketEntry>, InspectError> {
    let mut out = Vec::new();
    for (on, proto) in [(q.tcp, Proto::Tcp), (q.udp, Proto::Udp)] {
        for (fon, family) in [(q.v4, Family::Inet), (q.v6, Family::Inet6)] {
            if !(on && fon) {
                continue;
            }
            let path = path_of(proto, family);
            let text = match std::fs::read_to_string(path) {
                Ok(t) => t,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
                Err(source) => {
                    return Err(InspectError::Read {
                        path: path.to_string(),
                        source,
                    });
                }
            };
            out.extend(
                parse_table(&text, proto, family)?
                    .into_iter()
                    .filter(|s| q.local_port.is_none_or(|p| s.local_port == p))
                    .filter(|s| proto == Proto::Udp || q.tcp_states.contains(&s.state)),
            );
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    const HEADER: &str = "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode\n";

    fn one(row: &str, proto: Proto, family: Family) -> Result<SocketEntry, InspectError> {
        let text = format!("{HEADER}{row}\n");
        parse_table(&text, proto, family).map(|mut v| v.remove(0))
    }

    #[test]
    fn ipv4_words_are_host_order() {
        let e = one(
            "   0: 0100007F:1770 00000000:0000 0A 00000000:00000000 00:00000000 00000000  1000        0 4242 1 0000000000000000 100 0 0 10 0",
            Proto::Tcp,
            Family::Inet,
        )
        .unwrap();
        assert_eq!(e.local_addr, "127.0.0.1".parse::<IpAddr>().unwrap());
        assert_eq!(e.local_port, 6000);
        assert_eq!(e.state, SockState::Listen);
        assert_eq!(e.uid, Some(1000));
        assert_eq!(e.inode, 4242);
        assert_eq!(e.remote_addr, None);
        assert_eq!(e.expires_ms, None);
    }

    #[test]
    fn time_wait_row_has_no_uid_and_an_expiry_in_user_hz() {
        let e = one(
            "   3: 0100007F:1770 0100007F:C350 06 00000000:00000000 03:00001734 00000000     0        0 0 3 0000000000000000",
            Proto::Tcp,
            Family::Inet,
        )
        .unwrap();
        assert_eq!(e.state, SockState::TimeWait);
        assert_eq!(e.uid, None);
        assert_eq!(e.expires_ms, Some(59_400));
        assert_eq!(e.remote_port, Some(0xC350));
    }

    #[test]
    fn malformed_rows_are_errors_with_line_numbers() {
        let bad = [
            "   0: 0100007F:1770",
            "   0: 0100007G:1770 00000000:0000 0A 00000000:00000000 00:00000000 00000000 0 0 1",
            "   0: 0100007F:17700 00000000:0000 0A 00000000:00000000 00:00000000 00000000 0 0 1",
            "   0: 0100007F:1770 00000000:0000 ZZ 00000000:00000000 00:00000000 00000000 0 0 1",
            "   0: 0100007F:1770 00000000:0000 0A 00000000-00000000 00:00000000 00000000 0 0 1",
            "   0: 0100007F:1770 00000000:0000 0A 00000000:00000000 00:00000000 00000000 -1 0 1",
            "   0: 0100007F:1770 00000000:0000 FF 00000000:00000000 00:00000000 00000000 0 0 1",
            "   0 0100007F:1770 00000000:0000 0A 00000000:00000000 00:00000000 00000000 0 0 1",
            "   0: é100007F:1770 00000000:0000 0A 00000000:00000000 00:00000000 00000000 0 0 1",
        ];
        for row in bad {
            let text = format!("{HEADER}\n{row}\n");
            match parse_table(&text, Proto::Tcp, Family::Inet) {
                Err(InspectError::Parse { line, path, .. }) => {
                    assert_eq!(line, 3, "{row}");
                    assert_eq!(path, "/proc/net/tcp");
                }
                other => panic!("{row}: {other:?}"),
            }
        }
        // Multi-byte text in an IPv6 address must not panic on slicing.
        let row = "   0: 0000000000000000000000000000000é:1770 00000000000000000000000000000000:0000 0A 00000000:00000000 00:00000000 00000000 0 0 1";
        assert!(one(row, Proto::Tcp, Family::Inet6).is_err());
    }

    #[test]
    fn empty_and_header_only_tables_are_empty() {
        assert!(
            parse_table("", Proto::Tcp, Family::Inet)
                .unwrap()
                .is_empty()
        );
        assert!(
            parse_table(HEADER, Proto::Udp, Family::Inet6)
                .unwrap()
                .is_empty()
        );
    }

    // Real captures (fixtures/README.md says how each was made).
    macro_rules! fixture {
        ($table:literal, $name:literal) => {
            include_str!(concat!(
                "../../fixtures/proc_net/",
                $table,
                "/",
                $name,
                ".txt"
            ))
        };
    }

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    fn find(v: &[SocketEntry], addr: &str, port: u16, state: SockState) -> SocketEntry {
        v.iter()
            .find(|e| e.local_addr == ip(addr) && e.local_port == port && e.state == state)
            .unwrap_or_else(|| panic!("no {state} row for {addr}:{port} in {v:#?}"))
            .clone()
    }

    #[test]
    fn listen_fixture_decodes_addresses_uids_and_ragged_padding() {
        let text = fixture!("tcp", "listen_6000");
        // The kernel pads IPv4 TCP rows with trailing spaces (seq_pad); the fixture keeps them.
        assert!(text.lines().nth(1).unwrap().ends_with("  "));
        let v = parse_table(text, Proto::Tcp, Family::Inet).unwrap();
        assert_eq!(v.len(), 3);
        let root = find(&v, "127.0.0.1", 6000, SockState::Listen);
        assert_eq!(
            (root.uid, root.remote_addr, root.remote_port),
            (Some(0), None, None)
        );
        assert_ne!(root.inode, 0);
        assert_eq!(
            find(&v, "127.0.0.1", 6005, SockState::Listen).uid,
            Some(65534)
        );
        find(&v, "0.0.0.0", 6002, SockState::Listen);

        let v6 = parse_table(fixture!("tcp6", "listen_6000"), Proto::Tcp, Family::Inet6).unwrap();
        assert_eq!(v6.len(), 2);
        find(&v6, "::1", 6000, SockState::Listen);
        let wild = find(&v6, "::", 6001, SockState::Listen);
        assert_eq!(wild.family, Family::Inet6);
    }

    #[test]
    fn timewait_fixture_rows_are_ownerless_with_expiry() {
        for (table, family, addr) in [
            ("tcp", Family::Inet, "127.0.0.1"),
            ("tcp6", Family::Inet6, "::1"),
        ] {
            let text = match table {
                "tcp" => fixture!("tcp", "timewait"),
                _ => fixture!("tcp6", "timewait"),
            };
            let v = parse_table(text, Proto::Tcp, family).unwrap();
            let tw: Vec<_> = v
                .iter()
                .filter(|e| e.state == SockState::TimeWait)
                .collect();
            assert_eq!(tw.len(), 2, "{table}");
            for e in tw {
                assert_eq!(e.local_addr, ip(addr));
                assert_eq!(e.local_port, 6000);
                assert_eq!((e.uid, e.inode), (None, 0));
                assert_eq!(e.remote_addr, Some(ip(addr)));
                // Captured 0.2-0.6 s after the close: 59.x s left of the fixed 60 s.
                let ms = e.expires_ms.unwrap();
                assert!((59_000..=60_000).contains(&ms), "{ms}");
            }
            let l = find(&v, addr, 6000, SockState::Listen);
            assert_eq!((l.uid, l.expires_ms), (Some(0), None));
        }
    }

    #[test]
    fn v4_mapped_fixture_keeps_the_mapped_address() {
        let v = parse_table(fixture!("tcp6", "v4_mapped"), Proto::Tcp, Family::Inet6).unwrap();
        let est = find(&v, "::ffff:127.0.0.1", 6000, SockState::Established);
        assert_eq!(super::super::canonical(est.local_addr), ip("127.0.0.1"));
        assert_eq!(est.remote_addr, Some(ip("::ffff:127.0.0.1")));
        assert!(est.uid.is_some());
        let tw = find(&v, "::ffff:127.0.0.1", 6000, SockState::TimeWait);
        assert_eq!(tw.uid, None);
        find(&v, "::", 6000, SockState::Listen);

        let v4 = parse_table(fixture!("tcp", "v4_mapped"), Proto::Tcp, Family::Inet).unwrap();
        let client = &v4[0];
        assert_eq!(client.remote_port, Some(6000));
        assert_eq!(client.remote_addr, Some(ip("127.0.0.1")));

        let u = parse_table(fixture!("udp6", "v4_mapped"), Proto::Udp, Family::Inet6).unwrap();
        let c = find(&u, "::ffff:127.0.0.1", 5353, SockState::Established);
        assert_eq!(c.remote_port, Some(5354));
    }

    #[test]
    fn orphan_fin_wait2_fixture_is_ownerless_and_close_wait_is_not() {
        let v = parse_table(
            fixture!("tcp", "fin_wait2_orphan"),
            Proto::Tcp,
            Family::Inet,
        )
        .unwrap();
        let fw2 = find(&v, "127.0.0.1", 6000, SockState::FinWait2);
        assert_eq!((fw2.uid, fw2.inode), (None, 0));
        assert!(fw2.expires_ms.is_some_and(|ms| ms > 55_000));
        let cw = v.iter().find(|e| e.state == SockState::CloseWait).unwrap();
        assert_eq!(cw.remote_port, Some(6000));
        assert_eq!((cw.uid, cw.recv_q), (Some(0), 1)); // the FIN counts as one byte queued
        assert_eq!(cw.expires_ms, None);
    }

    #[test]
    fn bound_only_sockets_are_invisible_in_proc_net() {
        let v = parse_table(fixture!("tcp", "bound_only"), Proto::Tcp, Family::Inet).unwrap();
        assert_eq!(v.len(), 1);
        assert_eq!((v[0].local_port, v[0].state), (6004, SockState::Listen));
    }

    #[test]
    fn udp_fixture_states_queues_and_wildcards() {
        let v = parse_table(fixture!("udp", "udp"), Proto::Udp, Family::Inet).unwrap();
        assert_eq!(v.len(), 4);
        let srv = find(&v, "127.0.0.1", 5353, SockState::Unconn);
        assert_eq!((srv.remote_addr, srv.remote_port), (None, None));
        assert_eq!(srv.recv_q, 0x340); // the datagram the autobound sender queued
        let conn = find(&v, "127.0.0.1", 5354, SockState::Established);
        assert_eq!(conn.remote_addr, Some(ip("127.0.0.1")));
        assert_eq!(conn.remote_port, Some(5353));
        find(&v, "0.0.0.0", 5355, SockState::Unconn);
        assert!(v.iter().all(|e| e.expires_ms.is_none() && e.uid == Some(0)));

        let v6 = parse_table(fixture!("udp6", "udp"), Proto::Udp, Family::Inet6).unwrap();
        find(&v6, "::1", 5353, SockState::Unconn);
    }

    #[test]
    fn truncating_any_fixture_row_gives_an_error_not_a_panic() {
        let text = fixture!("tcp", "timewait");
        let row = text.lines().nth(2).unwrap();
        for cut in 0..row.len() {
            let t = format!("{}\n{}\n", text.lines().next().unwrap(), &row[..cut]);
            let _ = parse_table(&t, Proto::Tcp, Family::Inet);
        }
    }
}
