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

/// Writes rows made on demand in the same layout as [`write()`], holding one row at a time.
///
/// # Errors
/// I/O errors of `out`.
pub fn write_rows(rows: &dyn Rows, limit: Option<usize>, out: &mut impl Write) -> io::Result<()> {
    let header = rows.header();
    let mut widths: Vec<usize> = header.iter().map(|h| width(h)).collect();
    let mut cells: Vec<String> = Vec::new();
    for i in 0..rows.len() {
        rows.row_into(i, &mut cells);
        for (w, c) in widths.iter_mut().zip(&cells) {
            *w = (*w).max(width(&one_line(c)));
        }
    }
    // Columns narrower than their content, and a last-resort cut of whole lines.
    let mut clipped = vec![false; widths.len()];
    let mut overflow = None;
    if let Some(l) = limit {
        let f = fit(&header, &widths, l);
        for (i, (w, n)) in f.widths.iter().zip(&widths).enumerate() {
            clipped[i] = w < n;
        }
        widths = f.widths;
        overflow = f.overflow.then_some(l);
    }
    let mut line = String::new();
    let mut put = |cells: &[String], out: &mut dyn Write| -> io::Result<()> {
        line.clear();
        for ((c, w), &cut) in cells.iter().zip(&widths).zip(&clipped) {
            let c = one_line(c);
            let used = if cut {
                push_clipped(&mut line, &c, *w)
            } else {
                line.push_str(&c);
                width(&c)
            };
            line.extend(std::iter::repeat_n(' ', w - used + GAP));
        }
        let end = line.trim_end().len();
        line.truncate(end);
        if let Some(l) = overflow {
            let cut = clip(&line, l).into_owned();
            line = cut;
        }
        line.push('\n');
        out.write_all(line.as_bytes())
    };
    put(&header, out)?;
    for i in 0..rows.len() {
        rows.row_into(i, &mut cells);
        put(&cells, out)?;
    }
    Ok(())
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
