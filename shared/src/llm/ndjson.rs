//! Incremental newline-delimited JSON: bytes arrive in arbitrary pieces (a
//! line, or a multi-byte UTF-8 character, may be split across reads); only
//! complete lines are handed out, so every line is parsed whole.

#[derive(Debug, Default)]
pub struct LineBuffer {
    pending: Vec<u8>,
}

impl LineBuffer {
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds bytes as they arrived from the network.
    pub fn push(&mut self, bytes: &[u8]) {
        self.pending.extend_from_slice(bytes);
    }

    /// Bytes waiting for the end of their line.
    pub fn pending_len(&self) -> usize {
        self.pending.len()
    }

    /// The next complete, non-blank line, without its newline.
    pub fn next_line(&mut self) -> Option<Vec<u8>> {
        loop {
            let end = self.pending.iter().position(|b| *b == b'\n')?;
            let mut line: Vec<u8> = self.pending.drain(..=end).collect();
            line.pop();
            if line.last() == Some(&b'\r') {
                line.pop();
            }
            if !line.iter().all(u8::is_ascii_whitespace) {
                return Some(line);
            }
        }
    }

    /// What is left once the stream has ended: a last line without a newline.
    pub fn finish(&mut self) -> Option<Vec<u8>> {
        let rest = std::mem::take(&mut self.pending);
        (!rest.iter().all(u8::is_ascii_whitespace)).then_some(rest)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_split_anywhere_come_out_whole() {
        let text = "{\"a\":\"héllo 👋\"}\n\n{\"b\":2}\r\n{\"c\":3}";
        let bytes = text.as_bytes();
        // Every split point, including inside the multi-byte characters.
        for cut in 0..bytes.len() {
            let mut buf = LineBuffer::new();
            buf.push(&bytes[..cut]);
            let mut lines = Vec::new();
            while let Some(l) = buf.next_line() {
                lines.push(l);
            }
            buf.push(&bytes[cut..]);
            while let Some(l) = buf.next_line() {
                lines.push(l);
            }
            lines.extend(buf.finish());
            let lines: Vec<String> = lines.into_iter().map(|l| String::from_utf8(l).unwrap()).collect();
            assert_eq!(lines, ["{\"a\":\"héllo 👋\"}", "{\"b\":2}", "{\"c\":3}"], "cut at {cut}");
        }
    }

    #[test]
    fn byte_by_byte_feeding_works() {
        let mut buf = LineBuffer::new();
        let mut lines = 0;
        for b in "{\"x\":\"€\"}\n{\"y\":1}\n".as_bytes() {
            buf.push(&[*b]);
            while buf.next_line().is_some() {
                lines += 1;
            }
        }
        assert_eq!(lines, 2);
        assert_eq!(buf.finish(), None);
    }
}
