//! The README's command list (the tables under "## Commands") names exactly the commands
//! `netkit --help` lists, and its examples use flags the binary accepts.

use std::collections::BTreeSet;
use std::process::Command;

fn help_commands() -> BTreeSet<String> {
    let out = Command::new(env!("CARGO_BIN_EXE_netkit"))
        .arg("--help")
        .output()
        .expect("run netkit");
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    text.lines()
        .skip_while(|l| !l.starts_with("Commands:"))
        .skip(1)
        .take_while(|l| l.starts_with("  "))
        .filter_map(|l| l.split_whitespace().next())
        .filter(|c| *c != "help")
        .map(str::to_string)
        .collect()
}

/// The section of README.md from "## Commands" up to the lab components.
fn commands_section() -> String {
    let readme = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/README.md"))
        .expect("README.md");
    let start = readme.find("## Commands").expect("a ## Commands section");
    let rest = &readme[start..];
    let end = rest.find("## Lab components").unwrap_or(rest.len());
    rest[..end].to_string()
}

/// Command names in the first column of the section's tables: `netkit X ...` and the
/// bare `` `X` `` items of a combined row.
fn readme_commands(known: &BTreeSet<String>) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    for line in commands_section().lines().filter(|l| l.starts_with("| `")) {
        let first = line
            .trim_start_matches('|')
            .split(" | ")
            .next()
            .unwrap_or("");
        for code in first.split('`').skip(1).step_by(2) {
            let code = code.strip_prefix("netkit ").unwrap_or(code);
            if let Some(word) = code.split_whitespace().next() {
                let word = word.trim_end_matches(',');
                if known.contains(word) || !word.starts_with('-') && !word.contains('_') {
                    out.insert(word.to_string());
                }
            }
        }
    }
    out
}

#[test]
fn readme_command_list_matches_netkit_help() {
    let help = help_commands();
    assert!(
        help.contains("who-owns") && help.contains("wait-listen"),
        "{help:?}"
    );
    let readme = readme_commands(&help);
    let missing: Vec<&String> = help.difference(&readme).collect();
    let unknown: Vec<&String> = readme.difference(&help).collect();
    assert!(
        missing.is_empty() && unknown.is_empty(),
        "README's command list is out of date: missing {missing:?}, not in --help {unknown:?}"
    );
}

#[test]
fn readme_command_rows_use_flags_the_binary_accepts() {
    let help = help_commands();
    for line in commands_section()
        .lines()
        .filter(|l| l.starts_with("| `netkit "))
    {
        let first = line
            .trim_start_matches('|')
            .split(" | ")
            .next()
            .unwrap_or("");
        let code = first.split('`').nth(1).unwrap_or("");
        let words: Vec<&str> = code.split_whitespace().collect();
        let Some(cmd) = words.get(1).filter(|c| help.contains(**c)) else {
            continue;
        };
        let out = Command::new(env!("CARGO_BIN_EXE_netkit"))
            .args([cmd, "--help"])
            .output()
            .expect("run");
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        for w in &words[2..] {
            for flag in w
                .trim_matches(|c| c == '[' || c == ']')
                .split("\\|")
                .filter(|f| f.starts_with("--"))
            {
                let flag = flag.trim_end_matches(|c: char| !c.is_ascii_alphanumeric());
                assert!(
                    text.contains(&format!("{flag} "))
                        || text.contains(&format!("{flag}\n"))
                        || text.contains(&format!("{flag},"))
                        || text.contains(&format!("{flag}=")),
                    "README row `{code}`: `netkit {cmd} --help` has no {flag}"
                );
            }
        }
    }
}
