//! Printing reports: the only code that knows comfy-table ([`table`]) and serde_json ([`json`]).
//!
//! A report is plain data that derives `Serialize` and says what a person should see as
//! [`Block`]s. [`emit`] writes either form to any writer, so tests capture it; hints go to the
//! second writer (stderr) in table mode and inside the JSON object's `notes` otherwise.

pub mod json;
pub mod table;

use std::io::{self, Write};

use serde::Serialize;

/// Rows produced on demand, for listings too large to hold as strings (tens of thousands of
/// sockets): the writer asks for each row twice, once to size the columns, once to print.
pub trait Rows {
    /// Column names.
    fn header(&self) -> Vec<String>;
    /// Number of rows.
    fn len(&self) -> usize;
    /// True when there are no rows.
    fn is_empty(&self) -> bool {
        self.len() == 0
    }
    /// The cells of row `i` (`i < len()`).
    fn row(&self, i: usize) -> Vec<String>;
    /// Writes the cells of row `i` into `out`, reusing its strings (the writer calls this
    /// twice per row; override it to avoid allocating per cell).
    fn row_into(&self, i: usize, out: &mut Vec<String>) {
        *out = self.row(i);
    }
}

/// A piece of human output.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Block {
    /// A borderless table: header and rows.
    Table {
        /// Column names.
        header: Vec<String>,
        /// Cells, one `Vec` per row.
        rows: Vec<Vec<String>>,
    },
    /// One line of text.
    Line(String),
}

impl Block {
    /// A table from string slices for the header.
    pub fn table(header: &[&str], rows: Vec<Vec<String>>) -> Block {
        Block::Table {
            header: header.iter().map(|h| h.to_string()).collect(),
            rows,
        }
    }
}

/// Something a command prints.
pub trait Report: Serialize {
    /// What a person sees on stdout.
    fn human(&self) -> Vec<Block>;
    /// A large table printed before [`Report::human`], with rows made on demand.
    fn rows(&self) -> Option<&dyn Rows> {
        None
    }
    /// Hints for stderr (also serialized as `notes` by the report itself).
    fn notes(&self) -> Vec<String>;
    /// The netkit subcommand as typed (`"who-owns"`, `"run server"`). When given, the JSON
    /// form starts with `"schema_version": 1, "command": ...` ([`json::Envelope`]); a report
    /// that serializes those two fields itself leaves this `None`.
    fn command(&self) -> Option<&'static str> {
        None
    }
}

/// Output format.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// Borderless tables and text.
    Table,
    /// One JSON object.
    Json,
}

/// Writes `report` to `out` in `format`; hints go to `err` in table mode.
///
/// # Errors
/// I/O errors of the writers (a broken pipe among them, which `main` treats as success).
pub fn emit<R: Report>(
    report: &R,
    format: Format,
    out: impl Write,
    mut err: impl Write,
) -> io::Result<()> {
    // stdout is line-buffered; a 50,000-row listing must not cost 50,000 write calls.
    let mut out = io::BufWriter::with_capacity(64 * 1024, out);
    match format {
        Format::Json => match report.command() {
            Some(command) => json::write(&json::Envelope::new(command, report), &mut out)?,
            None => json::write(report, &mut out)?,
        },
        Format::Table => {
            if let Some(rows) = report.rows() {
                table::write_rows(rows, &mut out)?;
            }
            for block in report.human() {
                match block {
                    Block::Table { header, rows } => table::write(&header, &rows, &mut out)?,
                    Block::Line(l) => writeln!(out, "{l}")?,
                }
            }
            out.flush()?;
            for n in report.notes() {
                writeln!(err, "hint: {n}")?;
            }
        }
    }
    out.flush()
}

/// Formats milliseconds left as people read them: `59.4s`, `850ms`, `expired`.
///
/// ```
/// assert_eq!(netkit::output::fmt_ms(59412), "59.4s");
/// assert_eq!(netkit::output::fmt_ms(636), "0.6s");
/// assert_eq!(netkit::output::fmt_ms(0), "expiring");
/// ```
pub fn fmt_ms(ms: u64) -> String {
    if ms == 0 {
        "expiring".to_string()
    } else {
        format!("{:.1}s", ms as f64 / 1000.0)
    }
}
