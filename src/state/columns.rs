//! Per-key state as columns (struct of arrays), one entry per key row. Every column is a
//! contiguous native-endian buffer in Arrow's layout, so a snapshot is a `RecordBatch` built from
//! them (see [`super::snapshot`]); the ring windows are the values of `FixedSizeList` columns.
//!
//! Bytes per key: 2×f64 quantities, 2×i64 times (last stockout, last alert), 4×i32 hours (first,
//! ring = last event, last receipt, last sample), 24 + 14 f32 demand buckets, 2×u32
//! availability bitmaps, u32 inbound head, 2×f32 risks, u8 flags: 221 bytes; plus the key
//! index (8-byte slots at ≤ 5/8 load) and the key string offsets (4).

/// Hourly demand buckets per key (the last 24 hours of event time, current hour included).
pub const HOURS: usize = 24;
/// Daily demand buckets per key (the last 14 days, today included).
pub const DAYS: usize = 14;
/// One hour in ms.
pub const HOUR_MS: i64 = 3_600_000;
/// Marker for "no time recorded".
pub const NO_TIME: i64 = i64::MIN;
/// Marker for "no hour recorded".
pub const NO_HOUR: i32 = i32::MIN;
/// Marker for "no inbound shipment".
pub const NO_SLOT: u32 = u32::MAX;

/// Bits of the `flags` column.
pub mod flag {
    /// On hand has been established by a receipt.
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

/// The per-key columns of one shard.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Columns {
    /// Σ receipts − Σ sales applied (meaningful once `ON_HAND_KNOWN`).
    pub on_hand: Vec<f64>,
    /// Σ qty of open inbound shipments.
    pub in_transit: Vec<f64>,
    /// See [`flag`].
    pub flags: Vec<u8>,
    /// Start of the last stockout episode ([`NO_TIME`] if none).
    pub last_stockout_ms: Vec<i64>,
    /// Event time of the last risk alert emitted.
    pub last_alert_ms: Vec<i64>,
    /// Hour of the first event of the key.
    pub first_hour: Vec<i32>,
    /// Hour the ring windows end at (the newest bucket).
    pub ring_hour: Vec<i32>,
    /// Hour of the last receipt ([`NO_HOUR`] if none).
    pub last_receipt_hour: Vec<i32>,
    /// Hour of the last label snapshot taken ([`NO_HOUR`] if none).
    pub last_sample_hour: Vec<i32>,
    /// Demand per hour, ring of [`HOURS`] per key, bucket `hour % HOURS`.
    pub hourly: Vec<f32>,
    /// Demand per day, ring of [`DAYS`] per key, bucket `day % DAYS`.
    pub daily: Vec<f32>,
    /// Bit i: out of stock observed in hour `ring_hour - i`.
    pub oos_hours: Vec<u32>,
    /// Bit i: out of stock observed on day `ring_hour / 24 - i`.
    pub oos_days: Vec<u32>,
    /// First open inbound shipment slot ([`NO_SLOT`] if none).
    pub inbound_head: Vec<u32>,
    /// Risk at the last scoring.
    pub risk: Vec<f32>,
    /// Risk when the last risk alert was emitted.
    pub alert_risk: Vec<f32>,
}

/// Demand statistics of one key at one hour, from its windows.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct DemandStats {
    /// Shrunk estimate of demand per hour over the whole window.
    pub rate_per_hour: f64,
    /// Demand per hour over the last 24 hours (shrunk).
    pub recent_per_hour: f64,
    /// Dispersion index of daily demand (variance / mean, ≥ 1).
    pub dispersion: f64,
    /// Fraction of complete days in the window with no demand.
    pub zero_day_fraction: f64,
    /// Complete days of history in the window.
    pub complete_days: u32,
    /// Demand so far today.
    pub today: f64,
}

impl Columns {
    /// Number of key rows.
    pub fn len(&self) -> usize {
        self.flags.len()
    }

    /// True when there are no rows.
    pub fn is_empty(&self) -> bool {
        self.flags.is_empty()
    }

    /// Appends a fresh key. Its windows start at its first *applied* event (see
    /// [`Columns::roll`]), not at the first one to arrive, so state does not depend on arrival
    /// order.
    pub fn push_key(&mut self) {
        self.on_hand.push(0.0);
        self.in_transit.push(0.0);
        self.flags.push(0);
        self.last_stockout_ms.push(NO_TIME);
        self.last_alert_ms.push(NO_TIME);
        self.first_hour.push(NO_HOUR);
        self.ring_hour.push(NO_HOUR);
        self.last_receipt_hour.push(NO_HOUR);
        self.last_sample_hour.push(NO_HOUR);
        self.hourly.extend_from_slice(&[0.0; HOURS]);
        self.daily.extend_from_slice(&[0.0; DAYS]);
        self.oos_hours.push(0);
        self.oos_days.push(0);
        self.inbound_head.push(NO_SLOT);
        self.risk.push(0.0);
        self.alert_risk.push(0.0);
    }

    /// Heap bytes held by the columns.
    pub fn heap_bytes(&self) -> usize {
        self.on_hand.capacity() * 8
            + self.in_transit.capacity() * 8
            + self.flags.capacity()
            + self.last_stockout_ms.capacity() * 8
            + self.last_alert_ms.capacity() * 8
            + self.first_hour.capacity() * 4
            + self.ring_hour.capacity() * 4
            + self.last_receipt_hour.capacity() * 4
            + self.last_sample_hour.capacity() * 4
            + self.hourly.capacity() * 4
            + self.daily.capacity() * 4
            + self.oos_hours.capacity() * 4
            + self.oos_days.capacity() * 4
            + self.inbound_head.capacity() * 4
            + self.risk.capacity() * 4
            + self.alert_risk.capacity() * 4
    }

    /// Hints the CPU to load `row` of every column. The apply loop calls it a few events
    /// ahead: with a million keys each column access is a cache miss, and issuing them early
    /// overlaps their latency (a hint only; it changes no state).
    #[inline]
    pub fn prefetch(&self, row: usize) {
        if row >= self.flags.len() {
            return;
        }
        prefetch(&self.on_hand[row]);
        prefetch(&self.in_transit[row]);
        prefetch(&self.flags[row]);
        prefetch(&self.last_stockout_ms[row]);
        prefetch(&self.last_alert_ms[row]);
        prefetch(&self.first_hour[row]);
        prefetch(&self.ring_hour[row]);
        prefetch(&self.last_receipt_hour[row]);
        prefetch(&self.last_sample_hour[row]);
        prefetch(&self.hourly[row * HOURS]);
        prefetch(&self.hourly[row * HOURS + HOURS - 1]);
        prefetch(&self.daily[row * DAYS]);
        prefetch(&self.daily[row * DAYS + DAYS - 1]);
        prefetch(&self.oos_hours[row]);
        prefetch(&self.oos_days[row]);
        prefetch(&self.inbound_head[row]);
        prefetch(&self.risk[row]);
        prefetch(&self.alert_risk[row]);
    }

    /// Moves the windows of `row` forward to `hour`, clearing buckets that fell out. Lazy: only
    /// done when the key is touched, so idle keys cost nothing.
    pub fn roll(&mut self, row: usize, hour: i32) {
        let cur = self.ring_hour[row];
        if cur == NO_HOUR {
            self.first_hour[row] = hour;
            self.ring_hour[row] = hour;
            return;
        }
        if hour <= cur {
            return;
        }
        let shift = i64::from(hour) - i64::from(cur);
        let hb = &mut self.hourly[row * HOURS..(row + 1) * HOURS];
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
        let db = &mut self.daily[row * DAYS..(row + 1) * DAYS];
        if dshift as usize >= DAYS {
            db.fill(0.0);
        } else {
            for d in (d0 + 1)..=d1 {
                db[d.rem_euclid(DAYS as i64) as usize] = 0.0;
            }
        }
        self.oos_hours[row] = shl(self.oos_hours[row], shift);
        self.oos_days[row] = shl(self.oos_days[row], dshift);
        self.ring_hour[row] = hour;
    }

    /// Adds demand `qty` at `hour` (the ring must have been rolled to at least `hour`).
    pub fn add_demand(&mut self, row: usize, hour: i32, qty: f64) {
        let cur = i64::from(self.ring_hour[row]);
        let h = i64::from(hour);
        if cur - h < HOURS as i64 {
            self.hourly[row * HOURS + h.rem_euclid(HOURS as i64) as usize] += qty as f32;
        }
        let (dc, d) = (cur.div_euclid(24), h.div_euclid(24));
        if dc - d < DAYS as i64 {
            self.daily[row * DAYS + d.rem_euclid(DAYS as i64) as usize] += qty as f32;
        }
    }

    /// Records an out-of-stock observation at `hour` (ring rolled to at least `hour`).
    pub fn mark_oos(&mut self, row: usize, hour: i32) {
        let age = i64::from(self.ring_hour[row]) - i64::from(hour);
        if (0..32).contains(&age) {
            self.oos_hours[row] |= 1 << age;
        }
        let dage = i64::from(self.ring_hour[row]).div_euclid(24) - i64::from(hour).div_euclid(24);
        if (0..32).contains(&dage) {
            self.oos_days[row] |= 1 << dage;
        }
    }

    /// Demand statistics of `row` at its current ring hour.
    pub fn demand(&self, row: usize) -> DemandStats {
        let hour = i64::from(self.ring_hour[row]);
        let first = i64::from(self.first_hour[row]);
        let hours_seen = (hour - first + 1).clamp(1, (DAYS * 24) as i64) as f64;
        let day = hour.div_euclid(24);
        let complete = (day - first.div_euclid(24)).clamp(0, DAYS as i64 - 1) as usize;
        let db = &self.daily[row * DAYS..(row + 1) * DAYS];
        let hb = &self.hourly[row * HOURS..(row + 1) * HOURS];
        let today = f64::from(db[day.rem_euclid(DAYS as i64) as usize]);
        let (mut sum, mut sumsq, mut zeros) = (0.0f64, 0.0f64, 0u32);
        for k in 1..=complete as i64 {
            let v = f64::from(db[(day - k).rem_euclid(DAYS as i64) as usize]);
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
        }
    }
}

#[inline(always)]
fn prefetch<T>(v: &T) {
    #[cfg(target_arch = "x86_64")]
    {
        use std::arch::x86_64::{_mm_prefetch, _MM_HINT_T0};
        let p = (v as *const T).cast::<i8>();
        // SAFETY: a prefetch is a hint with no architectural effect; `p` comes from a live
        // reference, and SSE is part of the x86_64 baseline.
        unsafe { _mm_prefetch::<_MM_HINT_T0>(p) };
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = v;
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
    fn windows_roll_and_sum() {
        let mut c = Columns::default();
        let t0 = 1_000 * 24 * HOUR_MS; // midnight of day 1000
        c.push_key();
        c.roll(0, hour_of(t0));
        c.add_demand(0, hour_of(t0), 2.0);
        c.roll(0, hour_of(t0) + 1);
        c.add_demand(0, hour_of(t0) + 1, 3.0);
        assert_eq!(c.hourly[..HOURS].iter().sum::<f32>(), 5.0);
        // 25 hours later the first hour has left the hourly ring but not the daily ring.
        c.roll(0, hour_of(t0) + 25);
        assert_eq!(c.hourly[..HOURS].iter().sum::<f32>(), 0.0);
        assert_eq!(c.daily[..DAYS].iter().sum::<f32>(), 5.0);
        let d = c.demand(0);
        assert_eq!(d.complete_days, 1);
        assert!(d.rate_per_hour > 0.0 && d.rate_per_hour < 5.0 / 24.0);
        // 15 days later everything is gone.
        c.roll(0, hour_of(t0) + 24 * 15);
        assert_eq!(c.daily[..DAYS].iter().sum::<f32>(), 0.0);
    }

    #[test]
    fn oos_bits_age() {
        let mut c = Columns::default();
        c.push_key();
        c.roll(0, 0);
        c.mark_oos(0, 0);
        assert_eq!(c.oos_hours[0], 1);
        c.roll(0, 3);
        assert_eq!(c.oos_hours[0], 1 << 3);
        c.roll(0, 100);
        assert_eq!(c.oos_hours[0], 0);
        assert_eq!(c.oos_days[0], 1 << 4);
    }
}
