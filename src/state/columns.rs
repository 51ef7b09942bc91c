//! Per-key state as rows: one fixed-size [`KeyRow`] per key, all rows in one contiguous `Vec`
//! ([`Rows`]). Everything an event touches — quantities, times, the demand rings, the
//! availability bitmaps, the alert state — is in its key's row: with a million keys, applying
//! and scoring an event costs the 4 cache lines (and one or two TLB pages) of one row, which
//! [`Rows::prefetch`] loads a few events ahead. Snapshots gather the rows into Arrow columns and
//! scatter them back (see [`super::snapshot`]).
//!
//! Bytes per key: the row is 224 bytes — 2×f64 quantities, 2×i64 times (last stockout, last
//! alert), 4×i32 hours (first, ring = last event, last receipt, last sample), 24 + 14 f32 demand
//! buckets, 2×u32 availability bitmaps, u32 inbound head, 2×f32 risks, u8 flags, i16 last count
//! discrepancy (223 bytes) and 1 byte of padding to the row's 32-byte alignment (so a row spans
//! exactly 4 cache lines) —
//! plus the `Vec`'s capacity slack (amortised doubling: ~5 % at 1 M keys) and the key index
//! (8-byte slots at ≤ 5/8 load). The key strings are apart (32-byte cells, see `super::keys`).

use crate::model::features::DemandStats;

/// Hourly demand buckets per key (the last 24 hours of event time, current hour included).
pub const HOURS: usize = 24;
/// Daily demand buckets per key (the last 14 days, today included).
pub const DAYS: usize = 14;
pub use crate::event::HOUR_MS;
/// Marker for "no time recorded".
pub const NO_TIME: i64 = i64::MIN;
/// Marker for "no hour recorded".
pub const NO_HOUR: i32 = i32::MIN;
/// Marker for "no inbound shipment".
pub const NO_SLOT: u32 = u32::MAX;
/// Marker for "no count discrepancy recorded" in [`KeyRow::count_gap`].
pub const NO_GAP: i16 = i16::MIN;

/// Bits of [`KeyRow::flags`].
pub mod flag {
    /// On hand has been established by a receipt or an inventory count.
    pub const ON_HAND_KNOWN: u8 = 1;
    /// A stockout episode is open (observed and not yet recovered).
    pub const IN_STOCKOUT: u8 = 2;
    /// A `stockout_risk` alert is open.
    pub const RISK_OPEN: u8 = 4;
    /// The last availability observation said out of stock.
    pub const LAST_OBS_OOS: u8 = 8;
    /// At least one availability observation was seen.
    pub const HAS_OBS: u8 = 16;
}

/// Hour index (hours since the Unix epoch) of a time in ms.
pub fn hour_of(ms: i64) -> i32 {
    ms.div_euclid(HOUR_MS) as i32
}

/// The state of one key: one row of [`Rows`].
///
/// `#[repr(C)]` with the fields in decreasing alignment, 32-byte aligned: 224 bytes, exactly 4
/// cache lines wherever the row sits. A `KeyRow` is plain data (`Copy`): a copy of a key's row,
/// with a small [`super::inbound::VecSchedule`], can be advanced and scored apart from the
/// shard (see [`KeyRow::apply`] and [`KeyRow::inputs`]).
#[repr(C, align(32))]
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct KeyRow {
    /// Σ receipts − Σ sales applied (meaningful once `ON_HAND_KNOWN`).
    pub on_hand: f64,
    /// Σ qty of open inbound shipments.
    pub in_transit: f64,
    /// Start of the last stockout episode ([`NO_TIME`] if none).
    pub last_stockout_ms: i64,
    /// Event time of the last risk alert emitted.
    pub last_alert_ms: i64,
    /// Hour of the first event of the key.
    pub first_hour: i32,
    /// Hour the ring windows end at (the newest bucket).
    pub ring_hour: i32,
    /// Hour of the last receipt ([`NO_HOUR`] if none).
    pub last_receipt_hour: i32,
    /// Hour of the last label snapshot taken ([`NO_HOUR`] if none).
    pub last_sample_hour: i32,
    /// Bit i: out of stock observed in hour `ring_hour - i`.
    pub oos_hours: u32,
    /// Bit i: out of stock observed on day `ring_hour / 24 - i`.
    pub oos_days: u32,
    /// First open inbound shipment slot in the shard's schedule ([`NO_SLOT`] if none; unused
    /// by a standalone row).
    pub inbound_head: u32,
    /// Risk at the last scoring.
    pub risk: f32,
    /// Risk when the last risk alert was emitted.
    pub alert_risk: f32,
    /// Demand per hour, bucket `hour % HOURS`.
    pub hourly: [f32; HOURS],
    /// Demand per day, bucket `day % DAYS`.
    pub daily: [f32; DAYS],
    /// See [`flag`].
    pub flags: u8,
    /// The last inventory count's discrepancy against the book (count − recorded on hand just
    /// before it), in whole units rounded and saturated to ±32 767; [`NO_GAP`] until a count
    /// found the book known. Two bytes that were the row's padding: the row stays 224 bytes.
    pub count_gap: i16,
}

/// Size of a [`KeyRow`] in bytes.
pub const ROW_BYTES: usize = std::mem::size_of::<KeyRow>();
const _: () = assert!(ROW_BYTES == 224 && ROW_BYTES % 8 == 0);

impl Default for KeyRow {
    /// A fresh key. Its windows start at its first *applied* event (see [`KeyRow::roll`]), not
    /// at the first one to arrive, so state does not depend on arrival order.
    fn default() -> Self {
        KeyRow {
            on_hand: 0.0,
            in_transit: 0.0,
            last_stockout_ms: NO_TIME,
            last_alert_ms: NO_TIME,
            first_hour: NO_HOUR,
            ring_hour: NO_HOUR,
            last_receipt_hour: NO_HOUR,
            last_sample_hour: NO_HOUR,
            oos_hours: 0,
            oos_days: 0,
            inbound_head: NO_SLOT,
            risk: 0.0,
            alert_risk: 0.0,
            hourly: [0.0; HOURS],
            daily: [0.0; DAYS],
            flags: 0,
            count_gap: NO_GAP,
        }
    }
}

/// The rows of one shard, indexed by key row.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Rows {
    rows: Vec<KeyRow>,
}

impl Rows {
    /// Rows the allocation holds without growing (per-key arrays beside the rows grow to it).
    pub fn capacity(&self) -> usize {
        self.rows.capacity()
    }

    /// Number of key rows.
    pub fn len(&self) -> usize {
        self.rows.len()
    }

    /// True when there are no rows.
    pub fn is_empty(&self) -> bool {
        self.rows.is_empty()
    }

    /// Appends a fresh key (see [`KeyRow::default`]).
    pub fn push_key(&mut self) {
        super::huge::reserve(&mut self.rows, 1);
        self.rows.push(KeyRow::default());
    }

    /// Appends a row.
    pub fn push(&mut self, row: KeyRow) {
        super::huge::reserve(&mut self.rows, 1);
        self.rows.push(row);
    }

    /// Reserves room for `n` more rows.
    pub fn reserve_exact(&mut self, n: usize) {
        self.rows.reserve_exact(n);
        super::huge::advise(&self.rows);
    }

    /// All rows, in row order.
    pub fn as_slice(&self) -> &[KeyRow] {
        &self.rows
    }

    /// Row `row`. Panics if out of range (rows come from the key dictionary).
    #[inline]
    pub fn get(&self, row: usize) -> &KeyRow {
        &self.rows[row]
    }

    /// Row `row`, mutably.
    #[inline]
    pub fn get_mut(&mut self, row: usize) -> &mut KeyRow {
        &mut self.rows[row]
    }

    /// Heap bytes held by the rows (allocated capacity).
    pub fn heap_bytes(&self) -> usize {
        self.rows.capacity() * ROW_BYTES
    }

    /// Hints the CPU to load the cache line of `row` holding byte `offset` of it (one field).
    #[inline]
    pub fn prefetch_line(&self, row: usize, offset: usize) {
        if let Some(r) = self.rows.get(row) {
            super::mem::prefetch((r as *const KeyRow).cast::<u8>().wrapping_add(offset));
        }
    }

    /// Hints the CPU to load `row`. The apply loop calls it a few events ahead: with a million
    /// keys each row is a cache miss, and issuing the loads early overlaps their latency (a hint
    /// only; it changes no state). A row is 32-byte aligned and 224 bytes long, so it spans
    /// exactly 4 cache lines, each of which holds one of these addresses.
    #[inline]
    pub fn prefetch(&self, row: usize) {
        if let Some(r) = self.rows.get(row) {
            let p = (r as *const KeyRow).cast::<u8>();
            for off in [0, 64, 128, 192] {
                super::mem::prefetch(p.wrapping_add(off));
            }
        }
    }
}

impl KeyRow {
    /// Moves the windows forward to `hour`, clearing buckets that fell out. Lazy: only done
    /// when the key is touched, so idle keys cost nothing.
    pub fn roll(&mut self, hour: i32) {
        let cur = self.ring_hour;
        if cur == NO_HOUR {
            self.first_hour = hour;
            self.ring_hour = hour;
            return;
        }
        if hour <= cur {
            return;
        }
        let shift = i64::from(hour) - i64::from(cur);
        let hb = &mut self.hourly;
        if shift as usize >= HOURS {
            hb.fill(0.0);
        } else {
            for h in (i64::from(cur) + 1)..=i64::from(hour) {
                hb[h.rem_euclid(HOURS as i64) as usize] = 0.0;
            }
        }
        let (d0, d1) = (
            i64::from(cur).div_euclid(24),
            i64::from(hour).div_euclid(24),
        );
        let dshift = d1 - d0;
        let db = &mut self.daily;
        if dshift as usize >= DAYS {
            db.fill(0.0);
        } else {
            for d in (d0 + 1)..=d1 {
                db[d.rem_euclid(DAYS as i64) as usize] = 0.0;
            }
        }
        self.oos_hours = shl(self.oos_hours, shift);
        self.oos_days = shl(self.oos_days, dshift);
        self.ring_hour = hour;
    }

    /// Adds demand `qty` at `hour` (the ring must have been rolled to at least `hour`).
    pub fn add_demand(&mut self, hour: i32, qty: f64) {
        let cur = i64::from(self.ring_hour);
        let h = i64::from(hour);
        if cur - h < HOURS as i64 {
            self.hourly[h.rem_euclid(HOURS as i64) as usize] += qty as f32;
        }
        let (dc, d) = (cur.div_euclid(24), h.div_euclid(24));
        if dc - d < DAYS as i64 {
            self.daily[d.rem_euclid(DAYS as i64) as usize] += qty as f32;
        }
    }

    /// Records an out-of-stock observation at `hour` (ring rolled to at least `hour`).
    pub fn mark_oos(&mut self, hour: i32) {
        let age = i64::from(self.ring_hour) - i64::from(hour);
        if (0..32).contains(&age) {
            self.oos_hours |= 1 << age;
        }
        let dage = i64::from(self.ring_hour).div_euclid(24) - i64::from(hour).div_euclid(24);
        if (0..32).contains(&dage) {
            self.oos_days |= 1 << dage;
        }
    }

    /// On hand, if established by a receipt or a count.
    pub fn known_on_hand(&self) -> Option<f64> {
        (self.flags & flag::ON_HAND_KNOWN != 0).then_some(self.on_hand)
    }

    /// The last count's discrepancy against the book, units (see [`KeyRow::count_gap`]).
    pub fn count_gap(&self) -> Option<f64> {
        (self.count_gap != NO_GAP).then_some(f64::from(self.count_gap))
    }

    /// A stockout episode is open.
    pub fn in_stockout(&self) -> bool {
        self.flags & flag::IN_STOCKOUT != 0
    }

    /// A `stockout_risk` alert is open.
    pub fn risk_open(&self) -> bool {
        self.flags & flag::RISK_OPEN != 0
    }

    /// Demand statistics at the current ring hour.
    pub fn demand(&self) -> DemandStats {
        let hour = i64::from(self.ring_hour);
        let first = i64::from(self.first_hour);
        let hours_seen = (hour - first + 1).clamp(1, (DAYS * 24) as i64) as f64;
        let day = hour.div_euclid(24);
        let complete = (day - first.div_euclid(24)).clamp(0, DAYS as i64 - 1) as usize;
        let db = &self.daily;
        let hb = &self.hourly;
        let mut i = day.rem_euclid(DAYS as i64) as usize;
        let today = f64::from(db[i]);
        let (mut sum, mut sumsq, mut zeros) = (0.0f64, 0.0f64, 0u32);
        // The complete days before today, newest first (one remainder, not one per day).
        for _ in 0..complete {
            i = if i == 0 { DAYS - 1 } else { i - 1 };
            let v = f64::from(db[i]);
            sum += v;
            sumsq += v * v;
            zeros += u32::from(v <= 0.0);
        }
        let last24: f64 = hb.iter().map(|&v| f64::from(v)).sum();
        // Shrink towards zero demand with a few pseudo-hours of nothing, so one early sale does
        // not look like a torrent.
        const PSEUDO_HOURS: f64 = 12.0;
        let window_hours = hours_seen.min((complete * 24) as f64 + (hour - day * 24 + 1) as f64);
        let rate = (sum + today) / (window_hours + PSEUDO_HOURS);
        let recent = last24 / (hours_seen.min(24.0) + PSEUDO_HOURS);
        let dispersion = if complete >= 2 {
            let n = complete as f64;
            let mean = sum / n;
            let var = (sumsq - n * mean * mean).max(0.0) / (n - 1.0);
            if mean > 0.0 {
                (var / mean).clamp(1.0, 50.0)
            } else {
                1.0
            }
        } else {
            1.0
        };
        DemandStats {
            rate_per_hour: rate,
            recent_per_hour: recent,
            dispersion,
            zero_day_fraction: if complete > 0 {
                f64::from(zeros) / complete as f64
            } else {
                0.0
            },
            complete_days: complete as u32,
            today,
            past: sum,
        }
    }
}

fn shl(bits: u32, by: i64) -> u32 {
    if by >= 32 {
        0
    } else {
        bits << by
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn row_layout() {
        assert_eq!(std::mem::size_of::<KeyRow>(), 224);
        assert_eq!(std::mem::align_of::<KeyRow>(), 32);
        let mut rows = Rows::default();
        rows.push_key();
        rows.push_key();
        let p = rows.as_slice().as_ptr() as usize;
        assert_eq!(p % 32, 0);
    }

    #[test]
    fn windows_roll_and_sum() {
        let mut c = KeyRow::default();
        let t0 = 1_000 * 24 * HOUR_MS; // midnight of day 1000
        c.roll(hour_of(t0));
        c.add_demand(hour_of(t0), 2.0);
        c.roll(hour_of(t0) + 1);
        c.add_demand(hour_of(t0) + 1, 3.0);
        assert_eq!(c.hourly.iter().sum::<f32>(), 5.0);
        // 25 hours later the first hour has left the hourly ring but not the daily ring.
        c.roll(hour_of(t0) + 25);
        assert_eq!(c.hourly.iter().sum::<f32>(), 0.0);
        assert_eq!(c.daily.iter().sum::<f32>(), 5.0);
        let d = c.demand();
        assert_eq!(d.complete_days, 1);
        assert!(d.rate_per_hour > 0.0 && d.rate_per_hour < 5.0 / 24.0);
        // 15 days later everything is gone.
        c.roll(hour_of(t0) + 24 * 15);
        assert_eq!(c.daily.iter().sum::<f32>(), 0.0);
    }

    #[test]
    fn oos_bits_age() {
        let mut c = KeyRow::default();
        c.roll(0);
        c.mark_oos(0);
        assert_eq!(c.oos_hours, 1);
        c.roll(3);
        assert_eq!(c.oos_hours, 1 << 3);
        c.roll(100);
        assert_eq!(c.oos_hours, 0);
        assert_eq!(c.oos_days, 1 << 4);
    }
}
