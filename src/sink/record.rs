//! How the service's outputs look on a Kafka topic, as pure functions: an alert becomes a
//! CloudEvents record (binary mode: the alert JSON as the value, `ce_*` headers), a rejected
//! input record becomes a dead letter (the original key, value and headers, plus Kafka
//! Connect's `__connect.errors.*` headers and the reason), truncated when it is too big to
//! republish. No client here: the service sends what these return.

use std::borrow::Cow;

use crate::alert::Alert;
use crate::reject::Rejection;
use crate::telemetry::Stage;

/// CloudEvents (binary mode) type of alerts.
pub const ALERT_CE_TYPE: &str = "com.stockwatch.alert.v1";
/// CloudEvents `ce_type` of an early alert (same schema, `kafka.topics.early_alerts`).
pub const EARLY_ALERT_CE_TYPE: &str = "com.stockwatch.alert.early.v1";

/// A record ready to send: key, value and headers in order. Parts borrowed from the input
/// where they are copied unchanged.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutRecord<'a> {
    /// The record key.
    pub key: Cow<'a, [u8]>,
    /// The record value.
    pub value: Cow<'a, [u8]>,
    /// The headers, in the order they are sent.
    pub headers: Vec<(&'a str, Cow<'a, [u8]>)>,
}

impl OutRecord<'_> {
    /// The headers as the producer takes them.
    pub fn header_refs(&self) -> Vec<(&str, &[u8])> {
        self.headers.iter().map(|(k, v)| (*k, v.as_ref())).collect()
    }
}

/// Buffers the service's alert records are written into, reused from one alert to the next:
/// once they have grown to an alert's size, encoding an alert allocates nothing.
#[derive(Debug, Default)]
pub struct AlertEncoder {
    key: Vec<u8>,
    value: Vec<u8>,
    open_key: Vec<u8>,
}

/// One alert's CloudEvents record (binary mode), borrowed from an [`AlertEncoder`] and the
/// alert: key `{location}|{sku}`, the alert JSON as the value, the `ce_*` headers, and the key
/// of its open-alerts row ([`open_alert_key`]).
#[derive(Debug)]
pub struct EncodedAlert<'a> {
    /// The record key, `{location}|{sku}`.
    pub key: &'a [u8],
    /// The alert JSON.
    pub value: &'a [u8],
    /// The CloudEvents headers, in the order they are sent.
    pub headers: [(&'static str, &'a [u8]); 7],
    /// The key of the alert's row in the open-alerts table.
    pub open_key: &'a [u8],
}

impl AlertEncoder {
    /// Encodes `alert`, published by `source` (`ce_source`) on the `stage`'s topic.
    pub fn encode<'a>(
        &'a mut self,
        alert: &'a Alert,
        stage: Stage,
        source: &'a str,
    ) -> EncodedAlert<'a> {
        let (location, sku, kind) = (&alert.location, &alert.sku, alert.kind.as_str());
        self.key.clear();
        self.key.extend_from_slice(location.as_bytes());
        self.key.push(b'|');
        self.key.extend_from_slice(sku.as_bytes());
        self.open_key.clear();
        self.open_key.extend_from_slice(&self.key);
        self.open_key.push(b'|');
        self.open_key.extend_from_slice(kind.as_bytes());
        write_alert_json(alert, &mut self.value);
        let key = self.key.as_slice();
        EncodedAlert {
            key,
            value: &self.value,
            headers: ce_headers(alert, stage, source, key),
            open_key: &self.open_key,
        }
    }
}

/// The CloudEvents (binary mode) headers of `alert` with record key `key`.
fn ce_headers<'a>(
    alert: &'a Alert,
    stage: Stage,
    source: &'a str,
    key: &'a [u8],
) -> [(&'static str, &'a [u8]); 7] {
    let ce_type = match stage {
        Stage::Early => EARLY_ALERT_CE_TYPE,
        Stage::Confirmed => ALERT_CE_TYPE,
    };
    [
        ("ce_specversion", b"1.0".as_slice()),
        ("ce_id", alert.alert_id.as_bytes()),
        ("ce_type", ce_type.as_bytes()),
        ("ce_source", source.as_bytes()),
        ("ce_time", alert.emitted_at.as_bytes()),
        ("ce_subject", key),
        ("content-type", b"application/json".as_slice()),
    ]
}

/// The key of `alert`'s row in the open-alerts table (`kafka.topics.open_alerts`):
/// `"{location}|{sku}|{kind}"`. Location and SKU contain no `|` (the input contract refuses
/// it), so the key splits back unambiguously.
pub fn open_alert_key(alert: &Alert) -> String {
    let kind = alert.kind.as_str();
    let mut k = String::with_capacity(alert.location.len() + alert.sku.len() + kind.len() + 2);
    k.push_str(&alert.location);
    k.push('|');
    k.push_str(&alert.sku);
    k.push('|');
    k.push_str(kind);
    k
}

/// What a confirmed alert does to its row of the open-alerts table: `raised` and `updated`
/// put the alert (the same value as on the alert topic), `resolved` deletes the row.
pub fn opens_row(alert: &Alert) -> bool {
    !matches!(alert.status, crate::alert::AlertStatus::Resolved)
}

/// Replaces `out` with the JSON of `alert`: the bytes `serde_json::to_vec(alert)` gives, written
/// field by field without serde. Field names and the enums' names are written as they are; a
/// string field (ids validated on input, times, feature names) is copied as it is unless it holds
/// a byte JSON must escape (`"`, `\\`, a control character), which only then goes through
/// `serde_json`'s escaping. No allocation once `out` has grown to an alert's size.
pub fn write_alert_json(alert: &Alert, out: &mut Vec<u8>) {
    let Alert {
        alert_id,
        schema_version,
        kind,
        status,
        sku,
        location,
        risk,
        horizon_hours,
        on_hand,
        in_transit,
        expected_demand,
        days_of_cover,
        expected_lost_units,
        priority,
        reasons,
        model_version,
        event_time,
        emitted_at,
        trigger_source: _,
    } = alert;
    out.clear();
    out.extend_from_slice(b"{\"alert_id\":");
    json_str(out, alert_id);
    out.extend_from_slice(b",\"schema_version\":");
    json_str(out, schema_version);
    out.extend_from_slice(b",\"kind\":\"");
    out.extend_from_slice(kind.as_str().as_bytes());
    out.extend_from_slice(b"\",\"status\":\"");
    out.extend_from_slice(status.as_str().as_bytes());
    out.extend_from_slice(b"\",\"sku\":");
    json_str(out, sku);
    out.extend_from_slice(b",\"location\":");
    json_str(out, location);
    out.extend_from_slice(b",\"risk\":");
    json_f64(out, *risk);
    out.extend_from_slice(b",\"horizon_hours\":");
    // Writing into a `Vec` cannot fail.
    let _ = serde_json::ser::Formatter::write_u32(
        &mut serde_json::ser::CompactFormatter,
        out,
        *horizon_hours,
    );
    out.extend_from_slice(b",\"on_hand\":");
    json_opt_f64(out, *on_hand);
    out.extend_from_slice(b",\"in_transit\":");
    json_f64(out, *in_transit);
    out.extend_from_slice(b",\"expected_demand\":");
    json_f64(out, *expected_demand);
    out.extend_from_slice(b",\"days_of_cover\":");
    json_opt_f64(out, *days_of_cover);
    out.extend_from_slice(b",\"expected_lost_units\":");
    json_opt_f64(out, *expected_lost_units);
    out.extend_from_slice(b",\"priority\":");
    match priority {
        Some(p) => {
            out.push(b'"');
            out.extend_from_slice(p.as_str().as_bytes());
            out.push(b'"');
        }
        None => out.extend_from_slice(b"null"),
    }
    out.extend_from_slice(b",\"reasons\":[");
    for (i, r) in reasons.iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        out.extend_from_slice(b"{\"feature\":");
        json_str(out, &r.feature);
        out.extend_from_slice(b",\"contribution\":");
        json_f64(out, r.contribution);
        out.push(b'}');
    }
    out.extend_from_slice(b"],\"model_version\":");
    json_str(out, model_version);
    out.extend_from_slice(b",\"event_time\":");
    json_str(out, event_time);
    out.extend_from_slice(b",\"emitted_at\":");
    json_str(out, emitted_at);
    out.push(b'}');
}

/// A JSON string: copied between quotes when nothing in it needs escaping (the case of every
/// validated id), else escaped as serde_json escapes it.
fn json_str(out: &mut Vec<u8>, s: &str) {
    if s.bytes().all(|b| b >= 0x20 && b != b'"' && b != b'\\') {
        out.push(b'"');
        out.extend_from_slice(s.as_bytes());
        out.push(b'"');
    } else {
        // Writing into a `Vec` cannot fail.
        let _ = serde_json::to_writer(&mut *out, s);
    }
}

/// A number as serde_json writes an `f64`: the shortest round-trip form, `null` when not finite.
fn json_f64(out: &mut Vec<u8>, v: f64) {
    use serde_json::ser::Formatter;
    if v.is_finite() {
        // Writing into a `Vec` cannot fail.
        let _ = serde_json::ser::CompactFormatter.write_f64(out, v);
    } else {
        out.extend_from_slice(b"null");
    }
}

fn json_opt_f64(out: &mut Vec<u8>, v: Option<f64>) {
    match v {
        Some(v) => json_f64(out, v),
        None => out.extend_from_slice(b"null"),
    }
}

/// The input record a rejection refers to, as read.
#[derive(Debug, Clone, Copy)]
pub struct Rejected<'a> {
    /// Its topic.
    pub topic: &'a str,
    /// Its partition.
    pub partition: i32,
    /// Its offset.
    pub offset: i64,
    /// Its key (empty if none).
    pub key: &'a [u8],
    /// Its value (empty if none).
    pub value: &'a [u8],
    /// How many headers it has and their bytes (names and values): the headers themselves
    /// are copied byte for byte by the sender (names need not be UTF-8), when
    /// [`DeadLetter::keep_input_headers`] says so.
    pub headers: HeaderSizes,
}

/// The size of a record's headers.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct HeaderSizes {
    /// Number of headers.
    pub count: usize,
    /// Bytes of their names and values together.
    pub bytes: usize,
}

/// What of a rejected record the dead-letter topic can take (its broker's record size limit).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DeadLetterLimits {
    /// Longest value republished (`kafka.dead_letter_max_value_bytes`).
    pub max_value_bytes: usize,
    /// Most bytes of original headers republished (`kafka.dead_letter_max_header_bytes`).
    pub max_header_bytes: usize,
}

/// A dead letter: the record to send, and whether the rejected record's own headers go
/// before its headers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeadLetter<'a> {
    /// Key, value and the headers stockwatch adds.
    pub record: OutRecord<'a>,
    /// Copy the rejected record's headers, byte for byte and in order, before
    /// `record.headers`; `false` when they are over [`DeadLetterLimits::max_header_bytes`].
    pub keep_input_headers: bool,
}

/// The dead letter of `record`, rejected for `rejection`: the original key, value (its first
/// `max_value_bytes` if longer, with headers giving its size and checksum) and headers (none
/// if together over `max_header_bytes`, with headers giving their count and size), then Kafka
/// Connect's error headers and `stockwatch.reason`.
///
/// A record too big to republish (the dead-letter topic's limit, not the input's) keeps what
/// fits and says so: refusing it would stop the service on every restart (a poison pill),
/// dropping it would lose it. The dead letter names the original's topic, partition and
/// offset, where the full record stays until the input's retention.
pub fn dead_letter_record<'a>(
    record: Rejected<'a>,
    rejection: &'a Rejection,
    limits: DeadLetterLimits,
) -> DeadLetter<'a> {
    let mut out: Vec<(&'a str, Cow<'a, [u8]>)> = Vec::new();
    let mut value = record.value;
    if value.len() > limits.max_value_bytes {
        let digest = format!("{:032x}", xxhash_rust::xxh3::xxh3_128(value));
        out.extend([
            ("stockwatch.truncated", Cow::Borrowed(b"true".as_slice())),
            (
                "stockwatch.original_bytes",
                Cow::Owned(value.len().to_string().into_bytes()),
            ),
            (
                "stockwatch.original_xxh3_128",
                Cow::Owned(digest.into_bytes()),
            ),
        ]);
        value = &value[..limits.max_value_bytes];
    }
    let keep_input_headers = record.headers.bytes <= limits.max_header_bytes;
    if !keep_input_headers {
        out.extend([
            (
                "stockwatch.headers_dropped",
                Cow::Owned(record.headers.count.to_string().into_bytes()),
            ),
            (
                "stockwatch.original_headers_bytes",
                Cow::Owned(record.headers.bytes.to_string().into_bytes()),
            ),
        ]);
    }
    let reason = rejection.reason.as_str();
    out.extend([
        (
            "__connect.errors.topic",
            Cow::Borrowed(record.topic.as_bytes()),
        ),
        (
            "__connect.errors.partition",
            Cow::Owned(record.partition.to_string().into_bytes()),
        ),
        (
            "__connect.errors.offset",
            Cow::Owned(record.offset.to_string().into_bytes()),
        ),
        (
            "__connect.errors.stage",
            Cow::Borrowed(b"VALUE_CONVERTER".as_slice()),
        ),
        (
            "__connect.errors.exception.class.name",
            Cow::Owned(format!("stockwatch.reject.{reason}").into_bytes()),
        ),
        (
            "__connect.errors.exception.message",
            Cow::Borrowed(rejection.detail.as_bytes()),
        ),
        ("stockwatch.reason", Cow::Borrowed(reason.as_bytes())),
    ]);
    DeadLetter {
        record: OutRecord {
            key: Cow::Borrowed(record.key),
            value: Cow::Borrowed(value),
            headers: out,
        },
        keep_input_headers,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::alert::{AlertKind, AlertPriority, AlertStatus, Reason};
    use crate::reject::RejectReason;

    fn alert(id: &str) -> Alert {
        Alert {
            alert_id: id.to_owned(),
            schema_version: "1".to_owned(),
            kind: AlertKind::StockoutRisk,
            status: AlertStatus::Raised,
            sku: "SKU-1".to_owned(),
            location: "S01".to_owned(),
            risk: 0.75,
            horizon_hours: 72,
            on_hand: Some(3.0),
            in_transit: 0.0,
            expected_demand: 4.5,
            days_of_cover: None,
            expected_lost_units: Some(1.5),
            priority: Some(crate::alert::AlertPriority::High),
            reasons: vec![Reason {
                feature: "on_hand_over_demand".to_owned(),
                contribution: -1.25,
            }],
            model_version: "m1".to_owned(),
            event_time: "2026-01-02T03:04:05Z".to_owned(),
            emitted_at: "2026-01-02T03:04:06Z".to_owned(),
            trigger_source: 42,
        }
    }

    fn text_headers<'a>(headers: &[(&'a str, &'a [u8])]) -> Vec<(&'a str, &'a str)> {
        (headers.iter())
            .map(|(k, v)| (*k, std::str::from_utf8(v).unwrap()))
            .collect()
    }

    #[test]
    fn a_confirmed_alert_is_a_cloudevent_keyed_by_location_and_sku() {
        let a = alert("a-00ff");
        let mut encoder = AlertEncoder::default();
        let r = encoder.encode(&a, Stage::Confirmed, "stockwatch/g");
        assert_eq!(r.key, b"S01|SKU-1");
        assert_eq!(r.open_key, open_alert_key(&a).as_bytes());
        assert_eq!(
            std::str::from_utf8(r.value).unwrap(),
            r#"{"alert_id":"a-00ff","schema_version":"1","kind":"stockout_risk","status":"raised","sku":"SKU-1","location":"S01","risk":0.75,"horizon_hours":72,"on_hand":3.0,"in_transit":0.0,"expected_demand":4.5,"days_of_cover":null,"expected_lost_units":1.5,"priority":"high","reasons":[{"feature":"on_hand_over_demand","contribution":-1.25}],"model_version":"m1","event_time":"2026-01-02T03:04:05Z","emitted_at":"2026-01-02T03:04:06Z"}"#
        );
        assert_eq!(
            text_headers(&r.headers),
            [
                ("ce_specversion", "1.0"),
                ("ce_id", "a-00ff"),
                ("ce_type", "com.stockwatch.alert.v1"),
                ("ce_source", "stockwatch/g"),
                ("ce_time", "2026-01-02T03:04:06Z"),
                ("ce_subject", "S01|SKU-1"),
                ("content-type", "application/json"),
            ]
        );
    }

    #[test]
    fn the_open_alerts_row_is_keyed_by_location_sku_and_kind() {
        let mut a = alert("a-1");
        assert_eq!(open_alert_key(&a), "S01|SKU-1|stockout_risk");
        assert!(opens_row(&a));
        a.kind = AlertKind::Stockout;
        a.status = AlertStatus::Updated;
        assert_eq!(open_alert_key(&a), "S01|SKU-1|stockout");
        assert!(opens_row(&a));
        a.status = AlertStatus::Resolved;
        assert!(!opens_row(&a), "resolved is a tombstone");
    }

    #[test]
    fn the_stage_not_the_id_chooses_the_cloudevents_type() {
        // An early alert's id starts with "e-" today; the type must not depend on it.
        for (id, stage, ty) in [
            ("a-1", Stage::Early, EARLY_ALERT_CE_TYPE),
            ("e-1", Stage::Confirmed, ALERT_CE_TYPE),
            ("e-1", Stage::Early, EARLY_ALERT_CE_TYPE),
        ] {
            let a = alert(id);
            let mut encoder = AlertEncoder::default();
            let r = encoder.encode(&a, stage, "s");
            assert_eq!(r.headers[2], ("ce_type", ty.as_bytes()), "{id}");
        }
    }

    fn any_f64() -> impl proptest::strategy::Strategy<Value = f64> {
        use proptest::prelude::*;
        prop_oneof![
            any::<f64>(),
            (-1e6f64..1e6).prop_map(|v| (v * 1e6).round() / 1e6),
            Just(0.0),
            Just(-0.0),
            Just(f64::NAN),
            Just(f64::INFINITY),
            Just(1e300),
        ]
    }

    proptest::proptest! {
        /// The hand-written alert JSON is serde_json's, byte for byte, whatever the strings
        /// (quotes, backslashes, control characters, non-ASCII) and numbers (NaN, ±∞, -0).
        #[test]
        fn alert_json_is_serde_json_byte_for_byte(
            strings in proptest::collection::vec("(\\PC|[\"\\\\\u{0}-\u{1f}\u{7f}]){0,12}", 8),
            numbers in proptest::collection::vec(any_f64(), 7),
            optional in proptest::collection::vec(proptest::bool::ANY, 4),
            priority in 0usize..3,
            reasons in 0usize..4,
            horizon in proptest::num::u32::ANY,
            early in proptest::bool::ANY,
        ) {
            let mut a = alert(&strings[0]);
            a.schema_version = strings[1].clone();
            a.sku = strings[2].clone();
            a.location = strings[3].clone();
            a.model_version = strings[4].clone();
            a.event_time = strings[5].clone();
            a.emitted_at = strings[6].clone();
            a.kind = if early { AlertKind::Stockout } else { AlertKind::StockoutRisk };
            a.status = if early { AlertStatus::Resolved } else { AlertStatus::Updated };
            a.risk = numbers[0];
            a.horizon_hours = horizon;
            a.on_hand = optional[0].then_some(numbers[1]);
            a.in_transit = numbers[2];
            a.expected_demand = numbers[3];
            a.days_of_cover = optional[1].then_some(numbers[4]);
            a.expected_lost_units = optional[2].then_some(numbers[6]);
            a.priority = optional[3].then_some(
                [AlertPriority::High, AlertPriority::Medium, AlertPriority::Low][priority],
            );
            a.reasons = (0..reasons)
                .map(|i| Reason { feature: format!("{}{i}", strings[7]), contribution: numbers[5] })
                .collect();
            let mut out = b"left over".to_vec();
            write_alert_json(&a, &mut out);
            let expected = serde_json::to_vec(&a).unwrap();
            proptest::prop_assert_eq!(
                String::from_utf8_lossy(&out),
                String::from_utf8_lossy(&expected)
            );
        }
    }

    fn rejection() -> Rejection {
        Rejection {
            index: 0,
            reason: RejectReason::SchemaViolation,
            detail: "missing field `sku`".to_owned(),
        }
    }

    const LIMITS: DeadLetterLimits = DeadLetterLimits {
        max_value_bytes: 1024,
        max_header_bytes: 64,
    };

    #[test]
    fn a_dead_letter_keeps_the_record_and_adds_connect_headers() {
        let rej = rejection();
        let rec = Rejected {
            topic: "sales",
            partition: 3,
            offset: 1234,
            key: b"S01|SKU-1",
            value: b"{\"type\":\"sale\"}",
            headers: HeaderSizes {
                count: 1,
                bytes: 16,
            },
        };
        let d = dead_letter_record(rec, &rej, LIMITS);
        assert!(d.keep_input_headers);
        let r = d.record;
        assert_eq!(&*r.key, b"S01|SKU-1");
        assert_eq!(&*r.value, b"{\"type\":\"sale\"}");
        assert_eq!(
            text_headers(&r.header_refs()),
            [
                ("__connect.errors.topic", "sales"),
                ("__connect.errors.partition", "3"),
                ("__connect.errors.offset", "1234"),
                ("__connect.errors.stage", "VALUE_CONVERTER"),
                (
                    "__connect.errors.exception.class.name",
                    "stockwatch.reject.schema_violation"
                ),
                ("__connect.errors.exception.message", "missing field `sku`"),
                ("stockwatch.reason", "schema_violation"),
            ]
        );
    }

    #[test]
    fn a_dead_letter_too_big_keeps_its_first_bytes_and_says_so() {
        let rej = rejection();
        let value = b"0123456789abcdef";
        let rec = Rejected {
            topic: "receipts",
            partition: 0,
            offset: 7,
            key: b"",
            value,
            headers: HeaderSizes::default(),
        };
        let limits = |max_value_bytes| DeadLetterLimits {
            max_value_bytes,
            max_header_bytes: 0,
        };
        let r = dead_letter_record(rec, &rej, limits(10)).record;
        assert_eq!(&*r.value, b"0123456789");
        let h = text_headers(&r.header_refs());
        assert_eq!(
            h[..3],
            [
                ("stockwatch.truncated", "true"),
                ("stockwatch.original_bytes", "16"),
                (
                    "stockwatch.original_xxh3_128",
                    "ccba8085a0434e9e0befb4873dbe58f8"
                ),
            ]
        );
        assert_eq!(h[3], ("__connect.errors.topic", "receipts"));
        // At the limit: not truncated.
        let r = dead_letter_record(rec, &rej, limits(16)).record;
        assert_eq!(&*r.value, value);
        assert_eq!(r.headers[0].0, "__connect.errors.topic");
    }

    #[test]
    fn headers_over_the_limit_are_dropped_and_counted_not_sent() {
        let rej = rejection();
        let rec = |bytes| Rejected {
            topic: "sales",
            partition: 0,
            offset: 9,
            key: b"k",
            value: b"v",
            headers: HeaderSizes { count: 3, bytes },
        };
        // At the limit: kept, nothing added.
        let d = dead_letter_record(rec(64), &rej, LIMITS);
        assert!(d.keep_input_headers);
        assert_eq!(d.record.headers[0].0, "__connect.errors.topic");
        // One byte over: dropped, their count and size said, the value untouched.
        let d = dead_letter_record(rec(65), &rej, LIMITS);
        assert!(!d.keep_input_headers);
        assert_eq!(&*d.record.value, b"v");
        let h = text_headers(&d.record.header_refs());
        assert_eq!(
            h[..3],
            [
                ("stockwatch.headers_dropped", "3"),
                ("stockwatch.original_headers_bytes", "65"),
                ("__connect.errors.topic", "sales"),
            ]
        );
    }
}
