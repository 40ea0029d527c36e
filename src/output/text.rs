//! Long lines of text (explain's causes and fixes, hints) wrapped at a terminal's width on
//! word boundaries, with a hanging indent: continuation lines start under the text after the
//! line's own indent and its list marker (`1. `, `fix: `, `hint: `), so a paragraph reads as
//! one item. Without a width the line is written as it is.

use std::io::{self, Write};

use unicode_width::UnicodeWidthStr;

/// Writes `line` (and a newline), wrapped to `width` columns when given.
///
/// # Errors
/// I/O errors of `out`.
pub fn write_wrapped(line: &str, width: Option<usize>, out: &mut impl Write) -> io::Result<()> {
    match width {
        Some(w) if line.width() > w => {
            for l in wrap(line, w) {
                writeln!(out, "{l}")?;
            }
            Ok(())
        }
        _ => writeln!(out, "{line}"),
    }
}

/// The hanging indent of `line`: its leading spaces plus a list marker (`12. `, or one
/// lowercase word and `: ` such as `fix: `), else its leading spaces plus two.
fn hanging_indent(line: &str) -> usize {
    let lead = line.len() - line.trim_start_matches(' ').len();
    let rest = &line[lead..];
    let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
    if digits > 0 && rest[digits..].starts_with(". ") {
        return lead + digits + 2;
    }
    let word = rest
        .bytes()
        .take_while(|b| b.is_ascii_lowercase() || *b == b'-' || *b == b'_')
        .count();
    if (1..=12).contains(&word) && rest[word..].starts_with(": ") {
        return lead + word + 2;
    }
    lead + 2
}

/// Splits `line` into lines of at most `width` columns at spaces; continuation lines carry
/// the hanging indent. A word longer than a whole line is broken where it must be.
///
/// ```
/// let l = netkit::output::text::wrap("   fix: stop PID 42 or pick another port", 20);
/// assert_eq!(l, ["   fix: stop PID 42", "        or pick", "        another port"]);
/// ```
pub fn wrap(line: &str, width: usize) -> Vec<String> {
    let width = width.max(8);
    let mut indent = hanging_indent(line);
    if indent + 8 > width {
        indent = 0;
    }
    let lead = line.len() - line.trim_start_matches(' ').len();
    let pad = " ".repeat(indent);
    let mut out = Vec::new();
    let mut cur = String::from(&line[..lead]);
    let mut cur_w = lead;
    let mut fresh = true; // nothing but indent in `cur` yet
    for word in line[lead..].split(' ').filter(|w| !w.is_empty()) {
        let mut word = word.to_string();
        loop {
            let ww = word.width();
            let need = if fresh { ww } else { ww + 1 };
            if cur_w + need <= width {
                if !fresh {
                    cur.push(' ');
                }
                cur.push_str(&word);
                cur_w += need;
                fresh = false;
                break;
            }
            if !fresh {
                out.push(std::mem::replace(&mut cur, pad.clone()));
                cur_w = indent;
                fresh = true;
                continue;
            }
            // A word wider than the whole line: break it.
            let room = width.saturating_sub(cur_w).max(1);
            let (head, tail) = split_at_width(&word, room);
            cur.push_str(head);
            out.push(std::mem::replace(&mut cur, pad.clone()));
            cur_w = indent;
            word = tail.to_string();
            if word.is_empty() {
                break;
            }
        }
    }
    if !fresh || out.is_empty() {
        out.push(cur);
    }
    out
}

/// The longest prefix of `s` at most `w` columns wide (at least one char), and the rest.
fn split_at_width(s: &str, w: usize) -> (&str, &str) {
    use unicode_width::UnicodeWidthChar;
    let mut used = 0;
    for (i, ch) in s.char_indices() {
        let cw = ch.width().unwrap_or(0);
        if used + cw > w && i > 0 {
            return s.split_at(i);
        }
        used += cw;
    }
    (s, "")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbered_causes_hang_under_their_text() {
        let l = "1. [wildcard_overlap] PID 26422 (python3) is listening on 127.0.0.1:6000: you asked for the wildcard";
        let w = wrap(l, 40);
        assert!(w.iter().all(|x| x.width() <= 40), "{w:?}");
        assert!(w[0].starts_with("1. [wildcard_overlap]"));
        assert!(
            w[1..]
                .iter()
                .all(|x| x.starts_with("   ") && !x.starts_with("    ")),
            "{w:?}"
        );
        // No word is broken: joining the lines gives the words back.
        let joined: Vec<&str> = w.iter().flat_map(|x| x.split_whitespace()).collect();
        assert_eq!(joined, l.split_whitespace().collect::<Vec<_>>());
    }

    #[test]
    fn hints_and_plain_lines() {
        let w = wrap(
            "hint: nothing holds local port 6002 (TCP or UDP, IPv4 or IPv6, any state)",
            30,
        );
        assert_eq!(w[0], "hint: nothing holds local port");
        assert!(w[1].starts_with("      6002"), "{w:?}");
        assert_eq!(hanging_indent("tcp 0.0.0.0:6000 (SO_REUSEADDR): not"), 2);
        assert_eq!(hanging_indent("  check with SO_REUSEPORT: x"), 4);
        assert_eq!(wrap("short", 80), ["short"]);
    }

    #[test]
    fn a_word_longer_than_the_line_is_broken_not_lost() {
        let w = wrap("see /very/long/path/that/does/not/fit/anywhere/at/all", 20);
        assert!(w.iter().all(|x| x.width() <= 20), "{w:?}");
        let l = "see /very/long/path/that/does/not/fit/anywhere/at/all";
        let got: String = w.concat().split_whitespace().collect();
        assert_eq!(got, l.split_whitespace().collect::<String>());
    }
}
