//! Arguments of `netkit audit`.

use clap::{Args, ValueEnum};

/// `netkit audit`.
#[derive(Debug, Args)]
pub struct AuditArgs {
    /// Exit 1 only for findings of this severity or worse (default: any finding, info included).
    #[arg(long, value_enum, value_name = "SEVERITY")]
    pub fail_on: Option<FailOn>,
    /// Audit this network namespace instead: an `ip netns` name, a path, or pid:N (root).
    #[arg(long, value_name = "NS", conflicts_with = "all_netns")]
    pub netns: Option<String>,
    /// Audit every network namespace of the host (root; each finding names its namespace).
    #[arg(long)]
    pub all_netns: bool,
}

/// The severity `--fail-on` names.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum FailOn {
    /// warn or high.
    Warn,
    /// high only.
    High,
}
