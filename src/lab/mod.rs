//! Lab components: the server, client, proxy and UDP pair people practise on. Every socket
//! they create goes through [`crate::sockopt`], so its options are set from flags and shown as
//! the kernel reports them.

pub mod client;
pub mod jsonproto;
pub mod policy;
pub mod proxy;
pub mod relay;
pub mod server;
pub mod shutdown;
pub mod udp;
