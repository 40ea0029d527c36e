//! Helpers for the exporter tests: a running `netkit exporter` (killed on drop), a minimal
//! HTTP/1.1 client for the scrapes, and an exposition parser for the assertions.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::process::{Child, Stdio};
use std::time::Duration;

use super::cli::netkit_cmd;

/// A `netkit exporter` child on a loopback port chosen by the kernel.
pub struct Exporter {
    pub child: Child,
    pub addr: SocketAddr,
}

impl Exporter {
    /// Starts `netkit exporter --listen 127.0.0.1:0 ARGS` and waits for its address line.
    pub fn start(args: &[&str]) -> Exporter {
        let mut child = netkit_cmd()
            .args(["exporter", "--listen", "127.0.0.1:0"])
            .args(args)
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn netkit exporter");
        let stderr = child.stderr.take().expect("stderr");
        let mut lines = BufReader::new(stderr).lines();
        let line = lines
            .next()
            .expect("exporter printed nothing")
            .expect("read stderr");
        let addr = line
            .strip_prefix("netkit exporter: serving http://")
            .and_then(|r| r.strip_suffix("/metrics"))
            .unwrap_or_else(|| panic!("unexpected first line {line:?}"))
            .parse()
            .expect("address");
        // Keep draining stderr so the child never blocks on a full pipe.
        std::thread::spawn(move || for _ in lines {});
        Exporter { child, addr }
    }

    /// GET `path`, returning (status, headers, body).
    pub fn get(&self, path: &str) -> Response {
        get(self.addr, path, &[])
    }

    /// The metrics as a parsed exposition (Prometheus text format).
    pub fn metrics(&self) -> Exposition {
        let r = self.get("/metrics");
        assert_eq!(r.status, 200, "{r:?}");
        Exposition::parse(&r.body)
    }
}

impl Drop for Exporter {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// An HTTP response as the tests see it.
#[derive(Debug, Clone)]
pub struct Response {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: String,
}

impl Response {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// One `GET` with `Connection: close` and extra headers; reads until the server closes.
pub fn get(addr: SocketAddr, path: &str, extra: &[(&str, &str)]) -> Response {
    let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(5)).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    let mut req = format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n");
    for (k, v) in extra {
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    req.push_str("\r\n");
    s.write_all(req.as_bytes()).expect("send");
    let mut raw = Vec::new();
    s.read_to_end(&mut raw).expect("read response");
    parse_response(&raw)
}

/// Parses a raw HTTP/1.1 response (Content-Length or close-delimited bodies).
pub fn parse_response(raw: &[u8]) -> Response {
    let text = String::from_utf8_lossy(raw).into_owned();
    let (head, body) = text
        .split_once("\r\n\r\n")
        .unwrap_or_else(|| panic!("no header end in {text:?}"));
    let mut lines = head.split("\r\n");
    let status = lines
        .next()
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|c| c.parse().ok())
        .unwrap_or_else(|| panic!("bad status line in {head:?}"));
    let headers = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
        .collect();
    Response {
        status,
        headers,
        body: body.to_string(),
    }
}

/// A parsed sample: name, labels, value.
#[derive(Debug, Clone, PartialEq)]
pub struct Sample {
    pub name: String,
    pub labels: Vec<(String, String)>,
    pub value: f64,
}

impl Sample {
    pub fn label(&self, k: &str) -> Option<&str> {
        self.labels
            .iter()
            .find(|(n, _)| n == k)
            .map(|(_, v)| v.as_str())
    }
}

/// The samples of an exposition (comments skipped).
#[derive(Debug, Clone)]
pub struct Exposition {
    pub samples: Vec<Sample>,
}

impl Exposition {
    pub fn parse(text: &str) -> Exposition {
        let mut samples = Vec::new();
        for line in text.lines() {
            if line.starts_with('#') || line.trim().is_empty() {
                continue;
            }
            let (series, value) = line.rsplit_once(' ').expect("sample line");
            let (name, labels) = match series.split_once('{') {
                Some((n, rest)) => (n, parse_labels(rest.strip_suffix('}').expect("}"))),
                None => (series, Vec::new()),
            };
            samples.push(Sample {
                name: name.to_string(),
                labels,
                value: value.parse().unwrap_or(f64::NAN),
            });
        }
        Exposition { samples }
    }

    /// Samples named `name` whose labels include every pair of `want`.
    pub fn find(&self, name: &str, want: &[(&str, &str)]) -> Vec<&Sample> {
        self.samples
            .iter()
            .filter(|s| s.name == name)
            .filter(|s| want.iter().all(|(k, v)| s.label(k) == Some(*v)))
            .collect()
    }

    /// The value of the one sample matching, or None.
    pub fn value(&self, name: &str, want: &[(&str, &str)]) -> Option<f64> {
        let f = self.find(name, want);
        assert!(f.len() <= 1, "several samples match {name} {want:?}: {f:?}");
        f.first().map(|s| s.value)
    }
}

fn parse_labels(s: &str) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let mut chars = s.chars().peekable();
    loop {
        let key: String = chars.by_ref().take_while(|&c| c != '=').collect();
        if key.is_empty() {
            break;
        }
        assert_eq!(chars.next(), Some('"'));
        let mut val = String::new();
        while let Some(c) = chars.next() {
            match c {
                '\\' => match chars.next() {
                    Some('n') => val.push('\n'),
                    Some(o) => val.push(o),
                    None => break,
                },
                '"' => break,
                o => val.push(o),
            }
        }
        out.push((key.trim_start_matches(',').to_string(), val));
        if chars.peek() == Some(&',') {
            chars.next();
        }
    }
    out
}

/// The comm of this test process, as the kernel truncates it (15 bytes).
pub fn my_comm() -> String {
    std::fs::read_to_string("/proc/self/comm")
        .expect("comm")
        .trim()
        .to_string()
}
