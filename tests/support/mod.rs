//! The one helper module of the integration tests (`mod support;` in each tests/*.rs).
//!
//! One file per concept; area files build on the shared ones:
//! - shared: [`host`] (root? which tools?), [`wait`] (bounded polling), [`cli`] (running the
//!   netkit binary, decoding its `--json`), [`proc`] (a child in its own process group with
//!   line-wise stdout, killed on drop), [`python`] (python3 socket holders and the scripts in
//!   `py/`), [`listeners`] (ports from port 0, TIME_WAIT makers, small socket I/O), [`netns`]
//!   (private network namespaces), [`ss`] (parsing `ss` output: the outside view),
//!   [`schema`] (the JSON-schema harness), [`tty`] (runs on a pseudo-terminal).
//! - per area: [`inventory`] (who-owns/listening/timewait/inspect JSON types), [`explain`]
//!   (explain JSON types, the before/after real-bind check), [`lab`] (`netkit run ...`
//!   event lines), [`proxy`] (the proxy process, a DONE server, one-shot clients),
//!   [`sockopt`] (target.py / peer.py, `audit`), [`exporter`] (scrapes, exposition parser).
//!
//! Every test binary compiles this whole module but uses only part of it, so unused items are
//! normal here: hence the crate-wide `dead_code` allowance below (per-item attributes would
//! have to be kept in step with which binary uses what).
#![allow(dead_code)]

pub mod cli;
pub mod explain;
pub mod exporter;
pub mod host;
pub mod inventory;
pub mod lab;
pub mod listeners;
pub mod netns;
pub mod proc;
pub mod proxy;
pub mod python;
pub mod schema;
pub mod sockopt;
pub mod ss;
pub mod tty;
pub mod wait;

// The few helpers nearly every test file calls, at the top (`support::is_root()`); not
// every binary uses each, hence the allowance.
#[allow(unused_imports)]
pub use host::{can_setpriv, have, is_root};
#[allow(unused_imports)]
pub use wait::{eventually, poll};
