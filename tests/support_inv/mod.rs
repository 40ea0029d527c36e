//! Helpers for the inventory integration tests (who-owns, listening, timewait, inspect):
//! running the binary, the JSON schema as test-side serde structs, python3 socket holders
//! killed by a Drop guard, a TIME_WAIT maker, and a parser for `ss -o` timers.
#![allow(dead_code)]

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::os::unix::process::CommandExt;
use std::process::{Child, ChildStdin, Command, Output, Stdio};
use std::time::{Duration, Instant};

use serde::Deserialize;
use serde::de::DeserializeOwned;

/// The `netkit` binary under test.
pub fn netkit_cmd() -> Command {
    Command::new(env!("CARGO_BIN_EXE_netkit"))
}

/// Runs netkit with `args` and returns its output.
pub fn netkit(args: &[&str]) -> Output {
    netkit_cmd().args(args).output().expect("run netkit")
}

/// Runs netkit with `args` plus `--json`, decodes stdout as `T`; returns it with the exit code.
pub fn netkit_json<T: DeserializeOwned>(args: &[&str]) -> (T, i32) {
    let mut all: Vec<&str> = args.to_vec();
    all.push("--json");
    let out = netkit(&all);
    decode(&out, &all)
}

/// Decodes the stdout of a `--json` run.
pub fn decode<T: DeserializeOwned>(out: &Output, args: &[&str]) -> (T, i32) {
    let code = out.status.code().expect("exit code");
    let v = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "netkit {args:?} printed no valid JSON ({e}); exit {code}\nstdout: {}\nstderr: {}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )
    });
    (v, code)
}

/// `who-owns`, `listening`, `inspect`, `timewait --all` JSON.
#[derive(Debug, Deserialize)]
pub struct SocketsJson {
    pub command: String,
    pub port: Option<u16>,
    pub sockets: Vec<SockJson>,
    pub notes: Vec<String>,
}

/// One socket in JSON.
#[derive(Debug, Clone, Deserialize)]
pub struct SockJson {
    pub proto: String,
    pub family: String,
    pub local_addr: String,
    pub local_port: u16,
    pub remote_addr: Option<String>,
    pub remote_port: Option<u16>,
    pub state: String,
    pub uid: Option<u32>,
    pub user: Option<String>,
    pub inode: u64,
    pub owners: Vec<OwnerJson>,
    pub expires_ms: Option<u64>,
    pub listener: Option<ListenerJson>,
}

impl SocketsJson {
    /// Keeps the sockets whose local address is `addr`: other processes on this machine may
    /// hold the same port number on other loopback addresses (another test's 127.0.0.5:P
    /// client, say), and exact counts are about ours.
    pub fn only(mut self, addr: &str) -> SocketsJson {
        self.sockets.retain(|s| s.local_addr == addr);
        self
    }
}

impl SockJson {
    /// The PIDs of the owners.
    pub fn pids(&self) -> Vec<u32> {
        self.owners.iter().map(|o| o.pid).collect()
    }
}

/// An owner in JSON.
#[derive(Debug, Clone, Deserialize)]
pub struct OwnerJson {
    pub pid: u32,
    pub command: String,
    pub cmdline: Option<String>,
}

/// A listener reference in JSON: its socket, user and owning process (null when unseen).
#[derive(Debug, Clone, Deserialize)]
pub struct ListenerJson {
    pub local_addr: String,
    pub local_port: u16,
    pub user: Option<String>,
    pub owner: Option<OwnerJson>,
}

impl ListenerJson {
    /// The owner's PID.
    pub fn pid(&self) -> Option<u32> {
        self.owner.as_ref().map(|o| o.pid)
    }
}

/// `timewait` summary JSON.
#[derive(Debug, Deserialize)]
pub struct TimewaitJson {
    pub command: String,
    pub total: usize,
    pub ports: Vec<PortJson>,
    pub notes: Vec<String>,
}

/// One `ports` entry.
#[derive(Debug, Deserialize)]
pub struct PortJson {
    pub local_addr: String,
    pub local_port: u16,
    pub count: usize,
    pub min_expires_ms: u64,
    pub max_expires_ms: u64,
    pub listener: Option<ListenerJson>,
}

/// Checks that every key is present in a JSON object, even where the value is null (serde
/// treats a missing `Option` field as `None`, so presence is checked here).
pub fn assert_keys(v: &serde_json::Value, keys: &[&str]) {
    let obj = v.as_object().expect("a JSON object");
    for k in keys {
        assert!(obj.contains_key(*k), "key {k:?} missing in {v}");
    }
}

/// The keys every socket object carries (README schema).
pub const SOCKET_KEYS: &[&str] = &[
    "proto",
    "family",
    "local_addr",
    "local_port",
    "remote_addr",
    "remote_port",
    "state",
    "uid",
    "user",
    "inode",
    "owners",
    "expires_ms",
];

/// True when running as root.
pub fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions.
    unsafe { libc::geteuid() == 0 }
}

/// True when `prog` runs (`prog --version` or `-V` exits 0).
pub fn have(prog: &str) -> bool {
    ["--version", "-V"].iter().any(|flag| {
        Command::new(prog)
            .arg(flag)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
    })
}

/// Polls `f` every 20 ms until it returns `Some` or `limit` passes.
pub fn poll<T>(limit: Duration, mut f: impl FnMut() -> Option<T>) -> Option<T> {
    let end = Instant::now() + limit;
    loop {
        if let Some(v) = f() {
            return Some(v);
        }
        if Instant::now() >= end {
            return None;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// A port number nobody holds right now in TCP or UDP, IPv4 or IPv6 (checked by binding the
/// wildcards, then released; good enough for "free port" checks within one test).
pub fn free_port() -> u16 {
    for _ in 0..100 {
        let port = TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("bind 127.0.0.1:0")
            .port();
        let free = TcpListener::bind(("0.0.0.0", port)).is_ok()
            && TcpListener::bind(("::", port)).is_ok()
            && std::net::UdpSocket::bind(("0.0.0.0", port)).is_ok()
            && std::net::UdpSocket::bind(("::", port)).is_ok();
        if free {
            return port;
        }
    }
    panic!("no port free in both TCP and UDP after 100 tries");
}

/// Makes one server-side TIME_WAIT on `listener`'s address: connect, accept, the server
/// closes first, the client sees EOF and closes. Returns the client's local address.
pub fn make_time_wait(listener: &TcpListener) -> SocketAddr {
    let addr = listener.local_addr().expect("listener address");
    let mut client = TcpStream::connect(addr).expect("connect");
    let (server, _) = listener.accept().expect("accept");
    drop(server);
    client
        .set_read_timeout(Some(Duration::from_secs(5)))
        .expect("timeout");
    let mut buf = [0u8; 1];
    assert_eq!(client.read(&mut buf).expect("read EOF"), 0);
    let local = client.local_addr().expect("client address");
    drop(client);
    local
}

/// Which Python socket holder to start.
#[derive(Debug, Clone, Copy)]
pub enum PyHolder {
    /// A TCP listener on 127.0.0.1:0.
    Listen,
    /// A TCP listener on 127.0.0.1:0 shared with a child forked after listen().
    ForkedListen,
    /// A TCP socket bound to 127.0.0.1:0, never listening.
    BoundOnly,
    /// A UDP socket bound to 127.0.0.1:0.
    Udp,
}

const PY_HOLDER: &str = r#"
import os, socket, sys
kind = sys.argv[1]
if kind == "udp":
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
else:
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
s.bind(("127.0.0.1", 0))
if kind in ("listen", "fork"):
    s.listen(16)
pids = [os.getpid()]
if kind == "fork":
    child = os.fork()
    if child == 0:
        sys.stdin.read()
        os._exit(0)
    pids.append(child)
print("ready", s.getsockname()[1], *pids, flush=True)
sys.stdin.read()
"#;

/// A python3 process (and any child it forked) holding a socket; killed on drop.
pub struct Py {
    child: Child,
    stdin: Option<ChildStdin>,
    /// The port it holds.
    pub port: u16,
    /// Its PID, then the forked child's.
    pub pids: Vec<u32>,
}

impl Py {
    /// Starts a holder; `as_nobody` runs it under `setpriv` as uid/gid 65534 (root only).
    /// `None`, with a printed reason, when python3 (or setpriv) is not installed.
    pub fn start(kind: PyHolder, as_nobody: bool) -> Option<Py> {
        if !have("python3") {
            eprintln!("skipped: python3 not installed (it holds the test's sockets)");
            return None;
        }
        if as_nobody && !have("setpriv") {
            eprintln!("skipped: setpriv (util-linux) not installed");
            return None;
        }
        let arg = match kind {
            PyHolder::Listen => "listen",
            PyHolder::ForkedListen => "fork",
            PyHolder::BoundOnly => "bound",
            PyHolder::Udp => "udp",
        };
        let mut cmd = if as_nobody {
            let mut c = Command::new("setpriv");
            c.args(["--reuid=65534", "--regid=65534", "--clear-groups"]);
            // A python3 found through root's PATH (pyenv under /root) is not executable by
            // nobody; the system one is.
            c.arg(if std::path::Path::new("/usr/bin/python3").exists() {
                "/usr/bin/python3"
            } else {
                "python3"
            });
            c
        } else {
            Command::new("python3")
        };
        cmd.args(["-c", PY_HOLDER, arg])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .process_group(0);
        let mut child = cmd.spawn().expect("start python3");
        let stdin = child.stdin.take();
        let mut line = String::new();
        BufReader::new(child.stdout.take().expect("stdout"))
            .read_line(&mut line)
            .expect("read ready line");
        let mut it = line.split_whitespace();
        if it.next() != Some("ready") {
            let mut err = String::new();
            let _ = child.kill();
            if let Some(mut e) = child.stderr.take() {
                let _ = e.read_to_string(&mut err);
            }
            let _ = child.wait();
            panic!("python holder did not start: {line:?} {err}");
        }
        let port = it.next().and_then(|p| p.parse().ok()).expect("port");
        let pids = it.filter_map(|p| p.parse().ok()).collect();
        Some(Py {
            child,
            stdin,
            port,
            pids,
        })
    }
}

impl Drop for Py {
    fn drop(&mut self) {
        if let Some(mut s) = self.stdin.take() {
            let _ = s.flush();
        }
        let pgid = self.child.id() as i32;
        // SAFETY: kill(2) on the process group this guard created; no memory is involved.
        unsafe { libc::kill(-pgid, libc::SIGKILL) };
        let _ = self.child.wait();
    }
}

/// Parses the time of an `ss -o` timer field as iproute2 6.1 prints it (BIND-RULES.md §4):
/// `Xmin`, `Ysec`, `S.mmmms` (S.mmm **seconds**, a formatting quirk), `NNNms`, empty = 0.
pub fn ss_timer_ms(t: &str) -> Option<u64> {
    let mut rest = t.trim();
    let mut ms = 0u64;
    if let Some(i) = rest.find("min") {
        ms += rest[..i].parse::<u64>().ok()? * 60_000;
        rest = &rest[i + 3..];
    }
    if rest.is_empty() {
        return Some(ms);
    }
    if let Some(s) = rest.strip_suffix("sec") {
        return Some(ms + s.parse::<u64>().ok()? * 1000);
    }
    let body = rest.strip_suffix("ms")?;
    match body.split_once('.') {
        Some((s, frac)) if frac.len() == 3 => {
            Some(ms + s.parse::<u64>().ok()? * 1000 + frac.parse::<u64>().ok()?)
        }
        Some(_) => None,
        None => Some(ms + body.parse::<u64>().ok()?),
    }
}

/// The TIME_WAIT timers `ss -tan -o state time-wait` shows for local `addr:port`, in ms.
pub fn ss_timewait_ms(addr: &str, port: u16) -> Vec<u64> {
    let out = Command::new("ss")
        .args(["-tan", "-o", "state", "time-wait"])
        .arg(format!("src {addr}:{port}"))
        .output()
        .expect("run ss");
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| {
            let i = l.find("timer:(timewait,")?;
            let rest = &l[i + "timer:(timewait,".len()..];
            ss_timer_ms(&rest[..rest.find(',')?])
        })
        .collect()
}
