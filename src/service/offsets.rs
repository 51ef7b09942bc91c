//! Which input offsets may be committed. An input record is *done* once it is applied, or
//! rejected and dead-lettered; the offset to commit for a partition is its lowest offset not yet
//! done — with the reorder buffer, records wait a while after they are read, and a restart must
//! read again exactly what was still waiting (docs/architecture.md#delivery-modes).

use std::collections::VecDeque;

/// Done-flags (and, for the latency histograms, record timestamps and when each record was
/// consumed) of one input partition from its lowest not-done offset on.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct OffsetTracker {
    base: Option<i64>,
    done: VecDeque<bool>,
    /// (record timestamp, consumed at), ms since the epoch.
    times: VecDeque<(i64, i64)>,
}

impl OffsetTracker {
    /// A record at `offset` with timestamp `timestamp_ms` was consumed at `consumed_ms`
    /// (offsets arrive in increasing order per partition; gaps, such as transaction markers,
    /// count as done).
    pub fn read(&mut self, offset: i64, timestamp_ms: i64, consumed_ms: i64) {
        let base = *self.base.get_or_insert(offset);
        let next = base + self.done.len() as i64;
        if offset < next {
            return; // re-delivered: already tracked
        }
        for _ in next..offset {
            self.done.push_back(true);
            self.times.push_back((timestamp_ms, consumed_ms));
        }
        self.done.push_back(false);
        self.times.push_back((timestamp_ms, consumed_ms));
    }

    /// The record timestamp of `offset` and when it was consumed, while it is tracked.
    pub fn times(&self, offset: i64) -> Option<(i64, i64)> {
        let i = usize::try_from(offset - self.base?).ok()?;
        self.times.get(i).copied()
    }

    /// The record at `offset` is done.
    pub fn done(&mut self, offset: i64) {
        if let Some(base) = self.base {
            if let Some(d) = usize::try_from(offset - base)
                .ok()
                .and_then(|i| self.done.get_mut(i))
            {
                *d = true;
            }
        }
    }

    /// The offset to commit (next to read after a restart): the lowest not done. `None` before
    /// any record was read.
    pub fn committable(&mut self) -> Option<i64> {
        let base = self.base.as_mut()?;
        while self.done.front() == Some(&true) {
            self.done.pop_front();
            self.times.pop_front();
            *base += 1;
        }
        Some(*base)
    }

    /// Records read and not yet done.
    pub fn in_flight(&self) -> usize {
        self.done.iter().filter(|d| !**d).count()
    }
}

/// Packs (input index, offset) into a pending event's opaque source.
pub fn source(input: usize, offset: i64) -> u64 {
    ((input as u64) << 48) | (offset.max(0) as u64 & 0xffff_ffff_ffff)
}

/// Unpacks [`source`].
pub fn unpack(source: u64) -> (usize, i64) {
    ((source >> 48) as usize, (source & 0xffff_ffff_ffff) as i64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn commits_the_lowest_not_done() {
        let mut t = OffsetTracker::default();
        assert_eq!(t.committable(), None);
        for o in [5, 6, 7, 9] {
            t.read(o, o * 10, o * 10 + 1);
        }
        assert_eq!(t.times(7), Some((70, 71)));
        assert_eq!(t.committable(), Some(5));
        t.done(6);
        t.done(9);
        assert_eq!(t.committable(), Some(5), "5 is still waiting");
        t.done(5);
        assert_eq!(t.committable(), Some(7), "8 was a gap, 7 waits");
        t.done(7);
        assert_eq!(t.committable(), Some(10));
        assert_eq!(t.in_flight(), 0);
    }

    #[test]
    fn source_round_trips() {
        assert_eq!(unpack(source(3, 123_456_789)), (3, 123_456_789));
    }
}
