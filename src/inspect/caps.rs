//! A sock_diag socket opened without `CAP_NET_ADMIN` in its file's credentials.
//!
//! inet_diag adds an `INET_DIAG_MARK` attribute (and `INET_DIAG_CLASS_ID` for full sockets)
//! to every reply message when the dumping socket's opener had `CAP_NET_ADMIN`
//! (`netlink_net_capable` in `inet_diag_dump`, which checks the socket file's `f_cred`
//! as well as the current task: net/netlink/af_netlink.c, `__netlink_ns_capable`). netkit
//! shows neither, and at 40,000 TIME_WAIT the mark alone is 8 of each message's 96 bytes and
//! one `nla_put` per socket in the kernel's fill. So the socket is created while the calling
//! thread's *effective* set lacks `CAP_NET_ADMIN` (capabilities are per thread; the
//! permitted set keeps it, so it is raised again right after). Nothing else in a dump depends
//! on that capability: sockets are never hidden from an unprivileged dump.

/// `CAP_NET_ADMIN` (include/uapi/linux/capability.h).
const CAP_NET_ADMIN: u32 = 12;
/// `_LINUX_CAPABILITY_VERSION_3`: two 32-bit words per set.
const VERSION_3: u32 = 0x2008_0522;

#[repr(C)]
struct Header {
    version: u32,
    pid: libc::c_int,
}

#[repr(C)]
#[derive(Clone, Copy, Default)]
struct Data {
    effective: u32,
    permitted: u32,
    inheritable: u32,
}

fn get() -> Option<[Data; 2]> {
    let mut h = Header {
        version: VERSION_3,
        pid: 0,
    };
    let mut d = [Data::default(); 2];
    // SAFETY: capget(2) with a v3 header writes two Data structs into `d`; pid 0 = this thread.
    let r = unsafe { libc::syscall(libc::SYS_capget, &mut h as *mut Header, d.as_mut_ptr()) };
    (r == 0).then_some(d)
}

fn set(d: &[Data; 2]) -> bool {
    let mut h = Header {
        version: VERSION_3,
        pid: 0,
    };
    // SAFETY: capset(2) reads a v3 header and two Data structs; pid 0 = this thread.
    let r = unsafe { libc::syscall(libc::SYS_capset, &mut h as *mut Header, d.as_ptr()) };
    r == 0
}

/// Runs `open` (the creation of a socket) with `CAP_NET_ADMIN` out of this thread's effective
/// set, when it is there; restores the set afterwards. Without the capability (an ordinary
/// user), or when the capability calls fail, `open` simply runs as it is.
pub fn without_net_admin<T>(open: impl FnOnce() -> T) -> T {
    let bit = 1u32 << CAP_NET_ADMIN;
    let Some(before) = get() else {
        return open();
    };
    if before[0].effective & bit == 0 {
        return open();
    }
    let mut lowered = before;
    lowered[0].effective &= !bit;
    if !set(&lowered) {
        return open();
    }
    let out = open();
    // Raising an effective bit that is still permitted cannot fail; if it did, the thread
    // would only lack a capability netkit's inventory never needs.
    let _ = set(&before);
    out
}

/// True when this thread has `CAP_NET_ADMIN` in its effective set.
pub fn has_net_admin() -> bool {
    get().is_some_and(|d| d[0].effective & (1u32 << CAP_NET_ADMIN) != 0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_capability_is_back_after_the_call_and_absent_during_it() {
        let had = has_net_admin();
        let during = without_net_admin(has_net_admin);
        assert!(!during, "CAP_NET_ADMIN still effective inside the call");
        assert_eq!(has_net_admin(), had, "the effective set was not restored");
    }
}
