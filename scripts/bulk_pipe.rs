//! Bulk transfer client and sink for scripts/bench-proxy (std only; the script builds it with
//! `rustc -O`). The same client drives every proxy under test, so ratios are fair. The
//! request/reply half of the bench uses `netkit load` and `netkit run server`.
//!
//!   bulk_pipe freeport                      print a free loopback port
//!   bulk_pipe sink PORT                     count bytes until EOF, then close (bulk target)
//!   bulk_pipe bulk ADDR BYTES               send BYTES, half-close, wait for EOF; print MB/s

use std::io::{Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::sync::Arc;
use std::time::Instant;

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
        _ => usage(),
    }
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
    eprintln!("usage: bulk_pipe freeport|sink PORT|bulk ADDR BYTES");
    std::process::exit(2)
}
