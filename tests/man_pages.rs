//! The committed man pages under man/ must match what the clap definition generates now.
//! Refresh them with `cargo run -- generate-man man`.

use std::path::Path;

#[test]
fn committed_man_pages_are_current() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("man");
    let pages = netkit::commands::generate::man_pages().expect("rendering man pages");
    assert!(pages.iter().any(|(n, _)| n == "netkit-who-owns.1"));
    let mut stale = Vec::new();
    for (name, body) in &pages {
        match std::fs::read(dir.join(name)) {
            Ok(on_disk) if &on_disk == body => {}
            _ => stale.push(name.clone()),
        }
    }
    let expected: std::collections::HashSet<&str> = pages.iter().map(|(n, _)| n.as_str()).collect();
    for entry in std::fs::read_dir(&dir).expect("man/ exists") {
        let name = entry
            .expect("dir entry")
            .file_name()
            .to_string_lossy()
            .into_owned();
        if !expected.contains(name.as_str()) {
            stale.push(format!("{name} (no longer generated)"));
        }
    }
    assert!(
        stale.is_empty(),
        "man pages are stale: {stale:?}; run `cargo run -- generate-man man` and commit"
    );
}

#[test]
fn completions_cover_every_subcommand() {
    let out = assert_cmd::Command::cargo_bin("netkit")
        .expect("binary")
        .args(["completions", "bash"])
        .output()
        .expect("run netkit");
    assert!(out.status.success());
    let text = String::from_utf8_lossy(&out.stdout);
    for sub in [
        "who-owns",
        "listening",
        "timewait",
        "inspect",
        "explain",
        "run",
    ] {
        assert!(text.contains(sub), "bash completion lacks {sub}");
    }
}

#[test]
fn usage_errors_exit_2_with_one_line_reason() {
    let out = assert_cmd::Command::cargo_bin("netkit")
        .expect("binary")
        .args(["who-owns", "notaport"])
        .output()
        .expect("run netkit");
    assert_eq!(out.status.code(), Some(2));
    assert_eq!(
        String::from_utf8_lossy(&out.stderr),
        "netkit: invalid port 'notaport': expected 1-65535, :PORT, PORT/tcp, HOST:PORT, a range A-B or a service name\n"
    );
}
