//! Borderless, greppable tables: comfy-table for ordinary tables, and a streaming writer with
//! the identical layout for listings of tens of thousands of rows, where comfy-table's
//! per-cell structures would cost more time and memory than `ss` itself (see the benchmark).

use std::io::{self, Write};

use comfy_table::{CellAlignment, ContentArrangement, Table, presets};
use unicode_width::UnicodeWidthStr;

use super::Rows;

/// Spaces after each column (comfy-table right padding).
const GAP: usize = 2;

/// Writes a borderless table: one line per row, columns padded with spaces, no trailing blanks.
///
/// # Errors
/// I/O errors of `out`.
pub fn write(header: &[String], rows: &[Vec<String>], out: &mut impl Write) -> io::Result<()> {
    let mut t = Table::new();
    t.load_style(presets::NOTHING)
        .set_content_arrangement(ContentArrangement::Disabled)
        .set_header(header);
    for c in t.column_iter_mut() {
        c.set_padding((0, GAP as u16));
        c.set_cell_alignment(CellAlignment::Left);
    }
    for r in rows {
        t.add_row(r.iter().map(|c| one_line(c)));
    }
    for line in t.lines() {
        writeln!(out, "{}", line.trim_end())?;
    }
    Ok(())
}

/// Writes rows made on demand in the same layout as [`write()`], holding one row at a time.
///
/// # Errors
/// I/O errors of `out`.
pub fn write_rows(rows: &dyn Rows, out: &mut impl Write) -> io::Result<()> {
    let header = rows.header();
    let mut widths: Vec<usize> = header.iter().map(|h| width(h)).collect();
    let mut cells: Vec<String> = Vec::new();
    for i in 0..rows.len() {
        rows.row_into(i, &mut cells);
        for (w, c) in widths.iter_mut().zip(&cells) {
            *w = (*w).max(width(&one_line(c)));
        }
    }
    let mut line = String::new();
    let mut put = |cells: &[String], out: &mut dyn Write| -> io::Result<()> {
        line.clear();
        for (c, w) in cells.iter().zip(&widths) {
            let c = one_line(c);
            line.push_str(&c);
            line.extend(std::iter::repeat_n(' ', w - width(&c) + GAP));
        }
        let end = line.trim_end().len();
        line.truncate(end);
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
            s(&["PROTO", "LOCAL", "CMD"]),
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
        let mut a = Vec::new();
        write(&h, &r, &mut a).unwrap();
        let mut b = Vec::new();
        write_rows(&Fixed(h, r), &mut b).unwrap();
        assert_eq!(String::from_utf8(a).unwrap(), String::from_utf8(b).unwrap());
    }
}
