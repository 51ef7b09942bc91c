//! The simulator's knobs and their validation.

use thiserror::Error;

use super::real::SampleError;

/// 2026-01-05T00:00:00Z, a Monday: the default start of simulated event time.
pub const DEFAULT_START_MS: i64 = 1_767_571_200_000;

/// Two hours: beyond the engine's default allowed lateness of one hour, so late records are
/// rejected as `late` rather than applied.
pub const DEFAULT_LATE_DELAY_MS: i64 = 7_200_000;

/// Upper bound on tracked (location, SKU) pairs: the world keeps about 64 bytes per pair.
pub const MAX_KEYS: u64 = 50_000_000;

/// Earliest accepted `start_ms` (1971-01-01T00:00:00Z), so that `Ancient` bad records stay
/// clearly older than the simulated stream.
const MIN_START_MS: i64 = 31_536_000_000;

/// Latest accepted `start_ms` (2900-01-01T00:00:00Z), so that `FarFuture` bad records still
/// format as four-digit years.
const MAX_START_MS: i64 = 29_348_006_400_000;

/// Where the simulated SKUs' demand comes from.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub enum DemandSource {
    /// Drawn per SKU: log-normal daily rates, a seasonal trend, random promotions, and
    /// hand-set hour-of-day and day-of-week profiles.
    #[default]
    Synthetic,
    /// Each SKU follows one real (store, product) series of the FreshRetailNet-50K sample
    /// embedded in the binary (Dingdong Inc., CC BY 4.0; see `data/README.md`): its daily
    /// demand, hour-of-day shares, promotions and discounts, day by day.
    Frn50kSample,
}

impl DemandSource {
    /// Every source, in declaration order.
    pub const ALL: [DemandSource; 2] = [DemandSource::Synthetic, DemandSource::Frn50kSample];

    /// The source's name on the command line: `synthetic` or `frn50k-sample`.
    pub fn name(&self) -> &'static str {
        match self {
            DemandSource::Synthetic => "synthetic",
            DemandSource::Frn50kSample => "frn50k-sample",
        }
    }
}

/// Which input contract the simulator speaks.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub enum Contract {
    /// The four event types of contract v1 only (sale, shipment, receipt, availability); every
    /// key starts with a receipt of its initial stock. Byte for byte the stream of earlier
    /// versions.
    #[default]
    V1,
    /// Contract v2 as well: nightly on-hand snapshots, cycle counts, adjustments (shrink,
    /// damage, expiry, customer returns, store-to-store transfers, DC picks as `transfer_out`),
    /// ETA revisions and cancelled shipments; stores keep local (US) time. The run starts with
    /// stock already on the shelves, known only through snapshots, counts and receipts.
    V2,
}

impl Contract {
    /// Every contract, in declaration order.
    pub const ALL: [Contract; 2] = [Contract::V1, Contract::V2];

    /// The contract's name on the command line: `v1` or `v2`.
    pub fn name(&self) -> &'static str {
        match self {
            Contract::V1 => "v1",
            Contract::V2 => "v2",
        }
    }
}

/// The knobs of the contract-v2 world (used with [`Contract::V2`] only).
#[derive(Debug, Clone, PartialEq)]
pub struct V2Config {
    /// Share of locations (stores and DCs) whose ERP/WMS sends a nightly on-hand snapshot (the
    /// book position at 03:00 local time, and at the start of the run).
    pub snapshot_share: f64,
    /// Mean days between two cycle counts of a store key (counted during opening hours; an
    /// empty shelf is counted five times as often); 0 turns cycle counts off.
    pub cycle_count_days: f64,
    /// Share of shrink losses that the store records as a `shrink` adjustment (the rest only
    /// surfaces through counts and shelf observations).
    pub shrink_recorded_share: f64,
    /// Share of late deliveries (8 h or more) announced by a shipment revision (new ETA)
    /// before the original ETA.
    pub eta_revision_share: f64,
    /// Share of supplier shipments cancelled before they arrive.
    pub cancel_share: f64,
    /// Share of supplier shipments short-shipped: a revision with 50–90 % of the quantity is
    /// sent before the ETA (when no new ETA is announced), and the receipt brings that. 0 (the
    /// default) keeps the stream as without it, byte for byte.
    pub short_share: f64,
    /// Chance per store key and day of a store-to-store transfer towards it when it runs low
    /// and another store has plenty.
    pub transfer_chance: f64,
}

impl Default for V2Config {
    fn default() -> Self {
        Self {
            snapshot_share: 1.0,
            cycle_count_days: 14.0,
            shrink_recorded_share: 0.3,
            eta_revision_share: 0.8,
            cancel_share: 0.02,
            short_share: 0.0,
            transfer_chance: 0.01,
        }
    }
}

/// What to simulate: the size of the store network, how long, where demand comes from, and
/// how much noise to add.
///
/// The world (demand, stock, replenishment) depends only on `stores`, `dcs`, `skus`, `days`,
/// `seed`, `start_ms` and `demand`; the noise knobs (`bad_ratio`, `duplicate_ratio`, `late_ratio`,
/// `late_delay_ms`) draw from a separate random stream, so turning them up or down keeps the
/// good events identical.
#[derive(Debug, Clone, PartialEq)]
pub struct SimConfig {
    /// Number of stores (`STORE-0001`, …).
    pub stores: u32,
    /// Number of distribution centres (`DC-01`, …). They receive shipments from `SUPPLIER`
    /// and ship to stores; with 0, stores are replenished from `SUPPLIER` directly.
    pub dcs: u32,
    /// Number of SKUs (`SKU-00001`, …), each stocked at every store and every DC.
    pub skus: u32,
    /// Length of the run in days of event time.
    pub days: u32,
    /// Seed of every random draw: the same config gives the same records, byte for byte.
    pub seed: u64,
    /// Fraction of emitted records that are bad (cycling through every [`BadKind`](super::BadKind)).
    pub bad_ratio: f64,
    /// Fraction of good events that are re-sent verbatim a little later (within an hour of
    /// event time, so within the engine's lateness and caught by dedupe).
    pub duplicate_ratio: f64,
    /// Fraction of good events held back and emitted only once the stream has moved
    /// `late_delay_ms` past their event time.
    pub late_ratio: f64,
    /// How far behind the stream late events are emitted, in milliseconds.
    pub late_delay_ms: i64,
    /// Start of event time, in milliseconds since the Unix epoch.
    pub start_ms: i64,
    /// Stop after this many records; `None` runs the full `days`.
    pub max_events: Option<u64>,
    /// Where demand comes from (synthetic by default).
    pub demand: DemandSource,
    /// The input contract spoken (v1 by default).
    pub contract: Contract,
    /// The contract-v2 world's knobs.
    pub v2: V2Config,
    /// Record the true out-of-stock episodes of every key ([`super::Simulator::truth`]), to
    /// score alerts against them.
    pub record_truth: bool,
}

impl Default for SimConfig {
    fn default() -> Self {
        Self {
            stores: 50,
            dcs: 2,
            skus: 200,
            days: 28,
            seed: 42,
            bad_ratio: 0.0,
            duplicate_ratio: 0.0,
            late_ratio: 0.0,
            late_delay_ms: DEFAULT_LATE_DELAY_MS,
            start_ms: DEFAULT_START_MS,
            max_events: None,
            demand: DemandSource::Synthetic,
            contract: Contract::V1,
            v2: V2Config::default(),
            record_truth: false,
        }
    }
}

/// A [`SimConfig`] that cannot be simulated; every message names the offending field.
#[derive(Debug, Clone, PartialEq, Error)]
pub enum SimError {
    /// A count that must be positive is zero.
    #[error("{field} must be at least 1")]
    Zero {
        /// The config field.
        field: &'static str,
    },
    /// A count is above what names and memory allow.
    #[error("{field} = {value} exceeds the maximum of {max}")]
    TooLarge {
        /// The config field.
        field: &'static str,
        /// The value given.
        value: u64,
        /// The largest accepted value.
        max: u64,
    },
    /// A ratio is not a finite number in its accepted range.
    #[error("{field} = {value} must be a number in [0, {max}]")]
    Ratio {
        /// The config field.
        field: &'static str,
        /// The value given.
        value: f64,
        /// The largest accepted value (`bad_ratio` must stay below 1 or the stream never ends).
        max: f64,
    },
    /// `duplicate_ratio` and `late_ratio` pick disjoint sets of good events.
    #[error("duplicate_ratio + late_ratio = {sum} must not exceed 1")]
    RatioSum {
        /// The sum of the two ratios.
        sum: f64,
    },
    /// `late_delay_ms` is zero or negative.
    #[error("late_delay_ms = {0} must be positive")]
    LateDelay(i64),
    /// `start_ms` is outside the supported calendar range.
    #[error("start_ms = {0} must lie between 1971-01-01 and 2900-01-01")]
    StartMs(i64),
    /// The demand sample chosen by `demand` could not be read.
    #[error("demand: {0}")]
    Sample(#[from] SampleError),
}

impl SimConfig {
    /// Checks every field and the fields that depend on each other.
    pub fn validate(&self) -> Result<(), SimError> {
        for (field, value) in [
            ("stores", self.stores),
            ("skus", self.skus),
            ("days", self.days),
        ] {
            if value == 0 {
                return Err(SimError::Zero { field });
            }
        }
        for (field, value, max) in [
            ("stores", self.stores, 99_999),
            ("dcs", self.dcs, 99),
            ("skus", self.skus, 9_999_999),
            ("days", self.days, 3_660),
        ] {
            if value > max {
                return Err(SimError::TooLarge {
                    field,
                    value: u64::from(value),
                    max: u64::from(max),
                });
            }
        }
        let keys = (u64::from(self.stores) + u64::from(self.dcs)) * u64::from(self.skus);
        if keys > MAX_KEYS {
            return Err(SimError::TooLarge {
                field: "(stores + dcs) * skus",
                value: keys,
                max: MAX_KEYS,
            });
        }
        for (field, value, max) in [
            ("bad_ratio", self.bad_ratio, 0.99),
            ("duplicate_ratio", self.duplicate_ratio, 1.0),
            ("late_ratio", self.late_ratio, 1.0),
        ] {
            if !(0.0..=max).contains(&value) {
                return Err(SimError::Ratio { field, value, max });
            }
        }
        let v2 = &self.v2;
        for (field, value, max) in [
            ("snapshot_share", v2.snapshot_share, 1.0),
            ("shrink_recorded_share", v2.shrink_recorded_share, 1.0),
            ("eta_revision_share", v2.eta_revision_share, 1.0),
            ("cancel_share", v2.cancel_share, 1.0),
            ("short_share", v2.short_share, 1.0),
            ("transfer_chance", v2.transfer_chance, 1.0),
            ("cycle_count_days", v2.cycle_count_days, 3_660.0),
        ] {
            if !(0.0..=max).contains(&value) {
                return Err(SimError::Ratio { field, value, max });
            }
        }
        let sum = self.duplicate_ratio + self.late_ratio;
        if sum > 1.0 {
            return Err(SimError::RatioSum { sum });
        }
        if self.late_delay_ms <= 0 {
            return Err(SimError::LateDelay(self.late_delay_ms));
        }
        if !(MIN_START_MS..=MAX_START_MS).contains(&self.start_ms) {
            return Err(SimError::StartMs(self.start_ms));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_is_valid_and_starts_on_a_monday() {
        let cfg = SimConfig::default();
        assert_eq!(cfg.validate(), Ok(()));
        let start = chrono::DateTime::from_timestamp_millis(cfg.start_ms).unwrap();
        assert_eq!(start.to_rfc3339(), "2026-01-05T00:00:00+00:00");
        assert_eq!(MIN_START_MS, 365 * 86_400_000);
        let max = chrono::DateTime::from_timestamp_millis(MAX_START_MS).unwrap();
        assert_eq!(max.to_rfc3339(), "2900-01-01T00:00:00+00:00");
    }

    #[test]
    fn errors_name_the_field() {
        let bad = |f: fn(&mut SimConfig)| {
            let mut cfg = SimConfig::default();
            f(&mut cfg);
            cfg.validate().unwrap_err().to_string()
        };
        assert!(bad(|c| c.stores = 0).starts_with("stores "));
        assert!(bad(|c| c.skus = 0).starts_with("skus "));
        assert!(bad(|c| c.days = 0).starts_with("days "));
        assert!(bad(|c| c.dcs = 100).starts_with("dcs "));
        assert!(bad(|c| c.bad_ratio = 1.0).starts_with("bad_ratio "));
        assert!(bad(|c| c.late_ratio = f64::NAN).starts_with("late_ratio "));
        assert!(bad(|c| c.duplicate_ratio = -0.1).starts_with("duplicate_ratio "));
        let both = bad(|c| {
            c.duplicate_ratio = 0.6;
            c.late_ratio = 0.6;
        });
        assert!(both.contains("duplicate_ratio") && both.contains("late_ratio"));
        assert!(bad(|c| c.late_delay_ms = 0).starts_with("late_delay_ms "));
        assert!(bad(|c| c.start_ms = 0).starts_with("start_ms "));
        assert!(bad(|c| {
            c.stores = 99_999;
            c.skus = 9_999_999;
        })
        .contains("skus"));
    }
}
