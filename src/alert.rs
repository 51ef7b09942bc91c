//! Alerts: contract v1 and the policy that turns risk scores into state transitions.
//!
//! Alerts are transitions, not a stream of scores: `raised` when risk crosses the raise
//! threshold, `resolved` when it falls below the (lower) resolve threshold, `updated` only on a
//! material change and at most once per cool-down. An observed stockout opens a `stockout` alert
//! (`raised`) that is `resolved` when stock is back. Replaying the topic's latest alert per
//! `(location, sku, kind)` gives the set of open alerts. `alert_id` is a hash of what triggered
//! the alert, so the same input always yields the same ids and consumers can dedupe.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// Version of the alert contract; bump on any incompatible change.
pub const ALERT_CONTRACT_VERSION: &str = "1";

/// What the alert is about.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize, JsonSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum AlertKind {
    /// The key is likely to run out within the horizon.
    StockoutRisk,
    /// The key was observed out of stock.
    Stockout,
}

/// Transition the alert reports.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize, JsonSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum AlertStatus {
    /// The condition started.
    Raised,
    /// The condition continues with a materially different risk.
    Updated,
    /// The condition ended.
    Resolved,
}

impl AlertKind {
    /// Contract name.
    pub fn as_str(self) -> &'static str {
        match self {
            AlertKind::StockoutRisk => "stockout_risk",
            AlertKind::Stockout => "stockout",
        }
    }
}

impl AlertStatus {
    /// Contract name.
    pub fn as_str(self) -> &'static str {
        match self {
            AlertStatus::Raised => "raised",
            AlertStatus::Updated => "updated",
            AlertStatus::Resolved => "resolved",
        }
    }
}

/// How urgent an alert is, from its expected lost units and its risk.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize, JsonSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum AlertPriority {
    /// At least one unit is expected to be lost before the next arrival.
    High,
    /// Less than a unit expected lost, but some; or a risk of at least 0.9.
    Medium,
    /// Nothing expected lost at the mean demand (or on hand unknown), risk below 0.9.
    Low,
}

impl AlertPriority {
    /// Contract name.
    pub fn as_str(self) -> &'static str {
        match self {
            AlertPriority::High => "high",
            AlertPriority::Medium => "medium",
            AlertPriority::Low => "low",
        }
    }
}

/// The priority of an alert with `expected_lost_units` (None: on hand unknown) and `risk`:
/// `high` from one expected lost unit, `medium` below that but above zero or from a risk of
/// 0.9, `low` otherwise.
pub fn priority(expected_lost_units: Option<f64>, risk: f64) -> AlertPriority {
    let lost = expected_lost_units.unwrap_or(0.0);
    if lost >= 1.0 {
        AlertPriority::High
    } else if lost > 0.0 || risk >= 0.9 {
        AlertPriority::Medium
    } else {
        AlertPriority::Low
    }
}

/// Expected lost units before the next inbound arrival: the demand expected at
/// `rate_per_hour` from `now_ms` until the earliest open inbound ETA (`next_eta_ms`; the end
/// of the horizon when there is none or it lies beyond it; an overdue ETA counts as now) minus
/// what is on hand (nothing when the shelf is observed empty, `in_stockout`), never below 0.
/// None while on hand is unknown. A point estimate at the mean demand: it is 0 for a key whose
/// risk comes from the demand's spread alone.
pub fn expected_lost_units(
    on_hand: Option<f64>,
    in_stockout: bool,
    rate_per_hour: f64,
    now_ms: i64,
    next_eta_ms: Option<i64>,
    horizon_ms: i64,
) -> Option<f64> {
    let on_hand = if in_stockout { 0.0 } else { on_hand?.max(0.0) };
    let until_ms = next_eta_ms.map_or(horizon_ms, |eta| {
        eta.saturating_sub(now_ms).clamp(0, horizon_ms)
    });
    let demand = rate_per_hour.max(0.0) * until_ms as f64 / 3_600_000.0;
    let lost = demand - on_hand;
    Some(if lost.is_finite() { lost.max(0.0) } else { 0.0 })
}

/// One feature's contribution to the risk's logit.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct Reason {
    /// Feature name (see the model documentation).
    pub feature: String,
    /// Contribution to the logit of the risk above the analytic prior's logit: the feature's
    /// linear and bin weights times its value, plus half of each crossed pair's cell it is in
    /// (`other`: every feature not listed). The listed contributions sum to the logit of
    /// `risk` minus the logit of the prior (to rounding; 0 for the prior while on hand is
    /// unknown).
    pub contribution: f64,
}

/// An alert, contract v1. Published as JSON keyed `"{location}|{sku}"`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(title = "stockwatch alert v1")]
pub struct Alert {
    /// Deterministic id: same input, same id. Consumers dedupe on it.
    pub alert_id: String,
    /// Contract version, `"1"`.
    pub schema_version: String,
    /// `stockout_risk` or `stockout`.
    pub kind: AlertKind,
    /// `raised`, `updated` or `resolved`.
    pub status: AlertStatus,
    /// Stock keeping unit.
    pub sku: String,
    /// Store or DC.
    pub location: String,
    /// P(stockout within `horizon_hours`), in [0, 1].
    pub risk: f64,
    /// Horizon of the risk, hours.
    pub horizon_hours: u32,
    /// Recorded on hand (receipts − sales); null while unknown.
    pub on_hand: Option<f64>,
    /// Units in open inbound shipments.
    pub in_transit: f64,
    /// Expected demand over the horizon.
    pub expected_demand: f64,
    /// On hand / expected daily demand; null while on hand is unknown.
    pub days_of_cover: Option<f64>,
    /// Expected lost units before the next inbound arrival: expected demand from
    /// `event_time` until the earliest open inbound ETA (the end of the horizon when there is
    /// none within it) minus on hand (0 when the shelf is observed empty), at least 0; null
    /// while on hand is unknown. Optional: absent from alerts written before it existed.
    #[serde(default)]
    pub expected_lost_units: Option<f64>,
    /// `high` (expected lost units ≥ 1), `medium` (> 0, or risk ≥ 0.9) or `low`. Optional:
    /// absent from alerts written before it existed.
    #[serde(default)]
    pub priority: Option<AlertPriority>,
    /// The largest contributions to the risk's logit above the prior's, largest first; the
    /// last is `other` (the rest) when features are left out, so they sum to that margin.
    pub reasons: Vec<Reason>,
    /// Version of the model that scored it.
    pub model_version: String,
    /// Event time of the event that triggered the alert (RFC 3339).
    pub event_time: String,
    /// Processing time when it was emitted (RFC 3339). `replay` uses the event time here, so
    /// its output is reproducible.
    pub emitted_at: String,
    /// Source position of the triggering event (internal: not part of the contract, never
    /// serialized). The service uses it to avoid re-publishing while it rebuilds state.
    #[serde(skip)]
    #[schemars(skip)]
    pub trigger_source: u64,
}

/// Alert policy settings (`[alerts]` in the config).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AlertPolicy {
    /// Raise a risk alert when risk reaches this.
    pub raise_threshold: f64,
    /// Resolve an open risk alert when risk falls below this (< raise_threshold).
    pub resolve_threshold: f64,
    /// An open alert is updated when risk moved at least this much since it was last sent...
    pub update_min_delta: f64,
    /// ...and at least this many minutes of event time have passed since then. Also the
    /// minimum time between a resolve and the next raise.
    pub cooldown_minutes: u32,
    /// Number of reasons attached to an alert.
    pub max_reasons: usize,
    /// Publish early alerts (scored on arrival, before the watermark) as well.
    pub early: bool,
    /// The service gives no early alert for records already this old when read (it is
    /// catching up a backlog: their confirmed alerts follow soon, and the scoring would slow
    /// the catch-up).
    pub early_max_age_ms: u64,
    /// Most `stockout_risk` raises per location per event-time day (UTC), keeping the most
    /// valuable (see [`RaiseBudget`]); 0: no limit.
    pub max_raised_per_location_per_day: u32,
}

impl Default for AlertPolicy {
    fn default() -> Self {
        AlertPolicy {
            raise_threshold: 0.7,
            resolve_threshold: 0.5,
            update_min_delta: 0.1,
            cooldown_minutes: 360,
            max_reasons: 3,
            early: true,
            early_max_age_ms: 5000,
            max_raised_per_location_per_day: 0,
        }
    }
}

/// What the policy decides for one scoring of one key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transition {
    /// Nothing to send.
    None,
    /// Send `raised`.
    Raise,
    /// Send `updated`.
    Update,
    /// Send `resolved`.
    Resolve,
}

impl AlertPolicy {
    /// Decides the risk-alert transition. `last_alert_ms` is the time of the last risk alert
    /// (any status) of the key, `alert_risk` the risk it carried.
    pub fn decide(
        &self,
        open: bool,
        risk: f64,
        alert_risk: f64,
        last_alert_ms: i64,
        now_ms: i64,
    ) -> Transition {
        let cooled = self.cooled(last_alert_ms, now_ms);
        match open {
            false if risk >= self.raise_threshold && cooled => Transition::Raise,
            true if risk < self.resolve_threshold => Transition::Resolve,
            true if (risk - alert_risk).abs() >= self.update_min_delta && cooled => {
                Transition::Update
            }
            _ => Transition::None,
        }
    }

    /// Whether the cool-down after a risk alert sent at `last_alert_ms` (`i64::MIN`: none)
    /// is over at `now_ms`.
    pub fn cooled(&self, last_alert_ms: i64, now_ms: i64) -> bool {
        last_alert_ms == i64::MIN
            || now_ms.saturating_sub(last_alert_ms) >= i64::from(self.cooldown_minutes) * 60_000
    }

    /// Checks the settings, naming the offending field.
    pub fn validate(&self) -> Result<(), String> {
        let in01 = |v: f64| (0.0..=1.0).contains(&v);
        if !in01(self.raise_threshold) {
            return Err(format!(
                "alerts.raise_threshold must be in [0, 1], got {}",
                self.raise_threshold
            ));
        }
        if !in01(self.resolve_threshold) || self.resolve_threshold >= self.raise_threshold {
            return Err(format!(
                "alerts.resolve_threshold must be in [0, alerts.raise_threshold = {}), got {}",
                self.raise_threshold, self.resolve_threshold
            ));
        }
        if self.update_min_delta.is_nan() || self.update_min_delta <= 0.0 {
            return Err(format!(
                "alerts.update_min_delta must be > 0, got {}",
                self.update_min_delta
            ));
        }
        Ok(())
    }
}

/// The value a raise is ranked by under `alerts.max_raised_per_location_per_day`: its
/// expected lost units (0 while on hand is unknown) plus its risk, so a unit expected lost
/// outweighs any difference of risk, and the risk orders raises that lose nothing at the mean.
pub fn raise_value(expected_lost_units: Option<f64>, risk: f64) -> f64 {
    let v = expected_lost_units.unwrap_or(0.0) + risk;
    if v.is_nan() {
        0.0
    } else {
        v
    }
}

/// The raise budget of one location (`alerts.max_raised_per_location_per_day` = N > 0).
///
/// Streaming and deterministic (a function of the raises the policy decides, in event-time
/// order): each candidate raise of day *d* (UTC, of its event time) is admitted while fewer
/// than N were admitted on *d* and its [`raise_value`] is at least the **bar**: the N-th
/// largest candidate value of day *d − 1* at the location (no bar when that day had fewer than
/// N candidates, or was not the day before). A refused raise sends nothing and starts the key's
/// cool-down as a raise would (it may be a candidate again after `cooldown_minutes`). So a
/// location never gets more than N raises a day, and on a day like the one before it the N
/// admitted are about its N most valuable. Part of the shard's state (changelog shard record,
/// snapshot metadata).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct LocationBudget {
    /// Day (ms since the epoch / 86 400 000) of `admitted` and `best`.
    day: i64,
    /// Raises admitted on `day`.
    admitted: u32,
    /// The bar of `day` (from the day before).
    bar: Option<f64>,
    /// The largest candidate values of `day`, at most N, in no order.
    best: Vec<f64>,
}

impl LocationBudget {
    /// Whether a candidate raise of `value` at `now_ms` is admitted under a cap of `cap`
    /// (> 0) a day; records it either way.
    pub fn admit(&mut self, cap: u32, now_ms: i64, value: f64) -> bool {
        let day = now_ms.div_euclid(86_400_000);
        if day != self.day {
            let n = cap as usize;
            self.bar = (day == self.day + 1 && self.best.len() >= n)
                .then(|| self.best.iter().copied().fold(f64::INFINITY, f64::min));
            self.day = day;
            self.admitted = 0;
            self.best.clear();
        }
        if self.best.len() < cap as usize {
            self.best.push(value);
        } else if let Some((i, &m)) = self
            .best
            .iter()
            .enumerate()
            .min_by(|a, b| a.1.total_cmp(b.1))
        {
            if value > m {
                self.best[i] = value;
            }
        }
        let ok = self.admitted < cap && self.bar.is_none_or(|b| value >= b);
        self.admitted += u32::from(ok);
        ok
    }

    /// Whether [`LocationBudget::admit`] would admit the candidate now, if nothing else came
    /// first (it does not record it). On a new day: no admission yet, the bar being the day
    /// before's (a candidate of this one does not lower it).
    pub fn has_room(&self, cap: u32, now_ms: i64, value: f64) -> bool {
        let day = now_ms.div_euclid(86_400_000);
        if day == self.day {
            return self.admitted < cap && self.bar.is_none_or(|b| value >= b);
        }
        let bar = (day == self.day + 1 && self.best.len() >= cap as usize)
            .then(|| self.best.iter().copied().fold(f64::INFINITY, f64::min));
        bar.is_none_or(|b| value >= b)
    }
}

/// The raise budgets of a shard's locations, by location (ordered: equal states, equal bytes).
pub type RaiseBudgets = std::collections::BTreeMap<String, LocationBudget>;

/// The deterministic alert id: xxh3-128 of the key, kind, status and the triggering event.
pub fn alert_id(
    location: &str,
    sku: &str,
    kind: AlertKind,
    status: AlertStatus,
    trigger_time_ms: i64,
    trigger_id_hash: u64,
) -> String {
    let mut id = String::with_capacity(ALERT_ID_LEN);
    write_alert_id(
        &mut id,
        false,
        location,
        sku,
        kind,
        status,
        trigger_time_ms,
        trigger_id_hash,
    );
    id
}

/// The id of an early alert: [`alert_id`]'s hash with the prefix `e-`, so an early alert and
/// the confirmed alert of the same trigger never share an id.
pub fn early_alert_id(
    location: &str,
    sku: &str,
    kind: AlertKind,
    status: AlertStatus,
    trigger_time_ms: i64,
    trigger_id_hash: u64,
) -> String {
    let mut id = String::with_capacity(ALERT_ID_LEN);
    write_alert_id(
        &mut id,
        true,
        location,
        sku,
        kind,
        status,
        trigger_time_ms,
        trigger_id_hash,
    );
    id
}

/// Length of an alert id: a two-byte prefix and 32 hex digits.
pub const ALERT_ID_LEN: usize = 34;

/// Replaces `out` with [`alert_id`] (or, `early`, [`early_alert_id`]): no allocation once
/// `out` holds [`ALERT_ID_LEN`] bytes.
#[allow(clippy::too_many_arguments)]
pub fn write_alert_id(
    out: &mut String,
    early: bool,
    location: &str,
    sku: &str,
    kind: AlertKind,
    status: AlertStatus,
    trigger_time_ms: i64,
    trigger_id_hash: u64,
) {
    let mut h = xxhash_rust::xxh3::Xxh3::new();
    h.update(location.as_bytes());
    h.update(&[0]);
    h.update(sku.as_bytes());
    h.update(&[0]);
    h.update(kind.as_str().as_bytes());
    h.update(&[0]);
    h.update(status.as_str().as_bytes());
    h.update(&trigger_time_ms.to_le_bytes());
    h.update(&trigger_id_hash.to_le_bytes());
    let digest = h.digest128();
    out.clear();
    out.push_str(if early { "e-" } else { "a-" });
    const HEX: &[u8; 16] = b"0123456789abcdef";
    for shift in (0..32).rev() {
        out.push(char::from(HEX[((digest >> (4 * shift)) & 0xf) as usize]));
    }
}

/// Formats ms since the epoch as RFC 3339 UTC with milliseconds.
pub fn rfc3339_ms(ms: i64) -> String {
    let mut out = String::with_capacity(24);
    write_rfc3339_ms(&mut out, ms);
    out
}

/// Replaces `out` with [`rfc3339_ms`] of `ms`: `YYYY-MM-DDTHH:MM:SS.mmmZ`, written directly for
/// the years 0000–9999 (no allocation once `out` holds 24 bytes), by chrono otherwise.
pub fn write_rfc3339_ms(out: &mut String, ms: i64) {
    out.clear();
    // 0000-01-01T00:00:00Z and 10000-01-01T00:00:00Z.
    const MIN_MS: i64 = -62_167_219_200_000;
    const MAX_MS: i64 = 253_402_300_800_000;
    if !(MIN_MS..MAX_MS).contains(&ms) {
        match chrono::DateTime::from_timestamp_millis(ms) {
            Some(t) => out.push_str(&t.to_rfc3339_opts(chrono::SecondsFormat::Millis, true)),
            None => out.push_str("invalid-time"),
        }
        return;
    }
    let days = ms.div_euclid(86_400_000);
    let in_day = ms.rem_euclid(86_400_000);
    // Civil date from days since 1970-01-01 (H. Hinnant's `civil_from_days`).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    fn digits(out: &mut String, v: i64, n: u32) {
        for k in (0..n).rev() {
            out.push(char::from(b'0' + ((v / 10i64.pow(k)) % 10) as u8));
        }
    }
    digits(out, year, 4);
    out.push('-');
    digits(out, month, 2);
    out.push('-');
    digits(out, day, 2);
    out.push('T');
    digits(out, in_day / 3_600_000, 2);
    out.push(':');
    digits(out, in_day / 60_000 % 60, 2);
    out.push(':');
    digits(out, in_day / 1000 % 60, 2);
    out.push('.');
    digits(out, in_day % 1000, 3);
    out.push('Z');
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hysteresis_and_cooldown() {
        let p = AlertPolicy::default();
        let h = 3_600_000;
        assert_eq!(p.decide(false, 0.69, 0.0, i64::MIN, 0), Transition::None);
        assert_eq!(p.decide(false, 0.7, 0.0, i64::MIN, 0), Transition::Raise);
        // Between the thresholds an open alert stays open, a closed one stays closed.
        assert_eq!(p.decide(true, 0.6, 0.75, 0, h), Transition::None);
        assert_eq!(p.decide(false, 0.6, 0.0, i64::MIN, 0), Transition::None);
        assert_eq!(p.decide(true, 0.49, 0.75, 0, h), Transition::Resolve);
        // Material change but inside the cool-down: no update; after it: update.
        assert_eq!(p.decide(true, 0.9, 0.75, 0, h), Transition::None);
        assert_eq!(p.decide(true, 0.9, 0.75, 0, 6 * h), Transition::Update);
        // No re-raise within the cool-down after a resolve.
        assert_eq!(p.decide(false, 0.95, 0.4, 0, h), Transition::None);
        assert!(p.validate().is_ok());
        let bad = AlertPolicy {
            resolve_threshold: 0.8,
            ..p
        };
        assert!(bad
            .validate()
            .unwrap_err()
            .contains("alerts.resolve_threshold"));
    }

    fn chrono_rfc3339_ms(ms: i64) -> String {
        match chrono::DateTime::from_timestamp_millis(ms) {
            Some(t) => t.to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
            None => String::from("invalid-time"),
        }
    }

    #[test]
    fn times_are_formatted_as_chrono_formats_them() {
        let edges = [
            0,
            -1,
            1,
            951_782_400_000,     // 2000-02-29
            4_107_542_399_999,   // 2100-02-28T23:59:59.999
            1_767_225_600_000,   // 2026-01-01
            -62_167_219_200_000, // 0000-01-01
            -62_167_219_200_001, // just before: chrono's `-0001`
            253_402_300_799_999, // 9999-12-31T23:59:59.999
            253_402_300_800_000, // 10000: chrono's `+10000`
            i64::MIN,
            i64::MAX,
        ];
        for ms in edges {
            assert_eq!(rfc3339_ms(ms), chrono_rfc3339_ms(ms), "{ms}");
        }
    }

    proptest::proptest! {
        #[test]
        fn any_time_is_formatted_as_chrono_formats_it(ms in -70_000_000_000_000i64..260_000_000_000_000) {
            proptest::prop_assert_eq!(rfc3339_ms(ms), chrono_rfc3339_ms(ms));
        }
    }

    #[test]
    fn priority_and_expected_lost_units() {
        let h = 3_600_000;
        // 2 units an hour, 5 on hand, next arrival in 4 h: 8 − 5 = 3 units lost.
        assert_eq!(
            expected_lost_units(Some(5.0), false, 2.0, 0, Some(4 * h), 24 * h),
            Some(3.0)
        );
        // No arrival: the whole horizon; an observed empty shelf: nothing on hand.
        assert_eq!(
            expected_lost_units(Some(5.0), true, 2.0, 0, None, 24 * h),
            Some(48.0)
        );
        // Enough stock, an overdue arrival, unknown on hand.
        assert_eq!(
            expected_lost_units(Some(50.0), false, 2.0, 0, None, 24 * h),
            Some(0.0)
        );
        assert_eq!(
            expected_lost_units(Some(0.0), false, 2.0, 10 * h, Some(h), 24 * h),
            Some(0.0)
        );
        assert_eq!(expected_lost_units(None, false, 2.0, 0, None, h), None);
        assert_eq!(priority(Some(1.0), 0.7), AlertPriority::High);
        assert_eq!(priority(Some(0.5), 0.7), AlertPriority::Medium);
        assert_eq!(priority(Some(0.0), 0.95), AlertPriority::Medium);
        assert_eq!(priority(None, 0.8), AlertPriority::Low);
    }

    #[test]
    fn a_budget_caps_raises_and_keeps_the_valuable_ones() {
        let day = 86_400_000;
        let mut b = LocationBudget::default();
        // Day 0 (no bar yet): the first two of four candidates, whatever their value.
        let d0: Vec<bool> = [1.0, 5.0, 3.0, 0.8]
            .iter()
            .map(|&v| b.admit(2, v as i64, v))
            .collect();
        assert_eq!(d0, [true, true, false, false]);
        // Day 1: the bar is day 0's 2nd best value (3.0); still at most 2.
        let d1: Vec<bool> = [0.9, 3.0, 2.0, 7.0, 9.0]
            .iter()
            .map(|&v| b.admit(2, day + v as i64, v))
            .collect();
        assert_eq!(d1, [false, true, false, true, false]);
        // Day 3 follows a gap: no bar.
        assert!(b.admit(2, 3 * day, 0.1));
        // Deterministic: the same candidates, the same decisions.
        let mut c = LocationBudget::default();
        let again: Vec<bool> = [1.0, 5.0, 3.0, 0.8]
            .iter()
            .map(|&v| c.admit(2, v as i64, v))
            .collect();
        assert_eq!(again, d0);
    }

    #[test]
    fn an_early_id_is_the_confirmed_id_with_another_prefix() {
        let a = alert_id("S", "K", AlertKind::Stockout, AlertStatus::Raised, 1, 2);
        let e = early_alert_id("S", "K", AlertKind::Stockout, AlertStatus::Raised, 1, 2);
        assert_eq!(a[2..], e[2..]);
        assert!(a.starts_with("a-") && e.starts_with("e-"));
        // The hash as `format!("{:032x}")` writes it.
        let mut h = xxhash_rust::xxh3::Xxh3::new();
        for part in [&b"S"[..], &[0], b"K", &[0], b"stockout", &[0], b"raised"] {
            h.update(part);
        }
        h.update(&1i64.to_le_bytes());
        h.update(&2u64.to_le_bytes());
        assert_eq!(a, format!("a-{:032x}", h.digest128()));
    }

    #[test]
    fn ids_are_deterministic_and_distinct() {
        let a = alert_id("S", "K", AlertKind::Stockout, AlertStatus::Raised, 1, 2);
        assert_eq!(
            a,
            alert_id("S", "K", AlertKind::Stockout, AlertStatus::Raised, 1, 2)
        );
        assert_ne!(
            a,
            alert_id("S", "K", AlertKind::Stockout, AlertStatus::Resolved, 1, 2)
        );
        assert_ne!(
            a,
            alert_id("S", "K", AlertKind::StockoutRisk, AlertStatus::Raised, 1, 2)
        );
        assert_eq!(a.len(), 34);
    }
}
