//! Borderless, greppable tables: comfy-table for ordinary tables, and a streaming writer with
//! the identical layout for listings of tens of thousands of rows, where comfy-table's
//! per-cell structures would cost more time and memory than `ss` itself (see the benchmark).
//!
//! With a width limit (a terminal), [`fit`] narrows the columns so every row stays one line:
//! free-text columns first (CMDLINE, OPTIONS), then the owner columns (PID/COMMAND, ...), then
//! the widest of the others, never below the header's width; clipped cells end in `…`. Without
//! a limit (a pipe, `--wide`) nothing is cut, so grep sees full rows.

use std::borrow::Cow;
use std::io::{self, Write};

use comfy_table::{CellAlignment, ContentArrangement, Table, presets};
use unicode_width::{UnicodeWidthChar, UnicodeWidthStr};

use super::Rows;

/// Spaces after each column (comfy-table right padding).
const GAP: usize = 2;

/// The mark of a clipped cell.
const ELLIPSIS: char = '…';

/// Writes a borderless table: one line per row, columns padded with spaces, no trailing
/// blanks; with `limit`, no line wider than `limit` columns.
///
/// # Errors
/// I/O errors of `out`.
pub fn write(
    header: &[String],
    rows: &[Vec<String>],
    limit: Option<usize>,
    out: &mut impl Write,
) -> io::Result<()> {
    let mut natural: Vec<usize> = header.iter().map(|h| width(h)).collect();
    for r in rows {
        for (w, c) in natural.iter_mut().zip(r) {
            *w = (*w).max(width(&one_line(c)));
        }
    }
    let fitted = limit.map(|l| fit(header, &natural, l));
    let mut t = Table::new();
    t.load_style(presets::NOTHING)
        .set_content_arrangement(ContentArrangement::Disabled)
        .set_header(header);
    for c in t.column_iter_mut() {
        c.set_padding((0, GAP as u16));
        c.set_cell_alignment(CellAlignment::Left);
    }
    for r in rows {
        t.add_row(r.iter().enumerate().map(|(i, c)| {
            let c = one_line(c);
            match fitted.as_ref().and_then(|f| f.widths.get(i)) {
                Some(&w) => clip(&c, w).into_owned(),
                None => c.into_owned(),
            }
        }));
    }
    let overflow = fitted.as_ref().filter(|f| f.overflow).map(|f| f.limit);
    for line in t.lines() {
        let line = line.trim_end();
        match overflow {
            Some(l) => writeln!(out, "{}", clip(line, l))?,
            None => writeln!(out, "{line}")?,
        }
    }
    Ok(())
}

/// Below this many rows [`write_rows`] runs in the calling thread alone.
const PARALLEL_MIN: usize = 4096;

/// Rows a helper thread lays out into one buffer before handing it over (~100–200 KiB).
const CHUNK_ROWS: usize = 1024;

/// Writes rows made on demand in the same layout as [`write()`], holding one chunk of
/// laid-out rows (1,024) at a time.
///
/// A listing of 4,096 rows or more is laid out by two threads: each measures the column
/// widths of half the rows, then a helper lays out every other chunk of 1,024 rows into a
/// buffer while this thread lays out and writes the ones between, in order. Making a row's
/// cells (its entry, owners, addresses) is most of the cost, and it is made twice, once per
/// pass; measured on `inspect --tcp` at 65,000 rows: 82 ms in one thread, 45 ms in two. At
/// most two finished buffers wait for the writer, so memory stays a few hundred KiB whatever
/// the size.
///
/// # Errors
/// I/O errors of `out`.
pub fn write_rows(rows: &dyn Rows, limit: Option<usize>, out: &mut impl Write) -> io::Result<()> {
    let header = rows.header();
    let n = rows.len();
    let parallel = n >= PARALLEL_MIN && crate::cores() >= 2;
    let mut widths: Vec<usize> = header.iter().map(|h| width(h)).collect();
    let columns = header.len();
    let measured = if parallel {
        let half = n / 2;
        let (mine, theirs) = std::thread::scope(|s| {
            let helper = s.spawn(|| natural_widths(rows, half..n, columns));
            (natural_widths(rows, 0..half, columns), helper.join())
        });
        // A helper that panicked (a bug): its half is measured here.
        vec![
            mine,
            theirs.unwrap_or_else(|_| natural_widths(rows, half..n, columns)),
        ]
    } else {
        vec![natural_widths(rows, 0..n, columns)]
    };
    for m in measured {
        for (w, x) in widths.iter_mut().zip(m) {
            *w = (*w).max(x);
        }
    }
    // Columns narrower than their content, and a last-resort cut of whole lines.
    let mut layout = Layout {
        clipped: vec![false; widths.len()],
        overflow: None,
        widths,
    };
    if let Some(l) = limit {
        let f = fit(&header, &layout.widths, l);
        for (i, (w, n)) in f.widths.iter().zip(&layout.widths).enumerate() {
            layout.clipped[i] = w < n;
        }
        layout.widths = f.widths;
        layout.overflow = f.overflow.then_some(l);
    }
    let mut buf = String::new();
    layout.line(&header, &mut buf);
    out.write_all(buf.as_bytes())?;
    let chunks = n.div_ceil(CHUNK_ROWS);
    let mut cells: Vec<String> = Vec::new();
    if !parallel {
        for c in 0..chunks {
            buf.clear();
            lay_out(rows, &layout, c, n, &mut cells, &mut buf);
            out.write_all(buf.as_bytes())?;
        }
        return Ok(());
    }
    let layout = &layout;
    std::thread::scope(|s| {
        // The helper's chunks (odd ones), in order; the channel holds at most two, and the
        // helper stops when this side drops its end (an error, `| head`).
        let (tx, rx) = std::sync::mpsc::sync_channel::<String>(2);
        s.spawn(move || {
            let mut cells: Vec<String> = Vec::new();
            for c in (1..chunks).step_by(2) {
                let mut chunk = String::new();
                lay_out(rows, layout, c, n, &mut cells, &mut chunk);
                if tx.send(chunk).is_err() {
                    return;
                }
            }
        });
        for c in 0..chunks {
            if c % 2 == 0 {
                buf.clear();
                lay_out(rows, layout, c, n, &mut cells, &mut buf);
                out.write_all(buf.as_bytes())?;
            } else {
                match rx.recv() {
                    Ok(chunk) => out.write_all(chunk.as_bytes())?,
                    // The helper panicked (a bug): lay its chunk out here.
                    Err(_) => {
                        buf.clear();
                        lay_out(rows, layout, c, n, &mut cells, &mut buf);
                        out.write_all(buf.as_bytes())?;
                    }
                }
            }
        }
        Ok(())
    })
}

/// The widest cell of each of `columns` columns over `range` of `rows`.
fn natural_widths(rows: &dyn Rows, range: std::ops::Range<usize>, columns: usize) -> Vec<usize> {
    let mut widths = vec![0; columns];
    let mut cells: Vec<String> = Vec::new();
    for i in range {
        rows.row_into(i, &mut cells);
        for (w, c) in widths.iter_mut().zip(&cells) {
            *w = (*w).max(width(&one_line(c)));
        }
    }
    widths
}

/// Lays out chunk `c` ([`CHUNK_ROWS`] rows) of `n` rows into `buf`.
fn lay_out(
    rows: &dyn Rows,
    layout: &Layout,
    c: usize,
    n: usize,
    cells: &mut Vec<String>,
    buf: &mut String,
) {
    for i in c * CHUNK_ROWS..((c + 1) * CHUNK_ROWS).min(n) {
        rows.row_into(i, cells);
        layout.line(cells, buf);
    }
}

/// The column widths a streamed table uses.
struct Layout {
    widths: Vec<usize>,
    /// Columns narrower than their widest cell (cells cut with `…`).
    clipped: Vec<bool>,
    /// Lines are cut at this width too (even the headers do not fit).
    overflow: Option<usize>,
}

impl Layout {
    /// Appends one line (cells padded, no trailing blanks, a newline) to `buf`.
    fn line(&self, cells: &[String], buf: &mut String) {
        let start = buf.len();
        for ((c, w), &cut) in cells.iter().zip(&self.widths).zip(&self.clipped) {
            let c = one_line(c);
            let used = if cut {
                push_clipped(buf, &c, *w)
            } else {
                buf.push_str(&c);
                width(&c)
            };
            buf.extend(std::iter::repeat_n(' ', w - used + GAP));
        }
        let end = start + buf[start..].trim_end().len();
        buf.truncate(end);
        if let Some(l) = self.overflow {
            let cut = clip(&buf[start..], l).into_owned();
            buf.truncate(start);
            buf.push_str(&cut);
        }
        buf.push('\n');
    }
}

/// Column widths that fit a line limit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fitted {
    /// Width of each column (without the gap).
    pub widths: Vec<usize>,
    /// True when even the header widths do not fit: lines are cut at `limit` as well.
    pub overflow: bool,
    /// The limit.
    pub limit: usize,
}

/// Which columns give up width first: 0 free text, 1 owners, 2 the rest.
fn shrink_rank(header: &str) -> u8 {
    match header {
        "CMDLINE" | "OPTIONS" | "HOLDS" | "RESULT" | "FLAGS" => 0,
        "PID/COMMAND" | "COMMAND" | "LISTENER" | "OWNER" | "PROCESS" => 1,
        _ => 2,
    }
}

/// Narrows `natural` column widths until a line (columns plus gaps, no trailing gap) fits in
/// `limit`: rank-0 columns first, then rank 1, then the widest remaining column one step at
/// a time; no column goes below its header's width (and at least 1).
///
/// ```
/// use netkit::output::table::fit;
/// let h: Vec<String> = ["PROTO", "LOCAL", "CMDLINE"].map(String::from).to_vec();
/// // 5 + 2 + 15 + 2 + 60 = 84 > 40: CMDLINE gives up 44 columns.
/// assert_eq!(fit(&h, &[5, 15, 60], 40).widths, vec![5, 15, 16]);
/// ```
pub fn fit(header: &[String], natural: &[usize], limit: usize) -> Fitted {
    let mut w = natural.to_vec();
    let min: Vec<usize> = header.iter().map(|h| width(h).max(1)).collect();
    let total = |w: &[usize]| w.iter().sum::<usize>() + GAP * w.len().saturating_sub(1);
    for rank in 0..=1 {
        for i in 0..w.len() {
            let excess = total(&w).saturating_sub(limit);
            if excess == 0 {
                break;
            }
            if shrink_rank(&header[i]) == rank && w[i] > min[i] {
                w[i] -= excess.min(w[i] - min[i]);
            }
        }
    }
    while total(&w) > limit {
        // The widest column that can still give, leftmost on ties.
        let Some(i) = (0..w.len())
            .filter(|&i| w[i] > min[i])
            .max_by_key(|&i| (w[i], std::cmp::Reverse(i)))
        else {
            break;
        };
        w[i] -= 1;
    }
    let overflow = total(&w) > limit;
    Fitted {
        widths: w,
        overflow,
        limit,
    }
}

/// `cell` cut to `w` display columns, ending in `…` when it was longer.
///
/// ```
/// use netkit::output::table::clip;
/// assert_eq!(clip("python3 app.py --port 6000", 10), "python3 a…");
/// assert_eq!(clip("short", 10), "short");
/// ```
pub fn clip(cell: &str, w: usize) -> Cow<'_, str> {
    if width(cell) <= w {
        return cell.into();
    }
    let mut out = String::with_capacity(w + 3);
    let mut used = 0;
    for ch in cell.chars() {
        let cw = ch.width().unwrap_or(0);
        if used + cw + 1 > w {
            break;
        }
        out.push(ch);
        used += cw;
    }
    if w > 0 {
        out.push(ELLIPSIS);
    }
    out.into()
}

/// Appends `cell` cut to `w` columns (as [`clip`]) to `line` without allocating; returns
/// the width appended. ASCII cells, nearly all of them, are cut by slicing.
fn push_clipped(line: &mut String, cell: &str, w: usize) -> usize {
    if cell.is_ascii() {
        if cell.len() <= w {
            line.push_str(cell);
            return cell.len();
        }
        if w == 0 {
            return 0;
        }
        line.push_str(&cell[..w - 1]);
        line.push(ELLIPSIS);
        return w;
    }
    let c = clip(cell, w);
    line.push_str(&c);
    width(&c)
}

/// Display width; plain ASCII (nearly every cell) is its length.
fn width(s: &str) -> usize {
    if s.is_ascii() { s.len() } else { s.width() }
}

/// Keeps a cell on one line so every row stays greppable: control characters (newlines in a
/// command line) become spaces.
fn one_line(cell: &str) -> std::borrow::Cow<'_, str> {
    let ascii_clean = cell.bytes().all(|b| (0x20..0x7f).contains(&b));
    if !ascii_clean && cell.chars().any(char::is_control) {
        cell.chars()
            .map(|c| if c.is_control() { ' ' } else { c })
            .collect::<String>()
            .into()
    } else {
        cell.into()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Fixed(Vec<String>, Vec<Vec<String>>);
    impl Rows for Fixed {
        fn header(&self) -> Vec<String> {
            self.0.clone()
        }
        fn len(&self) -> usize {
            self.1.len()
        }
        fn row(&self, i: usize) -> Vec<String> {
            self.1[i].clone()
        }
    }

    fn sample() -> (Vec<String>, Vec<Vec<String>>) {
        let s = |v: &[&str]| v.iter().map(|x| x.to_string()).collect::<Vec<_>>();
        (
            s(&["PROTO", "LOCAL", "CMDLINE"]),
            vec![
                s(&["tcp", "127.0.0.1:6000", "python3 -c\nimport socket"]),
                s(&["udp6", "[::]:53", ""]),
                s(&["tcp", "", "naïve 日本語 x"]),
            ],
        )
    }

    #[test]
    fn rows_are_borderless_and_aligned() {
        let mut out = Vec::new();
        write(
            &["A".into(), "BB".into()],
            &[
                vec!["xyz".into(), "1".into()],
                vec!["q".into(), "22".into()],
            ],
            None,
            &mut out,
        )
        .unwrap();
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "A    BB\nxyz  1\nq    22\n"
        );
    }

    #[test]
    fn streaming_writer_matches_comfy_table_byte_for_byte() {
        let (h, r) = sample();
        for limit in [None, Some(80), Some(30), Some(22), Some(5)] {
            let mut a = Vec::new();
            write(&h, &r, limit, &mut a).unwrap();
            let mut b = Vec::new();
            write_rows(&Fixed(h.clone(), r.clone()), limit, &mut b).unwrap();
            assert_eq!(
                String::from_utf8(a).unwrap(),
                String::from_utf8(b).unwrap(),
                "limit {limit:?}"
            );
        }
    }

    #[test]
    fn two_threads_lay_out_a_long_listing_as_one_does() {
        // Above PARALLEL_MIN, with a widest cell near the end (the helper's half) and a chunk
        // boundary that is not a multiple of CHUNK_ROWS.
        let h: Vec<String> = ["PROTO", "LOCAL", "CMDLINE"].map(String::from).to_vec();
        let n = PARALLEL_MIN * 2 + CHUNK_ROWS / 3;
        let r: Vec<Vec<String>> = (0..n)
            .map(|i| {
                vec![
                    if i % 3 == 0 { "tcp" } else { "udp6" }.to_string(),
                    format!("127.0.0.{}:{}", i % 250, i),
                    if i == n - 7 {
                        "python3 -c 'a very long command line near the end'".to_string()
                    } else {
                        format!("app{} \x01--n {}", i % 10, i % 97)
                    },
                ]
            })
            .collect();
        for limit in [None, Some(40), Some(8)] {
            let mut one = Vec::new();
            write(&h, &r, limit, &mut one).unwrap();
            let mut two = Vec::new();
            write_rows(&Fixed(h.clone(), r.clone()), limit, &mut two).unwrap();
            assert_eq!(one.len(), two.len(), "limit {limit:?}");
            assert!(one == two, "limit {limit:?}: outputs differ");
        }
    }

    #[test]
    fn a_closed_reader_stops_both_threads() {
        use crate::output::Closed;
        let h: Vec<String> = ["A"].map(String::from).to_vec();
        let r: Vec<Vec<String>> = (0..PARALLEL_MIN * 4).map(|i| vec![i.to_string()]).collect();
        let e = write_rows(&Fixed(h, r), None, &mut Closed).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::BrokenPipe);
    }

    fn lines(limit: Option<usize>) -> Vec<String> {
        let (h, r) = sample();
        let mut out = Vec::new();
        write_rows(&Fixed(h, r), limit, &mut out).unwrap();
        String::from_utf8(out)
            .unwrap()
            .lines()
            .map(String::from)
            .collect()
    }

    #[test]
    fn a_limit_clips_the_command_line_first_and_keeps_rows_one_line() {
        let full = lines(None);
        assert_eq!(full.len(), 4);
        assert!(full[1].ends_with("python3 -c import socket"), "{full:?}");
        // PROTO(5) LOCAL(14) CMDLINE(24) + 2 gaps = 47; at 30 only CMDLINE gives way.
        let cut = lines(Some(30));
        assert_eq!(cut.len(), 4);
        assert!(cut.iter().all(|l| l.width() <= 30), "{cut:?}");
        assert_eq!(cut[1], "tcp    127.0.0.1:6000  python…");
        assert_eq!(cut[3], "tcp                    naïve …");
        // Below the headers' width the line itself is cut.
        let tiny = lines(Some(5));
        assert!(tiny.iter().all(|l| l.width() <= 5), "{tiny:?}");
        assert_eq!(tiny[0], "PROT…");
    }

    #[test]
    fn fit_takes_from_owners_after_the_command_line_then_the_widest() {
        let h: Vec<String> = ["PROTO", "LOCAL", "PID/COMMAND", "CMDLINE"]
            .map(String::from)
            .to_vec();
        // 5+30+25+40 + 6 = 106; limit 60: CMDLINE to 7 (-33), PID/COMMAND to 12 (-13).
        let f = fit(&h, &[5, 30, 25, 40], 60);
        assert_eq!(f.widths, vec![5, 30, 12, 7]);
        assert!(!f.overflow);
        // limit 40: PID/COMMAND to its header (11), then LOCAL, the widest left, to 11.
        let f = fit(&h, &[5, 30, 25, 40], 40);
        assert_eq!(f.widths, vec![5, 11, 11, 7]);
        assert_eq!(fit(&h, &[5, 30, 25, 40], 200).widths, vec![5, 30, 25, 40]);
    }
}
