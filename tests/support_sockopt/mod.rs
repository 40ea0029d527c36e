//! Shared helpers of the sockopt --set and audit tests: the python3 target server (the inside
//! view, target.py), netkit runs, `ss` readings (the outside view) and cross-user helpers.
//! Every `--json` output these helpers decode is validated against its docs/schema file
//! (the test file declares `mod support_schema;`).
#![allow(dead_code)]

use std::io::{BufRead, BufReader, Write};
use std::os::unix::process::CommandExt;
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

/// A python3 every user can run (pyenv shims under /root are not readable by `nobody`).
pub fn python() -> &'static str {
    if std::path::Path::new("/usr/bin/python3").exists() {
        "/usr/bin/python3"
    } else {
        "python3"
    }
}

/// True when running as root.
pub fn is_root() -> bool {
    // SAFETY: geteuid cannot fail.
    unsafe { libc::geteuid() == 0 }
}

/// True when `setpriv` can run a command as `nobody` here (root and setpriv installed).
pub fn can_setpriv() -> bool {
    is_root()
        && Command::new("setpriv")
            .args(["--reuid=65534", "--regid=65534", "--clear-groups", "true"])
            .status()
            .is_ok_and(|s| s.success())
}

/// A child process with line-wise stdout; its process group is killed on drop.
pub struct Proc {
    pub child: Child,
    stdin: Option<ChildStdin>,
    lines: mpsc::Receiver<String>,
}

impl Proc {
    /// Spawns `cmd` with piped stdin/stdout in its own process group.
    pub fn spawn(mut cmd: Command) -> Proc {
        cmd.stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .process_group(0);
        let mut child = cmd.spawn().expect("spawn");
        let out = child.stdout.take().unwrap();
        let stdin = child.stdin.take();
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            for l in BufReader::new(out).lines().map_while(Result::ok) {
                if tx.send(l).is_err() {
                    break;
                }
            }
        });
        Proc {
            child,
            stdin,
            lines: rx,
        }
    }

    /// The next stdout line within 10 s.
    pub fn line(&self) -> String {
        self.lines
            .recv_timeout(Duration::from_secs(10))
            .expect("a line from the child")
    }

    /// Writes one line to its stdin.
    pub fn say(&mut self, l: &str) {
        let w = self.stdin.as_mut().unwrap();
        writeln!(w, "{l}").unwrap();
        w.flush().unwrap();
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        // SAFETY: signalling our own child's process group.
        unsafe { libc::kill(-(self.child.id() as i32), libc::SIGKILL) };
        let _ = self.child.wait();
    }
}

/// The python3 target server of target.py: port, pid and the inside view on demand.
pub struct Target {
    pub proc: Proc,
    pub port: u16,
}

impl Target {
    pub fn start(args: &[&str]) -> Target {
        Target::start_with(Command::new(python()), args)
    }

    /// Starts it inside network namespace `ns`.
    pub fn start_in(ns: &Netns, args: &[&str]) -> Target {
        let mut cmd = Command::new("ip");
        cmd.args(["netns", "exec", &ns.0, python()]);
        Target::start_with(cmd, args)
    }

    fn start_with(mut cmd: Command, args: &[&str]) -> Target {
        cmd.arg(format!(
            "{}/tests/support_sockopt/target.py",
            env!("CARGO_MANIFEST_DIR")
        ))
        .args(args);
        let proc = Proc::spawn(cmd);
        let l = proc.line();
        let w: Vec<&str> = l.split_whitespace().collect();
        assert_eq!(w.first(), Some(&"READY"), "{l}");
        Target {
            port: w[1].parse().unwrap(),
            proc,
        }
    }

    pub fn pid(&self) -> u32 {
        self.proc.pid()
    }

    /// What the target's own getsockopt calls say.
    pub fn dump(&mut self) -> serde_json::Value {
        self.proc.say("dump");
        serde_json::from_str(&self.proc.line()).unwrap()
    }

    /// The inside view of the accepted connection from `peer_port`, waiting until it exists.
    pub fn conn(&mut self, peer_port: u16) -> serde_json::Value {
        for _ in 0..100 {
            let d = self.dump();
            if let Some(c) = d["conns"]
                .as_array()
                .unwrap()
                .iter()
                .find(|c| c["peer_port"] == peer_port)
            {
                return c.clone();
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        panic!("target never accepted the connection from {peer_port}");
    }
}

/// Runs netkit; returns (exit code, stdout, stderr).
pub fn netkit(args: &[&str]) -> (i32, String, String) {
    let o = Command::new(env!("CARGO_BIN_EXE_netkit"))
        .args(args)
        .stdin(Stdio::null())
        .output()
        .expect("run netkit");
    (
        o.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&o.stdout).into_owned(),
        String::from_utf8_lossy(&o.stderr).into_owned(),
    )
}

/// Runs netkit with `--json` and decodes stdout; returns (exit code, value, stderr).
pub fn netkit_json(args: &[&str]) -> (i32, serde_json::Value, String) {
    let mut a = args.to_vec();
    a.push("--json");
    let (code, out, err) = netkit(&a);
    let v = serde_json::from_str(&out)
        .unwrap_or_else(|e| panic!("bad JSON ({e}): {out:?}\nstderr: {err}"));
    crate::support_schema::validate(args[0], &v);
    (code, v, err)
}

/// `ss -tinom` for the connection whose local port is `sport` and peer port is `dport`:
/// the outside view, as one line.
pub fn ss_conn(sport: u16, dport: u16) -> String {
    let o = Command::new("ss")
        .args(["-tinmoH", "state", "established"])
        .arg(format!("( sport = :{sport} and dport = :{dport} )"))
        .output()
        .expect("run ss");
    String::from_utf8_lossy(&o.stdout).replace('\n', " ")
}

/// Seconds left on the `timer:(keepalive,T,N)` of an `ss -o` line (ss's formats: `1min14sec`,
/// `29sec`, `8.980ms` = 8.98 s in iproute2 6.1, `676ms`).
pub fn keepalive_timer_s(ss: &str) -> Option<f64> {
    let t = ss.split("timer:(keepalive,").nth(1)?.split(',').next()?;
    let mut secs = 0.0;
    let mut rest = t;
    if let Some((m, r)) = rest.split_once("min") {
        secs += m.parse::<f64>().ok()? * 60.0;
        rest = r;
    }
    if let Some(s) = rest.strip_suffix("sec") {
        secs += s.parse::<f64>().ok()?;
    } else if let Some(ms) = rest.strip_suffix("ms") {
        let v: f64 = ms.parse().ok()?;
        secs += if ms.contains('.') { v } else { v / 1000.0 };
    }
    Some(secs)
}

/// Unanswered keepalive probes: the third field of `timer:(keepalive,T,N)`.
pub fn keepalive_probes(ss: &str) -> Option<u32> {
    let t = ss.split("timer:(keepalive,").nth(1)?.split(')').next()?;
    t.split(',').nth(1)?.parse().ok()
}

/// The `skmem:(...,tbN,...)` / `rbN` values of an `ss -m` line: (sndbuf, rcvbuf).
pub fn skmem_bufs(ss: &str) -> (Option<u64>, Option<u64>) {
    let sk = ss.split("skmem:(").nth(1).and_then(|s| s.split(')').next());
    let field =
        |p: &str| sk.and_then(|s| s.split(',').find_map(|f| f.strip_prefix(p)?.parse().ok()));
    (field("tb"), field("rb"))
}

/// Starts peer.py MODE ARGS, as `nobody` when `as_nobody`.
pub fn peer(mode: &str, args: &[&str], as_nobody: bool) -> Proc {
    let mut cmd = if as_nobody {
        let mut c = Command::new("setpriv");
        c.args(["--reuid=65534", "--regid=65534", "--clear-groups", python()]);
        c
    } else {
        Command::new(python())
    };
    cmd.arg(format!(
        "{}/tests/support_sockopt/peer.py",
        env!("CARGO_MANIFEST_DIR")
    ))
    .arg(mode)
    .args(args);
    Proc::spawn(cmd)
}

/// `netkit audit --json` (optionally inside network namespace `netns`): exit code and report.
pub fn audit(netns: Option<&str>, extra: &[&str]) -> (i32, serde_json::Value) {
    let mut cmd = match netns {
        Some(ns) => {
            let mut c = Command::new("ip");
            c.args(["netns", "exec", ns, env!("CARGO_BIN_EXE_netkit")]);
            c
        }
        None => Command::new(env!("CARGO_BIN_EXE_netkit")),
    };
    let o = cmd
        .args(["audit", "--json"])
        .args(extra)
        .stdin(Stdio::null())
        .output()
        .expect("run netkit audit");
    let out = String::from_utf8_lossy(&o.stdout);
    let v = serde_json::from_str(&out).unwrap_or_else(|e| {
        panic!(
            "bad audit JSON ({e}): {out:?} stderr {}",
            String::from_utf8_lossy(&o.stderr)
        )
    });
    crate::support_schema::validate("audit", &v);
    (o.status.code().unwrap_or(-1), v)
}

/// The findings of `kind` whose evidence has a socket on local `port`.
pub fn findings_on(report: &serde_json::Value, kind: &str, port: u16) -> Vec<serde_json::Value> {
    report["findings"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|f| f["kind"] == kind)
        .filter(|f| {
            f["evidence"]
                .as_array()
                .unwrap()
                .iter()
                .any(|s| s["local_port"] == port)
        })
        .cloned()
        .collect()
}

/// A private network namespace named `nk-sockopt-<tag>-<pid>` with `lo` up, deleted on drop.
pub struct Netns(pub String);

impl Netns {
    /// `None` (with the reason printed) where namespaces cannot be made (not root, no `ip`).
    pub fn new(tag: &str) -> Option<Netns> {
        if !is_root() {
            eprintln!("skipped: creating a network namespace needs root");
            return None;
        }
        let name = format!("nk-sockopt-{tag}-{}", std::process::id());
        let ok = Command::new("ip")
            .args(["netns", "add", &name])
            .status()
            .is_ok_and(|s| s.success());
        if !ok {
            eprintln!("skipped: `ip netns add` failed");
            return None;
        }
        let ns = Netns(name);
        ns.exec(&["ip", "link", "set", "lo", "up"]);
        Some(ns)
    }

    /// Runs a command inside; panics when it fails.
    pub fn exec(&self, args: &[&str]) {
        let st = Command::new("ip")
            .args(["netns", "exec", &self.0])
            .args(args)
            .status()
            .unwrap();
        assert!(st.success(), "{args:?} in {}", self.0);
    }

    /// `ss -tnoH state all ( sport = :PORT )` inside the namespace.
    pub fn ss(&self, port: u16) -> String {
        let o = Command::new("ip")
            .args(["netns", "exec", &self.0, "ss", "-tnoH", "state", "all"])
            .arg(format!("( sport = :{port} )"))
            .output()
            .unwrap();
        String::from_utf8_lossy(&o.stdout).into_owned()
    }

    /// peer.py inside the namespace.
    pub fn peer(&self, mode: &str, args: &[&str]) -> Proc {
        let mut cmd = Command::new("ip");
        cmd.args(["netns", "exec", &self.0, python()])
            .arg(format!(
                "{}/tests/support_sockopt/peer.py",
                env!("CARGO_MANIFEST_DIR")
            ))
            .arg(mode)
            .args(args);
        Proc::spawn(cmd)
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        let _ = Command::new("ip").args(["netns", "del", &self.0]).status();
    }
}
