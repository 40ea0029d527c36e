//! JSON output: one top-level object per run, followed by a newline.
//!
//! Every top-level object carries `"schema_version"` and `"command"` first (the vocabulary in
//! README's "JSON schema" section; the schemas are under `docs/schema/`). [`Envelope`] adds
//! them to a report that does not carry them itself.

use std::io::{self, Write};
use std::sync::atomic::{AtomicBool, Ordering};

use serde::Serialize;

/// The version of netkit's JSON vocabulary; bumped only when a field changes meaning or goes.
pub const SCHEMA_VERSION: u32 = 1;

/// `--watch` in JSON mode: every object carries the time it was taken (`ts`).
static STAMP: AtomicBool = AtomicBool::new(false);

/// Makes every [`Envelope`] from now on carry `ts` (RFC 3339 UTC, milliseconds).
pub fn stamp_frames(on: bool) {
    STAMP.store(on, Ordering::Relaxed);
}

/// `{"schema_version": 1, "command": ..., <the report's own fields>}`.
#[derive(Debug, Serialize)]
pub struct Envelope<'a, R: Serialize> {
    /// Always [`SCHEMA_VERSION`].
    pub schema_version: u32,
    /// The netkit subcommand as typed: `"who-owns"`, `"run server"`.
    pub command: &'a str,
    /// When the report was taken, in `--watch` mode.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ts: Option<String>,
    /// The report's fields, inlined.
    #[serde(flatten)]
    pub report: &'a R,
}

impl<'a, R: Serialize> Envelope<'a, R> {
    /// Wraps `report` of `command`.
    pub fn new(command: &'a str, report: &'a R) -> Self {
        Envelope {
            schema_version: SCHEMA_VERSION,
            command,
            ts: STAMP.load(Ordering::Relaxed).then(|| {
                humantime::format_rfc3339_millis(std::time::SystemTime::now()).to_string()
            }),
            report,
        }
    }
}

/// Writes `report` as one compact JSON object and a newline.
///
/// # Errors
/// I/O errors of `out`, with their kind kept (a broken pipe stays `BrokenPipe`, which `main`
/// treats as success); serialization of netkit's own reports cannot fail.
pub fn write<R: Serialize>(report: &R, out: &mut impl Write) -> io::Result<()> {
    // serde_json wraps the writer's error; `io::Error::from` hands back the writer's own
    // error (kind and payload), where `io::Error::other` used to hide a broken pipe.
    serde_json::to_writer(&mut *out, report).map_err(io::Error::from)?;
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

#[cfg(test)]
mod tests {
    use super::*;

    use crate::output::Closed;

    #[test]
    fn a_broken_pipe_keeps_its_kind() {
        let e = write(&serde_json::json!({"a": [1, 2, 3]}), &mut Closed).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::BrokenPipe);
    }

    #[test]
    fn only_netkit_s_own_output_counts_as_closed() {
        let e = write(
            &serde_json::json!({"a": 1}),
            &mut super::super::Tagged(Closed),
        )
        .unwrap_err();
        assert!(super::super::is_output_closed(&e));
        // A socket's EPIPE is an error like any other.
        let sock = io::Error::from(io::ErrorKind::BrokenPipe);
        assert!(!super::super::is_output_closed(&sock));
    }

    #[test]
    fn envelope_puts_version_and_command_first() {
        #[derive(Serialize)]
        struct R {
            port: u16,
        }
        let mut out = Vec::new();
        write(&Envelope::new("who-owns", &R { port: 6 }), &mut out).unwrap();
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "{\"schema_version\":1,\"command\":\"who-owns\",\"port\":6}\n"
        );
    }
}
