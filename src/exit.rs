//! The exit codes every netkit command and lab component returns (BRIEF/STYLE: 0 answered,
//! 1 nothing to report, 2 error). Here rather than in `commands` so that the layers below it
//! (`lab`, `explain`) can return them without importing the glue layer.

/// Exit code: found / ok.
pub const FOUND: i32 = 0;
/// Exit code: nothing to report.
pub const NOTHING: i32 = 1;
/// Exit code: error.
pub const ERROR: i32 = 2;
