//! Ports that are bindable now, checked by a real trial bind each. By default the search
//! stays outside `net.ipv4.ip_local_port_range`, where an outgoing connection could take the
//! port as its source port at any time (BIND-RULES.md rule 11), and at or above
//! `ip_unprivileged_port_start` (rule 14).

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use super::trial::{self, TrialOpts};
use crate::inspect::Proto;

/// The ranges searched by default: [unpriv_start, ephemeral start) and (ephemeral end, 65535].
pub fn default_ranges(unpriv_start: u32, ephemeral: (u16, u16)) -> Vec<(u16, u16)> {
    let lo = u16::try_from(unpriv_start.max(1)).unwrap_or(u16::MAX);
    let mut out = Vec::new();
    if ephemeral.0 > lo {
        out.push((lo, ephemeral.0 - 1));
    }
    if ephemeral.1 < u16::MAX {
        out.push((ephemeral.1.max(lo - 1) + 1, u16::MAX));
    }
    if out.is_empty() {
        out.push((lo, u16::MAX));
    }
    out
}

/// Parses `A-B` (or a single port).
///
/// ```
/// assert_eq!(netkit::explain::freeport::parse_range("8000-8100"), Some((8000, 8100)));
/// assert_eq!(netkit::explain::freeport::parse_range("9000"), Some((9000, 9000)));
/// assert_eq!(netkit::explain::freeport::parse_range("9-1"), None);
/// ```
pub fn parse_range(s: &str) -> Option<(u16, u16)> {
    let (a, b) = match s.split_once('-') {
        Some((a, b)) => (a.trim().parse().ok()?, b.trim().parse().ok()?),
        None => {
            let p = s.trim().parse().ok()?;
            (p, p)
        }
    };
    (a <= b && a > 0).then_some((a, b))
}

/// True when `port` can be bound now on every address: the dual-stack `[::]` (which covers
/// IPv4 too) when IPv6 works, else `0.0.0.0`; TCP also listens. No options are set, so a
/// port with TIME_WAIT leftovers counts as taken.
pub fn is_free(proto: Proto, port: u16) -> bool {
    let mut v6 = TrialOpts::plain(proto, IpAddr::V6(Ipv6Addr::UNSPECIFIED), port);
    v6.v6only = Some(false);
    let o = trial::run(&v6);
    if o.ok {
        return true;
    }
    if o.errno == Some(libc::EAFNOSUPPORT) || o.stage == Some("socket") {
        return trial::run(&TrialOpts::plain(
            proto,
            IpAddr::V4(Ipv4Addr::UNSPECIFIED),
            port,
        ))
        .ok;
    }
    false
}

/// Up to `count` free ports from `ranges`, starting at a pseudo-random offset (so parallel
/// callers do not all get the same port) and wrapping around once.
pub fn find(proto: Proto, ranges: &[(u16, u16)], count: usize, seed: u64) -> Vec<u16> {
    let all: Vec<u16> = ranges.iter().flat_map(|&(a, b)| a..=b).collect();
    if all.is_empty() || count == 0 {
        return Vec::new();
    }
    let start = (seed % all.len() as u64) as usize;
    let mut out = Vec::new();
    for i in 0..all.len() {
        let p = all[(start + i) % all.len()];
        if is_free(proto, p) {
            out.push(p);
            if out.len() == count {
                break;
            }
        }
    }
    out
}

/// A seed from the clock and the pid.
pub fn seed() -> u64 {
    let t = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64);
    t ^ (u64::from(std::process::id()) << 17)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_ranges_skip_ephemeral_and_privileged() {
        assert_eq!(
            default_ranges(1024, (32768, 60999)),
            vec![(1024, 32767), (61000, 65535)]
        );
        assert_eq!(default_ranges(1024, (1024, 65535)), vec![(1024, 65535)]);
    }
}
