//! Man pages (clap_mangen) and shell completions (clap_complete) from the clap definition.

use std::io::Write;
use std::path::Path;

use anyhow::Context;
use clap::CommandFactory;

use crate::cli::Cli;

/// Prints a completion script for `shell` to stdout.
///
/// The script is rendered in memory first: clap_complete panics on a write error, and a
/// reader that stops early (`| head -c1`) must see a clean exit, not SIGABRT.
///
/// # Errors
/// Writing to stdout (a closed pipe is reported as such, and `main` exits 0).
pub fn completions(shell: clap_complete::Shell) -> anyhow::Result<i32> {
    let script = completion_script(shell);
    let mut out = crate::output::stdout();
    out.write_all(&script)?;
    out.flush()?;
    Ok(0)
}

/// The completion script for `shell`: hidden commands left out, user-name values completed
/// from the user database in bash too (clap_complete gives bash file names for them).
pub fn completion_script(shell: clap_complete::Shell) -> Vec<u8> {
    let mut full = Cli::command();
    full.build();
    let mut cmd = visible(&full, &[]);
    let mut buf = Vec::new();
    clap_complete::generate(shell, &mut cmd, "netkit", &mut buf);
    if shell == clap_complete::Shell::Bash {
        buf = bash_users(&String::from_utf8_lossy(&buf), &user_flags(&full)).into_bytes();
    }
    buf
}

/// A copy of the built `cmd` without its hidden subcommands (and without them under `help`).
fn visible(cmd: &clap::Command, hidden_siblings: &[String]) -> clap::Command {
    let hidden: Vec<String> = cmd
        .get_subcommands()
        .filter(|s| s.is_hide_set())
        .map(|s| s.get_name().to_string())
        .collect();
    let mut out = clap::Command::new(cmd.get_name().to_string())
        .disable_help_flag(true)
        .disable_version_flag(true)
        .disable_help_subcommand(true)
        .args(cmd.get_arguments().cloned());
    if let Some(a) = cmd.get_about() {
        out = out.about(a.clone());
    }
    if let Some(v) = cmd.get_version() {
        out = out.version(v.to_string());
    }
    for sub in cmd.get_subcommands() {
        if sub.is_hide_set() || hidden_siblings.iter().any(|h| h == sub.get_name()) {
            continue;
        }
        // `help`'s children mirror the parent's subcommands, hidden ones included.
        let skip = if sub.get_name() == "help" {
            hidden.clone()
        } else {
            Vec::new()
        };
        out = out.subcommand(visible(sub, &skip));
    }
    out
}

/// The long and short spellings of every option whose value is a user name.
fn user_flags(cmd: &clap::Command) -> Vec<String> {
    let mut out = Vec::new();
    for a in cmd.get_arguments() {
        if a.get_value_hint() == clap::ValueHint::Username {
            out.extend(a.get_long().map(|l| format!("--{l}")));
            out.extend(a.get_short().map(|c| format!("-{c}")));
        }
    }
    for sub in cmd.get_subcommands() {
        for f in user_flags(sub) {
            if !out.contains(&f) {
                out.push(f);
            }
        }
    }
    out
}

/// In clap_complete's bash script, the `--user)` arms complete user names (`compgen -u`).
fn bash_users(script: &str, flags: &[String]) -> String {
    let mut out = String::with_capacity(script.len());
    let mut user_arm = false;
    for line in script.lines() {
        let t = line.trim();
        if user_arm && t.contains("compgen -f") {
            out.push_str(&line.replace("compgen -f", "compgen -u"));
        } else {
            out.push_str(line);
        }
        out.push('\n');
        user_arm = t
            .strip_suffix(')')
            .is_some_and(|f| flags.iter().any(|u| u == f));
    }
    out
}

/// Renders every man page (netkit.1, netkit-who-owns.1, netkit-run-server.1, ...,
/// netkit-bind-rules.7) in memory: (file name, contents).
///
/// # Errors
/// When clap_mangen fails to render.
pub fn man_pages() -> anyhow::Result<Vec<(String, Vec<u8>)>> {
    let mut out = Vec::new();
    // No `help` subcommand in the pages: it would list a netkit-help(1) that is not shipped.
    let mut cmd = without_help_subcommand(Cli::command());
    cmd.build();
    render(&cmd, "netkit", &mut out)?;
    out.push((
        "netkit-bind-rules.7".to_string(),
        super::manual::markdown_to_man(
            super::manual::BIND_RULES_MD,
            "netkit-bind-rules",
            "7",
            "the Linux port-reuse rules netkit measured and cites",
        )
        .into_bytes(),
    ));
    Ok(out)
}

fn without_help_subcommand(cmd: clap::Command) -> clap::Command {
    let names: Vec<String> = cmd
        .get_subcommands()
        .map(|s| s.get_name().to_string())
        .collect();
    let mut cmd = cmd.disable_help_subcommand(true);
    for n in names {
        cmd = cmd.mut_subcommand(n, without_help_subcommand);
    }
    cmd
}

fn render(cmd: &clap::Command, name: &str, out: &mut Vec<(String, Vec<u8>)>) -> anyhow::Result<()> {
    if cmd.is_hide_set() {
        return Ok(());
    }
    let mut buf = Vec::new();
    clap_mangen::Man::new(cmd.clone().name(name.to_string()))
        .render(&mut buf)
        .with_context(|| format!("rendering the man page of {name}"))?;
    buf.extend_from_slice(super::manual::extra_sections(name).as_bytes());
    out.push((format!("{name}.1"), buf));
    for sub in cmd.get_subcommands() {
        render(sub, &format!("{name}-{}", sub.get_name()), out)?;
    }
    Ok(())
}

/// Writes the man pages into `dir`.
///
/// # Errors
/// When the directory cannot be written.
pub fn man(dir: &Path) -> anyhow::Result<i32> {
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    for (name, page) in man_pages()? {
        let path = dir.join(&name);
        std::fs::write(&path, page).with_context(|| format!("writing {}", path.display()))?;
    }
    Ok(0)
}
