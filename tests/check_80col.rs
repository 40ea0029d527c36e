//! Runs scripts/check-80col: every listing command, explain, audit and sockopt in a real 80-column tmux
//! pane, failing on any wrapped line. Skips with a reason when tmux or python3 is missing
//! (.ci/run installs tmux).

mod support;

use std::process::Command;
use support::have;

#[test]
fn every_listing_and_explain_fits_an_80_column_tmux_pane() {
    if !have("tmux") {
        eprintln!("skipped: tmux not installed (.ci/run installs it)");
        return;
    }
    if !have("python3") {
        eprintln!("skipped: python3 not installed (it holds the scene's sockets)");
        return;
    }
    let out = Command::new(concat!(env!("CARGO_MANIFEST_DIR"), "/scripts/check-80col"))
        .args(["--netkit", env!("CARGO_BIN_EXE_netkit"), "--cols", "80"])
        .output()
        .expect("run scripts/check-80col");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "scripts/check-80col failed:\n{stdout}\n{stderr}"
    );
    // It really ran the commands (an empty list would pass).
    assert!(
        stdout.lines().filter(|l| l.starts_with("ok: ")).count() >= 10,
        "{stdout}"
    );
    assert!(stdout.contains("ok: netkit explain"), "{stdout}");
    assert!(stdout.contains("ok: netkit audit"), "{stdout}");
    assert!(stdout.contains("ok: netkit sockopt"), "{stdout}");
}
