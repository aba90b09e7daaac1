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

/// Cutting a byte stream into reads anywhere, for the property tests of
/// what reads it (this buffer and the backends' stream decoders).
#[cfg(test)]
pub(crate) mod splits {
    use proptest::prelude::*;
    use proptest::sample::Index;

    /// Up to eight cut points, anywhere.
    pub fn cuts() -> impl Strategy<Value = Vec<Index>> {
        prop::collection::vec(any::<Index>(), 0..8)
    }

    /// `bytes` in the reads the cut points make.
    pub fn pieces<'a>(bytes: &'a [u8], cuts: &[Index]) -> Vec<&'a [u8]> {
        let mut at: Vec<usize> = cuts.iter().map(|i| i.index(bytes.len() + 1)).collect();
        at.sort_unstable();
        at.dedup();
        let mut pieces = Vec::new();
        let mut start = 0;
        for cut in at.into_iter().chain([bytes.len()]) {
            pieces.push(&bytes[start..cut]);
            start = cut;
        }
        pieces
    }

    /// Every line `reads` make, as a stream's reader sees them: the last one
    /// (without a newline) included.
    pub fn lines_of(reads: &[&[u8]]) -> Vec<Vec<u8>> {
        let mut buf = super::LineBuffer::new();
        let mut lines = Vec::new();
        for read in reads {
            buf.push(read);
            lines.extend(std::iter::from_fn(|| buf.next_line()));
        }
        lines.extend(buf.finish());
        lines
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn any_split_of_any_bytes_gives_the_same_lines(bytes in prop::collection::vec(any::<u8>(), 0..512), cuts in splits::cuts()) {
            prop_assert_eq!(splits::lines_of(&splits::pieces(&bytes, &cuts)), splits::lines_of(&[&bytes]));
        }

        #[test]
        fn lines_come_out_whole_without_their_ending_and_blank_ones_are_skipped(
            lines in prop::collection::vec(("[^\r\n]{0,40}", prop_oneof!["\n", "\r\n"]), 0..12),
            unterminated in "[^\r\n]{0,20}",
            cuts in splits::cuts(),
        ) {
            let stream: String = lines.iter().map(|(text, end)| format!("{text}{end}")).chain([unterminated.clone()]).collect();
            let expected: Vec<Vec<u8>> = lines
                .iter()
                .map(|(text, _)| text.as_str())
                .chain([unterminated.as_str()])
                .filter(|text| !text.bytes().all(|b| b.is_ascii_whitespace()))
                .map(|text| text.as_bytes().to_vec())
                .collect();
            prop_assert_eq!(splits::lines_of(&splits::pieces(stream.as_bytes(), &cuts)), expected);
        }
    }

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
