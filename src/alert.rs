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

/// One feature's contribution to the risk's logit.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct Reason {
    /// Feature name (see the model documentation).
    pub feature: String,
    /// Contribution to the logit of the risk (weight × value).
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
    /// The largest contributions to the risk, largest first.
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
        let cooled = last_alert_ms == i64::MIN
            || now_ms.saturating_sub(last_alert_ms) >= i64::from(self.cooldown_minutes) * 60_000;
        match open {
            false if risk >= self.raise_threshold && cooled => Transition::Raise,
            true if risk < self.resolve_threshold => Transition::Resolve,
            true if (risk - alert_risk).abs() >= self.update_min_delta && cooled => {
                Transition::Update
            }
            _ => Transition::None,
        }
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

/// The deterministic alert id: xxh3-128 of the key, kind, status and the triggering event.
pub fn alert_id(
    location: &str,
    sku: &str,
    kind: AlertKind,
    status: AlertStatus,
    trigger_time_ms: i64,
    trigger_id_hash: u64,
) -> String {
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
    format!("a-{:032x}", h.digest128())
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
    let mut id = alert_id(
        location,
        sku,
        kind,
        status,
        trigger_time_ms,
        trigger_id_hash,
    );
    id.replace_range(..1, "e");
    id
}

/// Formats ms since the epoch as RFC 3339 UTC with milliseconds.
pub fn rfc3339_ms(ms: i64) -> String {
    match chrono::DateTime::from_timestamp_millis(ms) {
        Some(t) => t.to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
        None => String::from("invalid-time"),
    }
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
