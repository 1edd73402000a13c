//! The SSE reader: the `data:` lines of an event stream, one at a time.

use crate::http::Http;
use std::io::{BufRead, BufReader, Read};

/// The longest line read; a longer one ends the stream.
const MAX_LINE: usize = 4 << 20;

/// Why a stream ended.
#[derive(Debug, PartialEq, Eq)]
pub enum End {
    /// closed, or a read failed
    Closed,
    /// a line over 4 MiB
    TooLong,
}

pub struct EventStream<R> {
    reader: BufReader<R>,
    line: String,
}

/// Opens the event stream at `path`.
pub fn subscribe(http: &Http, path: &str) -> Result<EventStream<impl Read>, String> {
    http.get_stream(path).map(EventStream::new)
}

impl<R: Read> EventStream<R> {
    pub fn new(body: R) -> EventStream<R> {
        EventStream {
            reader: BufReader::new(body),
            line: String::new(),
        }
    }

    /// The next line: `Some` payload (trimmed) of a `data:` line, `None`
    /// for any other line.
    pub fn next_line(&mut self) -> Result<Option<&str>, End> {
        self.line.clear();
        match self.reader.read_line(&mut self.line) {
            Ok(0) | Err(_) => return Err(End::Closed),
            Ok(_) => {}
        }
        if self.line.len() > MAX_LINE {
            return Err(End::TooLong);
        }
        Ok(self.line.strip_prefix("data:").map(str::trim))
    }
}

#[cfg(test)]
mod test {
    use super::*;

    #[test]
    fn data_lines_and_the_rest() {
        let text = "event: state\ndata: abc \n\n: keep-alive\ndata:xyz";
        let mut stream = EventStream::new(text.as_bytes());
        assert_eq!(stream.next_line(), Ok(None));
        assert_eq!(stream.next_line(), Ok(Some("abc")));
        assert_eq!(stream.next_line(), Ok(None));
        assert_eq!(stream.next_line(), Ok(None));
        assert_eq!(stream.next_line(), Ok(Some("xyz")));
        assert_eq!(stream.next_line(), Err(End::Closed));
    }

    #[test]
    fn a_line_over_the_limit_ends_the_stream() {
        let text = format!("data: {}\ndata: after\n", "x".repeat(MAX_LINE));
        let mut stream = EventStream::new(text.as_bytes());
        assert_eq!(stream.next_line(), Err(End::TooLong));
    }
}
