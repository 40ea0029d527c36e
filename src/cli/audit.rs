//! Arguments of `netkit audit`.

use clap::{Args, ValueEnum};

/// `netkit audit`.
#[derive(Debug, Args)]
pub struct AuditArgs {
    /// Exit 1 only for findings of this severity or worse (default: any finding, info included).
    #[arg(long, value_enum, value_name = "SEVERITY")]
    pub fail_on: Option<FailOn>,
}

/// The severity `--fail-on` names.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum FailOn {
    /// warn or high.
    Warn,
    /// high only.
    High,
}
