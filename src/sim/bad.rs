//! The catalogue of bad records: every way a producer can get an input message wrong.
//!
//! Each bad record starts as a plausible event for a real key (so it lands on a real shard)
//! and is then broken in exactly one way, named by its [`BadKind`].

use rand::seq::SliceRandom;
use rand::RngExt;
use rand_chacha::ChaCha8Rng;

use super::demand::pick;
use super::event::{
    write_object, Body, CountSource, Event, EventId, Names, Origin, Reason, Source,
};
use super::format::{write_qty, write_time, write_u64, DAY_MS, HOUR_MS};
use super::Topic;

/// One way a record can be bad.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum BadKind {
    /// Not JSON at all, or JSON with a syntax error (missing comma, single quotes, …).
    InvalidJson,
    /// A valid event cut off before its end.
    TruncatedJson,
    /// Bytes that are not UTF-8 inside a string.
    InvalidUtf8,
    /// A contract field with the wrong JSON type (`"qty":"2"`, a numeric `event_time`, …).
    WrongType,
    /// A required field is absent.
    MissingField,
    /// A required field is `null`.
    NullField,
    /// A `type` outside `sale`, `shipment`, `receipt`, `availability`.
    UnknownType,
    /// `qty` is zero.
    ZeroQty,
    /// `qty` is negative.
    NegativeQty,
    /// `qty` is not a number: the string `"NaN"` or a bare `NaN` literal (invalid JSON).
    NanQty,
    /// `qty` overflows a double (`1e400`).
    OverflowQty,
    /// `event_id` or `shipment_id` longer than 128 bytes.
    LongId,
    /// `event_id` or `shipment_id` containing a control character (JSON-escaped).
    ControlCharId,
    /// `event_time` years ahead of the stream.
    FarFuture,
    /// `event_time` in 1970 or in year 1.
    Ancient,
    /// A shipment whose `eta` is before its `event_time`.
    EtaBeforeEventTime,
    /// A valid event padded beyond 64 KiB with an unknown field.
    Oversized,
    /// An empty message.
    Empty,
    /// The same field twice with different values.
    DuplicateJsonKey,
    /// An `inventory_count` with a negative `qty` (contract v2).
    NegativeCount,
    /// An `adjustment` of `qty` 0 (contract v2).
    ZeroAdjustment,
    /// An `adjustment` whose `qty` overflows a double (`1e400`, contract v2).
    NonFiniteAdjustment,
    /// An `adjustment` with a `reason` outside the contract's set (contract v2).
    UnknownReason,
    /// A `shipment` with a `status` other than `open` or `cancelled` (contract v2).
    UnknownStatus,
}

impl BadKind {
    /// Every kind, in declaration order.
    pub const ALL: [BadKind; 24] = [
        BadKind::InvalidJson,
        BadKind::TruncatedJson,
        BadKind::InvalidUtf8,
        BadKind::WrongType,
        BadKind::MissingField,
        BadKind::NullField,
        BadKind::UnknownType,
        BadKind::ZeroQty,
        BadKind::NegativeQty,
        BadKind::NanQty,
        BadKind::OverflowQty,
        BadKind::LongId,
        BadKind::ControlCharId,
        BadKind::FarFuture,
        BadKind::Ancient,
        BadKind::EtaBeforeEventTime,
        BadKind::Oversized,
        BadKind::Empty,
        BadKind::DuplicateJsonKey,
        BadKind::NegativeCount,
        BadKind::ZeroAdjustment,
        BadKind::NonFiniteAdjustment,
        BadKind::UnknownReason,
        BadKind::UnknownStatus,
    ];

    /// A stable snake_case name, e.g. for a test label or a log line.
    pub fn name(&self) -> &'static str {
        match self {
            BadKind::InvalidJson => "invalid_json",
            BadKind::TruncatedJson => "truncated_json",
            BadKind::InvalidUtf8 => "invalid_utf8",
            BadKind::WrongType => "wrong_type",
            BadKind::MissingField => "missing_field",
            BadKind::NullField => "null_field",
            BadKind::UnknownType => "unknown_type",
            BadKind::ZeroQty => "zero_qty",
            BadKind::NegativeQty => "negative_qty",
            BadKind::NanQty => "nan_qty",
            BadKind::OverflowQty => "overflow_qty",
            BadKind::LongId => "long_id",
            BadKind::ControlCharId => "control_char_id",
            BadKind::FarFuture => "far_future",
            BadKind::Ancient => "ancient",
            BadKind::EtaBeforeEventTime => "eta_before_event_time",
            BadKind::Oversized => "oversized",
            BadKind::Empty => "empty",
            BadKind::DuplicateJsonKey => "duplicate_json_key",
            BadKind::NegativeCount => "negative_count",
            BadKind::ZeroAdjustment => "zero_adjustment",
            BadKind::NonFiniteAdjustment => "non_finite_adjustment",
            BadKind::UnknownReason => "unknown_reason",
            BadKind::UnknownStatus => "unknown_status",
        }
    }

    /// Position in [`BadKind::ALL`].
    pub fn index(&self) -> usize {
        *self as usize
    }

    /// Whether the kind is an inventory count or an adjustment, made from a sale's fields.
    fn is_v2_stock(self) -> bool {
        matches!(
            self,
            BadKind::NegativeCount
                | BadKind::ZeroAdjustment
                | BadKind::NonFiniteAdjustment
                | BadKind::UnknownReason
        )
    }

    /// Whether the kind breaks `qty`, so its base event must have one.
    fn needs_qty(self) -> bool {
        matches!(
            self,
            BadKind::ZeroQty | BadKind::NegativeQty | BadKind::NanQty | BadKind::OverflowQty
        )
    }
}

/// A bad record, ready to emit.
#[derive(Debug)]
pub(crate) struct BadRecord {
    pub(crate) kind: BadKind,
    pub(crate) topic: Topic,
    pub(crate) loc: u32,
    pub(crate) sku: u32,
    pub(crate) value: Vec<u8>,
    /// The time the record claims, or the stream time it was made at if it claims none.
    pub(crate) time_ms: i64,
}

/// A JSON object as `(name, raw value)` pairs, easy to break.
type Fields = Vec<(&'static str, Vec<u8>)>;

/// Makes bad records, cycling through every kind in a freshly shuffled order each round.
#[derive(Debug, Default)]
pub(crate) struct BadMaker {
    bag: Vec<BadKind>,
    made: u64,
    scratch: Vec<u8>,
}

impl BadMaker {
    /// The next bad record, for a random store key, up to five minutes behind stream time
    /// `now_ms` (well inside any allowed lateness) but not before `start_ms`.
    pub(crate) fn make(
        &mut self,
        rng: &mut ChaCha8Rng,
        names: &Names,
        start_ms: i64,
        now_ms: i64,
    ) -> BadRecord {
        if self.bag.is_empty() {
            self.bag.extend_from_slice(&BadKind::ALL);
            self.bag.shuffle(rng);
        }
        let kind = self.bag.pop().unwrap_or(BadKind::InvalidJson);
        let id = EventId::Bad(self.made);
        self.made += 1;
        let time_ms = (now_ms - rng.random_range(0..300) * 1_000).max(start_ms);
        let event = base_event(rng, names, kind, id, time_ms);
        let mut fields = Fields::new();
        event.for_each_field(names, &mut self.scratch, |name, raw| {
            fields.push((name, raw.to_vec()))
        });
        let (value, time_ms) = break_event(rng, names, kind, &event, fields);
        BadRecord {
            kind,
            topic: event.topic(),
            loc: event.loc,
            sku: event.sku,
            value,
            time_ms,
        }
    }
}

/// A plausible event at `time_ms` to break: a random store and SKU, a type that has the
/// field to break.
fn base_event(
    rng: &mut ChaCha8Rng,
    names: &Names,
    kind: BadKind,
    id: EventId,
    time_ms: i64,
) -> Event {
    let stores = names.locations() - names.dcs();
    let loc = names.dcs() + rng.random_range(0..stores);
    let sku = rng.random_range(0..names.skus());
    let qty_milli = rng.random_range(1..=3) * 1_000;
    let topic = if matches!(kind, BadKind::EtaBeforeEventTime | BadKind::UnknownStatus) {
        Topic::Shipments
    } else if kind.is_v2_stock() {
        // Rewritten into an inventory count or an adjustment (see `v2_stock`).
        Topic::Sales
    } else if kind.needs_qty() {
        pick(
            rng,
            &[
                (Topic::Sales, 0.7),
                (Topic::Shipments, 0.15),
                (Topic::Receipts, 0.15),
            ],
        )
    } else {
        pick(
            rng,
            &[
                (Topic::Sales, 0.55),
                (Topic::Availability, 0.2),
                (Topic::Shipments, 0.12),
                (Topic::Receipts, 0.13),
            ],
        )
    };
    let shipment = rng.random_range(0..1_000_000);
    let body = match topic {
        Topic::Sales => Body::Sale {
            qty_milli,
            unit_price_cents: Some(rng.random_range(49..5_000)),
            channel: None,
        },
        Topic::Shipments => Body::Shipment {
            shipment,
            origin: names
                .dc_for_store(loc)
                .map_or(Origin::Supplier, Origin::Location),
            qty_milli: qty_milli * 6,
            eta_ms: time_ms + rng.random_range(1..=3) * DAY_MS,
        },
        Topic::Receipts => Body::Receipt {
            shipment: Some(shipment),
            qty_milli: qty_milli * 6,
        },
        Topic::Availability => Body::Availability {
            in_stock: rng.random_bool(0.5),
            source: Source::ShelfScan,
        },
        Topic::InventoryCounts => Body::Count {
            qty_milli: qty_milli * 6,
            source: CountSource::CycleCount,
        },
        Topic::Adjustments => Body::Adjustment {
            qty_milli: -qty_milli,
            reason: Reason::Damage,
            reference: None,
        },
    };
    Event {
        id,
        loc,
        sku,
        time_ms,
        millis: false,
        body,
    }
}

fn encode(fields: &Fields) -> Vec<u8> {
    let mut out = Vec::with_capacity(256);
    write_object(&mut out, |emit| {
        for (name, raw) in fields {
            emit(name.as_bytes(), raw);
        }
    });
    out
}

fn quoted(text: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(text.len() + 2);
    out.push(b'"');
    out.extend_from_slice(text);
    out.push(b'"');
    out
}

fn set(fields: &mut Fields, name: &str, raw: Vec<u8>) {
    if let Some(field) = fields.iter_mut().find(|(n, _)| *n == name) {
        field.1 = raw;
    }
}

/// Name of the id field to break: `shipment_id` on half of the shipments and receipts.
fn id_field(rng: &mut ChaCha8Rng, fields: &Fields) -> &'static str {
    if fields.iter().any(|(n, _)| *n == "shipment_id") && rng.random_bool(0.5) {
        "shipment_id"
    } else {
        "event_id"
    }
}

/// The raw text of a string field (without quotes).
fn text_of(fields: &Fields, name: &str) -> Vec<u8> {
    fields
        .iter()
        .find(|(n, _)| *n == name)
        .map(|(_, raw)| raw[1..raw.len() - 1].to_vec())
        .unwrap_or_default()
}

/// Required fields of the event's type.
fn required(event: &Event) -> &'static [&'static str] {
    match event.body {
        Body::Sale { .. } | Body::Receipt { .. } => {
            &["event_id", "type", "sku", "location", "qty", "event_time"]
        }
        Body::Shipment { .. } | Body::Cancel { .. } => &[
            "event_id",
            "type",
            "shipment_id",
            "sku",
            "location",
            "qty",
            "event_time",
            "eta",
        ],
        Body::Count { .. } => &[
            "event_id",
            "type",
            "sku",
            "location",
            "qty",
            "event_time",
            "source",
        ],
        Body::Adjustment { .. } => &[
            "event_id",
            "type",
            "sku",
            "location",
            "qty",
            "event_time",
            "reason",
        ],
        Body::Availability { .. } => &[
            "event_id",
            "type",
            "sku",
            "location",
            "in_stock",
            "event_time",
        ],
    }
}

/// Breaks `event` (given as its fields) in the way `kind` names; returns the bytes and the
/// time the record claims.
fn break_event(
    rng: &mut ChaCha8Rng,
    names: &Names,
    kind: BadKind,
    event: &Event,
    mut fields: Fields,
) -> (Vec<u8>, i64) {
    let mut time_ms = event.time_ms;
    let qty_field = if matches!(event.body, Body::Availability { .. }) {
        "in_stock"
    } else {
        "qty"
    };
    let value = match kind {
        BadKind::InvalidJson => {
            let json = encode(&fields);
            match rng.random_range(0..5) {
                // A missing comma between the first two fields.
                0 => {
                    let comma = json.iter().position(|&b| b == b',').unwrap_or(0);
                    [&json[..comma], &json[comma + 1..]].concat()
                }
                // Single quotes.
                1 => json
                    .iter()
                    .map(|&b| if b == b'"' { b'\'' } else { b })
                    .collect(),
                // A trailing comma.
                2 => [&json[..json.len() - 1], b",}"].concat(),
                // Unquoted keys.
                3 => {
                    let mut out = b"{".to_vec();
                    for (i, (name, raw)) in fields.iter().enumerate() {
                        if i > 0 {
                            out.push(b',');
                        }
                        out.extend_from_slice(name.as_bytes());
                        out.push(b':');
                        out.extend_from_slice(raw);
                    }
                    out.push(b'}');
                    out
                }
                // Not JSON at all: a log line sent to the wrong topic.
                _ => {
                    let mut out = b"WARN ".to_vec();
                    out.extend_from_slice(event.type_name().as_bytes());
                    out.push(b' ');
                    out.extend_from_slice(names.location(event.loc).as_bytes());
                    out.push(b' ');
                    out.extend_from_slice(names.sku(event.sku).as_bytes());
                    out
                }
            }
        }
        BadKind::TruncatedJson => {
            let json = encode(&fields);
            let cut = rng.random_range(json.len() / 4..json.len() - 1);
            json[..cut].to_vec()
        }
        BadKind::InvalidUtf8 => {
            const INVALID: [&[u8]; 5] = [
                b"\xff",
                b"\xc3\x28",     // a lead byte followed by ASCII
                b"\xed\xa0\x80", // an encoded UTF-16 surrogate
                b"\xc0\xaf",     // an overlong '/'
                b"\xe2\x82",     // a truncated sequence
            ];
            let field = if rng.random_bool(0.5) {
                "sku"
            } else {
                "location"
            };
            let mut text = text_of(&fields, field);
            let at = rng.random_range(1..text.len());
            let bytes = INVALID[rng.random_range(0..INVALID.len())];
            text.splice(at..at, bytes.iter().copied());
            set(&mut fields, field, quoted(&text));
            encode(&fields)
        }
        BadKind::WrongType => {
            let choice = rng.random_range(0..3);
            match (choice, qty_field) {
                (0, "qty") => {
                    let mut text = Vec::new();
                    write_qty(&mut text, event_qty(event));
                    set(&mut fields, "qty", quoted(&text));
                }
                (0, _) => set(&mut fields, "in_stock", b"\"false\"".to_vec()),
                (1, _) => {
                    let mut ms = Vec::new();
                    write_u64(&mut ms, event.time_ms.max(0) as u64);
                    set(&mut fields, "event_time", ms);
                }
                _ => {
                    let number = text_of(&fields, "sku")
                        .into_iter()
                        .filter(u8::is_ascii_digit)
                        .skip_while(|&b| b == b'0')
                        .collect::<Vec<u8>>();
                    let number = if number.is_empty() {
                        b"0".to_vec()
                    } else {
                        number
                    };
                    set(&mut fields, "sku", number);
                }
            }
            encode(&fields)
        }
        BadKind::MissingField => {
            let fields_of_type = required(event);
            let drop = fields_of_type[rng.random_range(0..fields_of_type.len())];
            fields.retain(|(n, _)| *n != drop);
            encode(&fields)
        }
        BadKind::NullField => {
            let fields_of_type = required(event);
            let null = fields_of_type[rng.random_range(0..fields_of_type.len())];
            set(&mut fields, null, b"null".to_vec());
            encode(&fields)
        }
        BadKind::UnknownType => {
            const TYPES: [&[u8]; 5] = [b"return", b"SALE", b"price_change", b"sales", b"void"];
            set(
                &mut fields,
                "type",
                quoted(TYPES[rng.random_range(0..TYPES.len())]),
            );
            encode(&fields)
        }
        BadKind::ZeroQty => {
            let zero: &[u8] = if rng.random_bool(0.5) { b"0" } else { b"0.0" };
            set(&mut fields, "qty", zero.to_vec());
            encode(&fields)
        }
        BadKind::NegativeQty => {
            let mut raw = Vec::new();
            write_qty(&mut raw, -event_qty(event));
            set(&mut fields, "qty", raw);
            encode(&fields)
        }
        BadKind::NanQty => {
            const NANS: [&[u8]; 3] = [b"\"NaN\"", b"NaN", b"\"nan\""];
            set(
                &mut fields,
                "qty",
                NANS[rng.random_range(0..NANS.len())].to_vec(),
            );
            encode(&fields)
        }
        BadKind::OverflowQty => {
            let huge: &[u8] = if rng.random_bool(0.5) {
                b"1e400"
            } else {
                b"2e308"
            };
            set(&mut fields, "qty", huge.to_vec());
            encode(&fields)
        }
        BadKind::LongId => {
            let field = id_field(rng, &fields);
            let mut text = text_of(&fields, field);
            text.push(b'-');
            let len = rng.random_range(129..=512);
            text.resize(len.max(text.len()), b'x');
            set(&mut fields, field, quoted(&text));
            encode(&fields)
        }
        BadKind::ControlCharId => {
            const CONTROL: [&[u8]; 4] = [b"\\u0000", b"\\t", b"\\u001b[0m", b"\\r\\n"];
            let field = id_field(rng, &fields);
            let mut text = text_of(&fields, field);
            let at = rng.random_range(1..text.len());
            let control = CONTROL[rng.random_range(0..CONTROL.len())];
            text.splice(at..at, control.iter().copied());
            set(&mut fields, field, quoted(&text));
            encode(&fields)
        }
        BadKind::FarFuture => {
            time_ms = event.time_ms + rng.random_range(2..=50) * 365 * DAY_MS;
            let mut text = Vec::new();
            write_time(&mut text, time_ms, false);
            set(&mut fields, "event_time", quoted(&text));
            encode(&fields)
        }
        BadKind::Ancient => {
            // 1970-01-01T00:00:00Z, or 0001-01-01T00:00:00Z.
            time_ms = if rng.random_bool(0.5) {
                0
            } else {
                -62_135_596_800_000
            };
            let mut text = Vec::new();
            write_time(&mut text, time_ms, false);
            set(&mut fields, "event_time", quoted(&text));
            encode(&fields)
        }
        BadKind::EtaBeforeEventTime => {
            let eta = event.time_ms - rng.random_range(1..=72) * HOUR_MS;
            let mut text = Vec::new();
            write_time(&mut text, eta, false);
            set(&mut fields, "eta", quoted(&text));
            encode(&fields)
        }
        BadKind::Oversized => {
            let mut padding = Vec::with_capacity(80_002);
            padding.push(b'"');
            padding.resize(rng.random_range(65_537..=80_000), b'x');
            padding.push(b'"');
            fields.push(("padding", padding));
            encode(&fields)
        }
        BadKind::Empty => Vec::new(),
        BadKind::NegativeCount => {
            let mut qty = b"-".to_vec();
            write_qty(&mut qty, event_qty(event));
            v2_stock(
                &mut fields,
                "inventory_count",
                qty,
                ("source", b"\"snapshot\""),
            );
            encode(&fields)
        }
        BadKind::ZeroAdjustment => {
            v2_stock(
                &mut fields,
                "adjustment",
                b"0".to_vec(),
                ("reason", b"\"shrink\""),
            );
            encode(&fields)
        }
        BadKind::NonFiniteAdjustment => {
            v2_stock(
                &mut fields,
                "adjustment",
                b"-1e400".to_vec(),
                ("reason", b"\"damage\""),
            );
            encode(&fields)
        }
        BadKind::UnknownReason => {
            const REASONS: [&[u8]; 3] = [b"\"theft\"", b"\"Shrink\"", b"\"\""];
            let mut qty = b"-".to_vec();
            write_qty(&mut qty, event_qty(event));
            let reason = REASONS[rng.random_range(0..REASONS.len())];
            v2_stock(&mut fields, "adjustment", qty, ("reason", reason));
            encode(&fields)
        }
        BadKind::UnknownStatus => {
            const STATUSES: [&[u8]; 3] = [b"\"lost\"", b"\"CANCELLED\"", b"\"closed\""];
            let status = STATUSES[rng.random_range(0..STATUSES.len())];
            fields.push(("status", status.to_vec()));
            encode(&fields)
        }
        BadKind::DuplicateJsonKey => {
            let again = match event.body {
                Body::Availability { in_stock, .. } => {
                    if in_stock {
                        b"false".to_vec()
                    } else {
                        b"true".to_vec()
                    }
                }
                _ => {
                    let mut raw = Vec::new();
                    write_qty(&mut raw, event_qty(event) + 1_000);
                    raw
                }
            };
            fields.push((qty_field, again));
            encode(&fields)
        }
    };
    (value, time_ms)
}

/// Turns a sale's fields into a contract v2 stock event of type `type_name` with `qty` and one
/// more field (`source` of a count, `reason` of an adjustment).
fn v2_stock(fields: &mut Fields, type_name: &str, qty: Vec<u8>, extra: (&'static str, &[u8])) {
    fields.retain(|(n, _)| !matches!(*n, "unit_price" | "channel"));
    set(fields, "type", quoted(type_name.as_bytes()));
    set(fields, "qty", qty);
    fields.push((extra.0, extra.1.to_vec()));
}

/// The quantity of an event that has one (0 for availability).
fn event_qty(event: &Event) -> i64 {
    match event.body {
        Body::Sale { qty_milli, .. }
        | Body::Shipment { qty_milli, .. }
        | Body::Cancel { qty_milli, .. }
        | Body::Receipt { qty_milli, .. }
        | Body::Count { qty_milli, .. }
        | Body::Adjustment { qty_milli, .. } => qty_milli,
        Body::Availability { .. } => 0,
    }
}

#[cfg(test)]
mod tests {
    use rand::SeedableRng;

    use super::*;
    use crate::decode::{DecodeLimits, Decoder, KeyPolicy, MessageRef};
    use crate::reject::RejectReason;

    /// The kinds of contract v2 reach the decoder as the bad values they claim to be, and are
    /// refused with their reason codes (the others are checked in `sim::tests` and through
    /// the service in `tests/kafka/bad_input.rs`).
    #[test]
    fn v2_kinds_are_refused_with_their_reason() {
        let names = Names::new(7, 2, 20, 50);
        let mut rng = ChaCha8Rng::seed_from_u64(11);
        let mut maker = BadMaker::default();
        let mut dec = Decoder::new(DecodeLimits::default(), KeyPolicy::Derive);
        let start = 1_767_225_600_000;
        let mut seen = std::collections::BTreeMap::new();
        for _ in 0..BadKind::ALL.len() * 20 {
            let r = maker.make(&mut rng, &names, start, start + DAY_MS);
            let want = match r.kind {
                BadKind::NegativeCount | BadKind::ZeroAdjustment | BadKind::NonFiniteAdjustment => {
                    RejectReason::InvalidValue
                }
                BadKind::UnknownReason | BadKind::UnknownStatus => RejectReason::UnknownValue,
                _ => continue,
            };
            let got = dec.check(
                MessageRef {
                    key: None,
                    value: &r.value,
                },
                start + DAY_MS,
                |_| (),
            );
            assert_eq!(
                got.map_err(|e| e.0),
                Err(want),
                "{}: {}",
                r.kind.name(),
                String::from_utf8_lossy(&r.value)
            );
            *seen.entry(r.kind).or_insert(0) += 1;
        }
        assert_eq!(seen.len(), 5, "{seen:?}");
    }
}
