//! Shared helpers of the explain/kill/sockopt/free-port/wait-free tests: python3 situations
//! from helper.py (killed with their process group on drop), netkit runs, and the test-side
//! JSON types.
#![allow(dead_code)]

use std::io::{BufRead, BufReader};
use std::os::unix::process::CommandExt;
use std::process::{Child, ChildStdout, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use serde::Deserialize;

/// The helper script.
pub fn helper_py() -> String {
    format!(
        "{}/tests/support_explain/helper.py",
        env!("CARGO_MANIFEST_DIR")
    )
}

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

/// A running helper; its whole process group is killed on drop.
pub struct Helper {
    pub child: Child,
    lines: mpsc::Receiver<String>,
    /// The words after READY.
    pub ready: Vec<String>,
}

impl Helper {
    /// Starts `helper.py MODE ARGS...`, optionally as uid 65534, and waits for READY.
    pub fn start(mode: &str, args: &[&str], as_nobody: bool) -> Helper {
        let mut cmd = if as_nobody {
            let mut c = Command::new("setpriv");
            c.args(["--reuid=65534", "--regid=65534", "--clear-groups", python()]);
            c
        } else {
            Command::new(python())
        };
        cmd.arg(helper_py()).arg(mode).args(args);
        cmd.stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit());
        cmd.process_group(0);
        let mut child = cmd.spawn().expect("spawn python3 helper");
        let out: ChildStdout = child.stdout.take().unwrap();
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            for l in BufReader::new(out).lines() {
                let Ok(l) = l else { break };
                if tx.send(l).is_err() {
                    break;
                }
            }
        });
        let mut h = Helper {
            child,
            lines: rx,
            ready: Vec::new(),
        };
        let l = h.line(Duration::from_secs(10)).expect("helper READY line");
        let mut w = l.split_whitespace();
        assert_eq!(w.next(), Some("READY"), "helper said {l:?}");
        h.ready = w.map(str::to_string).collect();
        h
    }

    /// The port from the READY line.
    pub fn port(&self) -> u16 {
        self.ready[0].parse().unwrap()
    }

    /// The helper's pid.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// The next output line, within `t`.
    pub fn line(&self, t: Duration) -> Option<String> {
        self.lines.recv_timeout(t).ok()
    }

    /// Kills the group and reaps the helper.
    pub fn kill(&mut self, sig: i32) {
        // SAFETY: signalling the helper's own process group.
        unsafe { libc::kill(-(self.child.id() as i32), sig) };
    }
}

impl Drop for Helper {
    fn drop(&mut self) {
        self.kill(libc::SIGKILL);
        let _ = self.child.wait();
    }
}

/// A TCP port that is free on IPv4 and IPv6 right now: the kernel picks it for a dual-stack
/// `[::]` socket, which must have both sides free (ports from port 0, never fixed ones).
pub fn dual_free_port() -> u16 {
    dual_free_port_for(false)
}

/// Like [`dual_free_port`], for UDP when `udp`.
pub fn dual_free_port_for(udp: bool) -> u16 {
    let ty = if udp {
        socket2::Type::DGRAM
    } else {
        socket2::Type::STREAM
    };
    let s = socket2::Socket::new(socket2::Domain::IPV6, ty, None).unwrap();
    s.set_only_v6(false).unwrap();
    s.bind(&"[::]:0".parse::<std::net::SocketAddr>().unwrap().into())
        .unwrap();
    s.local_addr().unwrap().as_socket().unwrap().port()
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

/// A real bind (+listen for TCP) by helper.py `check`, optionally as `nobody`: `OK` or the
/// errno name — what the kernel says at this moment.
pub fn real_bind(args: &[&str], as_nobody: bool) -> String {
    let mut cmd = if as_nobody {
        let mut c = Command::new("setpriv");
        c.args(["--reuid=65534", "--regid=65534", "--clear-groups", python()]);
        c
    } else {
        Command::new(python())
    };
    let o = cmd
        .arg(helper_py())
        .arg("check")
        .args(args)
        .output()
        .expect("run helper check");
    String::from_utf8_lossy(&o.stdout).trim().to_string()
}

#[derive(Debug, Deserialize)]
pub struct Owner {
    pub pid: u32,
    pub command: String,
}

#[derive(Debug, Deserialize)]
pub struct Sock {
    pub proto: String,
    pub state: String,
    pub local_addr: String,
    pub local_port: u16,
    pub uid: Option<u32>,
    pub user: Option<String>,
    pub owners: Vec<Owner>,
    pub expires_ms: Option<u64>,
}

#[derive(Debug, Deserialize)]
pub struct Cause {
    pub kind: String,
    pub message: String,
    pub fix: String,
    pub seconds_left: Option<u64>,
    pub sockets: Vec<Sock>,
}

#[derive(Debug, Deserialize)]
pub struct Check {
    pub what: String,
    pub bindable: bool,
    pub errno: Option<String>,
}

#[derive(Debug, Deserialize)]
pub struct Explain {
    pub port: u16,
    pub bindable: bool,
    pub errno: Option<String>,
    pub errno_code: Option<i32>,
    pub stage: Option<String>,
    pub trial: serde_json::Value,
    pub checks: Vec<Check>,
    pub causes: Vec<Cause>,
    pub notes: Vec<String>,
}

impl Explain {
    /// The causes' kinds.
    pub fn kinds(&self) -> Vec<&str> {
        self.causes.iter().map(|c| c.kind.as_str()).collect()
    }

    /// The cause of `kind`, or a panic listing what there was.
    pub fn cause(&self, kind: &str) -> &Cause {
        self.causes
            .iter()
            .find(|c| c.kind == kind)
            .unwrap_or_else(|| panic!("no cause {kind:?} in {:#?}", self.causes))
    }

    /// `OK` or the errno name, comparable with [`real_bind`].
    pub fn verdict(&self) -> String {
        if self.bindable {
            "OK".into()
        } else {
            self.errno.clone().unwrap_or_default()
        }
    }
}

/// Runs `netkit explain --json ARGS` and decodes it; checks the exit code matches.
pub fn explain(args: &[&str]) -> Explain {
    let mut a = vec!["explain", "--json"];
    a.extend_from_slice(args);
    let (code, out, err) = netkit(&a);
    let e: Explain = serde_json::from_str(&out)
        .unwrap_or_else(|x| panic!("bad JSON ({x}): {out}\nstderr: {err}"));
    assert_eq!(
        code,
        if e.bindable { 0 } else { 1 },
        "exit code; stderr: {err}"
    );
    e
}

/// Translates explain flags into helper.py `check` flags.
pub fn check_args(port: u16, addr: &str, flags: &[&str]) -> Vec<String> {
    let mut v = vec![
        "--addr".to_string(),
        addr.to_string(),
        "--port".into(),
        port.to_string(),
    ];
    for f in flags {
        match *f {
            "--reuseaddr" => v.push("--ra".into()),
            "--reuseport" => v.push("--rp".into()),
            "--udp" => v.push("--udp".into()),
            "--v6only" => v.extend(["--v6only".into(), "1".into()]),
            "--dual-stack" => v.extend(["--v6only".into(), "0".into()]),
            other => panic!("unknown flag {other}"),
        }
    }
    v
}

/// Explains `port` on `addr` with `flags` and checks that netkit neither lies nor disturbs
/// (issue 8): a real bind with those options just before, `netkit explain`, a real bind just
/// after, and `netkit explain` again must all give the same verdict.
pub fn explain_and_verify(port: u16, addr: &str, flags: &[&str]) -> Explain {
    let p = port.to_string();
    let mut a = vec![p.as_str(), "--addr", addr];
    a.extend_from_slice(flags);
    let ca = check_args(port, addr, flags);
    let ca: Vec<&str> = ca.iter().map(String::as_str).collect();
    verify_around(&a, &ca, false)
}

/// The before/after check for any explain arguments: `check` are helper.py `check` flags for
/// the same bind (run as `nobody` when `as_nobody`). Returns the first explanation.
pub fn verify_around(explain_args: &[&str], check: &[&str], as_nobody: bool) -> Explain {
    let before = real_bind(check, as_nobody);
    let e = explain(explain_args);
    let after = real_bind(check, as_nobody);
    let again = explain(explain_args);
    assert_eq!(
        e.verdict(),
        before,
        "netkit's verdict vs a real bind made just before; causes: {:#?}",
        e.causes
    );
    assert_eq!(
        after, before,
        "a real bind with the same options changed its result across `netkit explain {explain_args:?}`: netkit disturbed the kernel state it diagnoses"
    );
    assert_eq!(
        again.verdict(),
        e.verdict(),
        "a second `netkit explain {explain_args:?}` gave another verdict"
    );
    e
}
