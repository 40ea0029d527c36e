//! The services database (`/etc/services`, services(5)): service names to port numbers, so
//! `netkit who-owns ssh` works as `fuser ssh/tcp` and `ss sport = :ssh` do.
//!
//! Parsing is pure ([`Services::parse`]); [`Services::system`] reads the file once per process.
//! This is the only file of `cli/` that reads a file: a port argument is resolved while it is
//! parsed, as getservbyname(3) would, so a misspelt name is a usage error (exit 2).

use std::sync::OnceLock;

use crate::inspect::Proto;

/// Where the system's services database lives (Debian ships it in `netbase`).
pub const PATH: &str = "/etc/services";

/// One line of services(5): `name port/proto [aliases...]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Service {
    /// The official name and its aliases.
    pub names: Vec<String>,
    /// The port.
    pub port: u16,
    /// `tcp` or `udp` (lines for other protocols, e.g. `sctp`, are skipped).
    pub proto: Proto,
}

/// A parsed services database.
#[derive(Debug, Clone, Default)]
pub struct Services {
    entries: Vec<Service>,
}

impl Services {
    /// Parses services(5) text; malformed lines are skipped, as the C library skips them.
    ///
    /// ```
    /// use netkit::cli::services::Services;
    /// let db = Services::parse("ssh 22/tcp\nhttp 80/tcp www # web\n");
    /// assert_eq!(db.lookup("www", None).len(), 1);
    /// ```
    pub fn parse(text: &str) -> Services {
        let mut entries = Vec::new();
        for line in text.lines() {
            let line = line.split('#').next().unwrap_or("");
            let mut words = line.split_whitespace();
            let (Some(name), Some(pp)) = (words.next(), words.next()) else {
                continue;
            };
            let Some((port, proto)) = pp.split_once('/') else {
                continue;
            };
            let proto = match proto.to_ascii_lowercase().as_str() {
                "tcp" => Proto::Tcp,
                "udp" => Proto::Udp,
                _ => continue,
            };
            let Ok(port) = port.parse::<u16>() else {
                continue;
            };
            if port == 0 {
                continue;
            }
            let mut names = vec![name.to_string()];
            names.extend(words.map(str::to_string));
            entries.push(Service { names, port, proto });
        }
        Services { entries }
    }

    /// The system database, read once; `None` when `/etc/services` cannot be read.
    pub fn system() -> Option<&'static Services> {
        static DB: OnceLock<Option<Services>> = OnceLock::new();
        DB.get_or_init(|| {
            std::fs::read_to_string(PATH)
                .ok()
                .map(|t| Services::parse(&t))
        })
        .as_ref()
    }

    /// The entries named `name` (official name or alias, case-insensitive), for `proto` only
    /// when given.
    pub fn lookup(&self, name: &str, proto: Option<Proto>) -> Vec<&Service> {
        self.entries
            .iter()
            .filter(|e| proto.is_none_or(|p| p == e.proto))
            .filter(|e| e.names.iter().any(|n| n.eq_ignore_ascii_case(name)))
            .collect()
    }

    /// True when the database has no entry at all.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SAMPLE: &str = "\
# Network services, Internet style
tcpmux\t\t1/tcp\t\t\t\t# TCP port service multiplexer
ssh\t\t22/tcp\t\t\t\t# SSH Remote Login Protocol
domain\t\t53/tcp\t\t\t\t# Domain Name Server
domain\t\t53/udp
http\t\t80/tcp\t\twww\t\t# WorldWideWeb HTTP
sctp-only\t\t9/sctp
broken line
zero\t\t0/tcp
";

    #[test]
    fn names_and_aliases_resolve_per_protocol() {
        let db = Services::parse(SAMPLE);
        assert_eq!(db.lookup("ssh", None)[0].port, 22);
        assert_eq!(db.lookup("WWW", Some(Proto::Tcp))[0].port, 80);
        assert_eq!(db.lookup("domain", None).len(), 2);
        assert_eq!(db.lookup("domain", Some(Proto::Udp))[0].proto, Proto::Udp);
        assert!(db.lookup("ssh", Some(Proto::Udp)).is_empty());
    }

    #[test]
    fn other_protocols_malformed_lines_and_port_zero_are_skipped() {
        let db = Services::parse(SAMPLE);
        assert!(db.lookup("sctp-only", None).is_empty());
        assert!(db.lookup("broken", None).is_empty());
        assert!(db.lookup("zero", None).is_empty());
        assert!(Services::parse("# only comments\n").is_empty());
    }
}
