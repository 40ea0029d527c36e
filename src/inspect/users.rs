//! uid → user name, through NSS (uzers), cached per run.
//!
//! sysinfo's user list reads only /etc/passwd and drops users whose shell is /bin/false, so
//! it would show daemon users as bare numbers (KERNEL-FACTS.md); uzers asks getpwuid_r.

use std::collections::HashMap;
use std::sync::Arc;

/// A per-run cache of user names.
#[derive(Debug, Default)]
pub struct UserNames {
    cache: HashMap<u32, Arc<str>>,
}

impl UserNames {
    /// The user name for `uid`, or the number as text when it has no name.
    pub fn name(&mut self, uid: u32) -> Arc<str> {
        self.cache
            .entry(uid)
            .or_insert_with(|| match uzers::get_user_by_uid(uid) {
                Some(u) => u.name().to_string_lossy().into(),
                None => uid.to_string().into(),
            })
            .clone()
    }
}

/// Resolves a `--user` argument (a name or a number) to a uid.
///
/// ```
/// assert_eq!(netkit::inspect::users::uid_of("0"), Some(0));
/// assert_eq!(netkit::inspect::users::uid_of("root"), Some(0));
/// assert_eq!(netkit::inspect::users::uid_of("no-such-user-xyz"), None);
/// ```
pub fn uid_of(user: &str) -> Option<u32> {
    if let Ok(n) = user.parse::<u32>() {
        return Some(n);
    }
    uzers::get_user_by_name(user).map(|u| u.uid())
}

/// The effective uid of this process.
pub fn current_uid() -> u32 {
    uzers::get_effective_uid()
}
