//! Borderless, greppable tables with comfy-table.

use std::io::{self, Write};

use comfy_table::{CellAlignment, ContentArrangement, Table, presets};

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
        c.set_padding((0, 2));
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

/// Keeps a cell on one line so every row stays greppable: control characters (newlines in a
/// command line) become spaces.
fn one_line(cell: &str) -> String {
    if cell.chars().any(char::is_control) {
        cell.chars()
            .map(|c| if c.is_control() { ' ' } else { c })
            .collect()
    } else {
        cell.to_string()
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn rows_are_borderless_and_aligned() {
        let mut out = Vec::new();
        super::write(
            &["A".into(), "BB".into()],
            &[
                vec!["xyz".into(), "1".into()],
                vec!["q".into(), "22".into()],
            ],
            &mut out,
        )
        .unwrap();
        let s = String::from_utf8(out).unwrap();
        assert_eq!(s, "A    BB\nxyz  1\nq    22\n");
    }
}
