//! Lab components: the server, client, proxy and UDP pair people practise on. Every socket
//! they create goes through [`crate::sockopt`] (the proxy's upstream connects apply the same
//! options to tokio sockets), so its options are set from flags and shown as the kernel
//! reports them.

pub mod admission;
pub mod client;
pub mod diagnose;
pub mod jsonproto;
pub mod load;
pub mod policy;
pub mod protocol;
pub mod proxy;
pub mod relay;
pub mod server;
pub mod shutdown;
pub mod status;
pub mod udp;
