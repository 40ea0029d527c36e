//! The Debian package `scripts/build-deb` makes (`.ci/run` builds it before the tests): its
//! contents, and the binary run from a temporary root it was unpacked into with `dpkg -x`.
//! Skips with a printed reason when no .deb of this version was built.

mod support;

use std::path::{Path, PathBuf};
use std::process::Command;
use support::have;

fn the_deb() -> Option<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("target/debian");
    let want = format!("netkit_{}-", env!("CARGO_PKG_VERSION"));
    let mut debs: Vec<PathBuf> = std::fs::read_dir(&dir)
        .ok()?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with(&want) && n.ends_with(".deb"))
        })
        .collect();
    debs.sort_by_key(|p| std::fs::metadata(p).and_then(|m| m.modified()).ok());
    debs.pop()
}

#[test]
fn the_package_holds_binary_man_completions_and_unit_and_runs_from_a_temporary_root() {
    let Some(deb) = the_deb() else {
        eprintln!(
            "skip: no target/debian/netkit_{}-*.deb (run scripts/build-deb; .ci/run does)",
            env!("CARGO_PKG_VERSION")
        );
        return;
    };
    if !have("dpkg-deb") {
        eprintln!("skip: dpkg-deb not installed");
        return;
    }
    let out = Command::new("dpkg-deb")
        .arg("-c")
        .arg(&deb)
        .output()
        .unwrap();
    assert!(out.status.success());
    let listing = String::from_utf8_lossy(&out.stdout);
    for path in [
        "./usr/bin/netkit",
        "./usr/share/man/man1/netkit.1.gz",
        "./usr/share/man/man1/netkit-exporter.1.gz",
        "./usr/share/bash-completion/completions/netkit",
        "./usr/share/zsh/vendor-completions/_netkit",
        "./usr/share/fish/vendor_completions.d/netkit.fish",
        "netkit-exporter.service",
        "./usr/share/doc/netkit/examples/netkit.rules.yml",
    ] {
        assert!(
            listing.contains(path),
            "{path} missing from {}:\n{listing}",
            deb.display()
        );
    }
    let root = tempfile::tempdir().unwrap();
    let st = Command::new("dpkg-deb")
        .arg("-x")
        .arg(&deb)
        .arg(root.path())
        .status()
        .unwrap();
    assert!(st.success());
    let bin = root.path().join("usr/bin/netkit");
    let out = Command::new(&bin).arg("--version").output().unwrap();
    assert!(out.status.success());
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        format!("netkit {}", env!("CARGO_PKG_VERSION"))
    );
    let out = Command::new(&bin)
        .args(["exporter", "--once"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("netkit_ephemeral_ports "));
    // The bash completion is a real script for this CLI.
    let bash = std::fs::read_to_string(
        root.path()
            .join("usr/share/bash-completion/completions/netkit"),
    )
    .unwrap();
    assert!(
        bash.contains("exporter"),
        "completion does not know the exporter"
    );
    // The unit: systemd's own checker, with ExecStart pointed at the unpacked binary.
    let unit = std::fs::read_to_string(
        std::fs::read_dir(root.path().join("lib/systemd/system"))
            .or_else(|_| std::fs::read_dir(root.path().join("usr/lib/systemd/system")))
            .unwrap()
            .filter_map(|e| e.ok())
            .find(|e| e.file_name() == "netkit-exporter.service")
            .expect("unit file")
            .path(),
    )
    .unwrap();
    assert!(unit.contains("CapabilityBoundingSet=CAP_DAC_READ_SEARCH CAP_SYS_PTRACE"));
    if !have("systemd-analyze") {
        eprintln!("skip: systemd-analyze not installed, unit not verified");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("netkit-exporter.service");
    let unit = unit
        .replace("/usr/bin/netkit", &bin.display().to_string())
        .lines()
        .filter(|l| !l.starts_with("Documentation="))
        .collect::<Vec<_>>()
        .join("\n");
    std::fs::write(&path, unit).unwrap();
    let out = Command::new("systemd-analyze")
        .arg("verify")
        .arg(&path)
        .output()
        .unwrap();
    let msg = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        out.status.success() && !msg.contains("netkit-exporter.service:"),
        "{msg}"
    );
}
