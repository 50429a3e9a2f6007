//! Stage 1 of parsing: framing a body into lines.

/// One non-blank line of a body: its 1-based number in the body and its bytes without the line
/// terminator (LF or CRLF).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Line<'a> {
    pub number: u32,
    pub bytes: &'a [u8],
}

/// Splits a body into lines on LF, strips one trailing CR, and skips blank lines (empty or only
/// spaces/CR), which firmware emits at the end of bodies (`protocol.md` §10.3).
pub fn lines(body: &[u8]) -> Lines<'_> {
    Lines { rest: body, number: 0 }
}

/// Iterator returned by [`lines`].
#[derive(Debug, Clone)]
pub struct Lines<'a> {
    rest: &'a [u8],
    number: u32,
}

impl<'a> Iterator for Lines<'a> {
    type Item = Line<'a>;

    fn next(&mut self) -> Option<Line<'a>> {
        loop {
            if self.rest.is_empty() {
                return None;
            }
            let (mut line, rest) = match memchr::memchr(b'\n', self.rest) {
                Some(i) => (&self.rest[..i], &self.rest[i + 1..]),
                None => (self.rest, &[][..]),
            };
            self.rest = rest;
            self.number = self.number.saturating_add(1);
            if let [head @ .., b'\r'] = line {
                line = head;
            }
            if is_blank(line) {
                continue;
            }
            return Some(Line { number: self.number, bytes: line });
        }
    }
}

fn is_blank(line: &[u8]) -> bool {
    line.iter().all(|&b| b == b' ' || b == b'\r')
}

#[cfg(test)]
mod tests {
    use super::*;

    fn collect(body: &[u8]) -> Vec<(u32, &[u8])> {
        lines(body).map(|l| (l.number, l.bytes)).collect()
    }

    /// (body, expected (line number, bytes))
    type Case<'a> = (&'a [u8], &'a [(u32, &'a [u8])]);

    #[test]
    fn frames_lf_crlf_blank_and_missing_final_newline() {
        let cases: &[Case<'_>] = &[
            (b"", &[]),
            (b"\n\n", &[]),
            (b"a", &[(1, b"a")]),
            (b"a\n", &[(1, b"a")]),
            (b"a\r\nb\r\n", &[(1, b"a"), (2, b"b")]),
            (b"a\n\n  \r\nb", &[(1, b"a"), (4, b"b")]),
            (b"a\t\n", &[(1, b"a\t")]),
            (b"\r\r\n", &[]),
        ];
        for (body, want) in cases {
            assert_eq!(collect(body), want.to_vec(), "body {:?}", String::from_utf8_lossy(body));
        }
    }
}
