//! `netkit wait-free`: returns 0 as soon as a listener that closes after ~1 s is gone, and 1
//! on timeout; shows a countdown from a TIME_WAIT expiry when one is the cause.

mod support;

use std::time::{Duration, Instant};

use support::cli::netkit;
use support::python::Helper;

#[derive(serde::Deserialize)]
struct Wait {
    port: u16,
    #[serde(rename = "bindable")]
    free: bool,
    waited_ms: u64,
    errno: Option<String>,
}

#[test]
fn returns_when_the_listener_closes() {
    let mut h = Helper::start("listen", &["--addr", "127.0.0.1"], false);
    let p = h.port().to_string();
    let killer = std::thread::spawn({
        let pid = h.pid() as i32;
        move || {
            std::thread::sleep(Duration::from_millis(1000));
            // SAFETY: signalling the helper's process group.
            unsafe { libc::kill(-pid, libc::SIGKILL) };
        }
    });
    let t0 = Instant::now();
    let (code, out, err) = netkit(&[
        "wait-free",
        &p,
        "--addr",
        "127.0.0.1",
        "--timeout",
        "10",
        "--json",
    ]);
    let took = t0.elapsed();
    killer.join().unwrap();
    let _ = h.proc.child.wait();
    assert_eq!(code, 0, "{out} {err}");
    let w: Wait = serde_json::from_str(&out).unwrap();
    assert!(w.free && w.port == h.port());
    assert!(w.waited_ms >= 800, "waited {} ms", w.waited_ms);
    assert!(took < Duration::from_secs(5), "took {took:?}");
    assert!(err.contains("EADDRINUSE"), "{err}");
    h.proc.kill_group(libc::SIGKILL);
}

#[test]
fn times_out_with_exit_1_and_counts_down_time_wait() {
    let h = Helper::start("timewait", &["--addr", "127.0.0.1"], false);
    let p = h.port().to_string();
    let (code, out, err) = netkit(&[
        "wait-free",
        &p,
        "--addr",
        "127.0.0.1",
        "--timeout",
        "0.6",
        "--json",
    ]);
    assert_eq!(code, 1, "{out} {err}");
    let w: Wait = serde_json::from_str(&out).unwrap();
    assert!(!w.free);
    assert_eq!(w.errno.as_deref(), Some("EADDRINUSE"));
    assert!(err.contains("TIME_WAIT expires in"), "{err}");
    // With SO_REUSEADDR it is still blocked: the old socket lacked it.
    let (code, _, _) = netkit(&[
        "wait-free",
        &p,
        "--addr",
        "127.0.0.1",
        "--reuseaddr",
        "--timeout",
        "0.3",
    ]);
    assert_eq!(code, 1);
    // Another address is free at once (rule 7c).
    let (code, _, _) = netkit(&["wait-free", &p, "--addr", "127.0.0.2", "--timeout", "1"]);
    assert_eq!(code, 0);
}

#[test]
fn waiting_cannot_fix_a_privilege_error() {
    if support::is_root() {
        eprintln!("skipped: as root no port is privileged");
        return;
    }
    let (code, _, err) = netkit(&["wait-free", "80", "--timeout", "1"]);
    assert_eq!(code, 2);
    assert!(err.contains("EACCES"));
}
