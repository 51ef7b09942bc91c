//! The input events (docs/architecture.md#contracts) as the simulator builds them, and their
//! JSON encoding.
//!
//! Field names and their order follow the contract's examples (schemas/, README) exactly, so a good record
//! looks like what any other producer writes.

use super::format::{write_price, write_qty, write_time, write_u64, write_u64_padded};
use super::Topic;

/// Location and SKU names, interned once: locations are the DCs (`DC-01`, …) followed by
/// the stores (`STORE-0001`, …).
#[derive(Debug)]
pub(crate) struct Names {
    seed: u64,
    dcs: u32,
    locations: Vec<Box<str>>,
    skus: Vec<Box<str>>,
}

impl Names {
    /// Names for `dcs` DCs, `stores` stores and `skus` SKUs, numbered from 1.
    pub(crate) fn new(seed: u64, dcs: u32, stores: u32, skus: u32) -> Self {
        let locations = (1..=dcs)
            .map(|i| format!("DC-{i:02}").into_boxed_str())
            .chain((1..=stores).map(|i| format!("STORE-{i:04}").into_boxed_str()))
            .collect();
        let skus = (1..=skus)
            .map(|i| format!("SKU-{i:05}").into_boxed_str())
            .collect();
        Self {
            seed,
            dcs,
            locations,
            skus,
        }
    }

    /// Number of DCs; location indexes below it are DCs.
    pub(crate) fn dcs(&self) -> u32 {
        self.dcs
    }

    /// Number of locations (DCs and stores).
    pub(crate) fn locations(&self) -> u32 {
        self.locations.len() as u32
    }

    /// Number of SKUs.
    pub(crate) fn skus(&self) -> u32 {
        self.skus.len() as u32
    }

    /// The DC location that supplies store location `loc` (stores are spread over the DCs
    /// in turn); `None` for a DC, or when there are no DCs and stores order from `SUPPLIER`.
    pub(crate) fn dc_for_store(&self, loc: u32) -> Option<u32> {
        (self.dcs > 0 && loc >= self.dcs).then(|| (loc - self.dcs) % self.dcs)
    }

    /// Name of location `loc`.
    pub(crate) fn location(&self, loc: u32) -> &str {
        &self.locations[loc as usize]
    }

    /// Name of SKU `sku`.
    pub(crate) fn sku(&self, sku: u32) -> &str {
        &self.skus[sku as usize]
    }

    /// The message key of every input topic: `"{location}|{sku}"`.
    pub(crate) fn key(&self, loc: u32, sku: u32) -> Vec<u8> {
        let (l, s) = (self.location(loc), self.sku(sku));
        let mut key = Vec::with_capacity(l.len() + 1 + s.len());
        key.extend_from_slice(l.as_bytes());
        key.push(b'|');
        key.extend_from_slice(s.as_bytes());
        key
    }

    /// Appends the text of an event id: `ev-{seed}-{n}` for generated events and
    /// `ev-{seed}-b{n}` for bad records, so the two never collide.
    pub(crate) fn write_event_id(&self, out: &mut Vec<u8>, id: EventId) {
        out.extend_from_slice(b"ev-");
        write_u64(out, self.seed);
        out.push(b'-');
        let n = match id {
            EventId::Good(n) => n,
            EventId::Bad(n) => {
                out.push(b'b');
                n
            }
        };
        // Zero-padded so that ids sort like the counter: the engine breaks event-time ties
        // by event id.
        write_u64_padded(out, n, 10);
    }

    /// Appends the text of a transfer id: `TRF-{seed}-{n}`.
    pub(crate) fn write_transfer_id(&self, out: &mut Vec<u8>, transfer: u64) {
        out.extend_from_slice(b"TRF-");
        write_u64(out, self.seed);
        out.push(b'-');
        write_u64_padded(out, transfer, 8);
    }

    /// Appends the text of a shipment id: `SHP-{seed}-{n}`.
    pub(crate) fn write_shipment_id(&self, out: &mut Vec<u8>, shipment: u64) {
        out.extend_from_slice(b"SHP-");
        write_u64(out, self.seed);
        out.push(b'-');
        write_u64_padded(out, shipment, 8);
    }
}

/// The numbered identity of an event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum EventId {
    /// A world event, numbered in generation order.
    Good(u64),
    /// A bad record, numbered separately.
    Bad(u64),
}

/// Where a shipment comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum Origin {
    /// The outside supplier of the DCs (or of the stores when there are no DCs).
    Supplier,
    /// A location index (a DC).
    Location(u32),
}

/// Who observed a shelf state.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Source {
    /// An associate or robot scanning the shelf.
    ShelfScan,
    /// An online-order picker who could not find the item.
    PickerNotFound,
    /// The store system's own flag, set when its book stock reaches zero or is replenished.
    StoreSystem,
}

impl Source {
    fn name(self) -> &'static str {
        match self {
            Source::ShelfScan => "shelf_scan",
            Source::PickerNotFound => "picker_not_found",
            Source::StoreSystem => "store_system",
        }
    }
}

/// Where an inventory count comes from (contract v2).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum CountSource {
    /// The nightly ERP/WMS position (the book).
    Snapshot,
    /// A store associate counting the shelf (the truth).
    CycleCount,
}

/// Why stock moved (contract v2 `adjustment` reasons the simulator uses).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) enum Reason {
    /// Recorded loss (theft found, admin error).
    Shrink,
    /// Damaged goods written off.
    Damage,
    /// Expired fresh goods written off.
    Expiry,
    /// Units returned by a customer into sellable stock.
    CustomerReturn,
    /// Units received from another location.
    TransferIn,
    /// Units sent to another location (store-to-store, or a DC's pick for a store).
    TransferOut,
}

impl Reason {
    /// Every reason, in declaration order.
    pub(crate) const ALL: [Reason; 6] = [
        Reason::Shrink,
        Reason::Damage,
        Reason::Expiry,
        Reason::CustomerReturn,
        Reason::TransferIn,
        Reason::TransferOut,
    ];

    /// The contract's value.
    pub(crate) fn name(self) -> &'static str {
        match self {
            Reason::Shrink => "shrink",
            Reason::Damage => "damage",
            Reason::Expiry => "expiry",
            Reason::CustomerReturn => "customer_return",
            Reason::TransferIn => "transfer_in",
            Reason::TransferOut => "transfer_out",
        }
    }
}

/// What an adjustment refers to (`reference_id`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Reference {
    /// A shipment (a DC's pick for it).
    Shipment(u64),
    /// A store-to-store transfer (both of its legs).
    Transfer(u64),
}

/// The type-specific part of an event.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) enum Body {
    /// Units sold (or moved out of a DC to a store, with `channel: "transfer"`).
    Sale {
        qty_milli: i64,
        unit_price_cents: Option<u32>,
        channel: Option<&'static str>,
    },
    /// Stock dispatched towards `location`, due at `eta_ms`.
    Shipment {
        shipment: u64,
        origin: Origin,
        qty_milli: i64,
        eta_ms: i64,
    },
    /// Stock received at `location`, closing `shipment` if any.
    Receipt {
        shipment: Option<u64>,
        qty_milli: i64,
    },
    /// An observed shelf state.
    Availability { in_stock: bool, source: Source },
    /// An absolute on-hand quantity (contract v2 `inventory_count`; may be 0).
    Count { qty_milli: i64, source: CountSource },
    /// A signed stock movement (contract v2 `adjustment`; never 0).
    Adjustment {
        qty_milli: i64,
        reason: Reason,
        reference: Option<Reference>,
    },
    /// A shipment cancelled before it arrived (contract v2: a `shipment` with
    /// `status: "cancelled"`, repeating the open shipment's fields).
    Cancel {
        shipment: u64,
        origin: Origin,
        qty_milli: i64,
        eta_ms: i64,
    },
}

/// One input event of the contract.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct Event {
    pub(crate) id: EventId,
    pub(crate) loc: u32,
    pub(crate) sku: u32,
    pub(crate) time_ms: i64,
    /// Write `event_time` with milliseconds (system-generated events) rather than seconds.
    pub(crate) millis: bool,
    pub(crate) body: Body,
}

impl Event {
    /// The input topic the event belongs to.
    pub(crate) fn topic(&self) -> Topic {
        match self.body {
            Body::Sale { .. } => Topic::Sales,
            Body::Shipment { .. } | Body::Cancel { .. } => Topic::Shipments,
            Body::Receipt { .. } => Topic::Receipts,
            Body::Availability { .. } => Topic::Availability,
            Body::Count { .. } => Topic::InventoryCounts,
            Body::Adjustment { .. } => Topic::Adjustments,
        }
    }

    /// The contract's `type` value.
    pub(crate) fn type_name(&self) -> &'static str {
        match self.body {
            Body::Sale { .. } => "sale",
            Body::Shipment { .. } | Body::Cancel { .. } => "shipment",
            Body::Receipt { .. } => "receipt",
            Body::Availability { .. } => "availability",
            Body::Count { .. } => "inventory_count",
            Body::Adjustment { .. } => "adjustment",
        }
    }

    /// Calls `visit(name, raw_json_value)` for every field, in contract order; `scratch`
    /// holds each raw value in turn.
    pub(crate) fn for_each_field(
        &self,
        names: &Names,
        scratch: &mut Vec<u8>,
        mut visit: impl FnMut(&'static str, &[u8]),
    ) {
        let mut field = |name: &'static str, write: &dyn Fn(&mut Vec<u8>)| {
            scratch.clear();
            write(scratch);
            visit(name, scratch);
        };
        field("event_id", &|o| {
            quoted(o, |o| names.write_event_id(o, self.id))
        });
        field("type", &|o| string(o, self.type_name()));
        let shipment = match self.body {
            Body::Shipment { shipment, .. } | Body::Cancel { shipment, .. } => Some(shipment),
            Body::Receipt { shipment, .. } => shipment,
            _ => None,
        };
        if let Some(id) = shipment {
            field("shipment_id", &|o| {
                quoted(o, |o| names.write_shipment_id(o, id))
            });
        }
        field("sku", &|o| string(o, names.sku(self.sku)));
        if let Body::Shipment { origin, .. } | Body::Cancel { origin, .. } = self.body {
            let origin = match origin {
                Origin::Supplier => "SUPPLIER",
                Origin::Location(loc) => names.location(loc),
            };
            field("origin", &|o| string(o, origin));
        }
        field("location", &|o| string(o, names.location(self.loc)));
        match self.body {
            Body::Sale { qty_milli, .. }
            | Body::Shipment { qty_milli, .. }
            | Body::Cancel { qty_milli, .. }
            | Body::Receipt { qty_milli, .. }
            | Body::Count { qty_milli, .. }
            | Body::Adjustment { qty_milli, .. } => field("qty", &|o| write_qty(o, qty_milli)),
            Body::Availability { in_stock, .. } => field("in_stock", &|o| {
                o.extend_from_slice(if in_stock { b"true" } else { b"false" })
            }),
        }
        field("event_time", &|o| {
            quoted(o, |o| write_time(o, self.time_ms, self.millis))
        });
        match self.body {
            Body::Shipment { eta_ms, .. } => {
                field("eta", &|o| quoted(o, |o| write_time(o, eta_ms, false)));
            }
            Body::Sale {
                unit_price_cents,
                channel,
                ..
            } => {
                if let Some(cents) = unit_price_cents {
                    field("unit_price", &|o| write_price(o, cents));
                }
                if let Some(channel) = channel {
                    field("channel", &|o| string(o, channel));
                }
            }
            Body::Availability { source, .. } => field("source", &|o| string(o, source.name())),
            Body::Receipt { .. } => {}
            Body::Count { source, .. } => field("source", &|o| {
                string(
                    o,
                    match source {
                        CountSource::Snapshot => "snapshot",
                        CountSource::CycleCount => "cycle_count",
                    },
                )
            }),
            Body::Adjustment {
                reason, reference, ..
            } => {
                field("reason", &|o| string(o, reason.name()));
                match reference {
                    Some(Reference::Shipment(id)) => field("reference_id", &|o| {
                        quoted(o, |o| names.write_shipment_id(o, id))
                    }),
                    Some(Reference::Transfer(id)) => field("reference_id", &|o| {
                        quoted(o, |o| names.write_transfer_id(o, id))
                    }),
                    None => {}
                }
            }
            Body::Cancel { eta_ms, .. } => {
                field("eta", &|o| quoted(o, |o| write_time(o, eta_ms, false)));
                field("status", &|o| string(o, "cancelled"));
            }
        }
    }

    /// Appends the event as one line of JSON (no newline).
    pub(crate) fn write_json(&self, names: &Names, scratch: &mut Vec<u8>, out: &mut Vec<u8>) {
        write_object(out, |emit| {
            self.for_each_field(names, scratch, |name, raw| emit(name.as_bytes(), raw))
        });
    }
}

/// Appends `"…"` around what `write` appends (our names and ids need no escaping).
fn quoted(out: &mut Vec<u8>, write: impl FnOnce(&mut Vec<u8>)) {
    out.push(b'"');
    write(out);
    out.push(b'"');
}

/// Appends a JSON string of plain ASCII text.
fn string(out: &mut Vec<u8>, text: &str) {
    quoted(out, |o| o.extend_from_slice(text.as_bytes()));
}

/// Appends `{"name":raw,…}` for the fields that `fields` hands to its callback.
pub(crate) fn write_object(out: &mut Vec<u8>, fields: impl FnOnce(&mut dyn FnMut(&[u8], &[u8]))) {
    out.push(b'{');
    let mut first = true;
    fields(&mut |name, raw| {
        if !first {
            out.push(b',');
        }
        first = false;
        out.push(b'"');
        out.extend_from_slice(name);
        out.extend_from_slice(b"\":");
        out.extend_from_slice(raw);
    });
    out.push(b'}');
}

#[cfg(test)]
mod tests {
    use super::*;

    fn json(names: &Names, ev: &Event) -> String {
        let mut out = Vec::new();
        ev.write_json(names, &mut Vec::new(), &mut out);
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn events_match_the_contract_examples() {
        let names = Names::new(7, 1, 50, 200);
        let t = 1_795_601_700_000; // 2026-11-25T10:15:00Z
        let sale = Event {
            id: EventId::Good(123),
            loc: 42,
            sku: 41,
            time_ms: t,
            millis: false,
            body: Body::Sale {
                qty_milli: 2_000,
                unit_price_cents: Some(1_999),
                channel: None,
            },
        };
        assert_eq!(
            json(&names, &sale),
            r#"{"event_id":"ev-7-0000000123","type":"sale","sku":"SKU-00042","location":"STORE-0042","qty":2,"event_time":"2026-11-25T10:15:00Z","unit_price":19.99}"#
        );
        let shipment = Event {
            body: Body::Shipment {
                shipment: 88_121,
                origin: Origin::Location(0),
                qty_milli: 24_000,
                eta_ms: t + 2 * 86_400_000,
            },
            ..sale
        };
        assert_eq!(
            json(&names, &shipment),
            r#"{"event_id":"ev-7-0000000123","type":"shipment","shipment_id":"SHP-7-00088121","sku":"SKU-00042","origin":"DC-01","location":"STORE-0042","qty":24,"event_time":"2026-11-25T10:15:00Z","eta":"2026-11-27T10:15:00Z"}"#
        );
        let receipt = Event {
            id: EventId::Bad(5),
            millis: true,
            body: Body::Receipt {
                shipment: None,
                qty_milli: 1_500,
            },
            ..sale
        };
        assert_eq!(
            json(&names, &receipt),
            r#"{"event_id":"ev-7-b0000000005","type":"receipt","sku":"SKU-00042","location":"STORE-0042","qty":1.5,"event_time":"2026-11-25T10:15:00.000Z"}"#
        );
        let availability = Event {
            body: Body::Availability {
                in_stock: false,
                source: Source::PickerNotFound,
            },
            ..sale
        };
        assert_eq!(
            json(&names, &availability),
            r#"{"event_id":"ev-7-0000000123","type":"availability","sku":"SKU-00042","location":"STORE-0042","in_stock":false,"event_time":"2026-11-25T10:15:00Z","source":"picker_not_found"}"#
        );
        let count = Event {
            body: Body::Count {
                qty_milli: 0,
                source: CountSource::CycleCount,
            },
            ..sale
        };
        assert_eq!(
            json(&names, &count),
            r#"{"event_id":"ev-7-0000000123","type":"inventory_count","sku":"SKU-00042","location":"STORE-0042","qty":0,"event_time":"2026-11-25T10:15:00Z","source":"cycle_count"}"#
        );
        let pick = Event {
            loc: 0,
            body: Body::Adjustment {
                qty_milli: -24_000,
                reason: Reason::TransferOut,
                reference: Some(Reference::Shipment(88_121)),
            },
            ..sale
        };
        assert_eq!(
            json(&names, &pick),
            r#"{"event_id":"ev-7-0000000123","type":"adjustment","sku":"SKU-00042","location":"DC-01","qty":-24,"event_time":"2026-11-25T10:15:00Z","reason":"transfer_out","reference_id":"SHP-7-00088121"}"#
        );
        let cancel = Event {
            body: Body::Cancel {
                shipment: 88_121,
                origin: Origin::Supplier,
                qty_milli: 24_000,
                eta_ms: t + 86_400_000,
            },
            ..sale
        };
        assert_eq!(
            json(&names, &cancel),
            r#"{"event_id":"ev-7-0000000123","type":"shipment","shipment_id":"SHP-7-00088121","sku":"SKU-00042","origin":"SUPPLIER","location":"STORE-0042","qty":24,"event_time":"2026-11-25T10:15:00Z","eta":"2026-11-26T10:15:00Z","status":"cancelled"}"#
        );
        assert_eq!(names.key(42, 41), b"STORE-0042|SKU-00042");
        assert_eq!(names.key(0, 0), b"DC-01|SKU-00001");
    }
}
