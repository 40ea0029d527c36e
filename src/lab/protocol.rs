//! The lab server's wire protocols as pure state machines: bytes in, replies out. No sockets
//! here; `server` feeds what it reads and writes what comes back, in every mode.
//!
//! - **zen** (the book's chapter 7 server): a request is the bytes up to and including `?`;
//!   the answer ends with `.`. Requests may arrive split across reads or several in one read.
//! - **lab** (seed 003): each message is answered `DONE` and reported as `Server received: …`.
//! - **echo**: bytes back as they came.
//!
//! # How the lab protocol finds the end of a message
//! The Python lab client does `sendall(text_or_json)` without a newline and then waits in
//! `recv(1024)`, so waiting for EOF would deadlock. The rules, in order:
//! 1. A `\n` ends a message (a trailing `\r` is dropped). The reply is `DONE\n`, and from then on
//!    the connection is in *line mode*: only newlines (or EOF) end messages, so slow writers of
//!    newline-terminated messages are never cut in two.
//! 2. Before any newline was seen, pending bytes that form one complete JSON object or array
//!    are a message at once (the proxy lab's `json.dumps(...)`).
//! 3. Otherwise pending bytes become a message after a *quiet period* with no more data
//!    (the server's `--quiet-ms`, 100 ms by default), or at EOF.
//!
//! A message ended by rule 2 or 3 is a *bare* message: the reply is `DONE` without a newline,
//! exactly what the seed's server sends, and the server then closes the connection (one bare
//! message per connection), so a client reading to EOF also works.

use std::fmt;

/// Largest request or message the server buffers before answering with an error and closing.
pub const MAX_MESSAGE: usize = 64 * 1024;

/// Which protocol a session speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// `Server received: …` / `DONE`.
    Lab,
    /// Zen-of-Python question and answer.
    Zen,
    /// Echo.
    Echo,
}

impl Kind {
    /// The protocol's name as the CLI spells it.
    pub fn name(self) -> &'static str {
        match self {
            Kind::Lab => "lab",
            Kind::Zen => "zen",
            Kind::Echo => "echo",
        }
    }
}

impl fmt::Display for Kind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// The zen answer to one request (the bytes up to and including `?`). Surrounding ASCII
/// whitespace is ignored, so `telnet`'s line endings do not matter.
///
/// ```
/// use netkit::lab::protocol::zen_answer;
/// assert_eq!(zen_answer(b"Beautiful is better than?"), b"Ugly.");
/// assert_eq!(zen_answer(b"Is this a question?"), b"Error: unknown aphorism.");
/// ```
pub fn zen_answer(request: &[u8]) -> &'static [u8] {
    match request.trim_ascii() {
        b"Beautiful is better than?" => b"Ugly.",
        b"Explicit is better than?" => b"Implicit.",
        b"Simple is better than?" => b"Complex.",
        _ => b"Error: unknown aphorism.",
    }
}

/// What a session wants the server to do after a call.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Output {
    /// Bytes to send, in order.
    pub reply: Vec<u8>,
    /// Lab messages received (for `Server received: …`), in order.
    pub received: Vec<String>,
    /// Close the connection after sending `reply`.
    pub close: bool,
}

/// One connection's protocol state.
#[derive(Debug, Clone)]
pub struct Session {
    kind: Kind,
    buf: Vec<u8>,
    line_mode: bool,
    closed: bool,
}

impl Session {
    /// A fresh session.
    pub fn new(kind: Kind) -> Session {
        Session {
            kind,
            buf: Vec::new(),
            line_mode: false,
            closed: false,
        }
    }

    /// True while part of a request is buffered: the server is in the middle of a request
    /// and a graceful shutdown lets it finish.
    pub fn has_pending(&self) -> bool {
        !self.buf.is_empty()
    }

    /// True when buffered bytes may be a bare lab message that a quiet period would end
    /// (rule 3 of the module docs).
    pub fn wants_quiet(&self) -> bool {
        self.kind == Kind::Lab && !self.line_mode && !self.buf.is_empty() && !self.closed
    }

    /// Feeds bytes read from the peer.
    pub fn feed(&mut self, data: &[u8]) -> Output {
        let mut out = Output::default();
        if self.closed {
            return out;
        }
        match self.kind {
            Kind::Echo => out.reply.extend_from_slice(data),
            Kind::Zen => {
                self.buf.extend_from_slice(data);
                let mut start = 0;
                while let Some(i) = self.buf[start..].iter().position(|&b| b == b'?') {
                    let end = start + i + 1;
                    out.reply
                        .extend_from_slice(zen_answer(&self.buf[start..end]));
                    start = end;
                }
                self.buf.drain(..start);
                if self.buf.len() > MAX_MESSAGE {
                    self.refuse_too_long(&mut out, b"Error: request too long.");
                }
            }
            Kind::Lab => {
                self.buf.extend_from_slice(data);
                let mut start = 0;
                while let Some(i) = self.buf[start..].iter().position(|&b| b == b'\n') {
                    let end = start + i;
                    let line = self.buf[start..end]
                        .strip_suffix(b"\r")
                        .unwrap_or(&self.buf[start..end]);
                    out.received
                        .push(String::from_utf8_lossy(line).into_owned());
                    out.reply.extend_from_slice(b"DONE\n");
                    self.line_mode = true;
                    start = end + 1;
                }
                self.buf.drain(..start);
                if !self.line_mode && !self.buf.is_empty() && is_complete_json(&self.buf) {
                    self.bare_message(&mut out);
                } else if self.buf.len() > MAX_MESSAGE {
                    self.refuse_too_long(&mut out, b"Error: message too long\n");
                }
            }
        }
        out
    }

    /// The quiet period passed with nothing more read: a pending bare lab message is complete.
    pub fn quiet(&mut self) -> Output {
        let mut out = Output::default();
        if self.wants_quiet() {
            self.bare_message(&mut out);
        }
        out
    }

    /// The peer shut down its side. A pending lab message is complete; a partial zen request
    /// is dropped (the book's server raises and closes as well).
    pub fn eof(&mut self) -> Output {
        let mut out = Output::default();
        if self.kind == Kind::Lab && !self.buf.is_empty() && !self.closed {
            if self.line_mode {
                let msg = std::mem::take(&mut self.buf);
                let msg = msg.strip_suffix(b"\r").unwrap_or(&msg);
                out.received.push(String::from_utf8_lossy(msg).into_owned());
                out.reply.extend_from_slice(b"DONE\n");
            } else {
                self.bare_message(&mut out);
            }
        }
        self.buf.clear();
        out.close = true;
        self.closed = true;
        out
    }

    fn bare_message(&mut self, out: &mut Output) {
        let msg = std::mem::take(&mut self.buf);
        out.received
            .push(String::from_utf8_lossy(&msg).into_owned());
        out.reply.extend_from_slice(b"DONE");
        out.close = true;
        self.closed = true;
    }

    fn refuse_too_long(&mut self, out: &mut Output, msg: &[u8]) {
        self.buf.clear();
        out.reply.extend_from_slice(msg);
        out.close = true;
        self.closed = true;
    }
}

/// True when `buf` (surrounding whitespace aside) is exactly one JSON object or array. Bare
/// scalars do not count: `12` could still grow into `123`.
fn is_complete_json(buf: &[u8]) -> bool {
    let t = buf.trim_ascii();
    matches!(t.first(), Some(b'{' | b'['))
        && serde_json::from_slice::<serde::de::IgnoredAny>(t).is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn feed_all(s: &mut Session, parts: &[&[u8]]) -> Output {
        let mut all = Output::default();
        for p in parts {
            let o = s.feed(p);
            all.reply.extend(o.reply);
            all.received.extend(o.received);
            all.close |= o.close;
        }
        all
    }

    #[test]
    fn zen_answers_the_books_three_questions() {
        let mut s = Session::new(Kind::Zen);
        let o = s.feed(b"Beautiful is better than?Explicit is better than?Simple is better than?");
        assert_eq!(o.reply, b"Ugly.Implicit.Complex.");
        assert!(!o.close);
        assert!(!s.has_pending());
    }

    #[test]
    fn zen_request_split_across_reads_is_answered_once_complete() {
        let mut s = Session::new(Kind::Zen);
        assert!(s.feed(b"Beauti").reply.is_empty());
        assert!(s.has_pending());
        assert!(s.feed(b"ful is better th").reply.is_empty());
        let o = s.feed(b"an?Simple is");
        assert_eq!(o.reply, b"Ugly.");
        assert_eq!(s.feed(b" better than?").reply, b"Complex.");
        assert!(!s.has_pending());
    }

    #[test]
    fn zen_unknown_question_gets_the_books_error() {
        let mut s = Session::new(Kind::Zen);
        assert_eq!(
            s.feed(b"Flat is better than?").reply,
            b"Error: unknown aphorism."
        );
        assert_eq!(
            s.feed(b"\r\nUgly is better than?").reply,
            b"Error: unknown aphorism."
        );
    }

    #[test]
    fn zen_request_without_question_mark_is_capped() {
        let mut s = Session::new(Kind::Zen);
        let o = s.feed(&vec![b'a'; MAX_MESSAGE + 1]);
        assert_eq!(o.reply, b"Error: request too long.");
        assert!(o.close);
        assert!(s.feed(b"Beautiful is better than?").reply.is_empty());
    }

    #[test]
    fn zen_partial_request_at_eof_is_dropped() {
        let mut s = Session::new(Kind::Zen);
        s.feed(b"Beautiful");
        let o = s.eof();
        assert!(o.reply.is_empty() && o.close);
    }

    #[test]
    fn lab_json_without_newline_is_one_message_at_once() {
        let mut s = Session::new(Kind::Lab);
        let json = br#"{"server_ip": "127.0.0.1", "server_port": 8888, "message": "tgmr"}"#;
        let o = feed_all(&mut s, &[&json[..10], &json[10..]]);
        assert_eq!(o.reply, b"DONE");
        assert_eq!(o.received, vec![String::from_utf8_lossy(json).into_owned()]);
        assert!(o.close);
    }

    #[test]
    fn lab_bare_text_waits_for_the_quiet_period() {
        let mut s = Session::new(Kind::Lab);
        let o = s.feed(b"tgmr");
        assert!(o.reply.is_empty());
        assert!(s.wants_quiet());
        let o = s.quiet();
        assert_eq!(o.received, vec!["tgmr"]);
        assert_eq!(o.reply, b"DONE");
        assert!(o.close);
    }

    #[test]
    fn lab_partial_json_is_not_a_message_yet() {
        let mut s = Session::new(Kind::Lab);
        assert!(s.feed(br#"{"message": "ab"#).reply.is_empty());
        assert!(s.wants_quiet());
        assert_eq!(s.feed(br#"cd"}"#).received, vec![r#"{"message": "abcd"}"#]);
    }

    #[test]
    fn lab_newline_messages_share_a_connection_and_never_wait_for_quiet() {
        let mut s = Session::new(Kind::Lab);
        let o = s.feed(b"one\r\ntwo\nthr");
        assert_eq!(o.received, vec!["one", "two"]);
        assert_eq!(o.reply, b"DONE\nDONE\n");
        assert!(!o.close);
        assert!(
            !s.wants_quiet(),
            "line mode: a partial line waits for its newline"
        );
        assert!(s.quiet().reply.is_empty());
        let o = s.feed(b"ee\n");
        assert_eq!(o.received, vec!["three"]);
        let o = s.feed(b"last");
        assert!(o.reply.is_empty());
        let o = s.eof();
        assert_eq!(o.received, vec!["last"]);
        assert_eq!(o.reply, b"DONE\n");
    }

    #[test]
    fn lab_bare_text_at_eof_is_a_message() {
        let mut s = Session::new(Kind::Lab);
        s.feed(b"abcd");
        let o = s.eof();
        assert_eq!(
            (o.received, o.reply),
            (vec!["abcd".to_string()], b"DONE".to_vec())
        );
    }

    #[test]
    fn lab_oversized_message_is_refused_and_closed() {
        let mut s = Session::new(Kind::Lab);
        let o = s.feed(&vec![b'x'; MAX_MESSAGE + 1]);
        assert_eq!(o.reply, b"Error: message too long\n");
        assert!(o.close);
    }

    #[test]
    fn echo_returns_bytes_unchanged() {
        let mut s = Session::new(Kind::Echo);
        assert_eq!(s.feed(b"a?b\n").reply, b"a?b\n");
        assert!(!s.has_pending());
    }
}
