//! `--state` in ss's vocabulary (ss(8) "STATE-FILTER"): the single states and ss's groups,
//! as a clap `ValueEnum` so completions offer them. Kernel spellings (`TIME_WAIT`, `LISTEN`)
//! are accepted as aliases, case-insensitively.

use clap::ValueEnum;

use crate::inspect::SockState;

/// One `--state` value: a state or a group of states.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum StateFilter {
    /// Every state (ss `all`).
    All,
    /// Every state but LISTEN and the closed ones (ss `connected`); includes TIME_WAIT.
    Connected,
    /// Connected, except SYN_SENT (ss `synchronized`).
    Synchronized,
    /// The minisockets: TIME_WAIT and SYN_RECV (ss `bucket`).
    Bucket,
    /// Everything but the bucket states (ss `big`).
    Big,
    /// TCP LISTEN (ss `listening`).
    #[value(alias = "listen")]
    Listening,
    /// ESTABLISHED, TCP or connected UDP.
    #[value(alias = "estab")]
    Established,
    /// SYN_SENT.
    #[value(alias = "syn_sent")]
    SynSent,
    /// SYN_RECV and NEW_SYN_RECV (a connection waiting for its handshake's last ACK).
    #[value(alias = "syn_recv")]
    SynRecv,
    /// FIN_WAIT1.
    #[value(name = "fin-wait-1", aliases = ["fin_wait1", "fin-wait1"])]
    FinWait1,
    /// FIN_WAIT2.
    #[value(name = "fin-wait-2", aliases = ["fin_wait2", "fin-wait2"])]
    FinWait2,
    /// TIME_WAIT.
    #[value(alias = "time_wait")]
    TimeWait,
    /// Not connected: bound-only TCP (BOUND) and unconnected UDP (UNCONN) (ss `closed`).
    #[value(alias = "close")]
    Closed,
    /// CLOSE_WAIT.
    #[value(alias = "close_wait")]
    CloseWait,
    /// LAST_ACK.
    #[value(alias = "last_ack")]
    LastAck,
    /// CLOSING.
    Closing,
    /// TCP bound with bind() but never listen() (netkit; invisible to ss).
    #[value(alias = "bound-inactive")]
    Bound,
    /// Unconnected UDP (UNCONN).
    Unconn,
}

const CONNECTED: [SockState; 10] = [
    SockState::Established,
    SockState::SynSent,
    SockState::SynRecv,
    SockState::NewSynRecv,
    SockState::FinWait1,
    SockState::FinWait2,
    SockState::TimeWait,
    SockState::CloseWait,
    SockState::LastAck,
    SockState::Closing,
];

impl StateFilter {
    /// The kernel states this value stands for.
    pub fn states(self) -> Vec<SockState> {
        use SockState as S;
        match self {
            StateFilter::All => S::ALL.to_vec(),
            StateFilter::Connected => CONNECTED.to_vec(),
            StateFilter::Synchronized => {
                CONNECTED.into_iter().filter(|s| *s != S::SynSent).collect()
            }
            StateFilter::Bucket => vec![S::TimeWait, S::SynRecv, S::NewSynRecv],
            StateFilter::Big => S::ALL
                .into_iter()
                .filter(|s| !matches!(s, S::TimeWait | S::SynRecv | S::NewSynRecv))
                .collect(),
            StateFilter::Listening => vec![S::Listen],
            StateFilter::Established => vec![S::Established],
            StateFilter::SynSent => vec![S::SynSent],
            StateFilter::SynRecv => vec![S::SynRecv, S::NewSynRecv],
            StateFilter::FinWait1 => vec![S::FinWait1],
            StateFilter::FinWait2 => vec![S::FinWait2],
            StateFilter::TimeWait => vec![S::TimeWait],
            StateFilter::Closed => vec![S::Close, S::Bound, S::Unconn],
            StateFilter::CloseWait => vec![S::CloseWait],
            StateFilter::LastAck => vec![S::LastAck],
            StateFilter::Closing => vec![S::Closing],
            StateFilter::Bound => vec![S::Bound],
            StateFilter::Unconn => vec![S::Unconn],
        }
    }

    /// The union of several values' states, in kernel order, each once.
    pub fn union(values: &[StateFilter]) -> Vec<SockState> {
        let mut v: Vec<SockState> = values.iter().flat_map(|f| f.states()).collect();
        v.sort_unstable();
        v.dedup();
        v
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ss_names_and_kernel_spellings_parse() {
        for (s, f) in [
            ("time-wait", StateFilter::TimeWait),
            ("TIME_WAIT", StateFilter::TimeWait),
            ("LISTEN", StateFilter::Listening),
            ("estab", StateFilter::Established),
            ("fin-wait-1", StateFilter::FinWait1),
            ("FIN_WAIT2", StateFilter::FinWait2),
            ("bucket", StateFilter::Bucket),
            ("closed", StateFilter::Closed),
        ] {
            assert_eq!(StateFilter::from_str(s, true), Ok(f), "{s}");
        }
        assert!(StateFilter::from_str("bogus", true).is_err());
    }

    #[test]
    fn groups_are_ss_groups() {
        use SockState as S;
        let connected = StateFilter::Connected.states();
        assert!(connected.contains(&S::TimeWait));
        assert!(!connected.contains(&S::Listen));
        assert!(!connected.contains(&S::Bound));
        assert!(!StateFilter::Synchronized.states().contains(&S::SynSent));
        let big = StateFilter::Big.states();
        assert!(big.contains(&S::Listen) && !big.contains(&S::TimeWait));
        assert_eq!(StateFilter::All.states().len(), S::ALL.len());
        assert_eq!(
            StateFilter::union(&[
                StateFilter::Listening,
                StateFilter::Bucket,
                StateFilter::TimeWait
            ]),
            vec![S::SynRecv, S::TimeWait, S::Listen, S::NewSynRecv]
        );
    }
}
