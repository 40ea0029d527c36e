//! Where the lab proxy may forward: parsing the target a client names into the address it
//! really means, the blocklist, and the allow list that keeps the proxy from being an open
//! relay. Pure functions over addresses, except [`LocalRoutes`], which asks the kernel's
//! routing table whether an address is this host's; the proxy resolves hostnames and calls
//! [`Policy::check`] on every resolved address, then connects to exactly that address.
//!
//! Spellings are read the way the C library reads them (`inet_aton(3)`, which Python's
//! `socket.connect` and `ping` use), so a check cannot disagree with what a connect would do:
//! `127.1`, `0x7f.0.0.1`, `2130706433`, `0177.0.0.1` and `127.000.000.001` are all
//! 127.0.0.1, and `010.0.0.1` is 8.0.0.1 (a leading 0 means octal). `::ffff:127.0.0.1` is
//! checked as 127.0.0.1, and the unspecified addresses are checked as the loopback address a
//! connect to them reaches. IPv6 zone ids are refused as bad requests.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::str::FromStr;

use netlink_packet_route::route::RouteType;

/// What a client named as `server_ip`, after parsing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Host {
    /// A literal address, already canonical (see [`canonical`]).
    Ip(IpAddr),
    /// A hostname to resolve (lower case, without a trailing dot).
    Name(String),
}

/// Parses `server_ip` into a canonical address or a hostname; `Err` is the reason for a
/// bad-request reply.
///
/// ```
/// use netkit::lab::policy::{parse_host, Host};
/// assert_eq!(parse_host("0x7f.1").unwrap(), Host::Ip("127.0.0.1".parse().unwrap()));
/// assert_eq!(parse_host("[::ffff:127.0.0.1]").unwrap(), Host::Ip("127.0.0.1".parse().unwrap()));
/// assert_eq!(parse_host("LocalHost.").unwrap(), Host::Name("localhost".into()));
/// assert!(parse_host("fe80::1%eth0").is_err());
/// ```
///
/// # Errors
/// Empty strings, whitespace, zone ids, numbers that are not an IPv4 address, malformed IPv6
/// literals and hostnames with characters DNS does not allow.
pub fn parse_host(s: &str) -> Result<Host, String> {
    if s.is_empty() {
        return Err("server_ip is empty".into());
    }
    if s.len() > 253 + 1 {
        return Err("server_ip is longer than a hostname can be (253)".into());
    }
    if s.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err("server_ip contains whitespace or control characters".into());
    }
    let unbracketed = match (s.strip_prefix('['), s.strip_suffix(']')) {
        (Some(inner), Some(_)) => Some(&inner[..inner.len() - 1]),
        (None, None) => None,
        _ => return Err(format!("unbalanced brackets in server_ip {s:?}")),
    };
    if let Some(v6) = unbracketed.or_else(|| s.contains(':').then_some(s)) {
        if v6.contains('%') {
            return Err("IPv6 zone ids (%...) are not accepted".into());
        }
        return Ipv6Addr::from_str(v6)
            .map(|a| Host::Ip(canonical(IpAddr::V6(a))))
            .map_err(|_| format!("{s:?} is not an IPv6 address (give the port in server_port)"));
    }
    // One trailing dot names the DNS root; `127.0.0.1.` and `localhost.` mean what they
    // say without it (WHATWG URL host parsing does the same for IPv4).
    let name = s.strip_suffix('.').unwrap_or(s);
    if name.is_empty() || name.ends_with('.') {
        return Err(format!("{s:?} is not a hostname"));
    }
    let last = name.rsplit('.').next().unwrap_or(name);
    if looks_numeric(last) {
        return parse_ipv4_aton(name)
            .map(|a| Host::Ip(canonical(IpAddr::V4(a))))
            .ok_or_else(|| format!("{s:?} is not an IPv4 address"));
    }
    for label in name.split('.') {
        if label.is_empty() || label.len() > 63 {
            return Err(format!("{s:?} has an empty or over-long label"));
        }
        if !label
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
            || label.starts_with('-')
            || label.ends_with('-')
        {
            return Err(format!("{s:?} is not a valid hostname"));
        }
    }
    Ok(Host::Name(name.to_ascii_lowercase()))
}

/// True when a label is a number the IPv4 parser must take (decimal, octal or 0x hex), as
/// the WHATWG URL standard decides "ends in a number".
fn looks_numeric(label: &str) -> bool {
    let hex = label
        .strip_prefix("0x")
        .or_else(|| label.strip_prefix("0X"));
    match hex {
        Some(h) => h.bytes().all(|b| b.is_ascii_hexdigit()),
        None => !label.is_empty() && label.bytes().all(|b| b.is_ascii_digit()),
    }
}

/// Parses IPv4 the way glibc `inet_aton(3)` does: 1 to 4 parts, each decimal, octal (leading
/// `0`) or hex (`0x`); the last part fills the remaining bytes (`127.1` = 127.0.0.1,
/// `2130706433` = 127.0.0.1).
///
/// ```
/// use netkit::lab::policy::parse_ipv4_aton;
/// assert_eq!(parse_ipv4_aton("0177.0.0.1"), Some([127, 0, 0, 1].into()));
/// assert_eq!(parse_ipv4_aton("010.0.0.1"), Some([8, 0, 0, 1].into()));
/// assert_eq!(parse_ipv4_aton("127.0.0.256"), None);
/// ```
pub fn parse_ipv4_aton(s: &str) -> Option<Ipv4Addr> {
    let parts: Vec<&str> = s.split('.').collect();
    if parts.is_empty() || parts.len() > 4 {
        return None;
    }
    let mut nums = Vec::with_capacity(4);
    for p in &parts {
        let (digits, radix) = if let Some(h) = p.strip_prefix("0x").or(p.strip_prefix("0X")) {
            (h, 16)
        } else if p.len() > 1 && p.starts_with('0') {
            (&p[1..], 8)
        } else {
            (*p, 10)
        };
        if digits.is_empty() && radix != 8 {
            return None;
        }
        let v = if digits.is_empty() {
            0
        } else {
            u64::from_str_radix(digits, radix).ok()?
        };
        nums.push(v);
    }
    let (last, head) = nums.split_last()?;
    if head.iter().any(|&v| v > 255) {
        return None;
    }
    let last_bits = 8 * (4 - head.len() as u32);
    if *last >= 1u64 << last_bits {
        return None;
    }
    let mut v: u64 = 0;
    for (i, &h) in head.iter().enumerate() {
        v |= h << (24 - 8 * i as u32);
    }
    Some(Ipv4Addr::from((v | last) as u32))
}

/// The address a connect to `ip` really reaches, which is what the policy must check:
/// IPv4-mapped IPv6 becomes IPv4, 0.0.0.0 becomes 127.0.0.1 and `::` becomes `::1`.
///
/// Kernel: a connect to INADDR_ANY is routed to INADDR_LOOPBACK
/// (net/ipv4/route.c `ip_route_output_key_hash_rcu`: "if (!fl4->daddr) ... daddr =
/// htonl(INADDR_LOOPBACK)"), and tcp_v6_connect (net/ipv6/tcp_ipv6.c) replaces `::` with
/// `in6addr_loopback`. So `0.0.0.0:7777` reaches a listener on 127.0.0.1:7777.
pub fn canonical(ip: IpAddr) -> IpAddr {
    let ip = ip.to_canonical();
    match ip {
        IpAddr::V4(v4) if v4.is_unspecified() => IpAddr::V4(Ipv4Addr::LOCALHOST),
        IpAddr::V6(v6) if v6.is_unspecified() => IpAddr::V6(Ipv6Addr::LOCALHOST),
        other => other,
    }
}

/// A network: address and prefix length.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cidr {
    /// The network address (canonical, host bits kept as given).
    pub addr: IpAddr,
    /// Prefix length (0-32 or 0-128).
    pub prefix: u8,
}

impl Cidr {
    /// True when `ip` (canonical) is inside this network. IPv4 networks never contain IPv6
    /// addresses and the other way round (mapped addresses are canonicalised before).
    pub fn contains(&self, ip: IpAddr) -> bool {
        match (self.addr, ip) {
            (IpAddr::V4(n), IpAddr::V4(a)) => {
                let mask = u32::MAX
                    .checked_shl(32 - u32::from(self.prefix))
                    .unwrap_or(0);
                u32::from(n) & mask == u32::from(a) & mask
            }
            (IpAddr::V6(n), IpAddr::V6(a)) => {
                let mask = u128::MAX
                    .checked_shl(128 - u32::from(self.prefix))
                    .unwrap_or(0);
                u128::from(n) & mask == u128::from(a) & mask
            }
            _ => false,
        }
    }

    /// True when the network is a single address (/32 or /128).
    pub fn is_host(&self) -> bool {
        self.prefix == if self.addr.is_ipv4() { 32 } else { 128 }
    }
}

impl fmt::Display for Cidr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.addr, self.prefix)
    }
}

impl FromStr for Cidr {
    type Err = String;

    /// `10.0.0.0/8`, `::1/128`, or a bare address (a /32 or /128). The address part is read
    /// like a target (`127.1/8` is 127.0.0.0/8); mapped IPv6 networks are refused.
    fn from_str(s: &str) -> Result<Cidr, String> {
        let (a, p) = match s.split_once('/') {
            Some((a, p)) => (a, Some(p)),
            None => (s, None),
        };
        let addr = literal_ip(a)?;
        let max = if addr.is_ipv4() { 32 } else { 128 };
        let prefix = match p {
            None => max,
            Some(p) => p
                .parse::<u8>()
                .ok()
                .filter(|&n| n <= max)
                .ok_or_else(|| format!("bad prefix length in {s:?} (0-{max})"))?,
        };
        if p.is_some() && a.contains("::ffff:") && addr.is_ipv4() {
            return Err(format!("{s:?}: write IPv4-mapped networks as IPv4"));
        }
        // Only the address, not its "reaches" meaning: a network 0.0.0.0/0 stays that.
        let addr = match literal_host(a)? {
            IpAddr::V4(v) => IpAddr::V4(v),
            IpAddr::V6(v) => v.to_canonical(),
        };
        Ok(Cidr { addr, prefix })
    }
}

/// A literal address as a target (canonical, unspecified → loopback).
fn literal_ip(s: &str) -> Result<IpAddr, String> {
    match parse_host(s)? {
        Host::Ip(ip) => Ok(ip),
        Host::Name(n) => Err(format!("{n:?} is not an IP address")),
    }
}

/// A literal address as written (mapped → IPv4, but the unspecified address kept).
fn literal_host(s: &str) -> Result<IpAddr, String> {
    let s = s.trim_start_matches('[').trim_end_matches(']');
    if s.contains(':') {
        return Ipv6Addr::from_str(s)
            .map(IpAddr::V6)
            .map_err(|_| format!("{s:?} is not an address"));
    }
    parse_ipv4_aton(s.strip_suffix('.').unwrap_or(s))
        .map(IpAddr::V4)
        .ok_or_else(|| format!("{s:?} is not an address"))
}

/// One `--block` entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BlockRule {
    /// `PORT`: that port on every address.
    Port(u16),
    /// `IP` or `CIDR`: every port of those addresses.
    Net(Cidr),
    /// `IP:PORT` (or `[IPv6]:PORT`).
    AddrPort(IpAddr, u16),
}

impl fmt::Display for BlockRule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            BlockRule::Port(p) => write!(f, "port {p}"),
            BlockRule::Net(c) if c.is_host() => write!(f, "{}", c.addr),
            BlockRule::Net(c) => write!(f, "{c}"),
            BlockRule::AddrPort(a, p) => write!(f, "{}", SocketAddr::new(*a, *p)),
        }
    }
}

impl FromStr for BlockRule {
    type Err = String;

    /// `7777`, `127.0.0.1:7777`, `[::1]:7777`, `127.0.0.1`, `::1`, `10.0.0.0/8`.
    fn from_str(s: &str) -> Result<BlockRule, String> {
        let port = |p: &str| {
            p.parse::<u16>()
                .ok()
                .filter(|&n| n != 0)
                .ok_or_else(|| format!("bad port in block entry {s:?} (1-65535)"))
        };
        if s.bytes().all(|b| b.is_ascii_digit()) && !s.is_empty() {
            return port(s).map(BlockRule::Port);
        }
        if s.contains('/') {
            return s.parse().map(BlockRule::Net);
        }
        if let Some(rest) = s.strip_prefix('[').filter(|_| !s.ends_with(']')) {
            let (a, p) = rest
                .split_once("]:")
                .ok_or_else(|| format!("block entry {s:?}: expected [IPv6]:PORT"))?;
            return Ok(BlockRule::AddrPort(literal_ip(a)?, port(p)?));
        }
        if s.matches(':').count() == 1 {
            let (a, p) = s.split_once(':').unwrap_or((s, ""));
            return Ok(BlockRule::AddrPort(literal_ip(a)?, port(p)?));
        }
        let addr = literal_ip(s)?;
        Ok(BlockRule::Net(Cidr {
            addr,
            prefix: if addr.is_ipv4() { 32 } else { 128 },
        }))
    }
}

/// Why a target was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refusal {
    /// A `--block` entry matched.
    Blocked(BlockRule),
    /// Outside loopback and every `--allow` network.
    NotAllowed,
}

impl fmt::Display for Refusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Refusal::Blocked(r) => write!(f, "blocked by --block {r}"),
            Refusal::NotAllowed => write!(f, "outside loopback and every --allow network"),
        }
    }
}

/// The blocklist and the allow list.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Policy {
    /// Refused targets.
    pub block: Vec<BlockRule>,
    /// Networks forwarded to besides loopback.
    pub allow: Vec<Cidr>,
}

/// The lab's blocked target (seed 003).
pub const DEFAULT_BLOCK: &str = "127.0.0.1:7777";

impl Policy {
    /// Builds the policy from flags: `--block` entries (plus [`DEFAULT_BLOCK`] unless
    /// `no_default_block`) and `--allow` networks.
    ///
    /// # Errors
    /// The first entry that does not parse.
    pub fn from_flags(
        block: &[String],
        no_default_block: bool,
        allow: &[String],
    ) -> Result<Policy, String> {
        let mut rules = Vec::new();
        if !no_default_block {
            rules.push(DEFAULT_BLOCK.parse::<BlockRule>()?);
        }
        for b in block {
            rules.push(b.parse::<BlockRule>()?);
        }
        let allow = allow
            .iter()
            .map(|a| a.parse::<Cidr>().map_err(|e| format!("--allow: {e}")))
            .collect::<Result<_, _>>()?;
        Ok(Policy {
            block: rules,
            allow,
        })
    }

    /// Checks one resolved target (canonicalised here again, so callers cannot forget).
    /// `is_local` says whether an address belongs to this host (see [`LocalRoutes`]).
    ///
    /// A blocklist entry that names an address of this host stands for the host: if a
    /// listener is bound to the wildcard address (0.0.0.0 or `::`), every local address
    /// reaches it (net/ipv4/inet_hashtables.c `compute_score` matches a wildcard
    /// `rcv_saddr` for any local daddr), so `127.0.0.2:7777` or `[::1]:7777` must not slip
    /// past `--block 127.0.0.1:7777`.
    pub fn check(&self, to: SocketAddr, is_local: &dyn Fn(IpAddr) -> bool) -> Result<(), Refusal> {
        let ip = canonical(to.ip());
        let port = to.port();
        let same_host = |rule_ip: IpAddr| rule_ip == ip || (is_local(rule_ip) && is_local(ip));
        for r in &self.block {
            let hit = match *r {
                BlockRule::Port(p) => p == port,
                BlockRule::AddrPort(a, p) => p == port && same_host(a),
                BlockRule::Net(c) if c.is_host() => same_host(c.addr),
                BlockRule::Net(c) => c.contains(ip),
            };
            if hit {
                return Err(Refusal::Blocked(*r));
            }
        }
        if ip.is_loopback() || self.allow.iter().any(|c| c.contains(ip)) {
            Ok(())
        } else {
            Err(Refusal::NotAllowed)
        }
    }
}

/// "Is this an address of this host?", decided the way the kernel decides it when a
/// connect is routed: the route type of the destination is `RTN_LOCAL`. `ip addr add
/// 10.98.0.1/24 dev lo` makes the whole /24 local (`local 10.98.0.0/24` in the local table),
/// and `ip route add local fd98::/64 dev eth0` does the same with no interface address at
/// all, so a list of interface addresses (`getifaddrs(3)`) is not enough: 10.98.0.2:7777
/// reaches a 0.0.0.0:7777 listener. Each answer is one `RTM_GETROUTE` request (rtnetlink,
/// built with netlink-packet-route), asked for the exact address about to be connected and
/// remembered for the one check. When netlink cannot be used, the interface addresses are
/// the fallback.
#[derive(Debug, Default)]
pub struct LocalRoutes {
    socket: Option<netlink_sys::Socket>,
    seen: Vec<(IpAddr, bool)>,
    fallback: Option<HostAddrs>,
}

impl LocalRoutes {
    /// A new, empty cache (the netlink socket is opened at the first question).
    pub fn new() -> LocalRoutes {
        LocalRoutes::default()
    }

    /// True when the kernel routes `ip` to this host (loopback is always local).
    pub fn is_local(&mut self, ip: IpAddr) -> bool {
        let ip = canonical(ip);
        if ip.is_loopback() {
            return true;
        }
        if let Some(&(_, v)) = self.seen.iter().find(|(a, _)| *a == ip) {
            return v;
        }
        let v = match self.route_type(ip) {
            Ok(kind) => kind == RouteType::Local,
            Err(_) => self
                .fallback
                .get_or_insert_with(HostAddrs::read)
                .is_local(ip),
        };
        self.seen.push((ip, v));
        v
    }

    fn route_type(&mut self, ip: IpAddr) -> std::io::Result<RouteType> {
        if self.socket.is_none() {
            let mut s = netlink_sys::Socket::new(netlink_sys::protocols::NETLINK_ROUTE)?;
            s.bind_auto()?;
            s.connect(&netlink_sys::SocketAddr::new(0, 0))?;
            self.socket = Some(s);
        }
        let Some(socket) = self.socket.as_mut() else {
            return Err(std::io::Error::other("no netlink socket"));
        };
        route_type(socket, ip)
    }
}

/// One `RTM_GETROUTE` for `ip` (a route lookup, as `ip route get IP`), answered with the
/// type of the route the kernel would use.
fn route_type(socket: &mut netlink_sys::Socket, ip: IpAddr) -> std::io::Result<RouteType> {
    use netlink_packet_core::{NLM_F_REQUEST, NetlinkHeader, NetlinkMessage, NetlinkPayload};
    use netlink_packet_route::route::{RouteAddress, RouteAttribute, RouteMessage};
    use netlink_packet_route::{AddressFamily, RouteNetlinkMessage};

    let mut msg = RouteMessage::default();
    msg.header.address_family = match ip {
        IpAddr::V4(_) => AddressFamily::Inet,
        IpAddr::V6(_) => AddressFamily::Inet6,
    };
    msg.header.destination_prefix_length = if ip.is_ipv4() { 32 } else { 128 };
    msg.attributes
        .push(RouteAttribute::Destination(RouteAddress::from(ip)));
    let mut header = NetlinkHeader::default();
    header.flags = NLM_F_REQUEST;
    header.sequence_number = 1;
    let mut packet = NetlinkMessage::new(header, RouteNetlinkMessage::GetRoute(msg).into());
    packet.finalize();
    let mut req = vec![0u8; packet.buffer_len()];
    packet.serialize(&mut req[..]);
    socket.send(&req, 0)?;
    let mut buf = vec![0u8; 8192];
    let n = socket.recv(&mut &mut buf[..], 0)?;
    let reply = NetlinkMessage::<RouteNetlinkMessage>::deserialize(&buf[..n])
        .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidData, e.to_string()))?;
    match reply.payload {
        NetlinkPayload::InnerMessage(RouteNetlinkMessage::NewRoute(m)) => Ok(m.header.kind),
        // ENETUNREACH and friends: no route at all, so certainly not local.
        NetlinkPayload::Error(e) if e.code.is_some() => Ok(RouteType::Unreachable),
        other => Err(std::io::Error::other(format!(
            "unexpected rtnetlink reply {other:?}"
        ))),
    }
}

/// The addresses of this host: loopback, plus every address on an interface
/// (`getifaddrs(3)`); the fallback of [`LocalRoutes`] when netlink cannot be used.
#[derive(Debug, Default, Clone)]
pub struct HostAddrs {
    addrs: Vec<IpAddr>,
}

impl HostAddrs {
    /// Reads the interface addresses now. On failure only loopback counts as local.
    pub fn read() -> HostAddrs {
        HostAddrs {
            addrs: crate::ifaddrs::interface_addrs().unwrap_or_default(),
        }
    }

    /// True for loopback addresses and addresses assigned to an interface of this host.
    pub fn is_local(&self, ip: IpAddr) -> bool {
        let ip = canonical(ip);
        ip.is_loopback() || self.addrs.contains(&ip)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    fn host(s: &str) -> Host {
        parse_host(s).unwrap()
    }

    #[test]
    fn every_loopback_spelling_means_127_0_0_1() {
        for s in [
            "127.0.0.1",
            "127.1",
            "127.0.1",
            "0x7f.0.0.1",
            "0X7F.1",
            "2130706433",
            "0x7f000001",
            "0177.0.0.1",
            "017700000001",
            "127.000.000.001",
            "127.0.0.1.",
            "::ffff:127.0.0.1",
            "[::ffff:127.0.0.1]",
            "::ffff:7f00:1",
            "0.0.0.0",
            "0",
            "::ffff:0.0.0.0",
        ] {
            assert_eq!(host(s), Host::Ip(ip("127.0.0.1")), "{s}");
        }
        for s in ["::1", "[::1]", "::", "0:0:0:0:0:0:0:1", "[0000::0001]"] {
            assert_eq!(host(s), Host::Ip(ip("::1")), "{s}");
        }
    }

    #[test]
    fn leading_zero_is_octal_as_inet_aton_reads_it() {
        assert_eq!(host("010.0.0.1"), Host::Ip(ip("8.0.0.1")));
        assert_eq!(host("127.0.0.010"), Host::Ip(ip("127.0.0.8")));
        assert!(parse_host("08.0.0.1").is_err(), "8 is not an octal digit");
    }

    #[test]
    fn malformed_numbers_and_zones_are_bad_requests() {
        for s in [
            "",
            " 127.0.0.1",
            "127.0.0.256",
            "1.2.3.4.5",
            "256.1",
            "4294967296",
            "127..1",
            "127.0.0.1..",
            "0x",
            "::1%lo",
            "fe80::1%1",
            "[::1",
            "127.0.0.1:8888",
            "::ffff:127.0.0.1.",
            "exa mple.com",
            "-bad.example",
            "a\u{0}b",
        ] {
            assert!(parse_host(s).is_err(), "{s:?} should be refused");
        }
    }

    #[test]
    fn hostnames_are_lowercased_without_the_root_dot() {
        assert_eq!(host("LOCALHOST."), Host::Name("localhost".into()));
        assert_eq!(host("db-1.lab"), Host::Name("db-1.lab".into()));
    }

    #[test]
    fn block_rules_parse_every_form() {
        assert_eq!("7777".parse(), Ok(BlockRule::Port(7777)));
        assert_eq!(
            "127.1:7777".parse(),
            Ok(BlockRule::AddrPort(ip("127.0.0.1"), 7777))
        );
        assert_eq!(
            "[::1]:7777".parse(),
            Ok(BlockRule::AddrPort(ip("::1"), 7777))
        );
        assert_eq!(
            "10.0.0.0/8".parse(),
            Ok(BlockRule::Net(Cidr {
                addr: ip("10.0.0.0"),
                prefix: 8
            }))
        );
        assert!("::1".parse::<BlockRule>().is_ok());
        assert!("0".parse::<BlockRule>().is_err());
        assert!("127.0.0.1:70000".parse::<BlockRule>().is_err());
        assert!("10.0.0.0/33".parse::<BlockRule>().is_err());
    }

    #[test]
    fn default_policy_blocks_the_lab_port_on_every_local_address() {
        let p = Policy::from_flags(&[], false, &[]).unwrap();
        let local = |a: IpAddr| canonical(a).is_loopback();
        for t in [
            "127.0.0.1:7777",
            "127.0.0.2:7777",
            "[::1]:7777",
            "0.0.0.0:7777",
        ] {
            let to: SocketAddr = t.parse().unwrap();
            assert!(
                matches!(p.check(to, &local), Err(Refusal::Blocked(_))),
                "{t}"
            );
        }
        assert_eq!(p.check("127.0.0.1:8888".parse().unwrap(), &local), Ok(()));
        assert_eq!(
            p.check("10.0.0.1:8888".parse().unwrap(), &local),
            Err(Refusal::NotAllowed)
        );
    }

    #[test]
    fn allow_widens_and_cidr_blocks() {
        let p = Policy::from_flags(
            &["10.1.0.0/16".into()],
            true,
            &["10.0.0.0/8".into(), "2001:db8::/32".into()],
        )
        .unwrap();
        let local = |a: IpAddr| a.is_loopback();
        assert_eq!(p.check("10.2.3.4:80".parse().unwrap(), &local), Ok(()));
        assert!(p.check("10.1.3.4:80".parse().unwrap(), &local).is_err());
        assert_eq!(p.check("[2001:db8::1]:80".parse().unwrap(), &local), Ok(()));
        assert!(
            p.check("[::ffff:8.8.8.8]:53".parse().unwrap(), &local)
                .is_err()
        );
    }

    #[test]
    fn cidr_contains_edges() {
        let c: Cidr = "0.0.0.0/0".parse().unwrap();
        assert!(c.contains(ip("8.8.8.8")));
        assert!(!c.contains(ip("::1")));
        let c: Cidr = "::/0".parse().unwrap();
        assert!(c.contains(ip("2001:db8::1")));
        let c: Cidr = "127.0.0.1".parse().unwrap();
        assert!(c.is_host() && c.contains(ip("127.0.0.1")) && !c.contains(ip("127.0.0.2")));
    }

    #[test]
    fn host_addrs_know_loopback() {
        let h = HostAddrs::read();
        assert!(h.is_local(ip("127.0.0.1")) && h.is_local(ip("::1")));
        assert!(!h.is_local(ip("192.0.2.1")));
    }

    #[test]
    fn the_kernel_says_which_routes_are_local() {
        let mut r = LocalRoutes::new();
        let mut sock = netlink_sys::Socket::new(netlink_sys::protocols::NETLINK_ROUTE).unwrap();
        sock.bind_auto().unwrap();
        sock.connect(&netlink_sys::SocketAddr::new(0, 0)).unwrap();
        // All of 127.0.0.0/8 is one local route (`local 127.0.0.0/8 dev lo`).
        assert_eq!(
            route_type(&mut sock, ip("127.3.4.5")).unwrap(),
            RouteType::Local
        );
        assert_eq!(route_type(&mut sock, ip("::1")).unwrap(), RouteType::Local);
        assert_ne!(
            route_type(&mut sock, ip("192.0.2.1")).unwrap(),
            RouteType::Local
        );
        assert!(r.is_local(ip("127.9.9.9")) && r.is_local(ip("::ffff:127.0.0.1")));
        assert!(!r.is_local(ip("192.0.2.1")) && !r.is_local(ip("2001:db8::1")));
    }
}
