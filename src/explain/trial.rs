//! The trial: a real probe socket with exactly the user's options, bound (and for TCP put
//! into listen()) and closed at once. The kernel's answer is the verdict; nothing is guessed.
//!
//! `--as-user` and the "what would an unprivileged user get" trial run in a forked child that
//! drops to the target uid first (setgroups, setgid, setuid) and reports the outcome through
//! a pipe. The fork happens before netkit starts any thread (the inventory is read after the
//! trials), so the child may use the allocator safely.

use std::io;
use std::net::{IpAddr, SocketAddr, SocketAddrV6};

use serde::Serialize;

use crate::inspect::{Proto, sysctl};
use crate::sockopt::{self, SockOpts};

/// The options of one trial.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TrialOpts {
    /// `tcp` or `udp`.
    pub proto: Proto,
    /// The local address (`0.0.0.0`, `::`, a specific address).
    pub addr: IpAddr,
    /// IPv6 scope id (interface index) for link-local addresses, 0 otherwise.
    #[serde(skip_serializing_if = "is_zero")]
    pub scope_id: u32,
    /// The port.
    pub port: u16,
    /// SO_REUSEADDR.
    pub reuseaddr: bool,
    /// SO_REUSEPORT.
    pub reuseport: bool,
    /// IPV6_V6ONLY for IPv6 sockets (`None` for IPv4).
    pub v6only: Option<bool>,
    /// The user the trial ran as, when not netkit's own.
    pub as_user: Option<String>,
    /// The uid the trial ran as.
    pub uid: u32,
    /// TCP only: call listen() after bind (a server); false for a client pinning its port.
    pub listen: bool,
}

fn is_zero(v: &u32) -> bool {
    *v == 0
}

impl TrialOpts {
    /// Options for `addr:port` with no socket options; IPV6_V6ONLY follows
    /// `net.ipv6.bindv6only` as a plain socket() would.
    pub fn plain(proto: Proto, addr: IpAddr, port: u16) -> TrialOpts {
        TrialOpts {
            proto,
            addr,
            scope_id: 0,
            port,
            reuseaddr: false,
            reuseport: false,
            v6only: addr.is_ipv6().then(sysctl::bindv6only),
            as_user: None,
            uid: crate::inspect::users::current_uid(),
            listen: proto == Proto::Tcp,
        }
    }

    /// The socket address to bind.
    pub fn sockaddr(&self) -> SocketAddr {
        match self.addr {
            IpAddr::V6(a) => SocketAddr::V6(SocketAddrV6::new(a, self.port, 0, self.scope_id)),
            a => SocketAddr::new(a, self.port),
        }
    }

    /// True when an IPv6 wildcard of this trial also covers IPv4 (`[::]` with V6ONLY=0).
    pub fn dual_stack(&self) -> bool {
        self.addr.is_ipv6() && self.v6only == Some(false)
    }

    /// A short description: `tcp [::]:8080 (SO_REUSEADDR, V6ONLY=0)`.
    pub fn describe(&self) -> String {
        let mut opts = Vec::new();
        if self.reuseaddr {
            opts.push("SO_REUSEADDR".to_string());
        }
        if self.reuseport {
            opts.push("SO_REUSEPORT".to_string());
        }
        if let Some(v) = self.v6only {
            opts.push(format!("V6ONLY={}", u8::from(v)));
        }
        if let Some(u) = &self.as_user {
            opts.push(format!("as {u}"));
        }
        let o = if opts.is_empty() {
            "no options".to_string()
        } else {
            opts.join(", ")
        };
        format!(
            "{} {} ({o})",
            self.proto,
            crate::inspect::fmt_endpoint(self.addr, self.port)
        )
    }

    fn sockopts(&self) -> SockOpts {
        SockOpts {
            reuseaddr: self.reuseaddr,
            reuseport: self.reuseport,
            v6only: self.v6only.unwrap_or(false),
            ..SockOpts::default()
        }
    }
}

/// What the kernel answered.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Outcome {
    /// True when bind (and listen for TCP) succeeded.
    pub ok: bool,
    /// `socket`, `setsockopt`, `bind` or `listen`: where it failed.
    pub stage: Option<&'static str>,
    /// The errno.
    pub errno: Option<i32>,
}

impl Outcome {
    const OK: Outcome = Outcome {
        ok: true,
        stage: None,
        errno: None,
    };

    /// The errno's symbolic name (`EADDRINUSE`), if any.
    pub fn errno_name(&self) -> Option<&'static str> {
        self.errno.map(errno_name)
    }
}

/// Symbolic name of a Linux errno ([`crate::errno::name`]); `EOTHER` for the ones netkit
/// does not name.
pub fn errno_name(e: i32) -> &'static str {
    crate::errno::name(e).unwrap_or("EOTHER")
}

/// Runs the trial in this process: socket, options, bind, listen (TCP), close.
pub fn run(t: &TrialOpts) -> Outcome {
    let addr = t.sockaddr();
    let opts = t.sockopts();
    let res = match t.proto {
        // The probe is closed when the listener drops at the end of this arm.
        Proto::Tcp if t.listen => sockopt::listen(addr, &opts, 1).map(drop),
        Proto::Tcp => sockopt::tcp_bind_only(addr, &opts).map(drop),
        Proto::Udp => sockopt::udp_bind(addr, &opts).map(drop),
    };
    match res {
        Ok(()) => Outcome::OK,
        Err(e) => Outcome {
            ok: false,
            stage: Some(e.stage),
            errno: e.errno(),
        },
    }
}

fn stage_code(s: Option<&'static str>) -> u8 {
    match s {
        None => 0,
        Some("socket") => 1,
        Some("setsockopt") => 2,
        Some("bind") => 3,
        Some("listen") => 4,
        Some(_) => 5,
    }
}

fn stage_of(c: u8) -> Option<&'static str> {
    match c {
        0 => None,
        1 => Some("socket"),
        2 => Some("setsockopt"),
        3 => Some("bind"),
        4 => Some("listen"),
        _ => Some("other"),
    }
}

/// Runs the trial as `uid`/`gid` in a forked child (root only). The child drops its groups,
/// gid and uid (losing CAP_NET_BIND_SERVICE with them, capabilities(7)) before the trial.
///
/// # Errors
/// When the pipe or fork fails, or the child could not drop privileges.
pub fn run_as(t: &TrialOpts, uid: u32, gid: u32) -> io::Result<Outcome> {
    let mut fds = [0i32; 2];
    // SAFETY: fds is a valid 2-element array for pipe2 to fill.
    if unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) } != 0 {
        return Err(io::Error::last_os_error());
    }
    let (rd, wr) = (fds[0], fds[1]);
    // SAFETY: netkit calls this before it starts any thread (see the module doc), so the
    // child is a faithful single-threaded copy; it only makes syscalls and exits with _exit.
    let pid = unsafe { libc::fork() };
    if pid < 0 {
        let e = io::Error::last_os_error();
        // SAFETY: closing the two fds we own.
        unsafe {
            libc::close(rd);
            libc::close(wr);
        }
        return Err(e);
    }
    if pid == 0 {
        // Child.
        let mut msg = [0u8; 6];
        // SAFETY: plain syscalls on the child's own credentials.
        let dropped = unsafe {
            libc::setgroups(0, std::ptr::null()) == 0
                && libc::setgid(gid) == 0
                && libc::setuid(uid) == 0
        };
        if dropped {
            let o = run(t);
            msg[0] = u8::from(o.ok);
            msg[1] = stage_code(o.stage);
            msg[2..6].copy_from_slice(&o.errno.unwrap_or(0).to_le_bytes());
        } else {
            msg[0] = 2;
        }
        // SAFETY: writing our buffer to the pipe, then leaving without running destructors.
        unsafe {
            libc::write(wr, msg.as_ptr().cast(), msg.len());
            libc::_exit(0);
        }
    }
    // SAFETY: the parent closes its copy of the write end.
    unsafe { libc::close(wr) };
    let mut msg = [0u8; 6];
    let mut got = 0usize;
    while got < msg.len() {
        // SAFETY: reading into the rest of our buffer.
        let n = unsafe { libc::read(rd, msg[got..].as_mut_ptr().cast(), msg.len() - got) };
        if n < 0 && io::Error::last_os_error().kind() == io::ErrorKind::Interrupted {
            continue;
        }
        if n <= 0 {
            break;
        }
        got += n as usize;
    }
    let mut status = 0;
    // SAFETY: reaping our own child; closing our read end.
    unsafe {
        libc::waitpid(pid, &mut status, 0);
        libc::close(rd);
    }
    if got < msg.len() || msg[0] == 2 {
        return Err(io::Error::other(format!(
            "the trial child could not switch to uid {uid}"
        )));
    }
    let errno = i32::from_le_bytes([msg[2], msg[3], msg[4], msg[5]]);
    Ok(Outcome {
        ok: msg[0] == 1,
        stage: stage_of(msg[1]),
        errno: (errno != 0).then_some(errno),
    })
}

/// The primary group of `uid`, from NSS (the uid itself when unknown, as `nobody`'s is).
pub fn primary_gid(uid: u32) -> u32 {
    uzers::get_user_by_uid(uid).map_or(uid, |u| u.primary_group_id())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn free_port_is_bindable_and_taken_port_is_not() {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = l.local_addr().unwrap().port();
        let t = TrialOpts::plain(Proto::Tcp, "127.0.0.1".parse().unwrap(), port);
        let o = run(&t);
        assert!(!o.ok);
        assert_eq!(o.errno_name(), Some("EADDRINUSE"));
        assert_eq!(o.stage, Some("bind"));
        drop(l);
        assert!(run(&t).ok);
    }

    #[test]
    fn nonlocal_address_is_eaddrnotavail() {
        let t = TrialOpts::plain(Proto::Udp, "192.0.2.1".parse().unwrap(), 0);
        assert_eq!(run(&t).errno_name(), Some("EADDRNOTAVAIL"));
    }
}
