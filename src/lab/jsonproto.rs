//! The lab proxy's wire protocol, bytes in and bytes out, without sockets: finding where a
//! JSON request ends in a byte stream ([`FrameScanner`]) and checking its fields
//! ([`parse_request`]). The proxy owns the sockets; this module owns the reasons a request is
//! refused (`Error, bad request: <reason>`).
//!
//! Clients send `{"server_ip": "...", "server_port": N, "message": "..."}` either bare (the
//! Python lab client: `sendall(json.dumps(...))`, then `recv(1024)`, no delimiter, no EOF) or
//! as several newline-terminated objects on one connection. The scanner finds the closing
//! brace of the first object by tracking strings and nesting, so neither EOF nor a newline is
//! needed, and it keeps its position so each byte is looked at once.

use serde_json::Value;

/// Incremental search for the end of one top-level JSON object.
#[derive(Debug, Default, Clone)]
pub struct FrameScanner {
    pos: usize,
    start: usize,
    depth: usize,
    started: bool,
    in_str: bool,
    escape: bool,
}

/// Why a byte stream cannot hold a request.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FrameError {
    /// The first non-blank byte was not `{`.
    #[error("expected a JSON object starting with '{{', got {0:?}")]
    NotAnObject(String),
}

impl FrameScanner {
    /// Looks at the bytes of `buf` not seen yet. Returns `Some((start, end))` when the object
    /// spanning `buf[start..end]` is complete (leading blanks skipped), `None` when more bytes
    /// are needed. After a complete object, call [`FrameScanner::reset`] and drop
    /// `buf[..end]`.
    ///
    /// ```
    /// use netkit::lab::jsonproto::FrameScanner;
    /// let mut s = FrameScanner::default();
    /// assert_eq!(s.scan(b" {\"a\": \"}\"").unwrap(), None);
    /// assert_eq!(s.scan(b" {\"a\": \"}\"}\n{").unwrap(), Some((1, 11)));
    /// ```
    ///
    /// # Errors
    /// [`FrameError::NotAnObject`] when the stream does not start with an object.
    pub fn scan(&mut self, buf: &[u8]) -> Result<Option<(usize, usize)>, FrameError> {
        while self.pos < buf.len() {
            let b = buf[self.pos];
            self.pos += 1;
            if !self.started {
                match b {
                    b' ' | b'\t' | b'\r' | b'\n' => continue,
                    b'{' => {
                        self.started = true;
                        self.depth = 1;
                        self.start = self.pos - 1;
                        continue;
                    }
                    _ => {
                        let end = buf.len().min(self.pos + 19);
                        let got = String::from_utf8_lossy(&buf[self.pos - 1..end]).into_owned();
                        return Err(FrameError::NotAnObject(got));
                    }
                }
            }
            if self.in_str {
                if self.escape {
                    self.escape = false;
                } else if b == b'\\' {
                    self.escape = true;
                } else if b == b'"' {
                    self.in_str = false;
                }
                continue;
            }
            match b {
                b'"' => self.in_str = true,
                b'{' | b'[' => self.depth += 1,
                b'}' | b']' => {
                    self.depth = self.depth.saturating_sub(1);
                    if self.depth == 0 {
                        return Ok(Some((self.start, self.pos)));
                    }
                }
                _ => {}
            }
        }
        Ok(None)
    }

    /// True once the first byte of an object was seen (a partial request is buffered).
    pub fn started(&self) -> bool {
        self.started
    }

    /// Forgets the object just returned, for the next one (after the caller drops it).
    pub fn reset(&mut self) {
        *self = FrameScanner::default();
    }
}

/// A checked request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request {
    /// `server_ip` as sent (the policy parses it).
    pub server_ip: String,
    /// `server_port`, 1-65535.
    pub server_port: u16,
    /// `message`, at most the configured size in bytes.
    pub message: String,
}

/// Parses and checks one framed object; `Err` is the reason for `Error, bad request: ...`.
///
/// ```
/// use netkit::lab::jsonproto::parse_request;
/// let r = parse_request(br#"{"server_ip": "127.0.0.1", "server_port": 8888, "message": "tgmr"}"#, 64).unwrap();
/// assert_eq!((r.server_port, r.message.as_str()), (8888, "tgmr"));
/// assert_eq!(parse_request(br#"{"server_ip": "127.0.0.1", "server_port": 0, "message": ""}"#, 64).unwrap_err(),
///            "server_port 0 is out of range (1-65535)");
/// ```
///
/// # Errors
/// Invalid JSON, a missing or wrong-typed field, a port outside 1-65535, a message longer
/// than `max_message` bytes.
pub fn parse_request(frame: &[u8], max_message: usize) -> Result<Request, String> {
    let v: Value = serde_json::from_slice(frame).map_err(|e| format!("invalid JSON: {e}"))?;
    let Value::Object(obj) = v else {
        return Err("expected a JSON object".into());
    };
    let field = |name: &str| obj.get(name).ok_or_else(|| format!("missing field {name}"));
    let server_ip = match field("server_ip")? {
        Value::String(s) => s.clone(),
        other => return Err(format!("server_ip must be a string, got {}", kind(other))),
    };
    let server_port = match field("server_port")? {
        Value::Number(n) => match n.as_i64() {
            Some(p) if (1..=65535).contains(&p) => p as u16,
            Some(p) => return Err(format!("server_port {p} is out of range (1-65535)")),
            None if n.is_u64() => return Err(format!("server_port {n} is out of range (1-65535)")),
            None => return Err(format!("server_port must be an integer, got {n}")),
        },
        other => {
            return Err(format!(
                "server_port must be an integer, got {}",
                kind(other)
            ));
        }
    };
    let message = match field("message")? {
        Value::String(s) => s.clone(),
        other => return Err(format!("message must be a string, got {}", kind(other))),
    };
    if message.len() > max_message {
        return Err(format!(
            "message is {} bytes, over the limit of {max_message} (--max-message)",
            message.len()
        ));
    }
    Ok(Request {
        server_ip,
        server_port,
        message,
    })
}

/// The most bytes one framed request may take for a `max_message` limit: the message as
/// sent (JSON escapes count) plus 4 KiB for the other fields. Bounding the raw frame, not
/// the decoded message, is what keeps a connection's buffer near `--max-message` (a bound of
/// 6 × for `\u00XX` escapes let 1,000 clients hold 397 KB each).
pub fn frame_limit(max_message: usize) -> usize {
    max_message.saturating_add(4096)
}

fn kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// Makes text safe to print on one terminal line: control characters are escaped.
pub fn printable(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        if c.is_control() {
            out.extend(c.escape_default());
        } else {
            out.push(c);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scan_all(chunks: &[&[u8]]) -> Vec<Option<(usize, usize)>> {
        let mut s = FrameScanner::default();
        let mut buf = Vec::new();
        chunks
            .iter()
            .map(|c| {
                buf.extend_from_slice(c);
                s.scan(&buf).unwrap()
            })
            .collect()
    }

    #[test]
    fn braces_inside_strings_and_escaped_quotes_do_not_end_the_object() {
        let r = scan_all(&[br#"{"message": "}\"{", "a": {"b": [1, "]"]}"#, b"}"]);
        assert_eq!(r, vec![None, Some((0, 41))]);
    }

    #[test]
    fn the_object_ends_byte_by_byte_without_newline_or_eof() {
        let req = br#"{"server_ip": "127.0.0.1", "server_port": 8888, "message": "tgmr"}"#;
        let mut s = FrameScanner::default();
        for i in 1..req.len() {
            assert_eq!(s.scan(&req[..i]).unwrap(), None, "at {i}");
        }
        assert_eq!(s.scan(req).unwrap(), Some((0, req.len())));
    }

    #[test]
    fn pipelined_requests_are_found_one_after_another() {
        let buf = b"{\"a\":1}\n  {\"b\":2}\n";
        let mut s = FrameScanner::default();
        let (a, b) = s.scan(buf).unwrap().unwrap();
        assert_eq!(&buf[a..b], b"{\"a\":1}");
        s.reset();
        let rest = &buf[b..];
        let (c, d) = s.scan(rest).unwrap().unwrap();
        assert_eq!(&rest[c..d], b"{\"b\":2}");
    }

    #[test]
    fn non_objects_are_refused_at_once() {
        let mut s = FrameScanner::default();
        assert!(matches!(
            s.scan(b"\n[1,2]"),
            Err(FrameError::NotAnObject(_))
        ));
        let mut s = FrameScanner::default();
        assert!(s.scan(b"hello").is_err());
    }

    #[test]
    fn every_bad_field_has_its_reason() {
        let cases: &[(&[u8], &str)] = &[
            (b"{", "invalid JSON"),
            (b"{\"server_ip\": }", "invalid JSON"),
            (
                br#"{"server_port": 1, "message": "x"}"#,
                "missing field server_ip",
            ),
            (
                br#"{"server_ip": "a", "message": "x"}"#,
                "missing field server_port",
            ),
            (
                br#"{"server_ip": "a", "server_port": 1}"#,
                "missing field message",
            ),
            (
                br#"{"server_ip": 1, "server_port": 1, "message": "x"}"#,
                "server_ip must be a string",
            ),
            (
                br#"{"server_ip": "a", "server_port": "8888", "message": "x"}"#,
                "server_port must be an integer",
            ),
            (
                br#"{"server_ip": "a", "server_port": 88.5, "message": "x"}"#,
                "server_port must be an integer",
            ),
            (
                br#"{"server_ip": "a", "server_port": 65536, "message": "x"}"#,
                "out of range",
            ),
            (
                br#"{"server_ip": "a", "server_port": -1, "message": "x"}"#,
                "out of range",
            ),
            (
                br#"{"server_ip": "a", "server_port": 18446744073709551615, "message": "x"}"#,
                "out of range",
            ),
            (
                br#"{"server_ip": "a", "server_port": 1, "message": null}"#,
                "message must be a string",
            ),
            (
                br#"{"server_ip": "a", "server_port": 1, "message": "0123456789"}"#,
                "over the limit",
            ),
        ];
        for (frame, want) in cases {
            let err = parse_request(frame, 8).unwrap_err();
            assert!(
                err.contains(want),
                "{}: {err}",
                String::from_utf8_lossy(frame)
            );
        }
    }

    #[test]
    fn printable_escapes_control_characters() {
        assert_eq!(printable("a\u{1b}[2Jb\n"), "a\\u{1b}[2Jb\\n");
    }
}
