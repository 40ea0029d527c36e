//! explain, wait-free, free-port (the explain issue fills these in).

use anyhow::bail;

use crate::cli::explain::{ExplainArgs, FreePortArgs, WaitFreeArgs};
use crate::output::Format;

/// `netkit explain`.
///
/// # Errors
/// Not implemented yet.
pub fn run(_a: &ExplainArgs, _f: Format) -> anyhow::Result<i32> {
    bail!("explain is not implemented yet")
}

/// `netkit wait-free`.
///
/// # Errors
/// Not implemented yet.
pub fn wait_free(_a: &WaitFreeArgs, _f: Format) -> anyhow::Result<i32> {
    bail!("wait-free is not implemented yet")
}

/// `netkit free-port`.
///
/// # Errors
/// Not implemented yet.
pub fn free_port(_a: &FreePortArgs, _f: Format) -> anyhow::Result<i32> {
    bail!("free-port is not implemented yet")
}
