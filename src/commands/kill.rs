//! `netkit who-owns PORT --kill` (the explain issue fills this in).

use anyhow::bail;

use crate::cli::inventory::WhoOwnsArgs;
use crate::output::Format;

/// Stops the processes holding the port.
///
/// # Errors
/// Not implemented yet.
pub fn run(_a: &WhoOwnsArgs, _f: Format) -> anyhow::Result<i32> {
    bail!("--kill is not implemented yet")
}
