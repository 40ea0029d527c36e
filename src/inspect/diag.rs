//! sock_diag netlink: the kernel's socket table, as `ss` reads it.
//!
//! Requests are built with netlink-packet-sock-diag; replies are decoded here by
//! [`parse_dump`], because the crate's parsed form drops the TIME_WAIT expiry (`idiag_expires`)
//! and allocates per socket. Two things netstat2 cannot do are done here (KERNEL-FACTS.md):
//! - a kernel-side local-port filter (`idiag_sport` in the request's socket id), and
//! - state bit 13 (`TCP_BOUND_INACTIVE`, Linux ≥ 6.8), which is the only way to see a TCP
//!   socket that called bind() but not listen(); the kernel reports those with state 7 (CLOSE).

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use netlink_packet_core::{NLM_F_DUMP, NLM_F_REQUEST, NetlinkHeader, NetlinkMessage};
use netlink_packet_sock_diag::{
    SockDiagMessage,
    constants::{AF_INET, AF_INET6, IPPROTO_TCP, IPPROTO_UDP},
    inet::{ExtensionFlags, InetRequest, SocketId, StateFlags},
};
use netlink_sys::{Socket, SocketAddr, protocols::NETLINK_SOCK_DIAG};

use super::{Family, InspectError, Proto, Query, SockState, SocketEntry};

/// `TCP_BOUND_INACTIVE` (include/net/tcp_states.h, Linux 6.8): bound-only sockets.
pub const TCP_BOUND_INACTIVE: u32 = 13;
/// `idiag_timer` value of the TIME_WAIT timer (net/ipv4/inet_diag.c, `inet_twsk_diag_fill`).
const TIMER_TIME_WAIT: u8 = 3;
/// sizeof(struct nlmsghdr).
const NLMSG_HDRLEN: usize = 16;
/// sizeof(struct inet_diag_msg).
const INET_DIAG_MSG_LEN: usize = 72;
const NLMSG_ERROR: u16 = 2;
const NLMSG_DONE: u16 = 3;

/// One `struct inet_diag_msg`, decoded but not interpreted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DiagMsg {
    /// `AF_INET` or `AF_INET6`.
    pub family: u8,
    /// Kernel state number.
    pub state: u8,
    /// `idiag_timer`.
    pub timer: u8,
    /// Local address.
    pub src: IpAddr,
    /// Local port.
    pub sport: u16,
    /// Remote address.
    pub dst: IpAddr,
    /// Remote port.
    pub dport: u16,
    /// `idiag_expires`, milliseconds.
    pub expires: u32,
    /// `idiag_rqueue`.
    pub rqueue: u32,
    /// `idiag_wqueue`.
    pub wqueue: u32,
    /// `idiag_uid`.
    pub uid: u32,
    /// `idiag_inode`.
    pub inode: u32,
}

/// Runs the dumps `q` asks for (one per protocol and family, in parallel) and returns the
/// sockets, filtered again on the user side (the kernel ignores the port filter for
/// bound-inactive sockets).
///
/// # Errors
/// [`InspectError::Netlink`] when the netlink socket cannot be used.
pub fn query(q: &Query) -> Result<Vec<SocketEntry>, InspectError> {
    let parts = for_each_job(q, |proto, out: &mut Vec<SocketEntry>, m: &DiagMsg| {
        if let Some(port) = q.local_port
            && m.sport != port
        {
            return;
        }
        let e = to_entry(proto, m);
        if proto == Proto::Tcp && !q.tcp_states.contains(&e.state) {
            return;
        }
        out.push(e);
    })?;
    // Append into the largest part: a large Vec grows in place (mremap), so the peak stays
    // near one copy of the table instead of two.
    let mut parts = parts;
    parts.sort_by_key(|p| std::cmp::Reverse(p.len()));
    let mut iter = parts.into_iter();
    let mut out = iter.next().unwrap_or_default();
    for mut p in iter {
        out.append(&mut p);
    }
    Ok(out)
}

/// Runs the dumps `q` asks for, one thread per protocol × family, and folds each dump's
/// messages into a per-dump accumulator with `f` as they arrive (nothing is buffered).
///
/// # Errors
/// The first dump that failed.
pub fn for_each_job<A, F>(q: &Query, f: F) -> Result<Vec<A>, InspectError>
where
    A: Default + Send,
    F: Fn(Proto, &mut A, &DiagMsg) + Sync,
{
    // TCP of both families comes from one compat request (one walk of the kernel's hash
    // tables); UDP needs one request per family.
    let mut jobs: Vec<(Proto, Option<Family>)> = Vec::new();
    let tcp_mask = tcp_state_mask(&q.tcp_states);
    if q.tcp && tcp_mask != 0 && (q.v4 || q.v6) {
        jobs.push((Proto::Tcp, None));
    }
    for (fon, fam) in [(q.v4, Family::Inet), (q.v6, Family::Inet6)] {
        if q.udp && fon {
            jobs.push((Proto::Udp, Some(fam)));
        }
    }
    let family_ok = |m: &DiagMsg| {
        if m.family == AF_INET6 { q.v6 } else { q.v4 }
    };
    let f = &f;
    super::trace::note(&format!("sock_diag: {} dump(s) start", jobs.len()));
    if jobs.len() == 1 || q.local_port.is_some() {
        // One dump (all TCP: `timewait`), or a port the kernel filters (`who-owns P`: a few
        // replies each): in this thread, one after the other. A thread to start and join
        // costs a scheduling round trip on a loaded machine, and parallel walks of the same
        // hash tables gain little.
        let mut out = Vec::with_capacity(jobs.len());
        for &(proto, fam) in &jobs {
            let mask = match proto {
                Proto::Tcp => tcp_mask,
                Proto::Udp => u32::MAX,
            };
            let mut acc = A::default();
            dump_with(proto, fam, mask, q.local_port, |m| {
                if family_ok(m) {
                    f(proto, &mut acc, m)
                }
            })?;
            out.push(acc);
        }
        super::trace::note("sock_diag: dumps done (in this thread)");
        return Ok(out);
    }
    let out = std::thread::scope(|scope| {
        let handles: Vec<_> = jobs
            .iter()
            .map(|&(proto, fam)| {
                let mask = match proto {
                    Proto::Tcp => tcp_mask,
                    Proto::Udp => u32::MAX,
                };
                scope.spawn(move || {
                    let mut acc = A::default();
                    dump_with(proto, fam, mask, q.local_port, |m| {
                        if family_ok(m) {
                            f(proto, &mut acc, m)
                        }
                    })?;
                    Ok(acc)
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| {
                h.join().unwrap_or_else(|_| {
                    Err(InspectError::Decode("sock_diag worker panicked".into()))
                })
            })
            .collect()
    });
    super::trace::note("sock_diag: dumps done");
    out
}

/// The `idiag_states` bit mask for a set of TCP states.
pub fn tcp_state_mask(states: &[SockState]) -> u32 {
    let mut mask = 0u32;
    for st in states {
        let bit = match st {
            SockState::Established => 1,
            SockState::SynSent => 2,
            SockState::SynRecv => 3,
            SockState::FinWait1 => 4,
            SockState::FinWait2 => 5,
            SockState::TimeWait => 6,
            SockState::Close => 7,
            SockState::CloseWait => 8,
            SockState::LastAck => 9,
            SockState::Listen => 10,
            SockState::Closing => 11,
            SockState::NewSynRecv => 12,
            SockState::Bound => TCP_BOUND_INACTIVE,
            SockState::Unconn => continue,
        };
        mask |= 1 << bit;
    }
    mask
}

/// The TCP states to ask the kernel for: `states` without bit 13 when the socket counters
/// prove that no bound-only socket exists ([`super::sockstat`]), which spares the kernel a
/// walk of every bound socket.
fn tcp_walk_states(states: u32) -> u32 {
    let bound = 1 << TCP_BOUND_INACTIVE;
    if states & bound == 0 || super::sockstat::bound_only_possible() {
        return states;
    }
    super::trace::note("sock_diag: no unhashed TCP socket (sockstat), bound-only walk skipped");
    states & !bound
}

/// One sock_diag dump: `proto` × `family`, TCP states `states`, optional kernel-side local
/// port filter.
///
/// # Errors
/// [`InspectError::Netlink`] on socket errors, [`InspectError::Decode`] on a reply that does
/// not parse, and the kernel's own error from an `NLMSG_ERROR` reply.
pub fn dump(
    proto: Proto,
    family: Option<Family>,
    states: u32,
    sport: Option<u16>,
) -> Result<Vec<DiagMsg>, InspectError> {
    let mut out = Vec::new();
    dump_with(proto, family, states, sport, |m| out.push(m.clone()))?;
    Ok(out)
}

/// Like [`dump`], but hands each message to `f` as it is decoded.
///
/// # Errors
/// As [`dump`].
pub fn dump_with(
    proto: Proto,
    family: Option<Family>,
    states: u32,
    sport: Option<u16>,
    mut f: impl FnMut(&DiagMsg),
) -> Result<(), InspectError> {
    dump_dyn(proto, family, states, sport, &mut f)
}

fn dump_dyn(
    proto: Proto,
    family: Option<Family>,
    states: u32,
    sport: Option<u16>,
    f: &mut dyn FnMut(&DiagMsg),
) -> Result<(), InspectError> {
    let states = match proto {
        Proto::Tcp => match tcp_walk_states(states) {
            0 => return Ok(()),
            s => s,
        },
        Proto::Udp => states,
    };
    let req = match (proto, family) {
        (Proto::Tcp, None) => compat_tcp_request(states, sport),
        (_, Some(fam)) => by_family_request(proto, fam, states, sport),
        (Proto::Udp, None) => {
            dump_dyn(proto, Some(Family::Inet), states, sport, f)?;
            return dump_dyn(proto, Some(Family::Inet6), states, sport, f);
        }
    };
    send_and_read(&req, f)
}

/// At most this many ports go into one bytecode filter ([`port_bytecode`]): 12 bytes and
/// up to one comparison per port and socket in the kernel. More are asked without a filter
/// and sorted out here.
pub const BYTECODE_PORTS: usize = 128;

/// One TCP dump (IPv4 and IPv6, [`compat_tcp_request`]) of the sockets in `states` whose
/// local port is one of `ports`, filtered in the kernel by an `INET_DIAG_REQ_BYTECODE`
/// program as `ss 'sport = :A or sport = :B'` sends it. With more than [`BYTECODE_PORTS`]
/// ports the kernel sends every socket in `states` and `f` sees only those on `ports`.
///
/// # Errors
/// As [`dump`].
pub fn dump_tcp_ports(
    states: u32,
    ports: &[u16],
    mut f: impl FnMut(&DiagMsg),
) -> Result<(), InspectError> {
    let mut ports = ports.to_vec();
    ports.sort_unstable();
    ports.dedup();
    let states = tcp_walk_states(states);
    if ports.is_empty() || states == 0 {
        return Ok(());
    }
    if ports.len() > BYTECODE_PORTS {
        let req = compat_tcp_request(states, None);
        return send_and_read(&req, &mut |m: &DiagMsg| {
            if ports.binary_search(&m.sport).is_ok() {
                f(m)
            }
        });
    }
    let req = with_bytecode(compat_tcp_request(states, None), &port_bytecode(&ports));
    send_and_read(&req, &mut f)
}

/// `INET_DIAG_BC_JMP`, `INET_DIAG_BC_S_EQ` (include/uapi/linux/inet_diag.h).
const BC_JMP: u8 = 1;
const BC_S_EQ: u8 = 11;
/// `INET_DIAG_REQ_BYTECODE`, the request attribute that carries the filter.
const INET_DIAG_REQ_BYTECODE: u16 = 1;

/// An inet_diag bytecode program that accepts a socket whose local port is one of `ports`
/// (at least one), laid out as iproute2's ss lays out `sport = :A or sport = :B` (ss uses
/// the heavier `S_COND` host condition per port; `S_EQ` compares the port alone): per port
/// an `S_EQ` op `{code, yes: 8, no: 12}` followed by the port in the `no` field of a second
/// op, and between two ports a `JMP` `{code, yes: 4, no: to the end}`. A match falls
/// through to the `JMP`, which skips to the end (accept: the program ends exactly at its
/// length); a miss jumps over the `JMP` to the next port, and past the end (reject) after
/// the last one. The kernel audits the program before the dump (net/ipv4/inet_diag.c,
/// `inet_diag_bc_audit`): every `yes` chain must end exactly at the end and every `no`
/// target must lie on it, which this layout satisfies.
///
/// ```
/// let bc = netkit::inspect::diag::port_bytecode(&[6000]);
/// assert_eq!(bc, [11, 8, 12, 0, 0, 0, 0x70, 0x17]); // 6000 = 0x1770, host order
/// ```
pub fn port_bytecode(ports: &[u16]) -> Vec<u8> {
    let total = ports.len() * 12 - 4;
    let mut bc = Vec::with_capacity(total);
    let op = |bc: &mut Vec<u8>, code: u8, yes: u8, no: u16| {
        bc.push(code);
        bc.push(yes);
        bc.extend_from_slice(&no.to_ne_bytes());
    };
    for (i, &port) in ports.iter().enumerate() {
        op(&mut bc, BC_S_EQ, 8, 12);
        op(&mut bc, 0, 0, port);
        if i + 1 < ports.len() {
            let left = total - bc.len();
            op(&mut bc, BC_JMP, 4, left as u16);
        }
    }
    bc
}

/// Appends an `INET_DIAG_REQ_BYTECODE` attribute holding `bc` to a request and fixes its
/// `nlmsg_len`.
fn with_bytecode(mut req: Vec<u8>, bc: &[u8]) -> Vec<u8> {
    // The request structs are multiples of 4 bytes, so the attribute starts right here.
    debug_assert!(req.len().is_multiple_of(4));
    req.extend_from_slice(&((4 + bc.len()) as u16).to_ne_bytes());
    req.extend_from_slice(&INET_DIAG_REQ_BYTECODE.to_ne_bytes());
    req.extend_from_slice(bc);
    while !req.len().is_multiple_of(4) {
        req.push(0);
    }
    let len = req.len() as u32;
    req[..4].copy_from_slice(&len.to_ne_bytes());
    req
}

/// Sends one dump request on a fresh sock_diag socket and hands each reply message to `f`.
fn send_and_read(req: &[u8], f: &mut dyn FnMut(&DiagMsg)) -> Result<(), InspectError> {
    let nl = |what: &'static str| move |source| InspectError::Netlink { what, source };
    // Opened without CAP_NET_ADMIN: no INET_DIAG_MARK in each reply (super::caps).
    let mut socket = super::caps::without_net_admin(|| Socket::new(NETLINK_SOCK_DIAG))
        .map_err(nl("opening the socket"))?;
    send_on(&mut socket, req, f)
}

/// The request on `socket`, its replies to `f`.
fn send_on(
    socket: &mut Socket,
    req: &[u8],
    f: &mut dyn FnMut(&DiagMsg),
) -> Result<(), InspectError> {
    let nl = |what: &'static str| move |source| InspectError::Netlink { what, source };
    socket.bind_auto().map_err(nl("binding the socket"))?;
    socket
        .connect(&SocketAddr::new(0, 0))
        .map_err(nl("connecting to the kernel"))?;
    socket.send(req, 0).map_err(nl("sending the request"))?;

    // The kernel fills at most ~32 KiB per recvmsg for a dump (net/netlink/af_netlink.c,
    // netlink_dump caps max_recvmsg_len), so a 64 KiB buffer never truncates.
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        let n = socket
            .recv(&mut &mut buf[..], 0)
            .map_err(nl("reading the reply"))?;
        if n == 0 {
            break;
        }
        if parse_dump_with(&buf[..n], f)? {
            break;
        }
    }
    Ok(())
}

/// `TCPDIAG_GETSOCK` (18), the pre-sock_diag request type the kernel still serves.
const TCPDIAG_GETSOCK: u16 = 18;

/// A `TCPDIAG_GETSOCK` request (`struct inet_diag_req`). The kernel answers it with
/// `sdiag_family = AF_UNSPEC` (net/ipv4/inet_diag.c, `inet_diag_dump_compat`), so one walk
/// of the hash tables returns IPv4 and IPv6 sockets alike — half the kernel time of two
/// `SOCK_DIAG_BY_FAMILY` dumps, and no lock contention between two parallel walks. State
/// bit 13 and the `idiag_sport` filter work as in the new request (measured on 6.18).
pub fn compat_tcp_request(states: u32, sport: Option<u16>) -> Vec<u8> {
    const PAYLOAD: usize = 4 + 48 + 8;
    let mut b = Vec::with_capacity(NLMSG_HDRLEN + PAYLOAD);
    b.extend_from_slice(&((NLMSG_HDRLEN + PAYLOAD) as u32).to_ne_bytes());
    b.extend_from_slice(&TCPDIAG_GETSOCK.to_ne_bytes());
    b.extend_from_slice(&(NLM_F_REQUEST | NLM_F_DUMP).to_ne_bytes());
    b.extend_from_slice(&1u32.to_ne_bytes()); // sequence
    b.extend_from_slice(&0u32.to_ne_bytes()); // port id: the kernel fills it in
    b.extend_from_slice(&[0, 0, 0, 0]); // family, src_len, dst_len, ext
    b.extend_from_slice(&sport.unwrap_or(0).to_be_bytes()); // idiag_sport, network order
    b.extend_from_slice(&[0u8; 2 + 16 + 16 + 4 + 8]); // dport, src, dst, if, cookie
    b.extend_from_slice(&states.to_ne_bytes());
    b.extend_from_slice(&0u32.to_ne_bytes()); // idiag_dbs
    b
}

/// A `SOCK_DIAG_BY_FAMILY` request for one protocol and family, built with
/// netlink-packet-sock-diag.
fn by_family_request(proto: Proto, family: Family, states: u32, sport: Option<u16>) -> Vec<u8> {
    let mut socket_id = match family {
        Family::Inet => SocketId::new_v4(),
        Family::Inet6 => SocketId::new_v6(),
    };
    socket_id.source_port = sport.unwrap_or(0);
    let mut header = NetlinkHeader::default();
    header.flags = NLM_F_REQUEST | NLM_F_DUMP;
    header.sequence_number = 1;
    let mut packet = NetlinkMessage::new(
        header,
        SockDiagMessage::InetRequest(InetRequest {
            family: match family {
                Family::Inet => AF_INET,
                Family::Inet6 => AF_INET6,
            },
            protocol: match proto {
                Proto::Tcp => IPPROTO_TCP,
                Proto::Udp => IPPROTO_UDP,
            },
            extensions: ExtensionFlags::empty(),
            states: StateFlags::from_bits_retain(states),
            socket_id,
        })
        .into(),
    );
    packet.finalize();
    let mut req = vec![0u8; packet.buffer_len()];
    packet.serialize(&mut req[..]);
    req
}

/// Decodes one datagram of a sock_diag dump into `out`. Returns `true` when the datagram
/// carried `NLMSG_DONE`.
///
/// # Errors
/// [`InspectError::Decode`] for truncated messages; [`InspectError::Netlink`] with the
/// kernel's errno for an `NLMSG_ERROR` reply.
pub fn parse_dump(buf: &[u8], out: &mut Vec<DiagMsg>) -> Result<bool, InspectError> {
    parse_dump_with(buf, &mut |m: &DiagMsg| out.push(m.clone()))
}

/// Like [`parse_dump`], handing each message to `f`.
///
/// # Errors
/// As [`parse_dump`].
pub fn parse_dump_with(mut buf: &[u8], f: &mut dyn FnMut(&DiagMsg)) -> Result<bool, InspectError> {
    while buf.len() >= NLMSG_HDRLEN {
        let len = u32::from_ne_bytes([buf[0], buf[1], buf[2], buf[3]]) as usize;
        let kind = u16::from_ne_bytes([buf[4], buf[5]]);
        if len < NLMSG_HDRLEN || len > buf.len() {
            return Err(InspectError::Decode(format!(
                "netlink message length {len} with {} bytes left",
                buf.len()
            )));
        }
        let payload = &buf[NLMSG_HDRLEN..len];
        match kind {
            NLMSG_DONE => return Ok(true),
            NLMSG_ERROR => {
                let errno = payload
                    .get(..4)
                    .map(|b| i32::from_ne_bytes([b[0], b[1], b[2], b[3]]))
                    .unwrap_or(0);
                if errno != 0 {
                    return Err(InspectError::Netlink {
                        what: "the kernel refused the request",
                        source: std::io::Error::from_raw_os_error(-errno),
                    });
                }
                return Ok(true);
            }
            _ => f(&parse_inet_diag_msg(payload)?),
        }
        // Messages are aligned to 4 bytes (NLMSG_ALIGN).
        let step = (len + 3) & !3;
        buf = buf.get(step..).unwrap_or(&[]);
    }
    Ok(false)
}

/// Decodes a `struct inet_diag_msg` (include/uapi/linux/inet_diag.h). Ports and addresses are
/// in network byte order; the rest is host order.
///
/// # Errors
/// [`InspectError::Decode`] when the payload is shorter than the struct.
pub fn parse_inet_diag_msg(p: &[u8]) -> Result<DiagMsg, InspectError> {
    if p.len() < INET_DIAG_MSG_LEN {
        return Err(InspectError::Decode(format!(
            "inet_diag_msg of {} bytes, expected {INET_DIAG_MSG_LEN}",
            p.len()
        )));
    }
    let u32_at = |i: usize| u32::from_ne_bytes([p[i], p[i + 1], p[i + 2], p[i + 3]]);
    let family = p[0];
    let addr = |off: usize| -> IpAddr {
        if family == AF_INET6 {
            let mut b = [0u8; 16];
            b.copy_from_slice(&p[off..off + 16]);
            IpAddr::V6(Ipv6Addr::from(b))
        } else {
            IpAddr::V4(Ipv4Addr::new(p[off], p[off + 1], p[off + 2], p[off + 3]))
        }
    };
    Ok(DiagMsg {
        family,
        state: p[1],
        timer: p[2],
        sport: u16::from_be_bytes([p[4], p[5]]),
        dport: u16::from_be_bytes([p[6], p[7]]),
        src: addr(8),
        dst: addr(24),
        expires: u32_at(52),
        rqueue: u32_at(56),
        wqueue: u32_at(60),
        uid: u32_at(64),
        inode: u32_at(68),
    })
}

/// The state of a decoded message, with netkit's names for UDP and bound-only TCP.
pub fn to_state(proto: Proto, m: &DiagMsg) -> SockState {
    match (proto, m.state) {
        // UDP reuses TCP_CLOSE for "bound, not connected" and TCP_ESTABLISHED for connected.
        (Proto::Udp, 1) => SockState::Established,
        (Proto::Udp, _) => SockState::Unconn,
        // Only bound-inactive sockets are dumped in TCP_CLOSE: a closed socket is in no hash.
        (Proto::Tcp, 7) => SockState::Bound,
        (Proto::Tcp, n) => SockState::from_tcp_number(n).unwrap_or(SockState::Close),
    }
}

/// Interprets a decoded message as a [`SocketEntry`] (no owners, no user name yet).
pub fn to_entry(proto: Proto, m: &DiagMsg) -> SocketEntry {
    let family = if m.family == AF_INET6 {
        Family::Inet6
    } else {
        Family::Inet
    };
    let state = to_state(proto, m);
    let peerless = matches!(
        state,
        SockState::Listen | SockState::Bound | SockState::Unconn
    );
    // TIME_WAIT and orphan FIN_WAIT2 are timewait sockets: the kernel fills uid and inode
    // with 0 (inet_twsk_diag_fill), which means "nobody", not root.
    let ownerless = state == SockState::TimeWait || (state == SockState::FinWait2 && m.inode == 0);
    SocketEntry {
        proto,
        family,
        local_addr: m.src,
        local_port: m.sport,
        remote_addr: (!peerless).then_some(m.dst),
        remote_port: (!peerless).then_some(m.dport),
        state,
        uid: (!ownerless).then_some(m.uid),
        user: None,
        inode: u64::from(m.inode),
        owners: Vec::new(),
        listener: None,
        expires_ms: (m.timer == TIMER_TIME_WAIT).then_some(u64::from(m.expires)),
        recv_q: m.rqueue,
        send_q: m.wqueue,
        netns: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The length of each TIME_WAIT reply to a dump of `port` on `socket`.
    fn tw_message_lengths(socket: &mut Socket, port: u16) -> Vec<usize> {
        let req = compat_tcp_request(tcp_state_mask(&[SockState::TimeWait]), Some(port));
        socket.bind_auto().unwrap();
        socket.connect(&SocketAddr::new(0, 0)).unwrap();
        socket.send(&req, 0).unwrap();
        let mut buf = vec![0u8; 64 * 1024];
        let mut lens = Vec::new();
        'read: loop {
            let n = socket.recv(&mut &mut buf[..], 0).unwrap();
            let mut b = &buf[..n];
            while b.len() >= NLMSG_HDRLEN {
                let len = u32::from_ne_bytes([b[0], b[1], b[2], b[3]]) as usize;
                let kind = u16::from_ne_bytes([b[4], b[5]]);
                if kind == NLMSG_DONE || kind == NLMSG_ERROR || len < NLMSG_HDRLEN {
                    break 'read;
                }
                lens.push(len);
                b = b.get(len.next_multiple_of(4)..).unwrap_or(&[]);
            }
        }
        lens
    }

    /// Pins the fact behind [`super::super::caps`]: with CAP_NET_ADMIN in the dump socket's
    /// credentials, every IPv4 TIME_WAIT reply carries INET_DIAG_MARK (96 bytes); netkit's
    /// socket, opened without it, gets the bare 88-byte message, and the same socket count.
    #[test]
    fn a_dump_socket_opened_without_net_admin_gets_no_mark_attribute() {
        use std::io::{Read, Write};
        if !super::super::caps::has_net_admin() {
            eprintln!("skipped: needs CAP_NET_ADMIN (run as root) to see the difference");
            return;
        }
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = l.local_addr().unwrap().port();
        let mut c = std::net::TcpStream::connect(l.local_addr().unwrap()).unwrap();
        let (s, _) = l.accept().unwrap();
        drop(s); // the server closes first: its side goes to TIME_WAIT on `port`
        let _ = c.read(&mut [0u8; 1]);
        let _ = c.write_all(b"");
        drop(c);
        // The last ACK may still be on its way: wait (bounded) until the kernel lists it.
        let mut with_cap = Vec::new();
        for _ in 0..200 {
            with_cap = tw_message_lengths(&mut Socket::new(NETLINK_SOCK_DIAG).unwrap(), port);
            if !with_cap.is_empty() {
                break;
            }
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
        let mut ours =
            super::super::caps::without_net_admin(|| Socket::new(NETLINK_SOCK_DIAG)).unwrap();
        let without = tw_message_lengths(&mut ours, port);
        assert!(!with_cap.is_empty(), "no TIME_WAIT on port {port}");
        assert_eq!(with_cap.len(), without.len());
        assert!(with_cap.iter().all(|&n| n == 96), "{with_cap:?}");
        assert!(without.iter().all(|&n| n == 88), "{without:?}");
    }

    #[test]
    fn state_mask_sets_bit_13_for_bound() {
        assert_eq!(tcp_state_mask(&[SockState::Bound]), 1 << 13);
        assert_eq!(
            tcp_state_mask(&[SockState::Listen, SockState::TimeWait]),
            (1 << 10) | (1 << 6)
        );
    }

    #[test]
    fn port_bytecode_chains_ports_as_ss_does() {
        // Ports 1, 2, 3: a JMP's `no` counts from the JMP itself to the end (32 bytes).
        let bc = port_bytecode(&[1, 2, 3]);
        assert_eq!(bc.len(), 32);
        let ops: Vec<(u8, u8, u16)> = bc
            .chunks(4)
            .map(|o| (o[0], o[1], u16::from_ne_bytes([o[2], o[3]])))
            .collect();
        assert_eq!(
            ops,
            [
                (BC_S_EQ, 8, 12),
                (0, 0, 1),
                (BC_JMP, 4, 24),
                (BC_S_EQ, 8, 12),
                (0, 0, 2),
                (BC_JMP, 4, 12),
                (BC_S_EQ, 8, 12),
                (0, 0, 3),
            ]
        );
        let req = with_bytecode(compat_tcp_request(1 << 10, None), &bc);
        assert_eq!(req.len(), NLMSG_HDRLEN + 60 + 4 + 32);
        assert_eq!(
            u32::from_ne_bytes([req[0], req[1], req[2], req[3]]) as usize,
            req.len()
        );
    }

    #[test]
    fn short_payload_is_a_decode_error_not_a_panic() {
        assert!(parse_inet_diag_msg(&[0u8; 10]).is_err());
        let mut out = Vec::new();
        // A header claiming more bytes than present.
        let mut buf = vec![0u8; 20];
        buf[0] = 200;
        assert!(parse_dump(&buf, &mut out).is_err());
    }
}
