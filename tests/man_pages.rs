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

#[test]
fn pages_have_exit_status_examples_see_also_and_cite_only_shipped_pages() {
    let pages = netkit::commands::generate::man_pages().expect("rendering man pages");
    let shipped: std::collections::HashSet<String> = pages.iter().map(|(n, _)| n.clone()).collect();
    assert!(
        shipped.contains("netkit-bind-rules.7"),
        "BIND-RULES.md ships as a man page"
    );
    let re = regex::Regex::new(
        r"(netkit(?:\\-[a-z0-9]+(?:\\-[a-z0-9]+)*)?)\\fR\((\d)\)|(netkit(?:\\-[a-z0-9]+)+)\((\d)\)",
    )
    .unwrap();
    for (name, body) in &pages {
        let text = String::from_utf8_lossy(body);
        for cap in re.captures_iter(&text) {
            let (n, s) = match (cap.get(1), cap.get(2), cap.get(3), cap.get(4)) {
                (Some(n), Some(s), _, _) | (_, _, Some(n), Some(s)) => (n.as_str(), s.as_str()),
                _ => continue,
            };
            let file = format!("{}.{s}", n.replace("\\-", "-"));
            assert!(
                shipped.contains(&file),
                "{name} cites {file}, which is not shipped"
            );
        }
        if !name.ends_with(".1") {
            continue;
        }
        assert!(
            text.contains(".SH \"EXIT STATUS\""),
            "{name} lacks EXIT STATUS"
        );
        assert!(text.contains(".SH \"SEE ALSO\""), "{name} lacks SEE ALSO");
        for r in ["\\fBss\\fR(8)", "\\fBlsof\\fR(8)", "\\fBfuser\\fR(1)"] {
            assert!(text.contains(r), "{name} does not cite {r}");
        }
    }
    for page in [
        "netkit.1",
        "netkit-who-owns.1",
        "netkit-inspect.1",
        "netkit-explain.1",
        "netkit-wait-free.1",
        "netkit-wait-listen.1",
        "netkit-free-port.1",
    ] {
        let body = &pages.iter().find(|(n, _)| n == page).expect(page).1;
        assert!(
            String::from_utf8_lossy(body).contains(".SH EXAMPLES"),
            "{page} lacks EXAMPLES"
        );
    }
}

#[test]
fn bind_rules_page_carries_every_rule_row() {
    let md =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/BIND-RULES.md"))
            .expect("docs/BIND-RULES.md");
    let page = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("man/netkit-bind-rules.7"),
    )
    .expect("man/netkit-bind-rules.7 (run `cargo run -- generate-man man`)");
    // Every rule number of the table (| 7a | ...) is a tagged paragraph of the page.
    for line in md.lines().filter(|l| l.starts_with("| ")) {
        let id = line
            .trim_start_matches("| ")
            .split(" |")
            .next()
            .unwrap_or("");
        let numeric = id.chars().next().is_some_and(|c| c.is_ascii_digit())
            && id.chars().all(|c| c.is_ascii_alphanumeric())
            && id.len() <= 4;
        if !numeric {
            continue;
        }
        assert!(
            page.contains(&format!(".TP\n\\fB{id}\\fR\n")),
            "rule {id} missing from the page"
        );
    }
}
