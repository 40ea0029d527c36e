//! Why a port cannot be (re)bound: the trial, the diagnosis and the decoders.
//!
//! - [`port`]: the engine's API, a request in and a report out;
//! - [`trial`]: the real probe bind (the kernel's verdict), also as another uid;
//! - [`causes`]: from the trial outcomes and the port's inventory to causes and fixes
//!   (BIND-RULES.md §1);
//! - [`connect`]: why a client's connect() failed (same 4-tuple, ephemeral exhaustion);
//! - [`errors`]: pasted error messages of many runtimes → errno, platform, port;
//! - [`pidfd`]: reading holders' socket options through pidfd_getfd;
//! - [`freeport`]: finding ports that are bindable now.

pub mod causes;
pub mod connect;
pub mod errors;
pub mod freeport;
pub mod pidfd;
pub mod port;
pub mod trial;

pub use port::{ExplainError, ExplainReport, Request};
