//! What this machine and this test process offer: root, installed tools.

use std::process::{Command, Stdio};

/// True when running as root.
pub fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions and cannot fail.
    unsafe { libc::geteuid() == 0 }
}

/// True when `prog` runs (`prog --version` or `prog -V` exits 0): installed and executable
/// by this user, which a PATH lookup alone would not tell.
pub fn have(prog: &str) -> bool {
    ["--version", "-V"].iter().any(|flag| {
        Command::new(prog)
            .arg(flag)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
    })
}

/// True when `setpriv` can run a command as `nobody` here (root and setpriv installed).
pub fn can_setpriv() -> bool {
    is_root()
        && Command::new("setpriv")
            .args(["--reuid=65534", "--regid=65534", "--clear-groups", "true"])
            .status()
            .is_ok_and(|s| s.success())
}
