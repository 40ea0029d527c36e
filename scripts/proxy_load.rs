//! Load client and servers for scripts/bench-proxy (std only; the script builds it with
//! `rustc -O`). The same client drives every proxy under test, so ratios are fair.
//!
//!   proxy_load freeport                      print a free loopback port
//!   proxy_load sink PORT                     count bytes until EOF, then close (bulk target)
//!   proxy_load done PORT                     read one message, reply DONE, close (lab server)
//!   proxy_load bulk ADDR BYTES               send BYTES, half-close, wait for EOF; print MB/s
//!   proxy_load rr ADDR N CONC raw|json PORT  N requests, new connection each; print req/s

use std::io::{Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let arg = |i: usize| args.get(i).cloned().unwrap_or_else(|| usage());
    match arg(1).as_str() {
        "freeport" => {
            let l = TcpListener::bind("127.0.0.1:0").unwrap();
            println!("{}", l.local_addr().unwrap().port());
        }
        "sink" => serve(&arg(2), false, |mut s| {
            let mut buf = vec![0u8; 256 * 1024];
            while let Ok(n) = s.read(&mut buf) {
                if n == 0 {
                    break;
                }
            }
        }),
        "done" => serve(&arg(2), true, |mut s| {
            let mut buf = [0u8; 1024];
            if s.read(&mut buf).unwrap_or(0) > 0 {
                let _ = s.write_all(b"DONE");
            }
        }),
        "bulk" => {
            let total: u64 = arg(3).parse().unwrap();
            let buf = vec![0x5au8; 256 * 1024];
            let t = Instant::now();
            let mut s = TcpStream::connect(arg(2)).unwrap();
            let mut sent = 0u64;
            while sent < total {
                let k = (total - sent).min(buf.len() as u64) as usize;
                s.write_all(&buf[..k]).unwrap();
                sent += k as u64;
            }
            s.shutdown(Shutdown::Write).unwrap();
            let mut tail = [0u8; 64];
            while s.read(&mut tail).unwrap_or(0) > 0 {}
            let secs = t.elapsed().as_secs_f64();
            println!("{:.0}", total as f64 / secs / 1e6);
        }
        "rr" => {
            let addr = arg(2);
            let n: usize = arg(3).parse().unwrap();
            let conc: usize = arg(4).parse().unwrap();
            let req = match arg(5).as_str() {
                "json" => format!(
                    r#"{{"server_ip": "127.0.0.1", "server_port": {}, "message": "tgmr"}}"#,
                    arg(6)
                ),
                _ => "tgmr".to_string(),
            };
            let left = Arc::new(AtomicUsize::new(n));
            let failed = Arc::new(AtomicUsize::new(0));
            let t = Instant::now();
            let workers: Vec<_> = (0..conc)
                .map(|_| {
                    let (addr, req, left, failed) =
                        (addr.clone(), req.clone(), left.clone(), failed.clone());
                    std::thread::spawn(move || {
                        while left
                            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |v| v.checked_sub(1))
                            .is_ok()
                        {
                            if !one_request(&addr, req.as_bytes()) {
                                failed.fetch_add(1, Ordering::SeqCst);
                            }
                        }
                    })
                })
                .collect();
            for w in workers {
                w.join().unwrap();
            }
            let secs = t.elapsed().as_secs_f64();
            let bad = failed.load(Ordering::SeqCst);
            if bad > 0 {
                eprintln!("{bad} of {n} requests failed");
            }
            println!("{:.0}", (n - bad) as f64 / secs);
        }
        _ => usage(),
    }
}

/// The lab client's exchange: connect, send, one read (expects DONE), close.
fn one_request(addr: &str, req: &[u8]) -> bool {
    let Ok(mut s) = TcpStream::connect(addr) else {
        return false;
    };
    let _ = s.set_read_timeout(Some(Duration::from_secs(10)));
    if s.write_all(req).is_err() {
        return false;
    }
    let mut buf = [0u8; 64];
    matches!(s.read(&mut buf), Ok(n) if &buf[..n] == b"DONE")
}

/// Accepts on 8 threads; `inline` serves each connection on the accepting thread (short
/// exchanges), otherwise a thread per connection (long transfers).
fn serve(port: &str, inline: bool, f: fn(TcpStream)) {
    let l = TcpListener::bind(format!("127.0.0.1:{port}")).unwrap();
    let l = Arc::new(l);
    let workers: Vec<_> = (0..8)
        .map(|_| {
            let l = l.clone();
            std::thread::spawn(move || {
                loop {
                    if let Ok((s, _)) = l.accept() {
                        if inline {
                            f(s);
                        } else {
                            std::thread::spawn(move || f(s));
                        }
                    }
                }
            })
        })
        .collect();
    for w in workers {
        let _ = w.join();
    }
}

fn usage() -> ! {
    eprintln!("usage: proxy_load freeport|sink PORT|done PORT|bulk ADDR BYTES|rr ADDR N CONC raw|json PORT");
    std::process::exit(2)
}
