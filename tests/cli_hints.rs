//! Hints that say what they mean: `timewait --port P` with nothing says so on stderr (stdout
//! empty); a user who cannot signal the holder is not told to use --kill.

mod support;

use std::net::TcpListener;
use std::process::Command;
use support::is_root;

/// True when `ss` shows any TIME_WAIT on local port `p` (any address).
fn time_wait_on(p: &str) -> bool {
    Command::new("ss")
        .args(["-tanH", "state", "time-wait", &format!("sport = :{p}")])
        .output()
        .is_ok_and(|o| !o.stdout.is_empty())
}

#[test]
fn timewait_port_with_nothing_puts_its_hint_on_stderr() {
    // Our listener makes no TIME_WAIT, but other programs on this machine may leave some on
    // the same port number on other loopback addresses (a load generator's source ports):
    // then that port does not show "nothing", and a fresh one is tried (bounded).
    for attempt in 0..20 {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let p = l.local_addr().unwrap().port().to_string();
        let out = Command::new(env!("CARGO_BIN_EXE_netkit"))
            .args(["timewait", "--port", &p])
            .output()
            .unwrap();
        if out.status.code() == Some(0) && attempt < 19 && time_wait_on(&p) {
            continue;
        }
        assert_eq!(out.status.code(), Some(1));
        assert!(
            out.stdout.is_empty(),
            "{}",
            String::from_utf8_lossy(&out.stdout)
        );
        assert_eq!(
            String::from_utf8_lossy(&out.stderr),
            format!("hint: no TIME_WAIT socket on local port {p}\n")
        );
        return;
    }
}

#[test]
fn a_user_who_cannot_signal_the_holder_is_not_told_to_use_kill() {
    if !is_root() {
        println!("skip: needs root to hold a port as root and ask as nobody (setpriv)");
        return;
    }
    if Command::new("setpriv").arg("--version").output().is_err() {
        println!("skip: setpriv (util-linux) is not installed");
        return;
    }
    // Root's listener; `nobody` asks why it cannot bind the port.
    let l = TcpListener::bind("0.0.0.0:0").unwrap();
    let p = l.local_addr().unwrap().port().to_string();
    let out = Command::new("setpriv")
        .args(["--reuid=65534", "--regid=65534", "--clear-groups"])
        .arg(env!("CARGO_BIN_EXE_netkit"))
        .args(["explain", &p])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{text}");
    assert!(text.contains("fix:"), "{text}");
    assert!(
        !text.contains("--kill"),
        "nobody cannot signal root's process: {text}"
    );
    assert!(text.contains("ask user root"), "{text}");
    // Root itself is told how to stop it.
    let out = Command::new(env!("CARGO_BIN_EXE_netkit"))
        .args(["explain", &p])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains(&format!("`netkit who-owns {p} --kill`")),
        "{text}"
    );
}
