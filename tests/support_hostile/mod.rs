//! Helpers of the issue-11 tests that need a private namespace: the calling test runs again
//! inside `unshare --net` (and, when asked, `--mount` with private propagation), after a
//! set-up script (veth pairs, local routes, bind mounts). Only `lo` and what the script
//! creates exist there, so nothing can leave the machine; the namespaces vanish with the
//! child. Interfaces the scripts create are named `nk-hostile-*`.
#![allow(dead_code)]

use std::process::{Command, Stdio};

const ENV: &str = "NETKIT_HOSTILE_TEST_IN_NS";

/// Runs `test_name` again in a new network namespace (and a mount namespace if `mount`)
/// after `setup` (sh). Returns true in the child (do the work), false in the parent (the
/// child passed) or when namespaces are not available (a reason is printed).
pub fn enter_ns(test_name: &str, setup: &str, mount: bool) -> bool {
    if std::env::var_os(ENV).is_some() {
        return true;
    }
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        eprintln!("skipped: {test_name} needs root (network namespace, routes, bind mounts)");
        return false;
    }
    let ok = Command::new("unshare")
        .args(["--net", "true"])
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if !ok {
        eprintln!("skipped: {test_name}: cannot create a network namespace (unshare --net)");
        return false;
    }
    let script = format!("set -e; ip link set lo up; {setup}; exec \"$0\" \"$@\"");
    let mut cmd = Command::new("unshare");
    cmd.arg("--net");
    if mount {
        cmd.args(["--mount", "--propagation", "private"]);
    }
    let exe = std::env::current_exe().unwrap();
    let out = cmd
        .args(["sh", "-c", &script])
        .arg(exe)
        .args(["--exact", test_name, "--nocapture", "--test-threads=1"])
        .env(ENV, "1")
        .output()
        .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "namespace child failed:\n{text}");
    assert!(
        text.contains("1 passed"),
        "namespace child ran no test:\n{text}"
    );
    false
}
