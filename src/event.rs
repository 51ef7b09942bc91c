//! Input event contract v1: the four event types other producers write, one JSON object per
//! Kafka message keyed `"{location}|{sku}"`. These owned types are the documentation of the
//! contract (the JSON Schema in `schemas/` is generated from them); the hot path never builds
//! them — it parses into borrowed fields in [`crate::decode`].

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// Version of the input contract; bump on any incompatible change.
pub const EVENT_CONTRACT_VERSION: &str = "1";

/// Longest id (event_id, sku, location, shipment_id) the contract allows, in bytes.
pub const MAX_ID_BYTES: usize = 128;

/// The separator of the message key `"{location}|{sku}"`; ids may not contain it.
pub const KEY_SEPARATOR: u8 = b'|';

/// One hour of event time, in ms.
pub const HOUR_MS: i64 = 3_600_000;

/// Event type tag, stored as a `UInt8` column in decoded batches.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[repr(u8)]
pub enum EventType {
    /// Units sold: on hand decreases, demand window increases.
    Sale = 0,
    /// Units dispatched towards the location, arriving at `eta`: in transit increases.
    Shipment = 1,
    /// Units received: on hand increases; the matching shipment is closed.
    Receipt = 2,
    /// An observed shelf state (scan, picker "not found", store system flag).
    Availability = 3,
}

impl EventType {
    /// Every type, in code order.
    pub const ALL: [EventType; 4] = [
        EventType::Sale,
        EventType::Shipment,
        EventType::Receipt,
        EventType::Availability,
    ];

    /// The contract's `type` value.
    pub fn as_str(self) -> &'static str {
        match self {
            EventType::Sale => "sale",
            EventType::Shipment => "shipment",
            EventType::Receipt => "receipt",
            EventType::Availability => "availability",
        }
    }

    /// Parses the contract's `type` value.
    pub fn parse(s: &str) -> Option<EventType> {
        match s {
            "sale" => Some(EventType::Sale),
            "shipment" => Some(EventType::Shipment),
            "receipt" => Some(EventType::Receipt),
            "availability" => Some(EventType::Availability),
            _ => None,
        }
    }

    /// Inverse of `as u8`.
    pub fn from_code(code: u8) -> Option<EventType> {
        EventType::ALL.get(code as usize).copied()
    }

    /// The Kafka topic suffix conventionally carrying this type (`sales`, `shipments`, ...).
    pub fn topic_name(self) -> &'static str {
        match self {
            EventType::Sale => "sales",
            EventType::Shipment => "shipments",
            EventType::Receipt => "receipts",
            EventType::Availability => "availability",
        }
    }
}

/// An input event, as producers write it (contract v1). Times are RFC 3339; quantities are
/// finite and > 0 and may be fractional; ids are 1..=128 bytes without control characters or `|`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(tag = "type", rename_all = "snake_case")]
#[schemars(title = "stockwatch input event v1")]
pub enum InputEvent {
    /// Units sold.
    Sale {
        /// Unique id of this event (dedupe key).
        event_id: String,
        /// Stock keeping unit.
        sku: String,
        /// Store or DC.
        location: String,
        /// Units sold, finite and > 0.
        qty: f64,
        /// When it happened (RFC 3339).
        event_time: String,
        /// Optional unit price (carried, not used).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        unit_price: Option<f64>,
        /// Optional sales channel (carried, not used).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        channel: Option<String>,
    },
    /// Units dispatched towards `location`.
    Shipment {
        /// Unique id of this event.
        event_id: String,
        /// Shipment id; the receipt that closes it names it.
        shipment_id: String,
        /// Stock keeping unit.
        sku: String,
        /// Destination store or DC.
        location: String,
        /// Optional origin (DC or supplier).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        origin: Option<String>,
        /// Units shipped, finite and > 0.
        qty: f64,
        /// When it was dispatched (RFC 3339).
        event_time: String,
        /// Expected arrival (RFC 3339), not before `event_time`.
        eta: String,
    },
    /// Units received into on-hand stock.
    Receipt {
        /// Unique id of this event.
        event_id: String,
        /// Optional id of the shipment this receipt closes.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        shipment_id: Option<String>,
        /// Stock keeping unit.
        sku: String,
        /// Receiving store or DC.
        location: String,
        /// Units received, finite and > 0.
        qty: f64,
        /// When it was received (RFC 3339).
        event_time: String,
    },
    /// An observed shelf state.
    Availability {
        /// Unique id of this event.
        event_id: String,
        /// Stock keeping unit.
        sku: String,
        /// Store or DC.
        location: String,
        /// Whether the item was found on the shelf.
        in_stock: bool,
        /// When it was observed (RFC 3339).
        event_time: String,
        /// Optional source (`shelf_scan`, `picker_not_found`, `store_system`, ...).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        source: Option<String>,
    },
}

/// The message key of a (location, sku): `"{location}|{sku}"`.
pub fn message_key(location: &str, sku: &str) -> String {
    let mut k = String::with_capacity(location.len() + sku.len() + 1);
    k.push_str(location);
    k.push('|');
    k.push_str(sku);
    k
}
