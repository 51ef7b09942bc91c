//! Read views of a shard's keys: one key's risk view, open alerts, the top risks (the state
//! queries of the HTTP endpoints).

use super::Shard;
use crate::alert;
use crate::state::columns::{HOUR_MS, NO_HOUR};

/// The risk view of one key (state lookups, top-risk lists).
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct KeyView {
    /// Store or DC.
    pub location: String,
    /// Stock keeping unit.
    pub sku: String,
    /// Risk at the last scoring.
    pub risk: f64,
    /// The challenger's risk at the last scoring (`model.challenger`; absent without one, and
    /// until the key's first event after a start or restore).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub challenger_risk: Option<f64>,
    /// Recorded on hand, if known.
    pub on_hand: Option<f64>,
    /// Units in transit.
    pub in_transit: f64,
    /// A risk alert is open.
    pub risk_alert_open: bool,
    /// A stockout episode is open.
    pub in_stockout: bool,
    /// Start of the hour of the last applied event (RFC 3339).
    pub last_event_hour: Option<String>,
    /// The location's IANA time zone in the master data the shard uses (absent: the location
    /// is not in it, and is UTC).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub time_zone: Option<String>,
    /// `last_event_hour` in the location's local time (RFC 3339 with its UTC offset then): the
    /// clock the model's hour of day and day of week come from. Absent without a time zone.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_event_hour_local: Option<String>,
}

/// One open confirmed alert, as the state holds it (`/v1/alerts/open`).
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct OpenAlertView {
    /// Store or DC.
    pub location: String,
    /// Stock keeping unit.
    pub sku: String,
    /// `stockout_risk` or `stockout`.
    pub kind: alert::AlertKind,
    /// `stockout_risk`: the risk its last alert (`raised` or `updated`) carried; `stockout`:
    /// null.
    pub alert_risk: Option<f64>,
    /// Risk at the key's last scoring.
    pub risk: f64,
    /// Event time of its last alert (`stockout_risk`) or of the stockout's start (RFC 3339).
    pub since: Option<String>,
    /// Recorded on hand, if known.
    pub on_hand: Option<f64>,
    /// Units in transit.
    pub in_transit: f64,
}

impl Shard {
    /// The open confirmed alerts of this shard's keys, `location` and `kind` filtering when
    /// given, at most `limit`, sorted by (location, sku, kind) (O(keys)).
    pub fn open_alert_views(
        &self,
        location: Option<&str>,
        kind: Option<alert::AlertKind>,
        limit: usize,
    ) -> Vec<OpenAlertView> {
        use crate::state::columns::NO_TIME;
        use alert::AlertKind::{Stockout, StockoutRisk};
        let time = |ms: i64| (ms != NO_TIME).then(|| alert::rfc3339_ms(ms));
        let mut out = Vec::new();
        for r in 0..self.state.keys.len() as u32 {
            let c = self.state.rows.get(r as usize);
            let open = [
                (
                    StockoutRisk,
                    c.risk_open(),
                    c.last_alert_ms,
                    Some(f64::from(c.alert_risk)),
                ),
                (Stockout, c.in_stockout(), c.last_stockout_ms, None),
            ];
            for (k, is_open, since, alert_risk) in open {
                if !is_open || kind.is_some_and(|want| want != k) {
                    continue;
                }
                let loc = self.state.keys.location(r);
                if location.is_some_and(|want| want != loc) {
                    continue;
                }
                out.push(OpenAlertView {
                    location: loc.to_string(),
                    sku: self.state.keys.sku(r).to_string(),
                    kind: k,
                    alert_risk,
                    risk: f64::from(c.risk),
                    since: time(since),
                    on_hand: c.known_on_hand(),
                    in_transit: c.in_transit,
                });
            }
        }
        out.sort_by(|a, b| (&a.location, &a.sku, a.kind).cmp(&(&b.location, &b.sku, b.kind)));
        out.truncate(limit);
        out
    }

    /// The current view of one key, if tracked.
    pub fn view(&self, location: &str, sku: &str) -> Option<KeyView> {
        self.state.keys.get(location, sku).map(|r| self.view_row(r))
    }

    /// Keys with an open alert, `[stockout_risk, stockout]`, counted from the state (O(keys)).
    pub fn open_alerts(&self) -> [u64; 2] {
        self.state.rows.as_slice().iter().fold([0, 0], |[r, o], c| {
            [r + u64::from(c.risk_open()), o + u64::from(c.in_stockout())]
        })
    }

    /// The `n` keys with the highest current risk, highest first — among keys not already in
    /// an observed stockout (those have their own `stockout` alert; this list is what is
    /// about to run out).
    pub fn top_risks(&self, n: usize) -> Vec<KeyView> {
        let all = self.state.rows.as_slice();
        let mut rows: Vec<u32> = (0..self.state.keys.len() as u32)
            .filter(|&r| !all[r as usize].in_stockout())
            .collect();
        let n = n.min(rows.len());
        if n == 0 {
            return Vec::new();
        }
        let cmp = |a: &u32, b: &u32| {
            all[*b as usize]
                .risk
                .total_cmp(&all[*a as usize].risk)
                .then(a.cmp(b))
        };
        rows.select_nth_unstable_by(n - 1, cmp);
        rows.truncate(n);
        rows.sort_by(cmp);
        rows.into_iter().map(|r| self.view_row(r)).collect()
    }

    fn view_row(&self, r: u32) -> KeyView {
        let c = self.state.rows.get(r as usize);
        let location = self.state.keys.location(r);
        let tz = self.master.location(location).map(|l| l.time_zone);
        let local = |tz: chrono_tz::Tz| {
            chrono::DateTime::from_timestamp_millis(i64::from(c.ring_hour) * HOUR_MS).map(|t| {
                t.with_timezone(&tz)
                    .to_rfc3339_opts(chrono::SecondsFormat::Secs, false)
            })
        };
        KeyView {
            location: self.state.keys.location(r).to_string(),
            sku: self.state.keys.sku(r).to_string(),
            risk: f64::from(c.risk),
            challenger_risk: self
                .challenger_risks
                .get(r as usize)
                .filter(|x| !x.is_nan() && self.state.challenger.is_some())
                .map(|&x| f64::from(x)),
            on_hand: c.known_on_hand(),
            in_transit: c.in_transit,
            risk_alert_open: c.risk_open(),
            in_stockout: c.in_stockout(),
            last_event_hour: (c.ring_hour != NO_HOUR)
                .then(|| alert::rfc3339_ms(i64::from(c.ring_hour) * HOUR_MS)),
            time_zone: tz.map(|tz| tz.name().to_owned()),
            last_event_hour_local: tz.filter(|_| c.ring_hour != NO_HOUR).and_then(local),
        }
    }
}
