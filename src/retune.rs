//! Live re-tune: setsockopt on a socket borrowed from a running process (a pidfd_getfd(2)
//! copy is the same open socket, so the change is the target's), and the before → after
//! values as the kernel reports them.
//!
//! Owns the `NAME=VALUE` vocabulary of `netkit sockopt --set`, the options refused after
//! bind() (with the reason), clamping (SO_SNDBUF/SO_RCVBUF against `net.core.wmem_max` /
//! `rmem_max`) and the per-socket outcome. Borrowing the fd is `explain::pidfd`'s; printing
//! is the command's.

use std::fmt;
use std::io;
use std::str::FromStr;
use std::time::Duration;

use serde::{Serialize, Serializer};
use socket2::{SockRef, Type};

use crate::inspect::{SockState, sysctl};

/// Why a `--set` argument was not accepted.
#[derive(Debug, thiserror::Error)]
pub enum RetuneError {
    /// Malformed `NAME=VALUE`, unknown name or value out of the kernel's range.
    #[error("--set {arg}: {reason}")]
    Parse {
        /// The argument as typed.
        arg: String,
        /// What is wrong with it.
        reason: String,
    },
    /// An option that cannot be changed meaningfully on a socket that is already bound.
    #[error("--set {arg}: refused: {reason}")]
    Refused {
        /// The argument as typed.
        arg: String,
        /// Why, with the rule.
        reason: &'static str,
    },
}

/// An option `--set` can change.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Opt {
    /// SO_KEEPALIVE (socket(7)).
    Keepalive,
    /// TCP_KEEPIDLE (tcp(7)), seconds.
    KeepIdle,
    /// TCP_KEEPINTVL (tcp(7)), seconds.
    KeepIntvl,
    /// TCP_KEEPCNT (tcp(7)).
    KeepCnt,
    /// SO_SNDBUF (socket(7)), bytes; the kernel doubles it.
    SndBuf,
    /// SO_RCVBUF (socket(7)), bytes; the kernel doubles it.
    RcvBuf,
    /// TCP_NODELAY (tcp(7)).
    NoDelay,
    /// TCP_USER_TIMEOUT (tcp(7)), milliseconds; 0 = the system default.
    UserTimeout,
    /// SO_LINGER (socket(7)): off, or seconds close() waits for unsent data.
    Linger,
}

impl Opt {
    /// Every option, in the order they are applied and shown.
    pub const ALL: [Opt; 9] = [
        Opt::Keepalive,
        Opt::KeepIdle,
        Opt::KeepIntvl,
        Opt::KeepCnt,
        Opt::SndBuf,
        Opt::RcvBuf,
        Opt::NoDelay,
        Opt::UserTimeout,
        Opt::Linger,
    ];

    /// The `--set` name.
    pub fn name(self) -> &'static str {
        match self {
            Opt::Keepalive => "keepalive",
            Opt::KeepIdle => "keepidle",
            Opt::KeepIntvl => "keepintvl",
            Opt::KeepCnt => "keepcnt",
            Opt::SndBuf => "sndbuf",
            Opt::RcvBuf => "rcvbuf",
            Opt::NoDelay => "nodelay",
            Opt::UserTimeout => "user-timeout",
            Opt::Linger => "linger",
        }
    }

    /// The kernel's name.
    pub fn kernel_name(self) -> &'static str {
        match self {
            Opt::Keepalive => "SO_KEEPALIVE",
            Opt::KeepIdle => "TCP_KEEPIDLE",
            Opt::KeepIntvl => "TCP_KEEPINTVL",
            Opt::KeepCnt => "TCP_KEEPCNT",
            Opt::SndBuf => "SO_SNDBUF",
            Opt::RcvBuf => "SO_RCVBUF",
            Opt::NoDelay => "TCP_NODELAY",
            Opt::UserTimeout => "TCP_USER_TIMEOUT",
            Opt::Linger => "SO_LINGER",
        }
    }

    /// True for IPPROTO_TCP options (and SO_KEEPALIVE, which only TCP acts on).
    pub fn tcp_only(self) -> bool {
        !matches!(self, Opt::SndBuf | Opt::RcvBuf | Opt::Linger)
    }

    fn parse_name(s: &str) -> Option<Opt> {
        Opt::ALL.into_iter().find(|o| o.name() == s)
    }
}

impl Serialize for Opt {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.name())
    }
}

/// An option's value: on/off, a number, or off for SO_LINGER.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Val {
    /// on / off.
    Bool(bool),
    /// Seconds, bytes, a count or milliseconds (the option says which).
    Num(u64),
}

impl fmt::Display for Val {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Val::Bool(true) => f.write_str("on"),
            Val::Bool(false) => f.write_str("off"),
            Val::Num(n) => write!(f, "{n}"),
        }
    }
}

impl Serialize for Val {
    /// `true`/`false` or an integer (SO_LINGER off is `false`).
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            Val::Bool(b) => s.serialize_bool(*b),
            Val::Num(n) => s.serialize_u64(*n),
        }
    }
}

/// One `--set NAME=VALUE`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Setting {
    /// The option.
    pub opt: Opt,
    /// The value asked for.
    pub value: Val,
}

/// Options the kernel reads at bind() or that only make sense before it, with the reason
/// `--set` gives for refusing them.
const REFUSED: [(&str, &str); 5] = [
    (
        "reuseaddr",
        "SO_REUSEADDR is checked when a socket binds: on a listener it never lets another socket share the port (BIND-RULES.md rule 1), and turning it on for a bound UDP or not-yet-listening TCP socket would let any local user bind the same port and take its traffic (rules U2, 6b); set it in the program before bind()",
    ),
    (
        "reuseport",
        "SO_REUSEPORT group membership is decided at bind() (rules 4, 5): turning it on afterwards puts the socket in no group and only opens the port to later binds; set it in the program before bind()",
    ),
    (
        "v6only",
        "IPV6_V6ONLY can only be changed before bind() (the kernel answers EINVAL once the socket has a port, ipv6(7))",
    ),
    (
        "bindtodevice",
        "SO_BINDTODEVICE on a bound or connected socket does not move its port reservation or its connections; bind the program to the device at start",
    ),
    (
        "freebind",
        "IP_FREEBIND only matters to bind() itself, which has already happened",
    ),
];

// include/net/tcp.h: MAX_TCP_KEEPIDLE and MAX_TCP_KEEPINTVL are 32767 s, MAX_TCP_KEEPCNT 127;
// tcp_sock_set_keep*() answer EINVAL outside 1..=MAX.
const MAX_KEEP_S: u64 = 32767;
const MAX_KEEPCNT: u64 = 127;

impl FromStr for Setting {
    type Err = RetuneError;

    /// Parses `keepidle=30`, `keepalive=on`, `linger=off`, `sndbuf=262144`, `sndbuf=256k`.
    fn from_str(arg: &str) -> Result<Setting, RetuneError> {
        let err = |reason: String| RetuneError::Parse {
            arg: arg.to_string(),
            reason,
        };
        let Some((name, value)) = arg.split_once('=') else {
            return Err(err("expected NAME=VALUE, e.g. keepidle=30".into()));
        };
        let name = name.trim().to_ascii_lowercase().replace('_', "-");
        let value = value.trim();
        if let Some((_, reason)) = REFUSED.iter().find(|(n, _)| *n == name) {
            return Err(RetuneError::Refused {
                arg: arg.to_string(),
                reason,
            });
        }
        let Some(opt) = Opt::parse_name(&name) else {
            let known: Vec<&str> = Opt::ALL.iter().map(|o| o.name()).collect();
            return Err(err(format!(
                "unknown option {name:?} (one of {})",
                known.join(", ")
            )));
        };
        let onoff = || match value.to_ascii_lowercase().as_str() {
            "on" | "1" | "true" | "yes" => Ok(Val::Bool(true)),
            "off" | "0" | "false" | "no" => Ok(Val::Bool(false)),
            _ => Err(err(format!("{value:?} is not on or off"))),
        };
        let num = |lo: u64, hi: u64, unit: &str| -> Result<Val, RetuneError> {
            let n = parse_number(value)
                .ok_or_else(|| err(format!("{value:?} is not a whole number of {unit}")))?;
            if n < lo || n > hi {
                return Err(err(format!(
                    "{n} is outside what the kernel accepts for {} ({lo}..={hi} {unit})",
                    opt.kernel_name()
                )));
            }
            Ok(Val::Num(n))
        };
        let value = match opt {
            Opt::Keepalive | Opt::NoDelay => onoff()?,
            Opt::KeepIdle | Opt::KeepIntvl => num(1, MAX_KEEP_S, "seconds")?,
            Opt::KeepCnt => num(1, MAX_KEEPCNT, "probes")?,
            // The kernel takes an int and doubles it.
            Opt::SndBuf | Opt::RcvBuf => num(1, i32::MAX as u64 / 2, "bytes")?,
            Opt::UserTimeout => num(0, i32::MAX as u64, "milliseconds")?,
            Opt::Linger => match value.to_ascii_lowercase().as_str() {
                "off" => Val::Bool(false),
                _ => num(0, i32::MAX as u64, "seconds (or off)")?,
            },
        };
        Ok(Setting { opt, value })
    }
}

/// A decimal number with an optional `k`/`m` (×1024) suffix, for buffer sizes.
fn parse_number(s: &str) -> Option<u64> {
    let lower = s.to_ascii_lowercase();
    let (digits, mult) = match lower.strip_suffix('k') {
        Some(d) => (d, 1024),
        None => match lower.strip_suffix('m') {
            Some(d) => (d, 1024 * 1024),
            None => (lower.as_str(), 1),
        },
    };
    digits.parse::<u64>().ok()?.checked_mul(mult)
}

/// Reads `opt` from the socket as the kernel reports it.
///
/// # Errors
/// The getsockopt error (ENOPROTOOPT for a TCP option on a UDP socket).
pub fn read(s: &SockRef<'_>, opt: Opt) -> io::Result<Val> {
    let secs = |d: Duration| Val::Num(d.as_secs());
    Ok(match opt {
        Opt::Keepalive => Val::Bool(s.keepalive()?),
        Opt::KeepIdle => secs(s.tcp_keepalive_time()?),
        Opt::KeepIntvl => secs(s.tcp_keepalive_interval()?),
        Opt::KeepCnt => Val::Num(u64::from(s.tcp_keepalive_retries()?)),
        Opt::SndBuf => Val::Num(s.send_buffer_size()? as u64),
        Opt::RcvBuf => Val::Num(s.recv_buffer_size()? as u64),
        Opt::NoDelay => Val::Bool(s.tcp_nodelay()?),
        Opt::UserTimeout => Val::Num(s.tcp_user_timeout()?.map_or(0, |d| d.as_millis() as u64)),
        Opt::Linger => match s.linger()? {
            None => Val::Bool(false),
            Some(d) => Val::Num(d.as_secs()),
        },
    })
}

fn apply(s: &SockRef<'_>, set: Setting) -> io::Result<()> {
    let n = match set.value {
        Val::Num(n) => n,
        Val::Bool(_) => 0,
    };
    let on = set.value == Val::Bool(true);
    match set.opt {
        Opt::Keepalive => s.set_keepalive(on),
        // Not socket2's set_tcp_keepalive: it also turns SO_KEEPALIVE on, and a timer change
        // must not switch keepalive on behind the user's back.
        Opt::KeepIdle => set_tcp_int(s, libc::TCP_KEEPIDLE, n),
        Opt::KeepIntvl => set_tcp_int(s, libc::TCP_KEEPINTVL, n),
        Opt::KeepCnt => set_tcp_int(s, libc::TCP_KEEPCNT, n),
        Opt::SndBuf => s.set_send_buffer_size(n as usize),
        Opt::RcvBuf => s.set_recv_buffer_size(n as usize),
        Opt::NoDelay => s.set_tcp_nodelay(on),
        Opt::UserTimeout => s.set_tcp_user_timeout((n > 0).then(|| Duration::from_millis(n))),
        Opt::Linger => s.set_linger(match set.value {
            Val::Bool(_) => None,
            Val::Num(_) => Some(Duration::from_secs(n)),
        }),
    }
}

/// setsockopt(IPPROTO_TCP, opt, int).
fn set_tcp_int(s: &SockRef<'_>, opt: libc::c_int, v: u64) -> io::Result<()> {
    use std::os::fd::AsRawFd;
    let v = libc::c_int::try_from(v).map_err(|_| io::Error::from_raw_os_error(libc::EINVAL))?;
    // SAFETY: v lives across the call and its size is passed; the fd is open.
    let r = unsafe {
        libc::setsockopt(
            s.as_raw_fd(),
            libc::IPPROTO_TCP,
            opt,
            (&v as *const libc::c_int).cast(),
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        )
    };
    if r == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// What happened to one option on one socket.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    /// The kernel now reports the value asked for (doubled, for buffers).
    Changed,
    /// It already had that value.
    Unchanged,
    /// The kernel set a different value than asked (limit or minimum).
    Clamped,
    /// `--dry-run`: this would change.
    WouldChange,
    /// Not applicable to this socket (a TCP option on UDP).
    Refused,
    /// setsockopt failed.
    Failed,
}

/// One option on one socket: before → after, as getsockopt reports them.
#[derive(Debug, Clone, Serialize)]
pub struct Change {
    /// The `--set` name.
    pub option: Opt,
    /// The kernel's name.
    pub kernel_name: &'static str,
    /// The value asked for.
    pub asked: Val,
    /// What the kernel reported before; `null` when it could not be read.
    pub before: Option<Val>,
    /// What it reports after (the same as `before` for a dry run or a refusal).
    pub after: Option<Val>,
    /// The result.
    pub outcome: Outcome,
    /// Why, where there is more to say (clamping, inheritance, a disabled timer).
    pub note: Option<String>,
}

/// The value the kernel stores for `asked` when nothing clamps it.
fn expected(opt: Opt, asked: Val) -> Val {
    match (opt, asked) {
        // socket(7): "The kernel doubles this value (to allow space for bookkeeping overhead)".
        (Opt::SndBuf | Opt::RcvBuf, Val::Num(n)) => Val::Num(n * 2),
        _ => asked,
    }
}

fn clamp_note(opt: Opt, asked: Val, after: Option<Val>) -> Option<String> {
    let (Val::Num(a), Some(Val::Num(got))) = (asked, after) else {
        return None;
    };
    let sysctl = match opt {
        Opt::SndBuf => "net.core.wmem_max",
        Opt::RcvBuf => "net.core.rmem_max",
        _ => return Some(format!("the kernel reports {got}, not {a}")),
    };
    let max = sysctl::read(&sysctl.replace('.', "/")).and_then(|s| s.parse::<u64>().ok());
    // net/core/sock.c sock_setsockopt: val = min(val, sysctl_wmem_max); sk_sndbuf =
    // max(val * 2, SOCK_MIN_SNDBUF) — the same for SO_RCVBUF with rmem_max.
    Some(match max {
        Some(m) if a > m => format!(
            "clamped: {sysctl} is {m}, so the kernel set 2 × {m} = {got} (raise {sysctl} to allow more; SO_{}FORCE as root bypasses it)",
            if opt == Opt::SndBuf {
                "SNDBUF"
            } else {
                "RCVBUF"
            }
        ),
        _ if got > a * 2 => format!("raised to the kernel's minimum buffer size ({got})"),
        _ => format!("the kernel reports {got}, not 2 × {a}"),
    })
}

/// Applies `settings` to one socket (or, with `dry_run`, only reads), and reports each.
/// `is_tcp`: TCP options are refused on other sockets; `listening`: notes that accepted
/// connections copy a listener's options only when accepted later.
pub fn retune(s: &SockRef<'_>, settings: &[Setting], dry_run: bool) -> Vec<Change> {
    let is_tcp = s.r#type().ok() == Some(Type::STREAM);
    let listening = is_tcp && s.is_listener().unwrap_or(false);
    let mut out = Vec::with_capacity(settings.len());
    for &set in settings {
        let before = read(s, set.opt).ok();
        let mut c = Change {
            option: set.opt,
            kernel_name: set.opt.kernel_name(),
            asked: set.value,
            before,
            after: before,
            outcome: Outcome::Unchanged,
            note: None,
        };
        let want = expected(set.opt, set.value);
        if set.opt.tcp_only() && !is_tcp {
            c.outcome = Outcome::Refused;
            c.note = Some(format!(
                "{} is a TCP option; this is not a TCP socket",
                set.opt.kernel_name()
            ));
        } else if before == Some(want) {
            c.outcome = Outcome::Unchanged;
        } else if dry_run {
            c.outcome = Outcome::WouldChange;
        } else {
            match apply(s, set) {
                Err(e) => {
                    c.outcome = Outcome::Failed;
                    c.note = Some(format!("setsockopt {}: {e}", set.opt.kernel_name()));
                }
                Ok(()) => {
                    c.after = read(s, set.opt).ok();
                    if c.after == Some(want) {
                        c.outcome = Outcome::Changed;
                    } else {
                        c.outcome = Outcome::Clamped;
                        c.note = clamp_note(set.opt, set.value, c.after);
                    }
                }
            }
        }
        if c.note.is_none() && matches!(c.outcome, Outcome::Changed | Outcome::WouldChange) {
            c.note = side_note(s, set, listening);
        }
        out.push(c);
    }
    out
}

/// What a user should know about a change that did happen.
fn side_note(s: &SockRef<'_>, set: Setting, listening: bool) -> Option<String> {
    if matches!(set.opt, Opt::KeepIdle | Opt::KeepIntvl | Opt::KeepCnt)
        && s.keepalive().ok() == Some(false)
    {
        return Some(
            "SO_KEEPALIVE is off on this socket, so no probe is sent until keepalive=on".into(),
        );
    }
    if listening {
        return Some(
            "a listener: connections accepted from now on copy this; connections accepted earlier keep theirs (select them with --all or --fd)"
                .into(),
        );
    }
    if matches!(set.opt, Opt::SndBuf | Opt::RcvBuf) {
        // net/ipv4/tcp_input.c: SOCK_SNDBUF_LOCK / SOCK_RCVBUF_LOCK stop buffer autotuning.
        return Some(format!(
            "a fixed {} turns off the kernel's buffer autotuning for this socket",
            set.opt.kernel_name()
        ));
    }
    None
}

/// The socket's state as the kernel names it: the TCP state from TCP_INFO (`BOUND` for a
/// TCP socket with a port that is neither listening nor connected), `UNCONN` or `ESTABLISHED`
/// for UDP.
pub fn state(s: &SockRef<'_>) -> Option<SockState> {
    use std::os::fd::AsRawFd;
    if s.r#type().ok() != Some(Type::STREAM) {
        return Some(if s.peer_addr().is_ok() {
            SockState::Established
        } else {
            SockState::Unconn
        });
    }
    // struct tcp_info starts with __u8 tcpi_state (include/uapi/linux/tcp.h); the kernel
    // copies min(len, sizeof) bytes, so a short buffer is fine.
    let mut buf = [0u8; 8];
    let mut len = buf.len() as libc::socklen_t;
    // SAFETY: buf and len are valid for writes of len bytes; the fd is open for the call.
    let r = unsafe {
        libc::getsockopt(
            s.as_raw_fd(),
            libc::IPPROTO_TCP,
            libc::TCP_INFO,
            buf.as_mut_ptr().cast(),
            &mut len,
        )
    };
    if r != 0 || len < 1 {
        return None;
    }
    match SockState::from_tcp_number(buf[0])? {
        SockState::Close
            if s.local_addr()
                .ok()
                .and_then(|a| a.as_socket())
                .is_some_and(|a| a.port() != 0) =>
        {
            Some(SockState::Bound)
        }
        st => Some(st),
    }
}

/// The one line for a pidfd_getfd EPERM: the kernel's rule and what to do.
pub fn permission_line(pid: u32) -> String {
    let scope = match crate::explain::pidfd::ptrace_scope() {
        Some(0) => "kernel.yama.ptrace_scope is 0 here".to_string(),
        Some(1) => "kernel.yama.ptrace_scope is 1 here: only the target's ancestors qualify, so a same-user netkit does not".to_string(),
        Some(n) => format!("kernel.yama.ptrace_scope is {n} here: only root (CAP_SYS_PTRACE) qualifies"),
        None => "Yama is not active here".to_string(),
    };
    format!(
        "PID {pid}: permission denied (EPERM): pidfd_getfd(2) needs ptrace attach rights over the target (PTRACE_MODE_ATTACH_REALCREDS): root, or the target's own user where kernel.yama.ptrace_scope allows ({scope}); run netkit as root (sudo) or as that user"
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_set_vocabulary_and_rejects_out_of_range() {
        let s: Setting = "keepidle=30".parse().unwrap();
        assert_eq!((s.opt, s.value), (Opt::KeepIdle, Val::Num(30)));
        let s: Setting = "user_timeout=5000".parse().unwrap();
        assert_eq!((s.opt, s.value), (Opt::UserTimeout, Val::Num(5000)));
        let s: Setting = "sndbuf=64k".parse().unwrap();
        assert_eq!(s.value, Val::Num(65536));
        let s: Setting = "linger=off".parse().unwrap();
        assert_eq!(s.value, Val::Bool(false));
        assert!("keepidle=0".parse::<Setting>().is_err());
        assert!("keepidle=32768".parse::<Setting>().is_err());
        assert!("keepcnt=128".parse::<Setting>().is_err());
        assert!("nodelay=maybe".parse::<Setting>().is_err());
        assert!("keepidle".parse::<Setting>().is_err());
        assert!("frobnicate=1".parse::<Setting>().is_err());
        let e = "reuseaddr=on".parse::<Setting>().unwrap_err();
        assert!(e.to_string().contains("refused") && e.to_string().contains("bind()"));
    }

    #[test]
    fn sndbuf_is_doubled_and_clamped_at_wmem_max() {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let c = std::net::TcpStream::connect(l.local_addr().unwrap()).unwrap();
        let s = SockRef::from(&c);
        let set = |a: &str| a.parse::<Setting>().unwrap();
        let r = retune(&s, &[set("sndbuf=65536")], false);
        assert_eq!(r[0].after, Some(Val::Num(131072)));
        assert_eq!(r[0].outcome, Outcome::Changed);
        let max: u64 = sysctl::read("net/core/wmem_max").unwrap().parse().unwrap();
        let r = retune(&s, &[set(&format!("sndbuf={}", max + 4096))], false);
        assert_eq!(r[0].outcome, Outcome::Clamped);
        assert_eq!(r[0].after, Some(Val::Num(max * 2)));
        assert!(r[0].note.as_deref().unwrap().contains("net.core.wmem_max"));
        let r = retune(&s, &[set("keepidle=7")], true);
        assert_eq!(r[0].outcome, Outcome::WouldChange);
        assert_eq!(read(&s, Opt::KeepIdle).unwrap(), r[0].before.unwrap());
    }
}
