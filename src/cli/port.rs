//! Port arguments typed the way `ss`, `lsof` and `fuser` users type them: `6000`, `:6000`,
//! `6000/tcp`, `6000/udp`, `127.0.0.1:6000`, `[::1]:6000`, `localhost:6000`, `*:6000`,
//! service names (`ssh`, `http/tcp`), ranges (`6000-6010`); lists are several values
//! (`6000,6001` or several arguments), which clap splits before [`parse_port_spec`] sees them.
//!
//! A `/tcp` or `/udp` suffix narrows the protocol (as `fuser 6000/tcp`); a host narrows the
//! local address (a wildcard socket on `0.0.0.0` or `[::]` still matches, since it holds every
//! address of its family). What a command does with several ports is the command's business;
//! [`one_port`] is the parser for the commands that take exactly one.

use std::net::{IpAddr, ToSocketAddrs};
use std::ops::RangeInclusive;

use super::services::{self, Services};
use crate::inspect::{Proto, addrs_overlap};

/// What every refused port argument says after the value.
pub const EXPECTED: &str =
    "expected 1-65535, :PORT, PORT/tcp, HOST:PORT, a range A-B or a service name";

/// Why a port argument was refused; each message is one line that quotes the argument.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PortError {
    /// Not a port, range, service name or HOST:PORT (port 0 included).
    #[error("invalid port '{0}': {EXPECTED}")]
    Invalid(String),
    /// A range whose first port is above its last.
    #[error("invalid port range '{0}': the first port is above the last")]
    Reversed(String),
    /// A name, but no services database to look it up in.
    #[error(
        "invalid port '{0}': no services database ({path}) to look up names; give the number or install netbase",
        path = services::PATH
    )]
    NoServices(String),
    /// The host part does not resolve.
    #[error("invalid port '{text}': cannot resolve host '{host}'")]
    Host {
        /// The whole argument.
        text: String,
        /// The host part.
        host: String,
    },
    /// A list or range where the command takes one port.
    #[error("invalid port '{0}': this command takes one port, not a list or range")]
    NotOne(String),
    /// A host or protocol suffix where the command takes them from its own flags.
    #[error(
        "invalid port '{0}': this command takes a port number or service name (the address and protocol have their own flags)"
    )]
    Narrowed(String),
}

/// One port argument: one or more port ranges, optionally narrowed to a protocol and to local
/// addresses.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PortSpec {
    /// The argument as typed.
    pub text: String,
    /// The ports (a single port is `p..=p`).
    pub ports: Vec<RangeInclusive<u16>>,
    /// `Some` when the argument said `/tcp` or `/udp`.
    pub proto: Option<Proto>,
    /// The local addresses the argument named (`localhost` gives 127.0.0.1 and ::1); empty
    /// means any address.
    pub addrs: Vec<IpAddr>,
}

impl PortSpec {
    /// True when a socket of `proto` on local `addr:port` is what this argument names.
    /// `dual` says whether an IPv6 wildcard is dual-stack (covers IPv4 too).
    pub fn matches(&self, proto: Proto, addr: IpAddr, dual: bool, port: u16) -> bool {
        self.ports.iter().any(|r| r.contains(&port))
            && self.proto.is_none_or(|p| p == proto)
            && (self.addrs.is_empty()
                || self
                    .addrs
                    .iter()
                    .any(|&a| addrs_overlap(addr, dual, a, false)))
    }

    /// True when the argument names one port (no range), whatever its protocol or host.
    pub fn is_one(&self) -> bool {
        self.ports.len() == 1 && self.ports[0].start() == self.ports[0].end()
    }
}

/// The clap value parser of a port argument, using `/etc/services` and the system resolver.
///
/// # Errors
/// [`PortError`], one line naming the argument.
pub fn parse_port_spec(s: &str) -> Result<PortSpec, PortError> {
    parse_with(s, Services::system(), &resolve_host)
}

/// The clap value parser of commands that take exactly one port (explain, wait-free's
/// trial, sockopt --port, timewait --port): `6000`, `:6000`, `*:6000` or a service name.
///
/// # Errors
/// [`PortError`]; [`PortError::NotOne`] for a range or a service with several ports,
/// [`PortError::Narrowed`] for a host or `/proto` (those commands have `--addr`/`--udp`).
pub fn one_port(s: &str) -> Result<u16, PortError> {
    let spec = parse_port_spec(s)?;
    if !spec.is_one() {
        Err(PortError::NotOne(s.to_string()))
    } else if spec.proto.is_some() || !spec.addrs.is_empty() {
        Err(PortError::Narrowed(s.to_string()))
    } else {
        Ok(*spec.ports[0].start())
    }
}

/// [`one_port`] that also takes `0` (or `:0`): explain's "let the kernel pick", which is what
/// `bind()` to port 0 asks for and fails with EADDRINUSE when the ephemeral range is exhausted
/// (BIND-RULES.md rules 13 and 18). Every other command refuses 0.
///
/// # Errors
/// As [`one_port`].
pub fn bind_port(s: &str) -> Result<u16, PortError> {
    if s.trim_start_matches(':') == "0" {
        Ok(0)
    } else {
        one_port(s)
    }
}

/// `getaddrinfo(host)`: what `localhost` and `myhost` stand for.
fn resolve_host(host: &str) -> Option<Vec<IpAddr>> {
    let addrs: Vec<IpAddr> = (host, 0).to_socket_addrs().ok()?.map(|a| a.ip()).collect();
    (!addrs.is_empty()).then_some(addrs)
}

/// [`parse_port_spec`] with the services database and host resolver given (for tests).
///
/// ```
/// use netkit::cli::port::parse_with;
/// let s = parse_with("[::1]:6000/udp", None, &|_| None).unwrap();
/// assert_eq!(s.ports, vec![6000..=6000]);
/// assert_eq!(s.addrs, vec!["::1".parse::<std::net::IpAddr>().unwrap()]);
/// ```
///
/// # Errors
/// [`PortError`].
pub fn parse_with(
    s: &str,
    services: Option<&Services>,
    resolve: &dyn Fn(&str) -> Option<Vec<IpAddr>>,
) -> Result<PortSpec, PortError> {
    let invalid = || PortError::Invalid(s.to_string());
    let text = s.trim();
    if text.is_empty() {
        return Err(invalid());
    }
    // PORT/proto: the suffix is the last '/' (no host or service name contains one).
    let (rest, proto) = match text.rsplit_once('/') {
        Some((r, p)) => match p.to_ascii_lowercase().as_str() {
            "tcp" => (r, Some(Proto::Tcp)),
            "udp" => (r, Some(Proto::Udp)),
            _ => return Err(invalid()),
        },
        None => (text, None),
    };
    // [v6]:PORT, HOST:PORT, :PORT, *:PORT, or PORT.
    let (host, port) = if let Some(after) = rest.strip_prefix('[') {
        let (h, p) = after.split_once("]:").ok_or_else(invalid)?;
        (Some(h), p)
    } else {
        match rest.rsplit_once(':') {
            // A bare IPv6 address without brackets is ambiguous (`::1:6000`): refuse it.
            Some((h, _)) if h.contains(':') => return Err(invalid()),
            Some((h, p)) => (Some(h), p),
            None => (None, rest),
        }
    };
    let addrs = match host {
        None | Some("") | Some("*") => Vec::new(),
        Some(h) => match h.parse::<IpAddr>() {
            Ok(a) => vec![a],
            Err(_) if rest.starts_with('[') => return Err(invalid()),
            Err(_) if !valid_hostname(h) => return Err(invalid()),
            Err(_) => resolve(h).ok_or_else(|| PortError::Host {
                text: s.to_string(),
                host: h.to_string(),
            })?,
        },
    };
    let ports = parse_ports(port, proto, services, s)?;
    Ok(PortSpec {
        text: s.to_string(),
        ports,
        proto,
        addrs,
    })
}

/// A hostname by RFC 1123's letters: letters, digits, '-', '.'.
fn valid_hostname(h: &str) -> bool {
    !h.is_empty()
        && h.len() <= 253
        && h.chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '.')
}

/// `6000`, `6000-6010` or a service name.
fn parse_ports(
    p: &str,
    proto: Option<Proto>,
    services: Option<&Services>,
    whole: &str,
) -> Result<Vec<RangeInclusive<u16>>, PortError> {
    let invalid = || PortError::Invalid(whole.to_string());
    let number = |n: &str| -> Result<u16, PortError> {
        match n.parse::<u16>() {
            Ok(0) | Err(_) => Err(invalid()),
            Ok(v) => Ok(v),
        }
    };
    if p.is_empty() {
        return Err(invalid());
    }
    if p.bytes().all(|b| b.is_ascii_digit()) {
        let v = number(p)?;
        return Ok(vec![v..=v]);
    }
    if let Some((a, b)) = p.split_once('-')
        && !a.is_empty()
        && a.bytes().all(|c| c.is_ascii_digit())
        && b.bytes().all(|c| c.is_ascii_digit())
    {
        let (a, b) = (number(a)?, number(b)?);
        if a > b {
            return Err(PortError::Reversed(whole.to_string()));
        }
        return Ok(vec![a..=b]);
    }
    // A service name: letters, digits, '-', '_', '.', '+' (services(5) names), not all digits.
    if !p
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || "-_.+".contains(c))
        || !p.chars().any(|c| c.is_ascii_alphabetic())
    {
        return Err(invalid());
    }
    let Some(db) = services.filter(|d| !d.is_empty()) else {
        return Err(PortError::NoServices(whole.to_string()));
    };
    let mut ports: Vec<u16> = db.lookup(p, proto).iter().map(|e| e.port).collect();
    ports.sort_unstable();
    ports.dedup();
    if ports.is_empty() {
        return Err(invalid());
    }
    Ok(ports.into_iter().map(|v| v..=v).collect())
}

/// Several port arguments, as a command receives them.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PortSet(pub Vec<PortSpec>);

impl PortSet {
    /// True when no argument was given (no filter).
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The distinct port numbers named, ascending.
    pub fn ports(&self) -> Vec<u16> {
        let mut v: Vec<u16> = self
            .0
            .iter()
            .flat_map(|s| s.ports.iter().cloned().flatten())
            .collect();
        v.sort_unstable();
        v.dedup();
        v
    }

    /// The port when exactly one port number is named (with any protocols or hosts).
    pub fn single(&self) -> Option<u16> {
        let mut it = self.0.iter().flat_map(|s| s.ports.iter());
        let first = it.next()?;
        let p = *first.start();
        (first.end() == &p && it.all(|r| r.start() == &p && r.end() == &p)).then_some(p)
    }

    /// Whether TCP and UDP sockets can match at all: (tcp, udp).
    pub fn protos(&self) -> (bool, bool) {
        if self.0.is_empty() {
            return (true, true);
        }
        let tcp = self.0.iter().any(|s| s.proto != Some(Proto::Udp));
        let udp = self.0.iter().any(|s| s.proto != Some(Proto::Tcp));
        (tcp, udp)
    }

    /// True when no filter is set, or any argument matches (see [`PortSpec::matches`]).
    pub fn matches(&self, proto: Proto, addr: IpAddr, dual: bool, port: u16) -> bool {
        self.0.is_empty() || self.0.iter().any(|s| s.matches(proto, addr, dual, port))
    }

    /// True when some argument names `port` (ignoring protocol and host).
    pub fn has_port(&self, port: u16) -> bool {
        self.0.is_empty()
            || self
                .0
                .iter()
                .any(|s| s.ports.iter().any(|r| r.contains(&port)))
    }

    /// The arguments as typed, for messages: `6000, ssh/tcp`.
    pub fn describe(&self) -> String {
        self.0
            .iter()
            .map(|s| s.text.as_str())
            .collect::<Vec<_>>()
            .join(", ")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn db() -> Services {
        Services::parse(
            "ssh 22/tcp\ndomain 53/tcp\ndomain 53/udp\nhttp 80/tcp www\nx11 6000/tcp x11-0\n",
        )
    }

    fn localhost(h: &str) -> Option<Vec<IpAddr>> {
        (h == "localhost").then(|| vec!["127.0.0.1".parse().unwrap(), "::1".parse().unwrap()])
    }

    fn p(s: &str) -> Result<PortSpec, PortError> {
        parse_with(s, Some(&db()), &localhost)
    }

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn plain_and_colon_ports_name_one_port_any_protocol_any_address() {
        for s in ["6000", ":6000", "*:6000", " 6000 "] {
            let spec = p(s).unwrap();
            assert_eq!(spec.ports, vec![6000..=6000], "{s}");
            assert_eq!(spec.proto, None);
            assert!(spec.addrs.is_empty());
            assert!(spec.is_one());
        }
        assert_eq!(p("65535").unwrap().ports, vec![65535..=65535]);
        assert_eq!(p("1").unwrap().ports, vec![1..=1]);
    }

    #[test]
    fn protocol_suffix_narrows_the_protocol() {
        assert_eq!(p("6000/tcp").unwrap().proto, Some(Proto::Tcp));
        assert_eq!(p("6000/UDP").unwrap().proto, Some(Proto::Udp));
        let s = p("127.0.0.1:6000/udp").unwrap();
        assert_eq!(
            (s.proto, s.addrs.clone()),
            (Some(Proto::Udp), vec![ip("127.0.0.1")])
        );
        assert!(!s.matches(Proto::Tcp, ip("127.0.0.1"), false, 6000));
        assert!(s.matches(Proto::Udp, ip("127.0.0.1"), false, 6000));
    }

    #[test]
    fn hosts_narrow_the_local_address_and_wildcards_still_match() {
        let s = p("127.0.0.1:6000").unwrap();
        assert!(s.matches(Proto::Tcp, ip("127.0.0.1"), false, 6000));
        assert!(s.matches(Proto::Tcp, ip("0.0.0.0"), false, 6000));
        assert!(s.matches(Proto::Tcp, ip("::"), true, 6000));
        assert!(!s.matches(Proto::Tcp, ip("::"), false, 6000));
        assert!(!s.matches(Proto::Tcp, ip("127.0.0.2"), false, 6000));
        assert!(!s.matches(Proto::Tcp, ip("127.0.0.1"), false, 6001));
        let v6 = p("[::1]:6000").unwrap();
        assert_eq!(v6.addrs, vec![ip("::1")]);
        assert!(v6.matches(Proto::Udp, ip("::1"), false, 6000));
        assert!(!v6.matches(Proto::Udp, ip("127.0.0.1"), false, 6000));
        let lh = p("localhost:6000").unwrap();
        assert_eq!(lh.addrs, vec![ip("127.0.0.1"), ip("::1")]);
        assert_eq!(
            p("nosuchhost:6000"),
            Err(PortError::Host {
                text: "nosuchhost:6000".into(),
                host: "nosuchhost".into()
            })
        );
    }

    #[test]
    fn service_names_and_aliases_come_from_the_database() {
        assert_eq!(p("ssh").unwrap().ports, vec![22..=22]);
        assert_eq!(p("ssh/tcp").unwrap().proto, Some(Proto::Tcp));
        assert_eq!(p("www").unwrap().ports, vec![80..=80]);
        assert_eq!(p("x11-0").unwrap().ports, vec![6000..=6000]);
        assert_eq!(p("localhost:http").unwrap().ports, vec![80..=80]);
        // ssh is listed for tcp only: ssh/udp names nothing.
        assert_eq!(p("ssh/udp"), Err(PortError::Invalid("ssh/udp".into())));
        assert_eq!(
            parse_with("ssh", None, &localhost),
            Err(PortError::NoServices("ssh".into()))
        );
    }

    #[test]
    fn ranges_are_inclusive_and_ordered() {
        let r = p("6000-6010").unwrap();
        assert_eq!(r.ports, vec![6000..=6010]);
        assert!(!r.is_one());
        assert_eq!(p("6000-6000").unwrap().ports, vec![6000..=6000]);
        assert_eq!(p("6000-6010/udp").unwrap().proto, Some(Proto::Udp));
        assert_eq!(p("6010-6000"), Err(PortError::Reversed("6010-6000".into())));
        assert_eq!(p("0-10"), Err(PortError::Invalid("0-10".into())));
    }

    #[test]
    fn zero_and_garbage_are_refused_with_the_one_line_message() {
        for s in [
            "0",
            ":0",
            "abc",
            "",
            "65536",
            "-1",
            "6000/sctp",
            "6000/",
            "::1:6000",
            "[::1]6000",
            "[::1",
            "[nohost]:6000",
            "60 00",
            "6000-",
            "-6000",
            "a b:6000",
            "6000:",
            "12ab",
            "http:",
            "[::1]:",
            "1-2-3",
        ] {
            let e = p(s).unwrap_err();
            let msg = e.to_string();
            assert!(!msg.contains('\n'), "{s}: {msg}");
            assert!(msg.contains(&format!("'{s}'")), "{s}: {msg}");
        }
        assert_eq!(
            p("abc").unwrap_err().to_string(),
            "invalid port 'abc': expected 1-65535, :PORT, PORT/tcp, HOST:PORT, a range A-B or a service name"
        );
    }

    #[test]
    fn a_set_knows_its_ports_protocols_and_single_port() {
        let set = PortSet(vec![p("6001").unwrap(), p("6000/udp").unwrap()]);
        assert_eq!(set.ports(), vec![6000, 6001]);
        assert_eq!(set.single(), None);
        assert_eq!(set.protos(), (true, true));
        assert!(set.matches(Proto::Udp, ip("::"), false, 6000));
        assert!(!set.matches(Proto::Tcp, ip("::"), false, 6000));
        let one = PortSet(vec![
            p("6000/tcp").unwrap(),
            p("127.0.0.1:6000/tcp").unwrap(),
        ]);
        assert_eq!(one.single(), Some(6000));
        assert_eq!(one.protos(), (true, false));
        assert_eq!(PortSet(vec![p("6000-6001").unwrap()]).single(), None);
        assert!(PortSet::default().matches(Proto::Tcp, ip("::"), false, 1));
        assert_eq!(set.describe(), "6001, 6000/udp");
    }
}
