//! The proxy tests' pieces: an in-test DONE server (the seed's lab server), `netkit run
//! proxy` under a kill-on-drop guard, one-shot clients. Policy tests run inside a private
//! namespace ([`super::netns::enter_netns`]) so they can never reach beyond loopback.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use serde::Deserialize;

use super::cli::netkit_bin;

/// A lab server: reads one message (as `recv(1024)` does), replies `DONE`, closes. Counts
/// connections, so tests can prove a refused target was never touched.
pub struct DoneServer {
    pub addr: SocketAddr,
    pub conns: Arc<AtomicUsize>,
    pub messages: Arc<Mutex<Vec<String>>>,
    stop: Arc<AtomicBool>,
    handle: Option<JoinHandle<()>>,
}

impl DoneServer {
    pub fn start() -> DoneServer {
        DoneServer::with_delay(Duration::ZERO)
    }

    /// Waits `delay` before replying (a request stays in flight that long).
    pub fn with_delay(delay: Duration) -> DoneServer {
        DoneServer::bind("127.0.0.1:0", delay)
    }

    pub fn bind(addr: &str, delay: Duration) -> DoneServer {
        let l = TcpListener::bind(addr).unwrap();
        let addr = l.local_addr().unwrap();
        let conns = Arc::new(AtomicUsize::new(0));
        let messages = Arc::new(Mutex::new(Vec::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let (c, m, s) = (conns.clone(), messages.clone(), stop.clone());
        let handle = std::thread::spawn(move || {
            for conn in l.incoming() {
                if s.load(Ordering::SeqCst) {
                    break;
                }
                let Ok(mut conn) = conn else { continue };
                c.fetch_add(1, Ordering::SeqCst);
                let m = m.clone();
                std::thread::spawn(move || {
                    let _ = conn.set_read_timeout(Some(Duration::from_secs(10)));
                    let mut buf = [0u8; 1024];
                    let n = conn.read(&mut buf).unwrap_or(0);
                    m.lock()
                        .unwrap()
                        .push(String::from_utf8_lossy(&buf[..n]).into_owned());
                    std::thread::sleep(delay);
                    let _ = conn.write_all(b"DONE");
                });
            }
        });
        DoneServer {
            addr,
            conns,
            messages,
            stop,
            handle: Some(handle),
        }
    }

    pub fn port(&self) -> u16 {
        self.addr.port()
    }

    pub fn conns(&self) -> usize {
        self.conns.load(Ordering::SeqCst)
    }
}

impl Drop for DoneServer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        let _ = TcpStream::connect_timeout(&self.addr, Duration::from_secs(1));
        if let Some(h) = self.handle.take() {
            let _ = h.join();
        }
    }
}

#[derive(Debug, Deserialize)]
struct Listening {
    event: String,
    local_addr: std::net::IpAddr,
    local_port: u16,
}

/// `netkit run proxy` under a guard that kills it on drop; stdout lines are collected.
pub struct ProxyProc {
    pub child: Child,
    pub addr: SocketAddr,
    lines: Arc<Mutex<Vec<String>>>,
    stderr: Arc<Mutex<Vec<String>>>,
}

impl ProxyProc {
    /// Starts the proxy on 127.0.0.1:0 with `--json` status lines plus `args`.
    pub fn start(args: &[&str]) -> ProxyProc {
        ProxyProc::start_with(Command::new(netkit_bin()), args, true)
    }

    /// Starts it with table output (the seed's lines).
    pub fn start_table(args: &[&str]) -> ProxyProc {
        ProxyProc::start_with(Command::new(netkit_bin()), args, false)
    }

    /// Starts `cmd` (netkit or a wrapper such as `sh -c 'ulimit -n 64; exec netkit ...'`).
    pub fn start_with(mut cmd: Command, args: &[&str], json: bool) -> ProxyProc {
        if cmd.get_program() == netkit_bin() {
            cmd.args(["run", "proxy", "--listen", "127.0.0.1:0"]);
            if json {
                cmd.arg("--json");
            }
        }
        cmd.args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = cmd.spawn().expect("spawn netkit run proxy");
        let mut out = BufReader::new(child.stdout.take().unwrap());
        let err = BufReader::new(child.stderr.take().unwrap());
        let stderr = Arc::new(Mutex::new(Vec::new()));
        let e2 = stderr.clone();
        std::thread::spawn(move || {
            for l in err.lines().map_while(Result::ok) {
                e2.lock().unwrap().push(l);
            }
        });
        let mut first = String::new();
        out.read_line(&mut first).unwrap();
        let addr = if json {
            let l: Listening = serde_json::from_str(&first).unwrap_or_else(|e| {
                panic!(
                    "first line {first:?}: {e}; stderr {:?}",
                    stderr.lock().unwrap()
                )
            });
            assert_eq!(l.event, "listening");
            SocketAddr::new(l.local_addr, l.local_port)
        } else {
            first
                .trim()
                .rsplit(' ')
                .next()
                .and_then(|a| a.parse().ok())
                .unwrap_or_else(|| panic!("unexpected first line {first:?}"))
        };
        let lines = Arc::new(Mutex::new(vec![first.trim_end().to_string()]));
        let l2 = lines.clone();
        std::thread::spawn(move || {
            for l in out.lines().map_while(Result::ok) {
                l2.lock().unwrap().push(l);
            }
        });
        ProxyProc {
            child,
            addr,
            lines,
            stderr,
        }
    }

    pub fn pid(&self) -> i32 {
        self.child.id() as i32
    }

    pub fn stdout(&self) -> Vec<String> {
        self.lines.lock().unwrap().clone()
    }

    pub fn stderr(&self) -> Vec<String> {
        self.stderr.lock().unwrap().clone()
    }

    /// Waits until some stdout line satisfies `pred`.
    pub fn wait_line(&self, what: &str, pred: impl Fn(&str) -> bool) -> String {
        super::poll(Duration::from_secs(10), || {
            self.stdout().into_iter().find(|l| pred(l))
        })
        .unwrap_or_else(|| panic!("no line {what}: {:?}", self.stdout()))
    }

    pub fn signal(&self, sig: i32) {
        // SAFETY: kill(2) on our own child's pid.
        assert_eq!(unsafe { libc::kill(self.pid(), sig) }, 0);
    }

    /// Waits for exit (polling with a deadline).
    pub fn wait_exit(&mut self, limit: Duration) -> Option<ExitStatus> {
        super::proc::wait_exit(&mut self.child, limit)
    }
}

impl Drop for ProxyProc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Sends `request`, half-closes, and reads everything until the proxy closes.
pub fn ask_until_close(proxy: SocketAddr, request: &[u8]) -> String {
    let mut s = TcpStream::connect(proxy).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    s.write_all(request).unwrap();
    s.shutdown(Shutdown::Write).unwrap();
    let mut out = Vec::new();
    s.read_to_end(&mut out).unwrap();
    String::from_utf8_lossy(&out).into_owned()
}

/// A request as the lab client writes it (json.dumps: `", "` and `": "` separators).
pub fn lab_request(ip: &str, port: impl std::fmt::Display, msg: &str) -> String {
    format!(r#"{{"server_ip": "{ip}", "server_port": {port}, "message": "{msg}"}}"#)
}

/// Like the Python lab client: send the bare JSON, no half-close, one read.
pub fn ask_bare(proxy: SocketAddr, request: &str) -> String {
    let mut s = TcpStream::connect(proxy).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    s.write_all(request.as_bytes()).unwrap();
    let mut buf = [0u8; 1024];
    let n = s.read(&mut buf).unwrap();
    String::from_utf8_lossy(&buf[..n]).into_owned()
}
