//! Times the streaming table writer on 100,000 socket-like rows (what `netkit inspect` prints
//! on a busy host), written to a sink: unlimited width (piped) and fitted to 80 columns (a
//! terminal). Prints the median and spread of N runs in ms.
//!
//! `cargo run --release --example bench_table [ROWS] [RUNS]`

use std::io::{self, Write};
use std::time::Instant;

use netkit::output::{Rows, table};

struct Synthetic(usize);

impl Rows for Synthetic {
    fn header(&self) -> Vec<String> {
        [
            "PROTO",
            "STATE",
            "LOCAL",
            "REMOTE",
            "USER",
            "PID/COMMAND",
            "TIMER",
            "CMDLINE",
        ]
        .map(String::from)
        .to_vec()
    }
    fn len(&self) -> usize {
        self.0
    }
    fn row(&self, i: usize) -> Vec<String> {
        let mut v = Vec::new();
        self.row_into(i, &mut v);
        v
    }
    fn row_into(&self, i: usize, out: &mut Vec<String>) {
        use std::fmt::Write as _;
        out.resize_with(8, String::new);
        for c in out.iter_mut() {
            c.clear();
        }
        out[0].push_str("tcp");
        out[1].push_str(if i.is_multiple_of(3) {
            "ESTABLISHED"
        } else {
            "TIME_WAIT"
        });
        let _ = write!(out[2], "127.0.{}.{}:{}", i % 250, i % 200, 1024 + i % 60000);
        let _ = write!(out[3], "127.0.0.1:{}", 30000 + i % 30000);
        out[4].push_str("root");
        let _ = write!(out[5], "{}/python3", 1000 + i % 500);
        out[6].push('-');
        let _ = write!(
            out[7],
            "/usr/bin/python3 /srv/app/worker.py --queue jobs-{} --concurrency 8 --log-level info",
            i % 97
        );
    }
}

fn main() -> io::Result<()> {
    let mut args = std::env::args().skip(1);
    let rows: usize = args.next().and_then(|a| a.parse().ok()).unwrap_or(100_000);
    let runs: usize = args.next().and_then(|a| a.parse().ok()).unwrap_or(7);
    let data = Synthetic(rows);
    for (name, limit) in [("piped (no limit)", None), ("80 columns", Some(80))] {
        let mut ms = Vec::new();
        let mut bytes = 0;
        for _ in 0..runs {
            let mut out = Counting(0);
            let t = Instant::now();
            table::write_rows(&data, limit, &mut out)?;
            ms.push(t.elapsed().as_secs_f64() * 1e3);
            bytes = out.0;
        }
        ms.sort_by(f64::total_cmp);
        let med = ms[ms.len() / 2];
        writeln!(
            io::stdout(),
            "{name:>17}: {rows} rows, {bytes} bytes: median {med:.1} ms (min {:.1}, max {:.1}, {runs} runs)",
            ms[0],
            ms[ms.len() - 1]
        )?;
    }
    Ok(())
}

/// A sink that counts bytes.
struct Counting(usize);

impl Write for Counting {
    fn write(&mut self, b: &[u8]) -> io::Result<usize> {
        self.0 += b.len();
        Ok(b.len())
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}
