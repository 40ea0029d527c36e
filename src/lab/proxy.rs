//! Lab proxy (filled in by its issue).

use anyhow::bail;

use crate::cli::proxy::ProxyArgs;
use crate::output::Format;

/// `netkit run proxy`: runs until stopped and returns the exit code.
///
/// # Errors
/// Not implemented yet.
pub fn run_cli(_a: ProxyArgs, _format: Format) -> anyhow::Result<i32> {
    bail!("run proxy is not implemented yet")
}
