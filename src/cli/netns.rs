//! The network-namespace flags the inventory commands, explain and the port tools share.

use clap::Args;

use crate::inspect::netns::NetnsSpec;

/// `--netns` / `--all-netns`: where to look.
#[derive(Debug, Clone, Default, Args)]
pub struct NetnsArgs {
    /// Look inside this network namespace instead of this one: a name from `ip netns list`, a
    /// path to a namespace file (/proc/PID/ns/net, /run/netns/NAME) or pid:N (process N's).
    /// Needs root (entering a namespace needs CAP_SYS_ADMIN).
    #[arg(long, value_name = "NAME|PATH|pid:N", value_parser = NetnsSpec::parse, conflicts_with = "all_netns")]
    pub netns: Option<NetnsSpec>,
    /// Every network namespace on the host (the named ones and every process's): rows gain a
    /// NETNS column. Root sees them all; an ordinary user only this one (a hint says so).
    #[arg(long)]
    pub all_netns: bool,
}

/// `--netns` alone (commands that act on one namespace: explain, wait-free, wait-listen,
/// free-port).
#[derive(Debug, Clone, Default, Args)]
pub struct OneNetnsArgs {
    /// Run inside this network namespace: a name from `ip netns list`, a path to a namespace
    /// file or pid:N. Needs root (CAP_SYS_ADMIN).
    #[arg(long, value_name = "NAME|PATH|pid:N", value_parser = NetnsSpec::parse)]
    pub netns: Option<NetnsSpec>,
}
