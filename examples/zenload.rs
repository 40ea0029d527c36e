//! Load client for `scripts/bench-lab`: N connections each ask the book's zen question in a
//! loop (send, wait for the answer, repeat) for a fixed time, then report the request rate and
//! the p50/p99 latency as one JSON line. Bounded: at most 2000 connections and 120 s.
//!
//! `cargo run --release --example zenload -- ADDR CONNS SECS`

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::time::timeout_at;

const QUESTION: &[u8] = b"Beautiful is better than?";
const ANSWER: &[u8] = b"Ugly.";

/// One connection's loop; returns its latencies in microseconds.
async fn worker(
    addr: SocketAddr,
    start: tokio::time::Instant,
    end: tokio::time::Instant,
) -> Vec<u32> {
    let mut lat = Vec::new();
    let Ok(Ok(mut s)) = timeout_at(end, TcpStream::connect(addr)).await else {
        return lat;
    };
    let _ = s.set_nodelay(true);
    tokio::time::sleep_until(start).await;
    let mut buf = [0u8; 64];
    while tokio::time::Instant::now() < end {
        let t = Instant::now();
        if s.write_all(QUESTION).await.is_err() {
            break;
        }
        let mut got = 0;
        while got < ANSWER.len() {
            match timeout_at(end, s.read(&mut buf[got..])).await {
                Ok(Ok(n)) if n > 0 => got += n,
                _ => return lat,
            }
        }
        if &buf[..ANSWER.len()] != ANSWER {
            eprintln!(
                "zenload: unexpected answer {:?}",
                String::from_utf8_lossy(&buf[..got])
            );
            return lat;
        }
        // An answer that only came after the deadline (a queued connection served once
        // others closed) is outside the measured window.
        if tokio::time::Instant::now() > end {
            break;
        }
        lat.push(t.elapsed().as_micros().min(u128::from(u32::MAX)) as u32);
    }
    lat
}

fn pct(sorted: &[u32], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    f64::from(sorted[i]) / 1000.0
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if args.len() != 4 {
        eprintln!("usage: zenload ADDR CONNS SECS");
        std::process::exit(2);
    }
    let parsed = (
        args[1].parse::<SocketAddr>(),
        args[2].parse::<usize>(),
        args[3].parse::<f64>(),
    );
    let (Ok(addr), Ok(conns), Ok(secs)) = parsed else {
        eprintln!("zenload: bad arguments {:?}", &args[1..]);
        std::process::exit(2);
    };
    let conns = conns.clamp(1, 2000);
    let secs = secs.clamp(0.1, 120.0);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("tokio runtime");
    let (lat, served) = rt.block_on(async move {
        // Connect everyone first (100 ms), then measure for `secs`.
        let start = tokio::time::Instant::now() + Duration::from_millis(100);
        let end = start + Duration::from_secs_f64(secs);
        let tasks: Vec<_> = (0..conns)
            .map(|_| tokio::spawn(worker(addr, start, end)))
            .collect();
        let mut all = Vec::new();
        let mut served = 0;
        for t in tasks {
            let l = t.await.unwrap_or_default();
            served += usize::from(!l.is_empty());
            all.extend(l);
        }
        (all, served)
    });
    let mut lat = lat;
    lat.sort_unstable();
    println!(
        "{{\"conns\":{conns},\"secs\":{secs},\"requests\":{},\"rate\":{:.0},\"p50_ms\":{:.3},\"p99_ms\":{:.3},\"served_conns\":{served}}}",
        lat.len(),
        lat.len() as f64 / secs,
        pct(&lat, 0.50),
        pct(&lat, 0.99),
    );
}
