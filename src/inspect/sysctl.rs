//! Kernel settings that decide port behaviour, read from /proc/sys.

use std::path::Path;

/// Reads a sysctl file and trims it; `None` when absent or unreadable.
pub fn read(path: &str) -> Option<String> {
    std::fs::read_to_string(Path::new("/proc/sys").join(path))
        .ok()
        .map(|s| s.trim().to_string())
}

/// `net.ipv4.ip_local_port_range`: the ephemeral range, default 32768–60999.
pub fn ephemeral_range() -> (u16, u16) {
    read("net/ipv4/ip_local_port_range")
        .and_then(|s| parse_range(&s))
        .unwrap_or((32768, 60999))
}

/// `net.ipv4.ip_unprivileged_port_start`, default 1024.
pub fn unprivileged_port_start() -> u32 {
    read("net/ipv4/ip_unprivileged_port_start")
        .and_then(|s| s.parse().ok())
        .unwrap_or(1024)
}

/// `net.ipv4.tcp_fin_timeout` in seconds, default 60.
pub fn tcp_fin_timeout() -> u32 {
    read("net/ipv4/tcp_fin_timeout")
        .and_then(|s| s.parse().ok())
        .unwrap_or(60)
}

/// `net.ipv6.bindv6only`: whether `[::]` sockets are IPv6-only by default.
pub fn bindv6only() -> bool {
    read("net/ipv6/bindv6only").is_some_and(|s| s == "1")
}

/// Parses "32768\t60999".
///
/// ```
/// assert_eq!(netkit::inspect::sysctl::parse_range("32768\t60999"), Some((32768, 60999)));
/// assert_eq!(netkit::inspect::sysctl::parse_range("x"), None);
/// ```
pub fn parse_range(s: &str) -> Option<(u16, u16)> {
    let mut it = s.split_whitespace().map(|x| x.parse::<u16>());
    match (it.next(), it.next()) {
        (Some(Ok(a)), Some(Ok(b))) if a <= b => Some((a, b)),
        _ => None,
    }
}
