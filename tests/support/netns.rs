//! Private network namespaces, two ways:
//! - [`Netns`]: a named namespace (`ip netns add`) the test starts processes in and deletes
//!   on drop; the test itself stays in the host's namespace.
//! - [`enter_netns`]: the calling test runs again as a child inside `unshare --net` (and,
//!   when asked, `--mount` with private propagation) after a set-up script (veth pairs,
//!   local routes, an /etc/hosts of its own). Only `lo` and what the script creates (named
//!   `nk-*`) exist there, so nothing can leave the machine; the namespaces vanish with the
//!   child.

use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};

use super::is_root;
use super::proc::GroupChild;

/// A named network namespace `nk-<tag>-<pid>-<n>` with `lo` up, deleted on drop. The pid
/// and a per-process counter keep names apart between test binaries and between parallel
/// tests of one binary.
pub struct Netns(pub String);

impl Netns {
    /// `None` (with the reason printed) where namespaces cannot be made (not root, no `ip`).
    pub fn new(tag: &str) -> Option<Netns> {
        static SEQ: AtomicUsize = AtomicUsize::new(0);
        if !is_root() {
            eprintln!("skipped: creating a network namespace needs root");
            return None;
        }
        let n = SEQ.fetch_add(1, Ordering::Relaxed);
        let name = format!("nk-{tag}-{}-{n}", std::process::id());
        if !ip(&["netns", "add", &name]) {
            eprintln!("skipped: `ip netns add` failed");
            return None;
        }
        let ns = Netns(name);
        ns.exec(&["ip", "link", "set", "lo", "up"]);
        Some(ns)
    }

    /// A `Command` for `ARGS` inside the namespace (`ip netns exec NAME ARGS`).
    pub fn cmd(&self, args: &[&str]) -> Command {
        let mut c = Command::new("ip");
        c.args(["netns", "exec", &self.0]).args(args);
        c
    }

    /// Runs a command inside; panics when it fails.
    pub fn exec(&self, args: &[&str]) {
        let st = self.cmd(args).status().unwrap();
        assert!(st.success(), "{args:?} in {}", self.0);
    }

    /// Starts a command inside as a [`GroupChild`].
    pub fn spawn(&self, args: &[&str]) -> GroupChild {
        GroupChild::spawn(self.cmd(args))
    }

    /// `ss -tnoH state all ( sport = :PORT )` inside the namespace.
    pub fn ss(&self, port: u16) -> String {
        let o = self
            .cmd(&["ss", "-tnoH", "state", "all"])
            .arg(format!("( sport = :{port} )"))
            .output()
            .unwrap();
        String::from_utf8_lossy(&o.stdout).into_owned()
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        ip(&["netns", "del", &self.0]);
    }
}

/// Runs `ip ARGS` quietly; true when it succeeded.
pub fn ip(args: &[&str]) -> bool {
    Command::new("ip")
        .args(args)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// What [`enter_netns`] sets up before the test runs again inside.
#[derive(Debug, Default, Clone, Copy)]
pub struct Inside<'a> {
    /// sh run inside first (after `lo` is up), under `set -e`.
    pub setup: &'a str,
    /// A private mount namespace too (for the setup's bind mounts).
    pub mount: bool,
    /// When given: a private mount namespace where /etc/hosts is this text.
    pub hosts: Option<&'a str>,
}

const INSIDE_ENV: &str = "NETKIT_TEST_IN_NETNS";

/// Runs the calling test `test_name` again inside a new network namespace with only `lo`
/// up plus what `inside` sets up, so that a bug can never send a packet off the machine.
/// Returns true in the child (do the work), false in the parent (the child passed; its
/// failure fails the parent) or when namespaces are not available (a reason is printed).
pub fn enter_netns(test_name: &str, inside: Inside) -> bool {
    if std::env::var_os(INSIDE_ENV).is_some() {
        // /proc/self/net/dev lists the interfaces of this process's namespace (sysfs would
        // show the namespace it was mounted in).
        let dev = std::fs::read_to_string("/proc/self/net/dev").unwrap();
        let foreign: Vec<&str> = dev
            .lines()
            .skip(2)
            .filter_map(|l| l.split(':').next())
            .map(str::trim)
            .filter(|n| *n != "lo" && !n.starts_with("nk-"))
            .collect();
        assert!(foreign.is_empty(), "not in a private netns: {foreign:?}");
        return true;
    }
    let ok = Command::new("unshare")
        .args(["--net", "true"])
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if !ok {
        eprintln!(
            "skipped: {test_name}: cannot create a network namespace (unshare --net needs root)"
        );
        return false;
    }
    let dir = tempfile::tempdir().unwrap();
    let mut script = String::from("set -e; ip link set lo up; ");
    if let Some(text) = inside.hosts {
        let path = dir.path().join("hosts");
        std::fs::write(&path, text).unwrap();
        script.push_str(&format!("mount --bind {} /etc/hosts; ", path.display()));
    }
    if !inside.setup.is_empty() {
        script.push_str(inside.setup);
        script.push_str("; ");
    }
    script.push_str("exec \"$0\" \"$@\"");
    let mut cmd = Command::new("unshare");
    cmd.arg("--net");
    if inside.mount || inside.hosts.is_some() {
        cmd.args(["--mount", "--propagation", "private"]);
    }
    let exe = std::env::current_exe().unwrap();
    let out = cmd
        .args(["sh", "-c", &script])
        .arg(exe)
        .args(["--exact", test_name, "--nocapture", "--test-threads=1"])
        .env(INSIDE_ENV, "1")
        .output()
        .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "netns child failed:\n{text}");
    assert!(
        text.contains("1 passed"),
        "netns child ran no test:\n{text}"
    );
    false
}
