//! Shell completions: hidden commands are not offered, values complete as what they are
//! (signal names, state names, user names — never file names), and a reader that stops
//! early never makes netkit panic.

use std::io::Read;
use std::os::unix::process::ExitStatusExt;
use std::process::{Command, Stdio};

fn script(shell: &str) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_netkit"))
        .args(["completions", shell])
        .output()
        .expect("run netkit");
    assert!(out.status.success(), "{shell}");
    String::from_utf8(out.stdout).expect("utf-8")
}

#[test]
fn hidden_commands_are_not_offered() {
    for shell in ["bash", "zsh", "fish", "elvish", "powershell"] {
        let s = script(shell);
        assert!(!s.contains("generate-man"), "{shell} offers generate-man");
        assert!(s.contains("who-owns"), "{shell}");
    }
}

/// The bash `case` arm of `flag` under the subcommand arm `sub`: the line after `flag)`.
fn bash_arm(s: &str, sub: &str, flag: &str) -> String {
    let start = s
        .find(&format!("{sub})\n"))
        .unwrap_or_else(|| panic!("no arm {sub}"));
    let body = &s[start..];
    let end = body[1..]
        .find("\n        netkit__")
        .map_or(body.len(), |e| e + 1);
    let body = &body[..end];
    let at = body
        .find(&format!("{flag})\n"))
        .unwrap_or_else(|| panic!("no {flag} under {sub}"));
    body[at..].lines().nth(1).unwrap_or("").trim().to_string()
}

#[test]
fn bash_completes_signals_states_and_users_not_files() {
    let s = script("bash");
    let sig = bash_arm(&s, "netkit__subcmd__who__subcmd__owns", "--signal");
    assert!(sig.contains("compgen -W \"TERM INT KILL HUP"), "{sig}");
    for (sub, flag) in [
        ("netkit__subcmd__who__subcmd__owns", "--user"),
        ("netkit__subcmd__inspect", "--user"),
        ("netkit__subcmd__listening", "--user"),
        ("netkit__subcmd__explain", "--as-user"),
    ] {
        let arm = bash_arm(&s, sub, flag);
        assert!(arm.contains("compgen -u"), "{sub} {flag}: {arm}");
    }
    let state = bash_arm(&s, "netkit__subcmd__inspect", "--state");
    for v in [
        "listening",
        "time-wait",
        "connected",
        "bucket",
        "big",
        "closed",
        "all",
    ] {
        assert!(state.contains(v), "{state}");
    }
    for (sub, flag) in [
        ("netkit__subcmd__inspect", "--pid"),
        ("netkit__subcmd__inspect", "--port"),
        ("netkit__subcmd__listening", "--port"),
    ] {
        let arm = bash_arm(&s, sub, flag);
        assert!(!arm.contains("compgen -f"), "{sub} {flag}: {arm}");
    }
}

#[test]
fn zsh_and_fish_complete_users_and_signals() {
    let z = script("zsh");
    assert!(z.contains(":USER:_users"), "zsh --user");
    assert!(z.contains(":AS_USER:_users"), "zsh --as-user");
    assert!(
        z.contains(":SIGNAL:(TERM INT KILL HUP QUIT USR1 USR2)"),
        "zsh --signal"
    );
    let f = script("fish");
    assert!(
        f.contains("-l user") && f.contains("__fish_complete_users"),
        "fish --user"
    );
}

#[test]
fn an_early_closed_pipe_is_a_clean_exit() {
    // `netkit completions zsh | head -c1`, 20 times: read one byte, close, check the status.
    for shell in ["zsh", "bash", "fish"] {
        for _ in 0..20 {
            let mut child = Command::new(env!("CARGO_BIN_EXE_netkit"))
                .args(["completions", shell])
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .expect("spawn");
            let mut one = [0u8; 1];
            child
                .stdout
                .take()
                .expect("stdout")
                .read_exact(&mut one)
                .expect("one byte");
            let out = child.wait_with_output().expect("wait");
            assert_eq!(out.status.signal(), None, "{shell}: killed by a signal");
            assert_eq!(out.status.code(), Some(0), "{shell}");
            assert!(
                out.stderr.is_empty(),
                "{shell}: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
    }
}
