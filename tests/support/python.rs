//! python3 processes that hold sockets for the tests: the situations of `py/helper.py`
//! ([`Helper`]) and the small inline holders of [`Py`]; both run in their own process group
//! (see [`GroupChild`]) and may run as `nobody` (uid/gid 65534, through `setpriv`).
//! The other scripts in `py/` (target.py, peer.py) are driven from [`super::sockopt`].

use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

use super::have;
use super::proc::GroupChild;

/// A python3 every user can run (pyenv shims under /root are not readable by `nobody`).
pub fn python() -> &'static str {
    if std::path::Path::new("/usr/bin/python3").exists() {
        "/usr/bin/python3"
    } else {
        "python3"
    }
}

/// `python3`, or `setpriv --reuid=65534 --regid=65534 --clear-groups python3` when
/// `as_nobody` (root only); arguments follow.
pub fn python_cmd(as_nobody: bool) -> Command {
    if as_nobody {
        let mut c = Command::new("setpriv");
        c.args(["--reuid=65534", "--regid=65534", "--clear-groups", python()]);
        c
    } else {
        Command::new(python())
    }
}

/// The path of a script in tests/support/py/ (`"helper.py"`, `"target.py"`, `"peer.py"`).
pub fn script(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/support/py")
        .join(name)
}

/// The path of helper.py, as a string (for argument lists).
pub fn helper_py() -> String {
    script("helper.py").display().to_string()
}

/// A running `helper.py MODE ARGS...`; its whole process group is killed on drop.
pub struct Helper {
    pub proc: GroupChild,
    /// The words after READY.
    pub ready: Vec<String>,
}

impl Helper {
    /// Starts `helper.py MODE ARGS...`, optionally as uid 65534, and waits for READY.
    pub fn start(mode: &str, args: &[&str], as_nobody: bool) -> Helper {
        let mut cmd = python_cmd(as_nobody);
        cmd.arg(helper_py()).arg(mode).args(args);
        let proc = GroupChild::spawn(cmd);
        let l = proc
            .line_within(Duration::from_secs(10))
            .expect("helper READY line");
        let mut w = l.split_whitespace();
        assert_eq!(w.next(), Some("READY"), "helper said {l:?}");
        let ready = w.map(str::to_string).collect();
        Helper { proc, ready }
    }

    /// The port from the READY line.
    pub fn port(&self) -> u16 {
        self.ready[0].parse().unwrap()
    }

    /// The helper's pid.
    pub fn pid(&self) -> u32 {
        self.proc.pid()
    }

    /// The next output line, within `t`.
    pub fn line(&self, t: Duration) -> Option<String> {
        self.proc.line_within(t)
    }
}

/// Which inline Python socket holder [`Py`] starts.
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

/// A python3 process (and any child it forked) holding one socket; killed on drop.
pub struct Py {
    proc: GroupChild,
    /// The port it holds.
    pub port: u16,
    /// Its PID, then the forked child's.
    pub pids: Vec<u32>,
}

impl Py {
    /// Starts a holder; `as_nobody` runs it under `setpriv` as uid/gid 65534 (root only).
    /// `None`, with a printed reason, when python3 (or setpriv) is not installed.
    pub fn start(kind: PyHolder, as_nobody: bool) -> Option<Py> {
        if !have(python()) {
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
        let mut cmd = python_cmd(as_nobody);
        cmd.args(["-c", PY_HOLDER, arg]);
        let proc = GroupChild::spawn(cmd);
        let line = proc
            .line_within(Duration::from_secs(30))
            .unwrap_or_default();
        let mut it = line.split_whitespace();
        assert_eq!(
            it.next(),
            Some("ready"),
            "python holder did not start (its stderr is above): {line:?}"
        );
        let port = it.next().and_then(|p| p.parse().ok()).expect("port");
        let pids = it.filter_map(|p| p.parse().ok()).collect();
        Some(Py { proc, port, pids })
    }
}
