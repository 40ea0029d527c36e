//! The crate's one table of errno names: the Linux errnos netkit reports or explains, by
//! their symbolic names (`EADDRINUSE`), for messages and JSON (`errno_name`).

/// The symbolic name of a Linux errno netkit reports; `None` for others.
///
/// ```
/// assert_eq!(netkit::errno::name(98), Some("EADDRINUSE"));
/// assert_eq!(netkit::errno::name(111), Some("ECONNREFUSED"));
/// assert_eq!(netkit::errno::name(12345), None);
/// ```
pub fn name(errno: i32) -> Option<&'static str> {
    Some(match errno {
        libc::EADDRINUSE => "EADDRINUSE",
        libc::EADDRNOTAVAIL => "EADDRNOTAVAIL",
        libc::ECONNREFUSED => "ECONNREFUSED",
        libc::ECONNRESET => "ECONNRESET",
        libc::EACCES => "EACCES",
        libc::EPERM => "EPERM",
        libc::EINVAL => "EINVAL",
        libc::EAGAIN => "EAGAIN",
        libc::EAFNOSUPPORT => "EAFNOSUPPORT",
        libc::ENODEV => "ENODEV",
        libc::EMFILE => "EMFILE",
        libc::ENFILE => "ENFILE",
        libc::ENOBUFS => "ENOBUFS",
        libc::ENOMEM => "ENOMEM",
        libc::ETIMEDOUT => "ETIMEDOUT",
        libc::EHOSTUNREACH => "EHOSTUNREACH",
        libc::ENETUNREACH => "ENETUNREACH",
        libc::EINPROGRESS => "EINPROGRESS",
        _ => return None,
    })
}
