//! Input event contract: the event types other producers write, one JSON object per Kafka
//! message keyed `"{location}|{sku}"`. Contract v2 ([`InputEvent`]) adds inventory counts,
//! adjustments and shipment revisions to the four types of v1 ([`InputEventV1`]); every v1
//! event is a valid v2 event with the same meaning. These owned types are the documentation of
//! the contract (the JSON Schemas in `schemas/` are generated from them); the hot path never
//! builds them — it parses into borrowed fields in [`crate::decode`].

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// Version of the input contract; bump on any incompatible change.
pub const EVENT_CONTRACT_VERSION: &str = "2";

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
    /// An absolute on-hand quantity observed (nightly ERP snapshot, store cycle count): on hand
    /// is set (contract v2).
    InventoryCount = 4,
    /// A signed stock movement that is not a sale or a receipt (shrink, return, transfer, ...):
    /// on hand moves by it (contract v2).
    Adjustment = 5,
}

impl EventType {
    /// Every type, in code order.
    pub const ALL: [EventType; 6] = [
        EventType::Sale,
        EventType::Shipment,
        EventType::Receipt,
        EventType::Availability,
        EventType::InventoryCount,
        EventType::Adjustment,
    ];

    /// Number of event types.
    pub const COUNT: usize = EventType::ALL.len();

    /// The contract's `type` value.
    pub fn as_str(self) -> &'static str {
        match self {
            EventType::Sale => "sale",
            EventType::Shipment => "shipment",
            EventType::Receipt => "receipt",
            EventType::Availability => "availability",
            EventType::InventoryCount => "inventory_count",
            EventType::Adjustment => "adjustment",
        }
    }

    /// Parses the contract's `type` value.
    pub fn parse(s: &str) -> Option<EventType> {
        match s {
            "sale" => Some(EventType::Sale),
            "shipment" => Some(EventType::Shipment),
            "receipt" => Some(EventType::Receipt),
            "availability" => Some(EventType::Availability),
            "inventory_count" => Some(EventType::InventoryCount),
            "adjustment" => Some(EventType::Adjustment),
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
            EventType::InventoryCount => "inventory_counts",
            EventType::Adjustment => "adjustments",
        }
    }
}

/// Where an inventory count comes from (`source` of an `inventory_count`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
#[repr(u8)]
pub enum CountSource {
    /// The nightly on-hand position of the ERP/WMS.
    Snapshot = 0,
    /// A store's (partial) cycle count.
    CycleCount = 1,
}

impl CountSource {
    /// Every source, in code order.
    pub const ALL: [CountSource; 2] = [CountSource::Snapshot, CountSource::CycleCount];

    /// The contract's value.
    pub fn as_str(self) -> &'static str {
        match self {
            CountSource::Snapshot => "snapshot",
            CountSource::CycleCount => "cycle_count",
        }
    }

    /// Parses the contract's value.
    pub fn parse(s: &str) -> Option<CountSource> {
        CountSource::ALL.into_iter().find(|v| v.as_str() == s)
    }
}

/// Why stock moved (`reason` of an `adjustment`): a bounded set.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
#[repr(u8)]
pub enum AdjustmentReason {
    /// Unexplained loss (theft, admin errors), usually found by a count.
    Shrink = 0,
    /// Damaged goods written off.
    Damage = 1,
    /// Expired goods written off.
    Expiry = 2,
    /// Units returned by customers into sellable stock.
    CustomerReturn = 3,
    /// Units transferred in from another location.
    TransferIn = 4,
    /// Units transferred out to another location (e.g. DC picks for stores).
    TransferOut = 5,
    /// A book correction.
    Correction = 6,
}

impl AdjustmentReason {
    /// Every reason, in code order.
    pub const ALL: [AdjustmentReason; 7] = [
        AdjustmentReason::Shrink,
        AdjustmentReason::Damage,
        AdjustmentReason::Expiry,
        AdjustmentReason::CustomerReturn,
        AdjustmentReason::TransferIn,
        AdjustmentReason::TransferOut,
        AdjustmentReason::Correction,
    ];

    /// The contract's value.
    pub fn as_str(self) -> &'static str {
        match self {
            AdjustmentReason::Shrink => "shrink",
            AdjustmentReason::Damage => "damage",
            AdjustmentReason::Expiry => "expiry",
            AdjustmentReason::CustomerReturn => "customer_return",
            AdjustmentReason::TransferIn => "transfer_in",
            AdjustmentReason::TransferOut => "transfer_out",
            AdjustmentReason::Correction => "correction",
        }
    }

    /// Parses the contract's value.
    pub fn parse(s: &str) -> Option<AdjustmentReason> {
        AdjustmentReason::ALL.into_iter().find(|v| v.as_str() == s)
    }
}

/// The state a `shipment` event declares (`status`; absent means `open`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
#[repr(u8)]
pub enum ShipmentStatus {
    /// Dispatched (or revised: new `eta`, new `qty`) and on its way.
    #[default]
    Open = 0,
    /// Cancelled: closed without stock.
    Cancelled = 1,
}

impl ShipmentStatus {
    /// Every status, in code order.
    pub const ALL: [ShipmentStatus; 2] = [ShipmentStatus::Open, ShipmentStatus::Cancelled];

    /// The contract's value.
    pub fn as_str(self) -> &'static str {
        match self {
            ShipmentStatus::Open => "open",
            ShipmentStatus::Cancelled => "cancelled",
        }
    }

    /// Parses the contract's value.
    pub fn parse(s: &str) -> Option<ShipmentStatus> {
        ShipmentStatus::ALL.into_iter().find(|v| v.as_str() == s)
    }
}

/// An input event, as producers write it (contract v2). Times are RFC 3339; quantities are
/// finite and > 0 (a count may be 0, an adjustment is signed and non-zero) and may be fractional; ids are 1..=128 bytes without control characters or `|`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(tag = "type", rename_all = "snake_case")]
#[schemars(title = "stockwatch input event v2")]
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
        /// `open` (absent: open) dispatches the shipment, or revises it when its `shipment_id`
        /// is already open for the key (new `eta`, new `qty`); `cancelled` closes it without
        /// stock (`qty` and `eta` still present and valid). A shipment received or cancelled
        /// before cannot be revised (rejected: `shipment_closed`).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        status: Option<ShipmentStatus>,
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
    /// An absolute on-hand quantity observed at `event_time`: on hand is set to it.
    InventoryCount {
        /// Unique id of this event.
        event_id: String,
        /// Stock keeping unit.
        sku: String,
        /// Store or DC.
        location: String,
        /// Units counted, finite and >= 0.
        #[schemars(range(min = 0))]
        qty: f64,
        /// When it was counted (RFC 3339).
        event_time: String,
        /// `snapshot` (nightly ERP/WMS position) or `cycle_count` (a store count).
        source: CountSource,
    },
    /// A stock movement that is not a sale or a receipt: on hand moves by `qty`.
    Adjustment {
        /// Unique id of this event.
        event_id: String,
        /// Stock keeping unit.
        sku: String,
        /// Store or DC.
        location: String,
        /// Units, finite, signed and != 0 (negative: stock left).
        qty: f64,
        /// When it happened (RFC 3339).
        event_time: String,
        /// Why stock moved.
        reason: AdjustmentReason,
        /// Optional id of a related document (transfer order, return, count), carried.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        reference_id: Option<String>,
    },
}

// Contract v1 as published (`event.v1.schema.json` is generated from it, unchanged): every v1
// event is a valid [`InputEvent`] with the same meaning. The doc comment below is the schema
// description.
/// An input event, as producers write it (contract v1). Times are RFC 3339; quantities are
/// finite and > 0 and may be fractional; ids are 1..=128 bytes without control characters or `|`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(tag = "type", rename_all = "snake_case")]
#[schemars(title = "stockwatch input event v1")]
pub enum InputEventV1 {
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
