//! Printing reports: the only code that knows comfy-table ([`table`]) and serde_json ([`json`]).
//!
//! A report is plain data that derives `Serialize` and says what a person should see as
//! [`Block`]s. [`emit`] writes either form to any writer, so tests capture it; hints go to the
//! second writer (stderr) in table mode and inside the JSON object's `notes` otherwise.

pub mod json;
pub mod table;
pub mod text;
pub mod watch;

/// A writer whose reader has left (`| head`): every write is `BrokenPipe`. For the tests
/// of the writers.
#[cfg(test)]
pub(crate) struct Closed;

#[cfg(test)]
impl Write for Closed {
    fn write(&mut self, _: &[u8]) -> io::Result<usize> {
        Err(io::ErrorKind::BrokenPipe.into())
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

use std::io::IsTerminal;
use std::sync::atomic::{AtomicBool, Ordering};

use std::io::{self, Write};

use serde::Serialize;

/// The payload of the `BrokenPipe` error a write to netkit's own stdout or stderr gets once
/// the reader went away (`netkit inspect | head -n1`). `main` exits 0 silently on exactly
/// this error; a broken pipe on a socket (a lab client losing its peer) stays an error.
#[derive(Debug)]
pub struct OutputClosed;

impl std::fmt::Display for OutputClosed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("output closed by its reader (broken pipe)")
    }
}

impl std::error::Error for OutputClosed {}

/// A writer to netkit's stdout or stderr that marks `EPIPE` as [`OutputClosed`].
#[derive(Debug)]
pub struct Tagged<W>(W);

impl<W: Write> Write for Tagged<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.0.write(buf).map_err(tag)
    }
    fn write_all(&mut self, buf: &[u8]) -> io::Result<()> {
        self.0.write_all(buf).map_err(tag)
    }
    fn flush(&mut self) -> io::Result<()> {
        self.0.flush().map_err(tag)
    }
}

fn tag(e: io::Error) -> io::Error {
    if e.kind() == io::ErrorKind::BrokenPipe && e.get_ref().is_none() {
        io::Error::new(io::ErrorKind::BrokenPipe, OutputClosed)
    } else {
        e
    }
}

/// netkit's stdout, locked, with a closed reader reported as [`OutputClosed`].
pub fn stdout() -> Tagged<io::StdoutLock<'static>> {
    Tagged(io::stdout().lock())
}

/// netkit's stderr, locked, with a closed reader reported as [`OutputClosed`]
/// (`netkit who-owns 22 2>&1 | head -n1` closes it too).
pub fn stderr() -> Tagged<io::StderrLock<'static>> {
    Tagged(io::stderr().lock())
}

/// True when `e` is a write to netkit's own stdout/stderr whose reader went away; false for
/// every other error, a socket's `EPIPE` included.
pub fn is_output_closed(e: &(dyn std::error::Error + 'static)) -> bool {
    e.is::<OutputClosed>()
        || e.downcast_ref::<io::Error>().is_some_and(|io| {
            io.kind() == io::ErrorKind::BrokenPipe
                && io.get_ref().is_some_and(|inner| inner.is::<OutputClosed>())
        })
}

/// Rows produced on demand, for listings too large to hold as strings (tens of thousands of
/// sockets): the writer asks for each row twice, once to size the columns, once to print.
pub trait Rows: Sync {
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

/// How wide human output may be: `None` = unlimited (a pipe or a file, or `--wide`), so
/// nothing is ever cut where a program reads it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Layout {
    /// Columns of stdout: tables are fitted and text wrapped to it.
    pub width: Option<usize>,
    /// Columns of stderr, for the hints.
    pub err_width: Option<usize>,
}

/// `--wide`: never fit or wrap.
static WIDE: AtomicBool = AtomicBool::new(false);

/// Sets `-w/--wide` for the rest of the run.
pub fn set_wide(wide: bool) {
    WIDE.store(wide, Ordering::Relaxed);
}

impl Layout {
    /// The layout of netkit's stdout and stderr right now: on a terminal its width (`COLUMNS`
    /// when set, as `ls` and `ps` honour it), elsewhere or with `--wide` unlimited. Read at
    /// each call, so `--watch` follows a resized window.
    pub fn detect() -> Layout {
        if WIDE.load(Ordering::Relaxed) {
            return Layout::default();
        }
        Layout {
            width: tty_width(&io::stdout()),
            err_width: tty_width(&io::stderr()),
        }
    }
}

/// Width of a terminal stream; `None` when it is not a terminal.
fn tty_width<S: IsTerminal + std::os::fd::AsFd>(s: &S) -> Option<usize> {
    if !s.is_terminal() {
        return None;
    }
    let columns = std::env::var("COLUMNS")
        .ok()
        .and_then(|c| c.trim().parse::<usize>().ok())
        .filter(|&c| c > 0);
    Some(
        columns
            .or_else(|| terminal_size::terminal_size_of(s.as_fd()).map(|(w, _)| usize::from(w.0)))
            .filter(|&c| c > 0)
            .unwrap_or(80),
    )
}

/// Output format.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// Borderless tables and text.
    Table,
    /// One JSON object.
    Json,
}

/// Writes `report` to `out` in `format`, laid out for netkit's stdout and stderr as they
/// are now ([`Layout::detect`]); hints go to `err` in table mode.
///
/// # Errors
/// I/O errors of the writers (a broken pipe among them, which `main` treats as success).
pub fn emit<R: Report>(
    report: &R,
    format: Format,
    out: impl Write,
    err: impl Write,
) -> io::Result<()> {
    emit_with(report, format, Layout::detect(), out, err)
}

/// [`emit`] with an explicit layout.
///
/// # Errors
/// I/O errors of the writers.
pub fn emit_with<R: Report>(
    report: &R,
    format: Format,
    layout: Layout,
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
                table::write_rows(rows, layout.width, &mut out)?;
            }
            for block in report.human() {
                match block {
                    Block::Table { header, rows } => {
                        table::write(&header, &rows, layout.width, &mut out)?
                    }
                    Block::Line(l) => text::write_wrapped(&l, layout.width, &mut out)?,
                }
            }
            out.flush()?;
            for n in report.notes() {
                text::write_wrapped(&format!("hint: {n}"), layout.err_width, &mut err)?;
            }
        }
    }
    out.flush()
}

/// Prints `pids` one per line, ascending and each once (`--pids`, like `lsof -t`).
///
/// # Errors
/// I/O errors of `out`.
pub fn write_pids(pids: impl IntoIterator<Item = u32>, mut out: impl Write) -> io::Result<()> {
    let set: std::collections::BTreeSet<u32> = pids.into_iter().collect();
    let mut buf = String::new();
    for p in set {
        buf.push_str(&p.to_string());
        buf.push('\n');
    }
    out.write_all(buf.as_bytes())?;
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
