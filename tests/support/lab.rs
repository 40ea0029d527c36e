//! The lab tests' pieces: a spawned `netkit run …` (or `netkit load`) with its JSON status
//! lines collected as they come, killed on drop; the book's zen question.

use std::io::{BufRead, BufReader, Write};
use std::net::{SocketAddr, TcpStream};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde::Deserialize;

use super::cli::netkit_bin;
use super::listeners::recv_until;

/// One status line (only the fields the tests look at; the rest are ignored). Addresses
/// arrive split (`local_addr` + `local_port`, `peer_addr` + `peer_port`) and are joined here:
/// `addr` is the listening event's local address.
#[derive(Debug, Clone, Deserialize)]
#[serde(from = "RawLine")]
pub struct Line {
    pub event: String,
    pub addr: Option<SocketAddr>,
    pub peer: Option<SocketAddr>,
    pub message: Option<String>,
    pub reason: Option<String>,
    pub error: Option<String>,
    pub errno: Option<i32>,
    pub errno_name: Option<String>,
    pub options: Option<Options>,
    pub failures: Option<u64>,
    pub in_flight: Option<usize>,
    pub aborted: Option<usize>,
    /// The whole line.
    pub raw: serde_json::Value,
}

#[derive(Deserialize)]
struct RawLine(serde_json::Value);

fn join(v: &serde_json::Value, role: &str) -> Option<SocketAddr> {
    let ip: std::net::IpAddr = v.get(format!("{role}_addr"))?.as_str()?.parse().ok()?;
    let port = u16::try_from(v.get(format!("{role}_port"))?.as_u64()?).ok()?;
    Some(SocketAddr::new(ip, port))
}

impl From<RawLine> for Line {
    fn from(RawLine(v): RawLine) -> Line {
        let s = |k: &str| v.get(k).and_then(|x| x.as_str()).map(str::to_string);
        let n = |k: &str| v.get(k).and_then(serde_json::Value::as_u64);
        Line {
            event: s("event").unwrap_or_default(),
            // The proxy's events still carry "addr": "IP:PORT".
            addr: join(&v, "local").or_else(|| s("addr").and_then(|a| a.parse().ok())),
            peer: join(&v, "peer"),
            message: s("message"),
            reason: s("reason"),
            error: s("error"),
            errno: n("errno").map(|x| x as i32),
            errno_name: s("errno_name"),
            options: v
                .get("options")
                .and_then(|o| serde_json::from_value(o.clone()).ok()),
            failures: n("failures"),
            in_flight: n("in_flight").map(|x| x as usize),
            aborted: n("aborted").map(|x| x as usize),
            raw: v,
        }
    }
}

/// The `options` object (read back from the kernel).
#[derive(Debug, Clone, Deserialize)]
pub struct Options {
    pub reuseaddr: Option<bool>,
    pub reuseport: Option<bool>,
    pub keepalive: Option<bool>,
    pub keepidle: Option<u32>,
    pub keepintvl: Option<u32>,
    pub keepcnt: Option<u32>,
    pub sndbuf: Option<usize>,
    pub rcvbuf: Option<usize>,
    pub nodelay: Option<bool>,
    pub v6only: Option<bool>,
    pub sndbuf_asked: Option<u32>,
    pub rcvbuf_asked: Option<u32>,
}

/// A running `netkit` with `--json`, its stdout lines parsed as they come. SIGKILLed on drop.
pub struct Proc {
    pub child: Child,
    lines: Arc<Mutex<Vec<Line>>>,
    raw: Arc<Mutex<Vec<String>>>,
}

impl Proc {
    /// Starts `netkit --json ARGS`; `wrap` (e.g. `sh -c 'ulimit -n 64; exec "$0" "$@"'`) may
    /// prefix it.
    pub fn spawn(args: &[&str]) -> Proc {
        Self::spawn_cmd(Command::new(netkit_bin()), args)
    }

    /// Starts `cmd ARGS --json`.
    pub fn spawn_cmd(mut cmd: Command, args: &[&str]) -> Proc {
        cmd.args(args)
            .arg("--json")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = cmd.spawn().expect("spawn netkit");
        let lines = Arc::new(Mutex::new(Vec::new()));
        let raw = Arc::new(Mutex::new(Vec::new()));
        let out = child.stdout.take().expect("stdout");
        let (l2, r2) = (lines.clone(), raw.clone());
        std::thread::spawn(move || {
            for line in BufReader::new(out).lines() {
                let Ok(line) = line else { break };
                if let Ok(parsed) = serde_json::from_str::<Line>(&line) {
                    l2.lock().unwrap().push(parsed);
                }
                r2.lock().unwrap().push(line);
            }
        });
        let err = child.stderr.take().expect("stderr");
        let r3 = raw.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(err).lines() {
                let Ok(line) = line else { break };
                r3.lock().unwrap().push(format!("stderr: {line}"));
            }
        });
        Proc { child, lines, raw }
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Status lines so far.
    pub fn lines(&self) -> Vec<Line> {
        self.lines.lock().unwrap().clone()
    }

    /// Every line (stdout and `stderr: …`), for failure messages.
    pub fn raw(&self) -> String {
        self.raw.lock().unwrap().join("\n")
    }

    /// Waits up to `d` for a line matching `f`.
    pub fn wait_line(&self, d: Duration, f: impl Fn(&Line) -> bool) -> Option<Line> {
        super::poll(d, || self.lines().into_iter().find(|l| f(l)))
    }

    /// Number of lines with this event.
    pub fn count(&self, event: &str) -> usize {
        self.lines().iter().filter(|l| l.event == event).count()
    }

    /// The `listening` line's address (panics with the output when it never comes).
    pub fn listening(&self) -> SocketAddr {
        match self.wait_line(Duration::from_secs(10), |l| l.event == "listening") {
            Some(l) => l.addr.expect("addr"),
            None => panic!("no listening line:\n{}", self.raw()),
        }
    }

    /// Sends a signal.
    pub fn signal(&self, sig: i32) {
        // SAFETY: kill(2) on our own child's pid.
        unsafe { libc::kill(self.child.id() as i32, sig) };
    }

    /// Waits up to `d` for exit; returns the exit code (None: still running or killed).
    pub fn wait_exit(&mut self, d: Duration) -> Option<std::process::ExitStatus> {
        super::proc::wait_exit(&mut self.child, d)
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Starts a server on 127.0.0.1 port 0 with extra args and waits for its address.
pub fn server(args: &[&str]) -> (Proc, SocketAddr) {
    let mut all = vec!["run", "server", "127.0.0.1", "-p", "0"];
    all.extend_from_slice(args);
    let p = Proc::spawn(&all);
    let a = p.listening();
    (p, a)
}

/// Sends a zen question and returns the answer (empty on timeout).
pub fn ask(s: &mut TcpStream, q: &str) -> String {
    s.write_all(q.as_bytes()).unwrap();
    String::from_utf8_lossy(&recv_until(s, b'.')).into_owned()
}
