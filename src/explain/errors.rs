//! Decoding an error message pasted from Python, Node, Go, Java, Rust, C, Windows or macOS
//! into the errno it carries, the platform whose rules apply, and the port and address when
//! the text names them (Node's `:::3000`, Go's `listen tcp :8080`, nginx's `0.0.0.0:80`).
//!
//! Errno numbers differ per OS: Linux EADDRINUSE=98, EADDRNOTAVAIL=99; macOS/BSD 48 and 49;
//! Winsock adds 10000 to the BSD number (10048, 10049, 10013). BIND-RULES.md §5.

use std::net::IpAddr;
use std::sync::LazyLock;

use regex::Regex;
use serde::Serialize;

use crate::inspect::Proto;

/// What a pasted error message says.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Decoded {
    /// The errno's symbolic name (`EADDRINUSE`, `EACCES`, `EADDRNOTAVAIL`, `EINVAL`).
    pub errno: &'static str,
    /// The number as the message gave it (98, 48, 10048), when it gave one.
    pub code: Option<u32>,
    /// `linux`, `macos`, `windows`, or `unknown` when the text does not tell.
    pub platform: &'static str,
    /// Which runtime wrote it: `python`, `node`, `go`, `java`, `rust`, `nginx`, `c`, ...
    pub source: &'static str,
    /// The port, when the text names it; JSON `named_port`.
    #[serde(rename = "named_port")]
    pub port: Option<u16>,
    /// The address, when the text names it; JSON `named_addr` (`localhost` → 127.0.0.1).
    #[serde(rename = "named_addr")]
    pub addr: Option<IpAddr>,
    /// The host name, when the text names one instead of an address (`localhost`); JSON
    /// `named_host`. A connect-side live check dials it, so its resolution is tested too.
    #[serde(rename = "named_host")]
    pub host: Option<String>,
    /// Which call failed: `bind`, `listen` or `connect`. Connect-side messages (connection
    /// refused, a dial that cannot assign an address) go to `explain --connect`.
    pub side: &'static str,
    /// UDP when the text says so (Go's `listen udp`), else TCP.
    pub proto: Proto,
    /// Whether that runtime sets SO_REUSEADDR on listeners by default (for the live trial).
    pub reuseaddr_default: Option<bool>,
    /// The meaning, in plain words.
    pub message: String,
    /// What fixes it on that platform.
    pub fix: String,
}

struct Pat {
    re: &'static str,
    errno: &'static str,
    platform: &'static str,
}

/// Number-bearing forms first (they say the platform), then words.
const PATTERNS: &[Pat] = &[
    Pat {
        re: r"(?i)winerror\s*10048|wsaeaddrinuse|\b10048\b|only one usage of each socket address",
        errno: "EADDRINUSE",
        platform: "windows",
    },
    Pat {
        re: r"(?i)winerror\s*10013|wsaeacces|\b10013\b|forbidden by its access permissions",
        errno: "EACCES",
        platform: "windows",
    },
    Pat {
        re: r"(?i)winerror\s*10049|wsaeaddrnotavail|\b10049\b|requested address is not valid in its context",
        errno: "EADDRNOTAVAIL",
        platform: "windows",
    },
    Pat {
        re: r"(?i)winerror\s*10061|wsaeconnrefused|\b10061\b|actively refused",
        errno: "ECONNREFUSED",
        platform: "windows",
    },
    Pat {
        re: r"(?i)\[errno 111\]|os error 111\b|errno[ =:]*111\b|\(111\)",
        errno: "ECONNREFUSED",
        platform: "linux",
    },
    Pat {
        re: r"(?i)\[errno 61\]|os error 61\b|errno[ =:]*61\b",
        errno: "ECONNREFUSED",
        platform: "macos",
    },
    Pat {
        re: r"(?i)\[errno 98\]|os error 98\b|code:\s*98\b|errno[ =:]*98\b|\(98:|\b98\b.*address already in use",
        errno: "EADDRINUSE",
        platform: "linux",
    },
    Pat {
        re: r"(?i)\[errno 48\]|os error 48\b|code:\s*48\b|errno[ =:]*48\b|\(48:",
        errno: "EADDRINUSE",
        platform: "macos",
    },
    Pat {
        re: r"(?i)\[errno 99\]|os error 99\b|code:\s*99\b|errno[ =:]*99\b|\(99:",
        errno: "EADDRNOTAVAIL",
        platform: "linux",
    },
    Pat {
        re: r"(?i)\[errno 49\]|os error 49\b|code:\s*49\b|errno[ =:]*49\b|\(49:|can't assign requested address",
        errno: "EADDRNOTAVAIL",
        platform: "macos",
    },
    Pat {
        re: r"(?i)\[errno 13\]|os error 13\b|code:\s*13\b|errno[ =:]*13\b|\(13:",
        errno: "EACCES",
        platform: "unknown",
    },
    Pat {
        re: r"(?i)\[errno 22\]|os error 22\b|code:\s*22\b|\(22:",
        errno: "EINVAL",
        platform: "unknown",
    },
    Pat {
        re: r"(?i)econnrefused|connection refused|connection to \S+ refused",
        errno: "ECONNREFUSED",
        platform: "unknown",
    },
    Pat {
        re: r"(?i)eaddrinuse|addrinuse|address already in use|address in use|port is already allocated|port \d+ (?:was|is) already in use|port \d+ is in use|that port is already in use|connection in use|port \d+ in use|adresse déjà utilisée",
        errno: "EADDRINUSE",
        platform: "unknown",
    },
    Pat {
        re: r"(?i)eaddrnotavail|addrnotavailable|cannot assign requested address|address not available",
        errno: "EADDRNOTAVAIL",
        platform: "unknown",
    },
    Pat {
        re: r"(?i)eacces|permission denied|permissiondenied",
        errno: "EACCES",
        platform: "unknown",
    },
    Pat {
        re: r"(?i)einval|invalid argument",
        errno: "EINVAL",
        platform: "unknown",
    },
];

static COMPILED: LazyLock<Vec<(Regex, &'static Pat)>> = LazyLock::new(|| {
    PATTERNS
        .iter()
        .filter_map(|p| Regex::new(p.re).ok().map(|r| (r, p)))
        .collect()
});

/// Port extractors, most specific first: `:::3000`, `[::1]:80`, `0.0.0.0:80`,
/// `('127.0.0.1', 8000)`, `listen tcp :8080`, `port 5000`.
static PORT_RES: LazyLock<Vec<Regex>> = LazyLock::new(|| {
    [
        r"Bind to port (?P<port>\d{1,5}) on (?P<addr>[0-9A-Fa-f:.]+) failed",
        r"(?i)could not bind IPv[46] address \x22(?P<addr>[^\x22]+)\x22(?s:.*?)port (?P<port>\d{1,5})",
        r"« (?P<addr>[0-9A-Fa-f:.]+) »(?s:.*?)port (?P<port>\d{1,5})",
        r"(?i)\x22(?P<host>[A-Za-z][\w.-]*)\x22 \((?P<addr>[0-9A-Fa-f:.]+)\)(?s:.*?)port (?P<port>\d{1,5})",
        r"(?i)host \x22(?P<addr>[0-9A-Fa-f:.]+)\x22(?s:.*?)port (?P<port>\d{1,5})",
        r"(?i)server at \x22(?P<addr>[0-9A-Fa-f:.]+)\x22, port (?P<port>\d{1,5})",
        r"(?i)connect to (?P<host>[A-Za-z][\w.-]*) port (?P<port>\d{1,5})",
        r"(?i)connect to (?P<addr>[0-9A-Fa-f:.]+) port (?P<port>\d{1,5})",
        r"listening socket (?P<star>\*):(?P<port>\d{1,5})\b",
        r"listening socket (?P<addr>[^\s*]+):(?P<port>\d{1,5}):",
        r"could_not_start_listener,\x22(?P<addr>[^\x22]+)\x22,(?P<port>\d{1,5})",
        r"\{ip,\{(?P<erl>[\d,]+)\}\}(?s:.*?)\{port,(?P<port>\d{1,5})\}",
        r"\{acceptor,\{(?P<erl>[\d,]+)\},(?P<port>\d{1,5})\}",
        r"\{port,\s*(?P<port>\d{1,5})\}",
        r"(?i)\b(?:https?|ajp)-(?:nio2?|bio|apr)-(?:(?P<addr>[0-9.]+)-)?(?P<port>\d{1,5})\b",
        r"(?P<addr>::):(?P<port>\d{1,5})\b",
        r"\[(?P<addr>[0-9A-Fa-f:.%a-z]+)\]:(?P<port>\d{1,5})\b",
        r"(?P<addr>\d{1,3}\.\d{1,3}\.\d{1,3}\.\d{1,3}):(?P<port>\d{1,5})\b",
        r"\(\s*'(?P<addr>[^']*)'\s*,\s*(?P<port>\d{1,5})\s*(?:,\s*\d+\s*)*\)",
        r"(?i)tcp port '(?P<addr>[^':]+):(?P<port>\d{1,5})'",
        r"(?i)(?:listen|bind|dial) (?:tcp|udp)[46]? (?P<addr>[^\s:]*):(?P<port>\d{1,5})\b",
        r"(?i)\bport[ :=]+(?P<port>\d{1,5})\b",
        r"(?i)\bport (?:is )?'?(?P<port>\d{1,5})'?",
        r"(?i)\b(?P<addr>localhost):(?P<port>\d{1,5})\b",
        r"/\d{1,3}\.\d{1,3}\.\d{1,3}\.[\dX]{1,3}:(?P<port>\d{1,5})\b",
    ]
    .iter()
    .filter_map(|r| Regex::new(r).ok())
    .collect()
});

fn source_of(text: &str) -> &'static str {
    let l = text.to_ascii_lowercase();
    // Programs with a message of their own first (the runtime's words may appear inside).
    const OWN: &[(&str, &str)] = &[
        ("curl: (7)", "curl"),
        ("bind to port ", "sshd"),
        ("tcp listening socket", "redis"),
        ("postmaster", "postgresql"),
        ("is the server running on", "libpq"),
        ("connection to server at", "libpq"),
        ("connection in use: (", "gunicorn"),
        ("error while attempting to bind on address", "uvicorn"),
        ("that port is already in use", "django"),
        ("airplay receiver", "werkzeug"),
        ("make_sock: could not bind", "apache"),
        ("ah00056", "apache"),
        ("mysqld server running", "mysql"),
        ("ranch listener", "ranch"),
        ("could_not_start_listener", "rabbitmq"),
        ("distribution port", "rabbitmq"),
        ("protocolhandler [", "tomcat"),
        ("userland proxy", "docker"),
        ("port is already allocated", "docker"),
        ("bind(): address already in use [core/socket.c", "uwsgi"),
        ("{backend-connect}", "hitch"),
        ("connect error - eaddrnotavail", "emqtt-bench"),
        ("couldn't bind(errno", "bedrock"),
        ("postgres.app", "postgresql"),
        (
            "usually this means that there is already a postgresql server",
            "postgresql",
        ),
        ("couldn't listen on", "twisted"),
    ];
    if let Some((_, src)) = OWN.iter().find(|(k, _)| l.contains(k)) {
        return src;
    }
    if l.contains("errno::") {
        "ruby"
    } else if l.contains("java.net.")
        || l.contains("bindexception")
        || l.contains("web server failed to start")
    {
        "java"
    } else if l.contains("winerror")
        || l.contains("oserror")
        || l.contains("[errno")
        || l.contains("traceback")
    {
        "python"
    } else if l.contains("os {") || l.contains("(os error") || l.contains("kind: addr") {
        "rust"
    } else if (l.contains("listen eaddr")
        || l.contains("listen eacces")
        || l.contains("code: 'e")
        || l.contains("node:"))
        && l.contains('e')
    {
        "node"
    } else if l.contains("listen tcp") || l.contains("listen udp") || l.contains(": bind: ") {
        "go"
    } else if l.contains("bind() to") || l.contains("nginx") {
        "nginx"
    } else if l.contains("port is already allocated") || l.contains("docker") {
        "docker"
    } else if l.contains("bind:") || l.contains("bind failed") || l.contains("errno") {
        "c"
    } else {
        "unknown"
    }
}

/// Whether the runtime's listeners set SO_REUSEADDR by default on Linux: Node (libuv), Go
/// (net.Listen), Java (ServerSocket on non-Windows), Rust std (TcpListener::bind) and nginx
/// do; a plain Python socket() does not (socketserver/http.server do), C depends on the code.
fn reuseaddr_default(source: &str) -> Option<bool> {
    match source {
        "node" | "go" | "java" | "rust" | "nginx" => Some(true),
        _ => None,
    }
}

/// Decodes `text`; `None` when it carries no bind error netkit knows.
pub fn decode(text: &str) -> Option<Decoded> {
    let (_, pat) = COMPILED.iter().find(|(r, _)| r.is_match(text))?;
    let code = number_in(text);
    let source = source_of(text);
    let mut platform = pat.platform;
    if platform == "unknown" {
        platform = match code {
            Some(98 | 99 | 111) => "linux",
            Some(48 | 49 | 61) => "macos",
            Some(c) if c >= 10000 => "windows",
            _ => "unknown",
        };
    }
    if platform == "unknown" {
        platform = platform_hint(text).unwrap_or(platform);
    }
    if platform == "unknown" && text.trim_start().starts_with("(98)") {
        platform = "linux";
    }
    let (port, addr, mut host) = port_in(text);
    let mut addr = addr;
    if port.is_none() {
        // Node without a port: `Error: listen EACCES localhost`.
        static NODE_HOST: LazyLock<Option<Regex>> = LazyLock::new(|| {
            Regex::new(r"(?i)\blisten E[A-Z]+:?(?: [a-z ]+)? (?P<host>localhost)\b").ok()
        });
        if NODE_HOST.as_ref().is_some_and(|r| r.is_match(text)) {
            host = Some("localhost".into());
            addr = "127.0.0.1".parse().ok();
        }
    }
    let side = side_of(text, pat.errno);
    let proto = if text.to_ascii_lowercase().contains("udp") {
        Proto::Udp
    } else {
        Proto::Tcp
    };
    let (message, fix) = meaning(pat.errno, platform, port);
    Some(Decoded {
        errno: pat.errno,
        code,
        platform,
        source,
        port,
        addr,
        host,
        side,
        proto,
        reuseaddr_default: reuseaddr_default(source),
        message,
        fix,
    })
}

fn number_in(text: &str) -> Option<u32> {
    static RE: LazyLock<Option<Regex>> = LazyLock::new(|| {
        Regex::new(r"(?i)(?:errno:?\s*-?|winerror\s*|os error\s*|code:\s*|\()(\d{2,5})\b").ok()
    });
    RE.as_ref()?
        .captures(text)
        .and_then(|c| c.get(1))
        .and_then(|m| m.as_str().parse().ok())
        .filter(|n| {
            matches!(
                n,
                13 | 22 | 48 | 49 | 61 | 98 | 99 | 111 | 10013 | 10048 | 10049 | 10061
            )
        })
}

fn port_in(text: &str) -> (Option<u16>, Option<IpAddr>, Option<String>) {
    for re in PORT_RES.iter() {
        if let Some(c) = re.captures(text) {
            let Some(port) = c.name("port").and_then(|m| m.as_str().parse::<u16>().ok()) else {
                continue;
            };
            let mut host = c.name("host").map(|m| m.as_str().to_string());
            let mut addr = c.name("addr").and_then(|m| {
                let s = m.as_str();
                match s {
                    "" => None,
                    "localhost" => {
                        host = Some("localhost".into());
                        "127.0.0.1".parse().ok()
                    }
                    _ => s.parse::<IpAddr>().ok(),
                }
            });
            if c.name("star").is_some() {
                // Redis prints `*:6379` for "every address".
                addr = "0.0.0.0".parse().ok();
            }
            if let Some(e) = c.name("erl") {
                addr = erlang_ip(e.as_str());
            }
            if host.as_deref() == Some("localhost") && addr.is_none() {
                addr = "127.0.0.1".parse().ok();
            }
            return (Some(port), addr, host);
        }
    }
    (None, None, None)
}

/// An Erlang address tuple's inside: `0,0,0,0` (IPv4) or eight 16-bit words (IPv6).
fn erlang_ip(s: &str) -> Option<IpAddr> {
    let v: Vec<u16> = s
        .split(',')
        .map(|x| x.trim().parse().ok())
        .collect::<Option<_>>()?;
    match v.len() {
        4 if v.iter().all(|&x| x <= 255) => Some(IpAddr::from([
            v[0] as u8, v[1] as u8, v[2] as u8, v[3] as u8,
        ])),
        8 => Some(IpAddr::from([
            v[0], v[1], v[2], v[3], v[4], v[5], v[6], v[7],
        ])),
        _ => None,
    }
}

/// Which call failed, from the words around the errno.
fn side_of(text: &str, errno: &str) -> &'static str {
    let l = text.to_ascii_lowercase();
    let connecty = l.contains("connect") || l.contains("dial ") || l.contains("dial:");
    if errno == "ECONNREFUSED" || (errno == "EADDRNOTAVAIL" && connecty && !l.contains("bind")) {
        "connect"
    } else if l.contains("bind") {
        "bind"
    } else if l.contains("listen") {
        "listen"
    } else {
        "bind"
    }
}

/// The platform the words give away, when no number did.
fn platform_hint(text: &str) -> Option<&'static str> {
    static WIN: LazyLock<Option<Regex>> = LazyLock::new(|| {
        Regex::new(r"(?i)\b[a-z]:\\|errno: -40\d\d|connectex:|0x0000274d|winerror|wsae").ok()
    });
    static MAC: LazyLock<Option<Regex>> = LazyLock::new(|| {
        Regex::new(r"(?i)on macos|airplay|your mac\b|darwin|can't assign requested address|^\(48\)|\n\(48\)").ok()
    });
    if WIN.as_ref().is_some_and(|r| r.is_match(text)) {
        Some("windows")
    } else if MAC.as_ref().is_some_and(|r| r.is_match(text)) {
        Some("macos")
    } else {
        None
    }
}

fn meaning(errno: &str, platform: &str, port: Option<u16>) -> (String, String) {
    match (errno, platform) {
        ("ECONNREFUSED", _) => (
            "ECONNREFUSED (111 on Linux, 61 on macOS, 10061 on Windows): connect() reached the host, and it answered the SYN with a reset — nothing listens on that address and port, the server listens on another address or family (localhost as ::1 vs 127.0.0.1), or a firewall rejects it".into(),
            "run `netkit explain --connect HOST:PORT` on the client's host: it makes the same connect and names the listener it finds (or why there is none)".into(),
        ),
        ("EACCES", p) if p != "windows" && port.is_some_and(|n| n >= 1024) => (
            format!(
                "EACCES (Permission denied) on port {}, which is NOT a privileged port (Linux reserves only ports below net.ipv4.ip_unprivileged_port_start, 1024 by default): something else forbids it — on Windows an excluded/reserved port range (Hyper-V, WSL, Docker, WinNAT), on Linux an SELinux or AppArmor port policy, or a seccomp/sandbox profile of the runtime",
                port.unwrap_or(0)
            ),
            "on Windows: `netsh int ipv4 show excludedportrange protocol=tcp` and pick a port outside them (or `net stop winnat && net start winnat`); on Linux: `ausearch -m avc` / `semanage port -l` (SELinux), `journalctl -k | grep apparmor`, and the container's seccomp profile".into(),
        ),
        ("EADDRINUSE", "windows") => (
            "WSAEADDRINUSE (10048): another socket already uses this address and port on that Windows host (BIND-RULES.md §5; Windows rules are not measured here)".into(),
            "find the owner with `netstat -ano | findstr :PORT` and stop it, or pick another port. Windows has no SO_REUSEPORT, and its SO_REUSEADDR allows port hijacking; servers should set SO_EXCLUSIVEADDRUSE".into(),
        ),
        ("EACCES", "windows") => (
            "WSAEACCES (10013) \"forbidden by its access permissions\": on Windows this usually means the port lies in an excluded/reserved range (Hyper-V, WSL, Docker, WinNAT) or another socket holds it with SO_EXCLUSIVEADDRUSE. Windows has no privileged ports below 1024 (BIND-RULES.md §5, not measured here)".into(),
            "check `netsh int ipv4 show excludedportrange protocol=tcp` and pick a port outside those ranges (or restart winnat: `net stop winnat && net start winnat`)".into(),
        ),
        ("EADDRNOTAVAIL", "windows") => (
            "WSAEADDRNOTAVAIL (10049): the address is not valid on that Windows host".into(),
            "bind 0.0.0.0 or an address shown by `ipconfig`".into(),
        ),
        ("EADDRINUSE", "macos") => (
            "EADDRINUSE (48 on macOS/BSD): the address and port are taken. BSD rules differ from Linux: with SO_REUSEADDR a specific address may be bound next to a wildcard listener, and SO_REUSEPORT allows full duplicates (BIND-RULES.md §5, not measured here)".into(),
            "find the owner with `lsof -nP -iTCP:PORT -sTCP:LISTEN` and stop it, or pick another port; set SO_REUSEADDR to restart over TIME_WAIT".into(),
        ),
        ("EADDRNOTAVAIL", "macos") => (
            "EADDRNOTAVAIL (49 on macOS/BSD): the address is not assigned to an interface there".into(),
            "bind 0.0.0.0 or an address shown by `ifconfig`".into(),
        ),
        ("EADDRINUSE", _) => (
            "EADDRINUSE (98 on Linux): a socket already holds an overlapping address on this port — a listener, a bound-only socket, TIME_WAIT/FIN_WAIT2 leftovers of an old server, an orphan connection, or an outgoing connection's source port (BIND-RULES.md §1)".into(),
            "run `netkit explain PORT` with the program's options to see which one and the fix that works here".into(),
        ),
        ("EADDRNOTAVAIL", _) => (
            "EADDRNOTAVAIL (99 on Linux): at bind(), the address is not assigned to this host (rule 15); at connect(), the same 4-tuple already exists or the ephemeral ports are exhausted (rules 12, 13)".into(),
            "bind 0.0.0.0 / :: or an address from `ip -br addr`; for connect(), stop pinning the source port or widen ip_local_port_range".into(),
        ),
        ("EACCES", _) => (
            "EACCES (13, Permission denied): on Linux, a port below net.ipv4.ip_unprivileged_port_start (1024) needs root or CAP_NET_BIND_SERVICE; this check comes before the conflict check, so it can hide an EADDRINUSE (BIND-RULES.md rules 14, 14a)".into(),
            "use a port >= 1024, or `setcap cap_net_bind_service=+ep PROGRAM`, or lower ip_unprivileged_port_start, or use socket activation or a proxy".into(),
        ),
        _ => (
            "EINVAL (22, Invalid argument): the socket is already bound, or the address does not fit the socket (IPv6 link-local without a scope id, IPv4-mapped on an IPV6_V6ONLY socket; BIND-RULES.md rule 16)".into(),
            "create a new socket per bind(); add the interface to link-local addresses (`fe80::1%eth0`)".into(),
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn node_message_carries_port_and_dual_stack_address() {
        let d = decode("Error: listen EADDRINUSE: address already in use :::3000").unwrap();
        assert_eq!(
            (d.errno, d.source, d.port),
            ("EADDRINUSE", "node", Some(3000))
        );
        assert_eq!(d.addr, Some("::".parse().unwrap()));
    }

    #[test]
    fn unrelated_text_is_not_decoded() {
        assert!(decode("everything is fine").is_none());
    }
}
