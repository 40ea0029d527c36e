//! Child processes the tests start: in their own process group, stdout read line by line on
//! a thread, the whole group SIGKILLed and reaped on drop (so a holder's forked children
//! never outlive the test).

use std::io::{BufRead, BufReader, Write};
use std::os::unix::process::CommandExt;
use std::process::{Child, ChildStdin, Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

/// A child with piped stdin, line-wise stdout and inherited stderr; its process group is
/// killed on drop.
pub struct GroupChild {
    pub child: Child,
    stdin: Option<ChildStdin>,
    lines: mpsc::Receiver<String>,
}

impl GroupChild {
    /// Spawns `cmd` in its own process group.
    pub fn spawn(mut cmd: Command) -> GroupChild {
        cmd.stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .process_group(0);
        let mut child = cmd
            .spawn()
            .unwrap_or_else(|e| panic!("spawn {:?}: {e}", cmd.get_program()));
        let out = child.stdout.take().expect("piped stdout");
        let stdin = child.stdin.take();
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            for l in BufReader::new(out).lines().map_while(Result::ok) {
                if tx.send(l).is_err() {
                    break;
                }
            }
        });
        GroupChild {
            child,
            stdin,
            lines: rx,
        }
    }

    /// The next stdout line within `t` (None: nothing came, or stdout closed).
    pub fn line_within(&self, t: Duration) -> Option<String> {
        self.lines.recv_timeout(t).ok()
    }

    /// The next stdout line within 10 s; panics otherwise.
    pub fn line(&self) -> String {
        self.line_within(Duration::from_secs(10))
            .expect("a line from the child within 10 s")
    }

    /// Writes one line to its stdin.
    pub fn say(&mut self, l: &str) {
        let w = self.stdin.as_mut().expect("piped stdin");
        writeln!(w, "{l}").unwrap();
        w.flush().unwrap();
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Sends `sig` to the whole process group.
    pub fn kill_group(&self, sig: i32) {
        // SAFETY: kill(2) on the process group this guard created; no memory is involved.
        unsafe { libc::kill(-(self.child.id() as i32), sig) };
    }
}

impl Drop for GroupChild {
    fn drop(&mut self) {
        self.kill_group(libc::SIGKILL);
        let _ = self.child.wait();
    }
}

/// Waits up to `limit` for `child` to exit, polling; None while it still runs.
pub fn wait_exit(child: &mut Child, limit: Duration) -> Option<ExitStatus> {
    let deadline = Instant::now() + limit;
    loop {
        if let Some(s) = child.try_wait().expect("try_wait") {
            return Some(s);
        }
        if Instant::now() >= deadline {
            return None;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// A child that prints the port it got on its first stdout line and holds it until dropped
/// (its process group is killed then, as for every [`GroupChild`]).
pub struct PortHolder {
    pub proc: GroupChild,
    pub port: u16,
}

impl PortHolder {
    /// Spawns `cmd` and reads its port; None when it printed none within 20 s (it could not
    /// run, e.g. no permission to make a namespace).
    pub fn spawn(cmd: Command) -> Option<PortHolder> {
        let proc = GroupChild::spawn(cmd);
        let port = proc
            .line_within(Duration::from_secs(20))?
            .trim()
            .parse()
            .ok()?;
        Some(PortHolder { proc, port })
    }

    pub fn pid(&self) -> u32 {
        self.proc.pid()
    }
}
