//! Usage errors as one line: clap's multi-line error blocks become `netkit: reason` plus at
//! most one `try: ...` line (a suggestion clap found, or where to read more), as every other
//! netkit error is printed. Pure: `main` prints what [`one_line`] returns.

use clap::error::{ContextKind, ContextValue, ErrorKind};

use clap::CommandFactory;

use super::Cli;
use super::port::PortError;

/// A usage error, ready to print: `netkit: {reason}` and `try: {hint}`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UsageError {
    /// What is wrong, one line.
    pub reason: String,
    /// What to type instead, or where to read more.
    pub try_line: Option<String>,
}

impl std::fmt::Display for UsageError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "netkit: {}", self.reason)?;
        if let Some(t) = &self.try_line {
            write!(f, "\ntry: {t}")?;
        }
        Ok(())
    }
}

fn text(v: Option<&ContextValue>) -> Option<String> {
    match v? {
        ContextValue::String(s) => Some(s.clone()),
        ContextValue::StyledStr(s) => Some(s.to_string()),
        ContextValue::Strings(v) => Some(v.join(", ")),
        ContextValue::StyledStrs(v) => Some(
            v.iter()
                .map(|s| s.to_string())
                .collect::<Vec<_>>()
                .join(", "),
        ),
        ContextValue::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

fn strings(v: Option<&ContextValue>) -> Vec<String> {
    match v {
        Some(ContextValue::Strings(v)) => v.clone(),
        Some(ContextValue::String(s)) => vec![s.clone()],
        Some(ContextValue::StyledStrs(v)) => v.iter().map(|s| s.to_string()).collect(),
        _ => Vec::new(),
    }
}

/// The subcommand path the words of `argv` (without argv\[0\]) reach: `["run", "server"]`.
fn path_of(argv: &[String]) -> (Vec<String>, clap::Command) {
    let mut cmd = Cli::command();
    cmd.build();
    let mut path = Vec::new();
    for w in argv {
        if w == "--" {
            break;
        }
        if w.starts_with('-') {
            continue;
        }
        match cmd.find_subcommand(w) {
            Some(sub) => {
                let sub = sub.clone();
                path.push(sub.get_name().to_string());
                cmd = sub;
            }
            // A value or positional: deeper words are not subcommands of this one.
            None if cmd.has_subcommands() => break,
            None => continue,
        }
    }
    (path, cmd)
}

/// (`netkit who-owns`, its synopsis from clap's usage line), the synopsis when clap gave one.
fn usage_of(e: &clap::Error, argv: &[String]) -> (String, Option<String>, clap::Command) {
    let (path, cmd) = path_of(argv);
    let command = std::iter::once("netkit".to_string())
        .chain(path)
        .collect::<Vec<_>>()
        .join(" ");
    let usage = text(e.get(ContextKind::Usage)).unwrap_or_default();
    let synopsis = usage
        .lines()
        .map(str::trim)
        .find_map(|l| l.strip_prefix("Usage:"))
        .map(|s| s.trim().to_string());
    (command, synopsis, cmd)
}

/// What a parse error from the standard library means, in words.
fn explain_source(src: &(dyn std::error::Error + 'static)) -> String {
    use std::num::IntErrorKind;
    if let Some(e) = src.downcast_ref::<std::num::ParseIntError>() {
        return match e.kind() {
            IntErrorKind::PosOverflow => "the number is too large".into(),
            IntErrorKind::NegOverflow => "the number is too small".into(),
            IntErrorKind::Empty => "expected a number, got nothing".into(),
            _ => "expected a whole number".into(),
        };
    }
    if src.downcast_ref::<std::num::ParseFloatError>().is_some() {
        return "expected a number".into();
    }
    src.to_string()
}

/// `--port <PORT>` → `--port`; `<PORT>...` stays.
fn flag_name(arg: &str) -> String {
    let a = arg.trim();
    if a.starts_with('-') {
        a.split([' ', '=']).next().unwrap_or(a).to_string()
    } else {
        a.to_string()
    }
}

/// The one-line form of a clap error that is not --help/--version; `argv` is the command line
/// without the program name (it tells which subcommand the error is about).
pub fn one_line(e: &clap::Error, argv: &[String]) -> UsageError {
    let (command, synopsis, cmd) = usage_of(e, argv);
    let sub = command
        .strip_prefix("netkit ")
        .unwrap_or("netkit")
        .to_string();
    let help = format!("{command} --help");
    let arg = text(e.get(ContextKind::InvalidArg));
    let value = text(e.get(ContextKind::InvalidValue));
    let suggested_arg = text(e.get(ContextKind::SuggestedArg));
    let mk = |reason: String, try_line: Option<String>| UsageError { reason, try_line };
    match e.kind() {
        ErrorKind::ValueValidation => {
            // Our own parsers say everything in one line that quotes the value.
            if let Some(p) =
                std::error::Error::source(e).and_then(|s| s.downcast_ref::<PortError>())
            {
                return mk(p.to_string(), None);
            }
            let why = std::error::Error::source(e)
                .map(explain_source)
                .unwrap_or_else(|| "not accepted".into());
            mk(
                format!(
                    "invalid value '{}' for {}: {why}",
                    value.unwrap_or_default(),
                    flag_name(&arg.unwrap_or_default())
                ),
                Some(help),
            )
        }
        ErrorKind::InvalidValue => {
            let valid = strings(e.get(ContextKind::ValidValue));
            let flag = flag_name(&arg.unwrap_or_default());
            let value = value.unwrap_or_default();
            let reason = if value.is_empty() {
                format!("{flag} needs a value")
            } else {
                format!("invalid value '{value}' for {flag}")
            };
            let reason = if valid.is_empty() {
                reason
            } else {
                format!("{reason}: expected one of {}", valid.join(", "))
            };
            let try_line = match text(e.get(ContextKind::SuggestedValue)) {
                Some(s) if flag.starts_with('-') => Some(format!("{command} {flag} {s}")),
                Some(s) => Some(format!("{command} {s}")),
                None => Some(help),
            };
            mk(reason, try_line)
        }
        ErrorKind::UnknownArgument => {
            let a = arg.unwrap_or_default();
            let reason = if a.starts_with('-') {
                format!("unknown option '{a}' for {command}")
            } else {
                format!("unexpected argument '{a}' for {command}")
            };
            let tip = strings(e.get(ContextKind::Suggested))
                .into_iter()
                .next()
                .and_then(|t| {
                    // "to pass '--x' as a value, use '-- --x'" → the quoted command.
                    t.rsplit_once("use '")
                        .map(|(_, q)| q.trim_end_matches('\'').to_string())
                });
            let try_line = suggested_arg
                .or(tip)
                .or_else(|| synopsis.clone())
                .unwrap_or(help);
            mk(reason, Some(try_line))
        }
        ErrorKind::InvalidSubcommand => {
            let bad = text(e.get(ContextKind::InvalidSubcommand)).unwrap_or_default();
            let try_line = match strings(e.get(ContextKind::SuggestedSubcommand)).first() {
                Some(s) => format!("{command} {s}"),
                None => help,
            };
            let reason = if command == "netkit" {
                format!("unknown command '{bad}'")
            } else {
                format!("unknown command '{bad}' for {command}")
            };
            mk(reason, Some(try_line))
        }
        ErrorKind::MissingSubcommand | ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand => {
            let valid: Vec<String> = cmd
                .get_subcommands()
                .filter(|c| !c.is_hide_set() && c.get_name() != "help")
                .map(|c| c.get_name().to_string())
                .collect();
            let what = if sub == "netkit" {
                "a command is required".to_string()
            } else {
                format!("{sub} needs a command")
            };
            let reason = if valid.is_empty() {
                what
            } else {
                format!("{what}: {}", valid.join(", "))
            };
            mk(reason, Some(help))
        }
        ErrorKind::MissingRequiredArgument => {
            let missing = strings(e.get(ContextKind::InvalidArg));
            mk(
                format!("{sub} needs {}", missing.join(" and ")),
                synopsis.or(Some(help)),
            )
        }
        ErrorKind::ArgumentConflict => {
            let prior = strings(e.get(ContextKind::PriorArg));
            let a = flag_name(&arg.unwrap_or_default());
            let reason = if prior.is_empty() {
                format!("{a} cannot be used here")
            } else {
                format!(
                    "{a} cannot be used with {}",
                    prior
                        .iter()
                        .map(|p| flag_name(p))
                        .collect::<Vec<_>>()
                        .join(", ")
                )
            };
            mk(reason, Some(help))
        }
        ErrorKind::NoEquals => mk(
            format!(
                "{} needs its value after '='",
                flag_name(&arg.unwrap_or_default())
            ),
            Some(help),
        ),
        ErrorKind::TooManyValues => mk(
            format!(
                "too many values for {}: '{}'",
                flag_name(&arg.unwrap_or_default()),
                value.unwrap_or_default()
            ),
            Some(help),
        ),
        ErrorKind::TooFewValues | ErrorKind::WrongNumberOfValues => mk(
            format!(
                "{} needs {} value(s), got {}",
                flag_name(&arg.unwrap_or_default()),
                text(e.get(ContextKind::ExpectedNumValues))
                    .or_else(|| text(e.get(ContextKind::MinValues)))
                    .unwrap_or_else(|| "more".into()),
                text(e.get(ContextKind::ActualNumValues)).unwrap_or_else(|| "fewer".into())
            ),
            Some(help),
        ),
        _ => {
            // Anything else: clap's first line, without its "error: " prefix.
            let rendered = e.render().to_string();
            let first = rendered
                .lines()
                .map(str::trim)
                .find(|l| !l.is_empty())
                .unwrap_or("invalid usage");
            mk(
                first.strip_prefix("error: ").unwrap_or(first).to_string(),
                Some(help),
            )
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    fn err(args: &[&str]) -> UsageError {
        let mut v = vec!["netkit"];
        v.extend_from_slice(args);
        let argv: Vec<String> = args.iter().map(|s| s.to_string()).collect();
        one_line(&Cli::try_parse_from(v).expect_err("a usage error"), &argv)
    }

    #[test]
    fn port_errors_are_exactly_the_parser_message() {
        let e = err(&["who-owns", "abc"]);
        assert_eq!(
            e.to_string(),
            "netkit: invalid port 'abc': expected 1-65535, :PORT, PORT/tcp, HOST:PORT, a range A-B or a service name"
        );
        assert_eq!(err(&["who-owns", "0"]).try_line, None);
    }

    #[test]
    fn missing_arguments_name_the_command_and_its_synopsis() {
        let e = err(&["who-owns"]);
        assert_eq!(e.reason, "who-owns needs <PORT>...");
        assert!(e.try_line.unwrap().starts_with("netkit who-owns "));
        let e = err(&[]);
        assert!(e.reason.starts_with("a command is required: "), "{e}");
        assert!(e.reason.contains("who-owns"), "{e}");
    }

    #[test]
    fn unknown_things_suggest_the_near_miss() {
        assert_eq!(
            err(&["who-own"]),
            UsageError {
                reason: "unknown command 'who-own'".into(),
                try_line: Some("netkit who-owns".into())
            }
        );
        let e = err(&["listening", "--jsn"]);
        assert_eq!(e.reason, "unknown option '--jsn' for netkit listening");
        assert_eq!(e.try_line.as_deref(), Some("--json"));
    }

    #[test]
    fn every_message_is_one_line_plus_one_try_line() {
        for args in [
            &["who-owns", "6000", "--signal", "TERM"][..],
            &["explain", "6000", "--v6only", "--dual-stack"],
            &["inspect", "--pid", "x"],
            &["run"],
            &["completions", "tcsh"],
            &["wait-free", "6000", "--timeout"],
        ] {
            let e = err(args);
            assert!(!e.reason.contains('\n'), "{args:?}: {e}");
            assert!(
                e.try_line.as_deref().is_none_or(|t| !t.contains('\n')),
                "{args:?}: {e}"
            );
        }
    }
}
