//! `netkit sockopt PID` (the explain issue fills this in).

use anyhow::bail;

use crate::cli::explain::SockoptArgs;
use crate::output::Format;

/// Shows another process's socket options.
///
/// # Errors
/// Not implemented yet.
pub fn run(_a: &SockoptArgs, _f: Format) -> anyhow::Result<i32> {
    bail!("sockopt is not implemented yet")
}
