//! JSON-lines sinks for alerts and rejections.

use std::fs::File;
use std::io::{self, BufWriter, Write};
use std::path::Path;

use serde::Serialize;

use crate::alert::Alert;
use crate::reject::{RejectReason, Rejection};

/// A rejected record as written by `replay --rejects-out`: the dead letter of a file source.
#[derive(Debug, Serialize)]
pub struct RejectRecord<'a> {
    /// 1-based line number in the input.
    pub line: u64,
    /// Reason code.
    pub reason: RejectReason,
    /// Short detail.
    pub detail: &'a str,
    /// The original line, lossily decoded as UTF-8 (invalid bytes become U+FFFD).
    pub value: std::borrow::Cow<'a, str>,
}

/// Buffered JSON-lines writer.
#[derive(Debug)]
pub struct JsonLines {
    w: BufWriter<File>,
}

impl JsonLines {
    /// Creates (truncates) `path`.
    pub fn create(path: &Path) -> io::Result<Self> {
        Ok(JsonLines {
            w: BufWriter::with_capacity(1 << 20, File::create(path)?),
        })
    }

    /// Writes one value as a line.
    pub fn write<T: Serialize>(&mut self, v: &T) -> io::Result<()> {
        serde_json::to_writer(&mut self.w, v)?;
        self.w.write_all(b"\n")
    }

    /// Writes alerts.
    pub fn write_alerts(&mut self, alerts: &[Alert]) -> io::Result<()> {
        alerts.iter().try_for_each(|a| self.write(a))
    }

    /// Writes rejections of a batch whose first line is `first_line`.
    pub fn write_rejects<'v>(
        &mut self,
        rejects: &[Rejection],
        first_line: u64,
        value_of: impl Fn(u32) -> &'v [u8],
    ) -> io::Result<()> {
        for r in rejects {
            self.write(&RejectRecord {
                line: first_line + u64::from(r.index),
                reason: r.reason,
                detail: &r.detail,
                value: String::from_utf8_lossy(value_of(r.index)),
            })?;
        }
        Ok(())
    }

    /// Flushes to the OS.
    pub fn finish(mut self) -> io::Result<()> {
        self.w.flush()
    }
}
