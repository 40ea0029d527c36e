//! The sockopt --set and audit tests' pieces: the python3 target server of py/target.py (a
//! server that reports its own getsockopt: the inside view), py/peer.py (the other user, the
//! load), `netkit audit` runs. The outside view is [`super::ss`]; every `--json` these
//! helpers decode is validated against its docs/schema file.

use std::process::{Command, Stdio};
use std::time::Duration;

use super::cli::netkit_bin;
use super::netns::Netns;
use super::proc::GroupChild;
use super::python::{python, python_cmd, script};

/// The python3 target server of target.py: port, pid and the inside view on demand.
pub struct Target {
    pub proc: GroupChild,
    pub port: u16,
}

impl Target {
    pub fn start(args: &[&str]) -> Target {
        Target::start_with(python_cmd(false), args)
    }

    /// Starts it inside network namespace `ns`.
    pub fn start_in(ns: &Netns, args: &[&str]) -> Target {
        Target::start_with(ns.cmd(&[python()]), args)
    }

    fn start_with(mut cmd: Command, args: &[&str]) -> Target {
        cmd.arg(script("target.py")).args(args);
        let proc = GroupChild::spawn(cmd);
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

    /// The inside view of the accepted connection from `peer_port`, waiting (up to 10 s)
    /// until it exists.
    pub fn conn(&mut self, peer_port: u16) -> serde_json::Value {
        let found = super::poll(Duration::from_secs(10), || {
            self.dump()["conns"]
                .as_array()
                .unwrap()
                .iter()
                .find(|c| c["peer_port"] == peer_port)
                .cloned()
        });
        found.unwrap_or_else(|| panic!("target never accepted the connection from {peer_port}"))
    }
}

/// Starts peer.py MODE ARGS, as `nobody` when `as_nobody`.
pub fn peer(mode: &str, args: &[&str], as_nobody: bool) -> GroupChild {
    let mut cmd = python_cmd(as_nobody);
    cmd.arg(script("peer.py")).arg(mode).args(args);
    GroupChild::spawn(cmd)
}

/// peer.py MODE ARGS inside network namespace `ns`.
pub fn peer_in(ns: &Netns, mode: &str, args: &[&str]) -> GroupChild {
    let mut cmd = ns.cmd(&[python()]);
    cmd.arg(script("peer.py")).arg(mode).args(args);
    GroupChild::spawn(cmd)
}

/// `netkit audit --json` (optionally inside network namespace `netns`): exit code and the
/// report, validated against its schema.
pub fn audit(netns: Option<&str>, extra: &[&str]) -> (i32, serde_json::Value) {
    let mut cmd = match netns {
        Some(ns) => {
            let mut c = Command::new("ip");
            c.args(["netns", "exec", ns, netkit_bin()]);
            c
        }
        None => Command::new(netkit_bin()),
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
    super::schema::validate("audit", &v);
    (o.status.code().unwrap_or(-1), v)
}

/// The findings of `kind` whose evidence has a socket on local `port`.
pub fn findings_on(report: &serde_json::Value, kind: &str, port: u16) -> Vec<serde_json::Value> {
    findings_on_range(report, kind, u64::from(port)..=u64::from(port))
}

/// The findings of `kind` whose evidence has a socket with a local port in `range`.
pub fn findings_on_range(
    report: &serde_json::Value,
    kind: &str,
    range: std::ops::RangeInclusive<u64>,
) -> Vec<serde_json::Value> {
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
                .any(|s| s["local_port"].as_u64().is_some_and(|p| range.contains(&p)))
        })
        .cloned()
        .collect()
}
