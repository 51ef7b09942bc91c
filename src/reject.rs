//! Rejections: why a record was not applied. The reason code is a bounded set; it becomes the
//! dead-letter header and the metric label. The human detail is short and built only for
//! rejected records, never on the happy path.

use serde::Serialize;

/// Why a record was rejected. The `as_str` names are part of the dead-letter contract.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum RejectReason {
    /// The payload exceeds the configured byte limit (checked before parsing).
    TooLarge,
    /// Not parseable as JSON: empty, not UTF-8, truncated, trailing garbage, nesting too deep.
    InvalidJson,
    /// JSON, but not the contract's shape: not an object, missing or null required field,
    /// wrong type, duplicate key.
    SchemaViolation,
    /// The `type` field names no event type of the contract.
    UnknownType,
    /// A field has the right type but a value the contract forbids (qty <= 0, a negative count,
    /// a zero adjustment, NaN, overflow, over-long or control-character ids, malformed
    /// timestamp, eta before event_time).
    InvalidValue,
    /// `event_time` is beyond the configured future skew of the processing clock.
    FutureEvent,
    /// `event_time` is older than the configured maximum event age.
    AncientEvent,
    /// `event_time` is behind the shard's watermark: its window has already been applied.
    Late,
    /// The `event_id` was already seen within the dedupe TTL.
    Duplicate,
    /// The message key is missing or disagrees with the body's `location|sku`.
    Miskeyed,
    /// A field of a bounded set (an adjustment's `reason`, a shipment's `status`, a count's
    /// `source`) has a value outside the set (contract v2).
    UnknownValue,
    /// A shipment event revises or cancels a shipment that is closed (received or cancelled
    /// before, in event time): the key's state refuses it (contract v2).
    ShipmentClosed,
}

impl RejectReason {
    /// Every reason, in a fixed order (reports and metrics iterate this).
    pub const ALL: [RejectReason; 12] = [
        RejectReason::TooLarge,
        RejectReason::InvalidJson,
        RejectReason::SchemaViolation,
        RejectReason::UnknownType,
        RejectReason::InvalidValue,
        RejectReason::FutureEvent,
        RejectReason::AncientEvent,
        RejectReason::Late,
        RejectReason::Duplicate,
        RejectReason::Miskeyed,
        RejectReason::UnknownValue,
        RejectReason::ShipmentClosed,
    ];

    /// The stable code used in dead-letter headers, metrics and reports.
    pub fn as_str(self) -> &'static str {
        match self {
            RejectReason::TooLarge => "too_large",
            RejectReason::InvalidJson => "invalid_json",
            RejectReason::SchemaViolation => "schema_violation",
            RejectReason::UnknownType => "unknown_type",
            RejectReason::InvalidValue => "invalid_value",
            RejectReason::FutureEvent => "future_event",
            RejectReason::AncientEvent => "ancient_event",
            RejectReason::Late => "late",
            RejectReason::Duplicate => "duplicate",
            RejectReason::Miskeyed => "miskeyed",
            RejectReason::UnknownValue => "unknown_value",
            RejectReason::ShipmentClosed => "shipment_closed",
        }
    }

    /// Position in [`RejectReason::ALL`], for counter arrays.
    pub fn index(self) -> usize {
        self as usize
    }
}

impl std::fmt::Display for RejectReason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One rejected record: which message of the input batch, why, and a short detail.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Rejection {
    /// Index of the message in the batch handed to the engine (maps back to the source offset).
    pub index: u32,
    /// The bounded reason code.
    pub reason: RejectReason,
    /// A short human-readable detail (at most a few hundred bytes).
    pub detail: String,
}

/// Longest detail we keep; a detail quotes at most this much of the input.
pub const MAX_DETAIL_BYTES: usize = 200;

/// Truncates `s` to at most [`MAX_DETAIL_BYTES`] on a char boundary, for quoting input in details.
pub fn clip(s: &str) -> &str {
    if s.len() <= MAX_DETAIL_BYTES {
        return s;
    }
    let mut end = MAX_DETAIL_BYTES;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}
