//! A JSON-lines file (one message value per line; `.gz` decompressed on the fly) read in
//! micro-batches. Lines go into one reused buffer; a batch is a list of slices of it.

use std::fs::File;
use std::io::{self, BufRead, BufReader, Read};
use std::path::Path;

use crate::decode::MessageRef;

/// Reads a file of messages in batches.
pub struct LineBatches {
    reader: Box<dyn BufRead + Send>,
    buf: Vec<u8>,
    ends: Vec<usize>,
    lines: u64,
    bytes: u64,
    total_bytes: Option<u64>,
}

impl std::fmt::Debug for LineBatches {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LineBatches")
            .field("lines", &self.lines)
            .finish()
    }
}

impl LineBatches {
    /// Opens `path`; a name ending in `.gz` is gunzipped.
    pub fn open(path: &Path) -> io::Result<Self> {
        let f = File::open(path)?;
        let total = f.metadata().ok().map(|m| m.len());
        let gz = path.extension().is_some_and(|e| e == "gz");
        let inner: Box<dyn Read + Send> = if gz {
            Box::new(flate2::read::MultiGzDecoder::new(f))
        } else {
            Box::new(f)
        };
        Ok(Self::from_reader(
            Box::new(BufReader::with_capacity(1 << 20, inner)),
            if gz { None } else { total },
        ))
    }

    /// Reads from any buffered reader; `total_bytes` (if known) drives progress.
    pub fn from_reader(reader: Box<dyn BufRead + Send>, total_bytes: Option<u64>) -> Self {
        LineBatches {
            reader,
            buf: Vec::with_capacity(1 << 20),
            ends: Vec::new(),
            lines: 0,
            bytes: 0,
            total_bytes,
        }
    }

    /// Reads up to `max` lines into the batch; false at end of input (and an empty batch).
    pub fn next_batch(&mut self, max: usize) -> io::Result<bool> {
        self.buf.clear();
        self.ends.clear();
        while self.ends.len() < max {
            let start = self.buf.len();
            let n = self.reader.read_until(b'\n', &mut self.buf)?;
            if n == 0 {
                break;
            }
            self.bytes += n as u64;
            let mut end = self.buf.len();
            if self.buf[start..end].ends_with(b"\n") {
                end -= 1;
                if self.buf[start..end].ends_with(b"\r") {
                    end -= 1;
                }
            }
            self.buf.truncate(end);
            self.ends.push(end);
            self.lines += 1;
        }
        Ok(!self.ends.is_empty())
    }

    /// Number of lines in the current batch.
    pub fn len(&self) -> usize {
        self.ends.len()
    }

    /// True when the current batch is empty.
    pub fn is_empty(&self) -> bool {
        self.ends.is_empty()
    }

    /// Line `i` of the current batch.
    pub fn line(&self, i: usize) -> &[u8] {
        let start = if i == 0 { 0 } else { self.ends[i - 1] };
        &self.buf[start..self.ends[i]]
    }

    /// The current batch as keyless messages.
    pub fn messages(&self) -> impl Iterator<Item = MessageRef<'_>> + '_ {
        (0..self.ends.len()).map(|i| MessageRef {
            key: None,
            value: self.line(i),
        })
    }

    /// Lines read so far (the 1-based line number of the last line read).
    pub fn lines_read(&self) -> u64 {
        self.lines
    }

    /// Bytes read so far (decompressed for `.gz`).
    pub fn bytes_read(&self) -> u64 {
        self.bytes
    }

    /// Size of the input when known (not for `.gz`).
    pub fn total_bytes(&self) -> Option<u64> {
        self.total_bytes
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn batches_lines_and_keeps_empty_ones() {
        let data = b"a\r\nbb\n\nccc".to_vec();
        let mut r = LineBatches::from_reader(Box::new(io::Cursor::new(data)), None);
        assert!(r.next_batch(2).unwrap());
        assert_eq!((r.line(0), r.line(1)), (&b"a"[..], &b"bb"[..]));
        assert!(r.next_batch(10).unwrap());
        assert_eq!(r.len(), 2);
        assert_eq!((r.line(0), r.line(1)), (&b""[..], &b"ccc"[..]));
        assert!(!r.next_batch(10).unwrap());
        assert_eq!(r.lines_read(), 4);
    }
}
