//! JSON output: one top-level object per run, followed by a newline.

use std::io::{self, Write};

use serde::Serialize;

/// Writes `report` as one compact JSON object and a newline.
///
/// # Errors
/// I/O errors of `out`; serialization of netkit's own reports cannot fail.
pub fn write<R: Serialize>(report: &R, out: &mut impl Write) -> io::Result<()> {
    serde_json::to_writer(&mut *out, report).map_err(io::Error::other)?;
    writeln!(out)
}

/// Writes one JSON line (for status lines of long-running components).
///
/// # Errors
/// I/O errors of `out`.
pub fn line<R: Serialize>(value: &R, out: &mut impl Write) -> io::Result<()> {
    write(value, out)?;
    out.flush()
}
