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
//! `recv(1024)`; the student's server answers after one `recv`. That is the framing:
//! 1. A `\n` ends a message (a trailing `\r` is dropped). The reply is `DONE\n`, and from then on
//!    the connection is in *line mode*: only newlines (or EOF) end messages, so a slow writer of
//!    newline-terminated messages is never cut in two once its first line is complete.
//! 2. Before any newline was seen, a *bare* message is what one read returns, answered at once
//!    (no waiting for more bytes). The one exception is where the protocol can know that more
//!    is coming: bytes that start a JSON object or array (`{`, `[`) and are not complete JSON
//!    yet wait for the rest (the proxy lab's `json.dumps(...)` may arrive split).
//!
//! The reply to a bare message is `DONE` without a newline, exactly what the seed's server
//! sends, and the server then closes its side (one bare message per connection), so a client
//! reading to EOF works too. A client that writes a bare message in pieces (one byte per
//! 100 ms, say) is answered for its first piece; the server then reads and counts whatever
//! else the client sends ([`Session::trailing`]) and logs the connection as an error ("sent N
//! more bytes after its bare message was answered"), so the fragment is never reported as a
//! clean exchange. Slow writers end their message with a newline and write its first line in
//! one go, or send JSON.
//!
//! A zen request cut by EOF (the book's `client.py -e`) is reported as incomplete
//! ([`Output::incomplete`]), as the book's server says `received b'…' then socket closed`.

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
    /// Bytes of a request the peer left unfinished when it closed (a zen request without
    /// its `?`): the connection ended in error, not cleanly.
    pub incomplete: Option<Vec<u8>>,
    /// The reply answered a bare message: the server half-closes and then drains (and
    /// counts) whatever else the client sends.
    pub bare: bool,
}

/// One connection's protocol state.
#[derive(Debug, Clone)]
pub struct Session {
    kind: Kind,
    buf: Vec<u8>,
    line_mode: bool,
    closed: bool,
    trailing: usize,
}

impl Session {
    /// A fresh session.
    pub fn new(kind: Kind) -> Session {
        Session {
            kind,
            buf: Vec::new(),
            line_mode: false,
            closed: false,
            trailing: 0,
        }
    }

    /// True while part of a request is buffered: the server is in the middle of a request
    /// and a graceful shutdown lets it finish.
    pub fn has_pending(&self) -> bool {
        !self.buf.is_empty()
    }

    /// Bytes the peer sent after its bare message was answered (see the module docs).
    pub fn trailing(&self) -> usize {
        self.trailing
    }

    /// Feeds bytes read from the peer.
    pub fn feed(&mut self, data: &[u8]) -> Output {
        let mut out = Output::default();
        self.feed_into(data, &mut out);
        out
    }

    /// [`Session::feed`] into `out` (cleared first), so a connection reuses one reply buffer
    /// instead of allocating one per request.
    pub fn feed_into(&mut self, data: &[u8], out: &mut Output) {
        out.reply.clear();
        out.received.clear();
        out.close = false;
        out.incomplete = None;
        out.bare = false;
        if self.closed {
            self.trailing = self.trailing.saturating_add(data.len());
            return;
        }
        match self.kind {
            Kind::Echo => out.reply.extend_from_slice(data),
            Kind::Zen if self.buf.is_empty() => {
                // The usual case: nothing buffered, so the requests are answered from `data`
                // itself and only an unfinished tail is kept.
                let mut start = 0;
                while let Some(i) = data[start..].iter().position(|&b| b == b'?') {
                    let end = start + i + 1;
                    out.reply.extend_from_slice(zen_answer(&data[start..end]));
                    start = end;
                }
                if data.len() - start > MAX_MESSAGE {
                    self.refuse_too_long(out, b"Error: request too long.");
                } else {
                    self.buf.extend_from_slice(&data[start..]);
                }
            }
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
                    self.refuse_too_long(out, b"Error: request too long.");
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
                if self.buf.len() > MAX_MESSAGE {
                    self.refuse_too_long(out, b"Error: message too long\n");
                } else if !self.line_mode && !self.buf.is_empty() && !is_json_prefix(&self.buf) {
                    self.bare_message(out);
                }
            }
        }
    }

    /// The peer shut down its side. A pending lab message is complete; a partial zen request
    /// is dropped and reported in [`Output::incomplete`] (the book's server raises and closes).
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
        if self.kind == Kind::Zen && !self.buf.is_empty() && !self.closed {
            out.incomplete = Some(std::mem::take(&mut self.buf));
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
        out.bare = true;
        self.closed = true;
    }

    fn refuse_too_long(&mut self, out: &mut Output, msg: &[u8]) {
        self.buf.clear();
        out.reply.extend_from_slice(msg);
        out.close = true;
        self.closed = true;
    }
}

/// True when `buf` starts a JSON object or array that is not complete yet: more bytes are
/// coming (the only case where the lab protocol waits beyond one read). Complete JSON, bytes
/// that cannot become JSON, and anything else are a message now.
fn is_json_prefix(buf: &[u8]) -> bool {
    let t = buf.trim_ascii();
    matches!(t.first(), Some(b'{' | b'['))
        && serde_json::from_slice::<serde::de::IgnoredAny>(t).is_err_and(|e| e.is_eof())
}

/// Bytes as Python's `repr(bytes)` shows them: `b'Beautiful is better than'`, control
/// characters and non-ASCII escaped (used for the book's "received … then socket closed").
///
/// ```
/// use netkit::lab::protocol::py_bytes;
/// assert_eq!(py_bytes(b"Beautiful\x1b[2J"), "b'Beautiful\\x1b[2J'");
/// ```
pub fn py_bytes(b: &[u8]) -> String {
    format!("b'{}'", b.escape_ascii())
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
    fn feed_into_resets_the_reused_output_and_keeps_an_unfinished_tail() {
        let mut s = Session::new(Kind::Zen);
        let mut out = Output::default();
        s.feed_into(b"Simple is better than?Beauti", &mut out);
        assert_eq!(out.reply, b"Complex.");
        assert!(s.has_pending());
        s.feed_into(b"ful is better than?", &mut out);
        assert_eq!(out.reply, b"Ugly.");
        assert!(!s.has_pending());
        s.feed_into(b"Explicit", &mut out);
        assert!(out.reply.is_empty() && !out.close);
        let mut s = Session::new(Kind::Lab);
        s.feed_into(b"tgmr", &mut out);
        assert!(out.close && out.bare);
        assert_eq!(out.received, vec!["tgmr"]);
        s.feed_into(b"more", &mut out);
        assert_eq!(out, Output::default());
        assert_eq!(s.trailing(), 4);
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
    fn lab_bare_text_is_what_one_read_returns() {
        let mut s = Session::new(Kind::Lab);
        let o = s.feed(b"tgmr");
        assert_eq!(o.received, vec!["tgmr"]);
        assert_eq!(o.reply, b"DONE");
        assert!(o.close && o.bare);
        assert_eq!(s.trailing(), 0);
    }

    #[test]
    fn lab_slow_writer_is_answered_for_its_first_read_and_the_rest_is_counted() {
        let mut s = Session::new(Kind::Lab);
        let o = s.feed(b"t");
        assert_eq!(
            (o.received, o.reply),
            (vec!["t".to_string()], b"DONE".to_vec())
        );
        for b in [b"g", b"m", b"r"] {
            assert!(s.feed(b).reply.is_empty());
        }
        assert_eq!(s.trailing(), 3);
    }

    #[test]
    fn lab_invalid_json_start_is_a_bare_message_at_once() {
        let mut s = Session::new(Kind::Lab);
        assert_eq!(s.feed(b"{oops").reply, b"DONE");
    }

    #[test]
    fn zen_partial_request_at_eof_is_reported_incomplete() {
        let mut s = Session::new(Kind::Zen);
        s.feed(b"Beautiful is better than");
        let o = s.eof();
        assert_eq!(
            o.incomplete.as_deref(),
            Some(&b"Beautiful is better than"[..])
        );
        assert_eq!(
            py_bytes(&o.incomplete.unwrap()),
            "b'Beautiful is better than'"
        );
        let mut s = Session::new(Kind::Zen);
        s.feed(b"Simple is better than?");
        assert_eq!(s.eof().incomplete, None);
    }

    #[test]
    fn lab_partial_json_is_not_a_message_yet() {
        let mut s = Session::new(Kind::Lab);
        assert!(s.feed(br#"{"message": "ab"#).reply.is_empty());
        assert!(s.has_pending());
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
            s.has_pending(),
            "line mode: a partial line waits for its newline"
        );
        let o = s.feed(b"ee\n");
        assert_eq!(o.received, vec!["three"]);
        let o = s.feed(b"last");
        assert!(o.reply.is_empty());
        let o = s.eof();
        assert_eq!(o.received, vec!["last"]);
        assert_eq!(o.reply, b"DONE\n");
    }

    #[test]
    fn lab_partial_json_at_eof_is_a_message() {
        let mut s = Session::new(Kind::Lab);
        s.feed(b"{\"a\": 1");
        let o = s.eof();
        assert_eq!(
            (o.received, o.reply),
            (vec!["{\"a\": 1".to_string()], b"DONE".to_vec())
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
