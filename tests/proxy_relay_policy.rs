//! Relay mode obeys the proxy's policy: a relay target outside loopback (without --allow) or
//! on the blocklist is refused at start-up, before any socket is created.

use std::process::Command;

fn proxy(args: &[&str]) -> (Option<i32>, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_netkit"))
        .args(["run", "proxy", "--listen", "127.0.0.1:0"])
        .args(args)
        .output()
        .expect("run netkit");
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn relay_to_a_non_loopback_target_is_refused_without_allow() {
    // 192.0.2.0/24 is TEST-NET-1: never contacted, the check happens before any connect.
    let (code, err) = proxy(&["--relay", "192.0.2.1:80"]);
    assert_eq!(code, Some(2), "{err}");
    assert!(
        err.contains("--relay 192.0.2.1:80") && err.contains("refused"),
        "{err}"
    );
    assert!(err.contains("outside loopback"), "{err}");
}

#[test]
fn relay_to_a_blocked_target_is_refused_in_every_spelling() {
    for target in ["127.0.0.1:7777", "127.1:7777", "localhost:7777"] {
        let (code, err) = proxy(&["--relay", target]);
        assert_eq!(code, Some(2), "{target}: {err}");
        assert!(
            err.contains("blocked by --block 127.0.0.1:7777"),
            "{target}: {err}"
        );
    }
    let (code, err) = proxy(&["--relay", "127.0.0.1:9", "--block", "9"]);
    assert_eq!(code, Some(2), "{err}");
}
