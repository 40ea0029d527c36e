//! Helpers for the output tests: run netkit on a real pseudo-terminal of a chosen size
//! (stdout and stderr both the terminal, as in a shell), and display widths.

use std::io::Read;
use std::os::fd::{FromRawFd, OwnedFd};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use unicode_width::UnicodeWidthStr;

/// What a run on a terminal printed (stdout and stderr interleaved, `\r\n` made `\n`).
pub struct TtyRun {
    pub code: Option<i32>,
    pub text: String,
}

impl TtyRun {
    /// The printed lines.
    pub fn lines(&self) -> Vec<&str> {
        self.text.lines().collect()
    }
    /// The widest line, in display columns.
    pub fn widest(&self) -> usize {
        self.text.lines().map(|l| l.width()).max().unwrap_or(0)
    }
}

/// Runs `netkit ARGS` with a pty of `cols` columns as stdout and stderr; `env` is added to
/// the environment, and COLUMNS is removed unless `env` sets it.
pub fn on_tty(args: &[&str], cols: u16, env: &[(&str, &str)]) -> TtyRun {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_netkit"));
    cmd.args(args);
    on_tty_cmd(cmd, cols, env)
}

/// [`on_tty`] for any command.
pub fn on_tty_cmd(cmd: Command, cols: u16, env: &[(&str, &str)]) -> TtyRun {
    run_on_pty(cmd, cols, env, None)
}

/// Runs `netkit ARGS` on a pty of `cols` columns and sends SIGINT after `after`.
pub fn on_tty_interrupted(args: &[&str], cols: u16, after: Duration) -> TtyRun {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_netkit"));
    cmd.args(args);
    run_on_pty(cmd, cols, &[], Some(after))
}

/// Runs `cmd` with a pty of `cols` columns as stdout and stderr until it exits (SIGINT
/// after `interrupt_after` when given; killed after 60 s) and collects what it printed.
fn run_on_pty(
    mut cmd: Command,
    cols: u16,
    env: &[(&str, &str)],
    interrupt_after: Option<Duration>,
) -> TtyRun {
    let (mut master, slave) = open_pty(cols, 50);
    cmd.env_remove("COLUMNS");
    for (k, v) in env {
        cmd.env(k, v);
    }
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::from(slave.try_clone().unwrap()))
        .stderr(Stdio::from(slave))
        .spawn()
        .expect("spawn on a pty");
    // The Command holds our copies of the slave: drop it, so that reading the master returns
    // EIO once the child (the last holder) exits.
    drop(cmd);
    let pid = child.id() as i32;
    let killer = interrupt_after.map(|after| {
        std::thread::spawn(move || {
            std::thread::sleep(after);
            // SAFETY: kill(2) on the child this helper started (not yet reaped: wait() below
            // runs after this thread is joined).
            unsafe { libc::kill(pid, libc::SIGINT) };
        })
    });
    let mut out = Vec::new();
    let mut buf = [0u8; 65536];
    let end = Instant::now() + Duration::from_secs(60);
    loop {
        match master.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => out.extend_from_slice(&buf[..n]),
        }
        if Instant::now() > end {
            let _ = child.kill();
            let _ = child.wait();
            panic!("netkit on a pty did not finish in 60 s");
        }
    }
    if let Some(k) = killer {
        k.join().unwrap();
    }
    let status = child.wait().unwrap();
    TtyRun {
        code: status.code(),
        text: String::from_utf8_lossy(&out).replace("\r\n", "\n"),
    }
}

/// A pty pair of `cols` x `rows`: (master as a file, slave fd).
fn open_pty(cols: u16, rows: u16) -> (std::fs::File, OwnedFd) {
    let mut master = -1;
    let mut slave = -1;
    let ws = libc::winsize {
        ws_row: rows,
        ws_col: cols,
        ws_xpixel: 0,
        ws_ypixel: 0,
    };
    // SAFETY: openpty writes two fds into the locals; the name buffer and termios are null.
    let rc = unsafe {
        libc::openpty(
            &mut master,
            &mut slave,
            std::ptr::null_mut(),
            std::ptr::null(),
            &ws,
        )
    };
    assert_eq!(rc, 0, "openpty: {}", std::io::Error::last_os_error());
    // SAFETY: both fds were just returned by openpty and are owned by nobody else.
    unsafe {
        (
            std::fs::File::from_raw_fd(master),
            OwnedFd::from_raw_fd(slave),
        )
    }
}
