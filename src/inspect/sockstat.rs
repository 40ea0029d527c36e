//! The kernel's TCP socket counters (`/proc/net/sockstat`, `sockstat6`), read for one
//! question: can a bound-only TCP socket (`TCP_BOUND_INACTIVE`) exist right now?
//!
//! Asking sock_diag for state bit 13 makes the kernel walk the whole bind hash (`bhash2`,
//! every bound socket: listeners and both ends of every connection) besides the listening
//! and established hashes (net/ipv4/tcp_diag.c, `tcp_diag_dump`: the bound walk neither
//! honours `idiag_sport` nor skips the established hash). Measured on 6.18 with 25,000 TCP
//! sockets and 40,000 TIME_WAIT: a `who-owns P` dump takes 24 ms with the bit and 11.5 ms
//! without it; a dump asking only for bit 13 still takes 23.5 ms.
//!
//! The counters say when the walk cannot find anything (measured, docs/KERNEL-FACTS.md):
//! - `TCP: ... alloc N` counts every TCP socket from creation (`tcp_init_sock`, or the
//!   clone of an accepted child) until it is destroyed, IPv4 and IPv6 alike, **in every
//!   network namespace** (`tcp_sockets_allocated` is one global counter);
//! - `TCP: inuse N` and `TCP6: inuse N` count the sockets of *this* namespace that are in
//!   the listening or established hash (`__inet_hash`, `inet_ehash_nolisten`, until
//!   unhash). A socket is counted in `alloc` before it is hashed and after it is unhashed.
//!
//! A bound-only socket is allocated but in neither hash, so `alloc > inuse + inuse6`
//! whenever one exists, in any namespace. `alloc <= inuse + inuse6` therefore proves that
//! no TCP socket is unhashed anywhere, and the bound walk is skipped. Any other unhashed
//! socket (created but not yet bound, a failed connect, a socket in another namespace)
//! keeps the walk: the gate only ever errs towards walking. On a host with containers,
//! `alloc` includes their sockets, so the walk runs there as before.
//!
//! The two files are not read at one instant: a socket hashed and another unhashed between
//! the reads could hide one unhashed socket. `sockstat6` is read before and after
//! `sockstat` and the smaller `inuse` is used, so that needs two such events within the
//! ~20 µs of the reads, on both sides, while a bound-only socket exists.

use std::fs;

/// `TCP: inuse` and `TCP: alloc` of a `/proc/net/sockstat` text.
///
/// ```
/// use netkit::inspect::sockstat::parse_tcp;
/// let text = "sockets: used 7\nTCP: inuse 3 orphan 0 tw 5 alloc 4 mem 1\nUDP: inuse 0 mem 0\n";
/// assert_eq!(parse_tcp(text), Some((3, 4)));
/// ```
pub fn parse_tcp(sockstat: &str) -> Option<(u64, u64)> {
    let line = sockstat.lines().find(|l| l.starts_with("TCP: "))?;
    Some((field(line, "inuse")?, field(line, "alloc")?))
}

/// `TCP6: inuse` of a `/proc/net/sockstat6` text.
///
/// ```
/// use netkit::inspect::sockstat::parse_tcp6_inuse;
/// assert_eq!(parse_tcp6_inuse("TCP6: inuse 2\nUDP6: inuse 1\n"), Some(2));
/// ```
pub fn parse_tcp6_inuse(sockstat6: &str) -> Option<u64> {
    let line = sockstat6.lines().find(|l| l.starts_with("TCP6: "))?;
    field(line, "inuse")
}

/// The number after `name` in a `KEY: name1 v1 name2 v2 ...` line.
fn field(line: &str, name: &str) -> Option<u64> {
    let mut words = line.split_ascii_whitespace().skip(1);
    while let Some(w) = words.next() {
        let v = words.next()?;
        if w == name {
            return v.parse().ok();
        }
    }
    None
}

/// `TCP6: inuse` of this thread's namespace; 0 when the kernel has no IPv6 (no file).
fn read_inuse6() -> Option<u64> {
    match fs::read_to_string("/proc/thread-self/net/sockstat6") {
        Ok(text) => parse_tcp6_inuse(&text),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Some(0),
        Err(_) => None,
    }
}

/// How many TCP sockets are allocated but in neither hash, as far as the counters of this
/// thread's network namespace show (see the module documentation); `None` when the
/// counters cannot be read. Zero (or less, from counting skew) means none.
pub fn unhashed_tcp() -> Option<i64> {
    let before6 = read_inuse6()?;
    let (inuse, alloc) = parse_tcp(&fs::read_to_string("/proc/thread-self/net/sockstat").ok()?)?;
    let after6 = read_inuse6()?;
    let hashed = inuse.saturating_add(before6.min(after6));
    Some(i64::try_from(alloc).ok()? - i64::try_from(hashed).ok()?)
}

/// False only when the counters prove that no bound-only TCP socket exists.
pub fn bound_only_possible() -> bool {
    unhashed_tcp().is_none_or(|n| n > 0)
}

#[cfg(test)]
mod tests {
    use super::*;

    macro_rules! fixture {
        ($file:literal, $situation:literal) => {
            include_str!(concat!(
                env!("CARGO_MANIFEST_DIR"),
                "/fixtures/proc_net/",
                $file,
                "/",
                $situation,
                ".txt"
            ))
        };
    }

    #[test]
    fn captured_counters_parse() {
        // Captured in the bound_only situation's private namespace: its `inuse` counts
        // that namespace's one listener, `alloc` counts the whole machine's sockets.
        let (inuse, alloc) = parse_tcp(fixture!("sockstat", "bound_only")).unwrap();
        assert_eq!(inuse, 1);
        assert!(
            alloc >= 3,
            "alloc {alloc}: the situation's own three sockets at least"
        );
        assert_eq!(
            parse_tcp6_inuse(fixture!("sockstat6", "bound_only")),
            Some(0)
        );
        let (inuse, _) = parse_tcp(fixture!("sockstat", "listen_6000")).unwrap();
        assert_eq!(inuse, 3);
        assert_eq!(
            parse_tcp6_inuse(fixture!("sockstat6", "listen_6000")),
            Some(2)
        );
    }

    #[test]
    fn malformed_counters_are_none() {
        assert_eq!(parse_tcp(""), None);
        assert_eq!(parse_tcp("TCP: inuse x alloc 3"), None);
        assert_eq!(parse_tcp("TCP: inuse 3 orphan"), None);
        assert_eq!(parse_tcp("UDP: inuse 3 alloc 4"), None);
        assert_eq!(parse_tcp6_inuse("TCP6: inuse"), None);
    }

    /// The kernel fact the gate rests on: a bound-only socket is counted in `alloc` and not
    /// in `inuse`, so while one is open the counters never prove "none".
    #[test]
    fn a_bound_only_socket_keeps_the_bound_walk() {
        let b = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).unwrap();
        let any: std::net::SocketAddr = "127.0.0.1:0".parse().unwrap();
        b.bind(&any.into()).unwrap();
        assert!(unhashed_tcp().unwrap() >= 1);
        assert!(bound_only_possible());
    }
}
