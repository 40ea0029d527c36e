//! Every usage error is one line on stderr (`netkit: reason`, at most one `try: ...` line) and
//! exits 2; --help and --version keep clap's output and exit 0.
//!
//! The error paths are enumerated from the clap definition itself, so a new flag is covered
//! without editing this file: for every visible (sub)command, an unknown flag, a missing
//! required argument or subcommand, a flag without its value, an unparsable value for each
//! typed flag and positional, a surplus positional, and every `requires` that is not met.

use std::process::Command;

use clap::CommandFactory;

/// Runs netkit in a scratch directory: a case that turns out to be valid may write a file
/// named after its value (`exporter --textfile %bad%`), never into the checkout.
fn netkit(args: &[String]) -> std::process::Output {
    let dir = std::env::temp_dir().join(format!("netkit-usage-errors-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("scratch dir");
    Command::new(env!("CARGO_BIN_EXE_netkit"))
        .args(args)
        .current_dir(&dir)
        .env_remove("COLUMNS")
        .output()
        .expect("run netkit")
}

/// A value no typed parser in netkit accepts (not a number, port, state, shell, ...).
const BAD: &str = "%bad%";

/// Visible subcommand paths: ["who-owns"], ["run", "server"], ...
fn paths(cmd: &clap::Command, prefix: Vec<String>, out: &mut Vec<(Vec<String>, clap::Command)>) {
    for sub in cmd.get_subcommands() {
        if sub.is_hide_set() || sub.get_name() == "help" {
            continue;
        }
        let mut p = prefix.clone();
        p.push(sub.get_name().to_string());
        out.push((p.clone(), sub.clone()));
        paths(sub, p, out);
    }
}

/// A value the argument accepts, to get past it to the error under test.
fn good_value(a: &clap::Arg) -> String {
    if let Some(v) = a.get_possible_values().first() {
        return v.get_name().to_string();
    }
    let id = a.get_id().as_str();
    match id {
        "shell" => "bash".into(),
        "dir" => "/tmp".into(),
        "host" | "addr" => "127.0.0.1".into(),
        "pid" => std::process::id().to_string(),
        _ => "1".into(),
    }
}

/// (args, what the case exercises) for every error path of one command.
fn cases(path: &[String], cmd: &clap::Command) -> Vec<(Vec<String>, String)> {
    let mut out = Vec::new();
    let base: Vec<String> = path.to_vec();
    let required: Vec<String> = cmd
        .get_positionals()
        .filter(|a| a.is_required_set())
        .map(good_value)
        .collect();
    let with_required = |extra: &[String]| {
        let mut v = base.clone();
        v.extend(required.iter().cloned());
        v.extend(extra.iter().cloned());
        v
    };
    out.push((
        with_required(&["--no-such-flag".into()]),
        "unknown flag".into(),
    ));
    if cmd.has_subcommands() {
        out.push((base.clone(), "missing subcommand".into()));
        out.push((
            [base.clone(), vec!["no-such-command".into()]].concat(),
            "unknown subcommand".into(),
        ));
        return out;
    }
    if !required.is_empty() {
        out.push((base.clone(), "missing required positional".into()));
    }
    for a in cmd.get_arguments() {
        if a.is_hide_set() || a.get_id() == "help" || a.get_id() == "version" {
            continue;
        }
        let takes_value = a.get_action().takes_values();
        let parser_is_string = a.get_value_parser().type_id()
            == clap::builder::ValueParser::string().type_id()
            && a.get_possible_values().is_empty();
        if a.is_positional() {
            if takes_value && !parser_is_string {
                let mut v = base.clone();
                v.push(BAD.into());
                out.push((v, format!("bad value for {}", a.get_id())));
            }
            continue;
        }
        let flag = match (a.get_long(), a.get_short()) {
            (Some(l), _) => format!("--{l}"),
            (None, Some(s)) => format!("-{s}"),
            _ => continue,
        };
        // An optional value (`--watch [SECS]`) is no error when left out (and would run on).
        let value_optional = a.get_num_args().is_some_and(|n| n.min_values() == 0);
        if takes_value && !value_optional {
            out.push((
                with_required(std::slice::from_ref(&flag)),
                format!("{flag} without a value"),
            ));
        }
        if takes_value && !parser_is_string {
            out.push((
                with_required(&[flag.clone(), BAD.into()]),
                format!("bad value for {flag}"),
            ));
        }
        // A flag that needs another one (`--signal` needs `--kill`).
        if a.get_id() == "signal" || a.get_id() == "yes" {
            let mut v = with_required(std::slice::from_ref(&flag));
            if takes_value {
                v.push("TERM".into());
            }
            out.push((v, format!("{flag} without what it requires")));
        }
    }
    // A surplus positional.
    let open_ended = cmd.get_positionals().any(|a| {
        a.get_num_args()
            .is_some_and(|n| n.max_values() == usize::MAX)
    });
    if !open_ended {
        out.push((
            with_required(&["surplus1".into(), "surplus2".into(), "surplus3".into()]),
            "surplus positional".into(),
        ));
    }
    out
}

/// Runs every case; returns (multi-line or malformed cases with their stderr, total).
fn run_all() -> (Vec<String>, usize) {
    let root = netkit::cli::Cli::command();
    let mut all = vec![(Vec::new(), root.clone())];
    paths(&root, Vec::new(), &mut all);
    let mut bad = Vec::new();
    let mut total = 0;
    let mut seen = std::collections::HashSet::new();
    for (path, cmd) in &all {
        for (args, what) in cases(path, cmd) {
            if !seen.insert(args.clone()) {
                continue;
            }
            let out = netkit(&args);
            let code = out.status.code();
            if code == Some(0) || code == Some(1) {
                // Not an error for this command after all (a flag whose value "1" is fine and
                // no usage error followed): not an error path.
                continue;
            }
            total += 1;
            let err = String::from_utf8_lossy(&out.stderr).into_owned();
            let lines: Vec<&str> = err.lines().collect();
            let ok = code == Some(2)
                && out.stdout.is_empty()
                && !lines.is_empty()
                && lines.len() <= 2
                && lines[0].starts_with("netkit: ")
                && (lines.len() == 1 || lines[1].starts_with("try: "));
            if !ok {
                bad.push(format!(
                    "netkit {} ({what}): exit {code:?}\n{err}",
                    args.join(" ")
                ));
            }
        }
    }
    let _ = std::fs::remove_dir_all(
        std::env::temp_dir().join(format!("netkit-usage-errors-{}", std::process::id())),
    );
    (bad, total)
}

#[test]
fn every_usage_error_is_one_line() {
    let (bad, total) = run_all();
    println!(
        "usage error paths: {} of {total} are one line",
        total - bad.len()
    );
    assert!(total > 100, "only {total} error paths enumerated");
    assert!(
        bad.is_empty(),
        "{} of {total} usage errors are not one line:\n{}",
        bad.len(),
        bad.join("\n")
    );
}

#[test]
fn help_and_version_keep_clap_output_and_exit_0() {
    for args in [
        vec!["--help"],
        vec!["-h"],
        vec!["who-owns", "--help"],
        vec!["help", "who-owns"],
        vec!["run", "server", "--help"],
    ] {
        let out = netkit(&args.iter().map(|s| s.to_string()).collect::<Vec<_>>());
        assert_eq!(out.status.code(), Some(0), "{args:?}");
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(text.contains("Usage: netkit"), "{args:?}: {text}");
        assert!(out.stderr.is_empty(), "{args:?}");
    }
    let out = netkit(&["--version".to_string()]);
    assert_eq!(out.status.code(), Some(0));
    assert!(String::from_utf8_lossy(&out.stdout).starts_with("netkit "));
}

#[test]
fn typos_get_a_try_line_with_the_suggestion() {
    let out = netkit(&["who-own".into(), "6000".into()]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2));
    assert_eq!(
        err, "netkit: unknown command 'who-own'\ntry: netkit who-owns\n",
        "{err}"
    );
    let out = netkit(&["who-owns".into(), "6000".into(), "--jsn".into()]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.starts_with("netkit: unknown option '--jsn'"), "{err}");
    assert!(err.ends_with("\ntry: --json\n"), "{err}");
}

#[test]
fn missing_port_names_what_is_missing_and_the_usage() {
    let out = netkit(&["who-owns".into()]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2));
    assert!(err.starts_with("netkit: who-owns needs <PORT>"), "{err}");
    assert!(err.contains("\ntry: netkit who-owns "), "{err}");
}
