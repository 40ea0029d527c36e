//! Man pages (clap_mangen) and shell completions (clap_complete) from the clap definition.

use std::path::Path;

use anyhow::Context;
use clap::CommandFactory;

use crate::cli::Cli;

/// Prints a completion script for `shell` to stdout.
///
/// # Errors
/// Writing to stdout (a closed pipe is reported as such, and `main` exits 0).
pub fn completions(shell: clap_complete::Shell) -> anyhow::Result<i32> {
    use std::io::Write as _;
    let mut cmd = Cli::command();
    // Rendered in memory: clap_complete panics when its writer fails (`| head -c1`).
    let mut script = Vec::new();
    clap_complete::generate(shell, &mut cmd, "netkit", &mut script);
    let mut out = crate::output::stdout();
    out.write_all(&script)?;
    out.flush()?;
    Ok(0)
}

/// Renders every man page (netkit.1, netkit-who-owns.1, netkit-run-server.1, ...) in memory:
/// (file name, contents).
///
/// # Errors
/// When clap_mangen fails to render.
pub fn man_pages() -> anyhow::Result<Vec<(String, Vec<u8>)>> {
    let mut out = Vec::new();
    let mut cmd = Cli::command();
    cmd.build();
    render(&cmd, "netkit", &mut out)?;
    Ok(out)
}

fn render(cmd: &clap::Command, name: &str, out: &mut Vec<(String, Vec<u8>)>) -> anyhow::Result<()> {
    if cmd.is_hide_set() {
        return Ok(());
    }
    let mut buf = Vec::new();
    clap_mangen::Man::new(cmd.clone().name(name.to_string()))
        .render(&mut buf)
        .with_context(|| format!("rendering the man page of {name}"))?;
    out.push((format!("{name}.1"), buf));
    for sub in cmd.get_subcommands() {
        if sub.get_name() == "help" {
            continue;
        }
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
