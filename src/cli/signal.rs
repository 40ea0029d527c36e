//! `--signal` values: a name (`TERM`, `SIGTERM`, `term`) or a number 1-64, with the names
//! offered by shell completions (never file names).

use clap::builder::{PossibleValue, TypedValueParser};

/// The names netkit knows, with their numbers on Linux.
pub const NAMES: [(&str, i32); 7] = [
    ("TERM", libc::SIGTERM),
    ("INT", libc::SIGINT),
    ("KILL", libc::SIGKILL),
    ("HUP", libc::SIGHUP),
    ("QUIT", libc::SIGQUIT),
    ("USR1", libc::SIGUSR1),
    ("USR2", libc::SIGUSR2),
];

/// A signal to send.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Signal {
    /// The signal number.
    pub number: i32,
    /// Its name without `SIG` (`TERM`), or the number when it has no name here.
    pub name: &'static str,
}

/// A `--signal` value that is neither a known name nor a number 1-64.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown signal '{0}': use TERM, INT, KILL, HUP, QUIT, USR1, USR2 or a number 1-64")]
pub struct SignalError(pub String);

/// Parses `TERM`, `SIGTERM`, `term`, `15`.
///
/// ```
/// use netkit::cli::signal::parse_signal;
/// assert_eq!(parse_signal("sigkill").unwrap().number, 9);
/// assert_eq!(parse_signal("2").unwrap().name, "INT");
/// ```
///
/// # Errors
/// [`SignalError`] for anything else.
pub fn parse_signal(s: &str) -> Result<Signal, SignalError> {
    let u = s.trim().to_ascii_uppercase();
    let name = u.strip_prefix("SIG").unwrap_or(&u);
    if let Ok(n) = name.parse::<i32>() {
        if !(1..=64).contains(&n) {
            return Err(SignalError(s.to_string()));
        }
        let name = NAMES
            .iter()
            .find(|(_, v)| *v == n)
            .map(|(k, _)| *k)
            .unwrap_or_else(|| number_name(n));
        return Ok(Signal { number: n, name });
    }
    NAMES
        .iter()
        .find(|(k, _)| *k == name)
        .map(|&(name, number)| Signal { number, name })
        .ok_or_else(|| SignalError(s.to_string()))
}

/// "1".."64" as static strings, for signals without a name here.
fn number_name(n: i32) -> &'static str {
    const NUMBERS: [&str; 64] = [
        "1", "2", "3", "4", "5", "6", "7", "8", "9", "10", "11", "12", "13", "14", "15", "16",
        "17", "18", "19", "20", "21", "22", "23", "24", "25", "26", "27", "28", "29", "30", "31",
        "32", "33", "34", "35", "36", "37", "38", "39", "40", "41", "42", "43", "44", "45", "46",
        "47", "48", "49", "50", "51", "52", "53", "54", "55", "56", "57", "58", "59", "60", "61",
        "62", "63", "64",
    ];
    NUMBERS[(n.clamp(1, 64) - 1) as usize]
}

/// The clap parser: [`parse_signal`], with [`NAMES`] as the values completions offer.
#[derive(Debug, Clone, Copy, Default)]
pub struct SignalParser;

impl TypedValueParser for SignalParser {
    type Value = Signal;

    fn parse_ref(
        &self,
        cmd: &clap::Command,
        arg: Option<&clap::Arg>,
        value: &std::ffi::OsStr,
    ) -> Result<Signal, clap::Error> {
        let f = parse_signal as fn(&str) -> Result<Signal, SignalError>;
        f.parse_ref(cmd, arg, value)
    }

    fn possible_values(&self) -> Option<Box<dyn Iterator<Item = PossibleValue> + '_>> {
        Some(Box::new(NAMES.iter().map(|(n, _)| PossibleValue::new(*n))))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signals_parse_by_name_and_number() {
        assert_eq!(parse_signal("TERM").unwrap().number, libc::SIGTERM);
        assert_eq!(parse_signal("sigkill").unwrap().name, "KILL");
        assert_eq!(parse_signal("2").unwrap().name, "INT");
        assert_eq!(parse_signal("34").unwrap().name, "34");
        assert!(parse_signal("0").is_err());
        assert!(parse_signal("65").is_err());
        assert!(parse_signal("BOGUS").is_err());
    }
}
