//! One JSON message -> borrowed fields, with the failing field remembered so a parse error can be
//! classified (wrong type vs. malformed JSON vs. out-of-range number). Hand-written visitor: it
//! borrows unescaped strings from the message, detects duplicate keys and counts unknown fields,
//! which derive cannot do together.

use std::borrow::Cow;
use std::cell::Cell;
use std::fmt;

use serde::de::{self, DeserializeSeed, IgnoredAny, MapAccess, Visitor};
use serde::Deserializer;

/// Fields of an input event as they appeared in the message, before validation.
#[derive(Debug, Default)]
pub struct RawEvent<'a> {
    /// `type`.
    pub kind: Option<Cow<'a, str>>,
    /// `event_id`.
    pub event_id: Option<Cow<'a, str>>,
    /// `sku`.
    pub sku: Option<Cow<'a, str>>,
    /// `location`.
    pub location: Option<Cow<'a, str>>,
    /// `shipment_id`.
    pub shipment_id: Option<Cow<'a, str>>,
    /// `qty`.
    pub qty: Option<f64>,
    /// `event_time`.
    pub event_time: Option<Cow<'a, str>>,
    /// `eta`.
    pub eta: Option<Cow<'a, str>>,
    /// `in_stock`.
    pub in_stock: Option<bool>,
    /// Bit set of known fields that were present with a `null` value.
    pub nulls: u32,
    /// Number of fields outside the contract (ignored, counted).
    pub unknown_fields: u32,
}

/// Known field names; the bit index is the position here.
pub const FIELDS: [&str; 14] = [
    "type",
    "event_id",
    "sku",
    "location",
    "shipment_id",
    "qty",
    "event_time",
    "eta",
    "in_stock",
    "origin",
    "source",
    "unit_price",
    "channel",
    "event_version",
];

/// Which field the parser was in when it failed (for classification), `None` = structure.
pub type FieldCursor = Cell<Option<&'static str>>;

/// Parses one message into `RawEvent`, recording in `cursor` the field being read on failure.
pub fn parse<'a>(json: &'a str, cursor: &FieldCursor) -> Result<RawEvent<'a>, serde_json::Error> {
    let mut de = serde_json::Deserializer::from_str(json);
    let ev = RawSeed { cursor }.deserialize(&mut de)?;
    cursor.set(None);
    de.end()?;
    Ok(ev)
}

struct RawSeed<'c> {
    cursor: &'c FieldCursor,
}

impl<'de> DeserializeSeed<'de> for RawSeed<'_> {
    type Value = RawEvent<'de>;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        d.deserialize_map(RawVisitor {
            cursor: self.cursor,
        })
    }
}

struct RawVisitor<'c> {
    cursor: &'c FieldCursor,
}

/// A string that borrows from the input when it has no escapes.
struct CowStr<'a>(Cow<'a, str>);

impl<'de> de::Deserialize<'de> for CowStr<'de> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = CowStr<'de>;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a string")
            }
            fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> Result<Self::Value, E> {
                Ok(CowStr(Cow::Borrowed(v)))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
                Ok(CowStr(Cow::Owned(v.to_owned())))
            }
        }
        d.deserialize_str(V)
    }
}

impl<'de> Visitor<'de> for RawVisitor<'_> {
    type Value = RawEvent<'de>;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a JSON object")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let mut ev = RawEvent::default();
        let mut seen: u32 = 0;
        while let Some(CowStr(key)) = map.next_key::<CowStr<'de>>()? {
            let Some(idx) = field_index(&key) else {
                self.cursor.set(None);
                map.next_value::<IgnoredAny>()?;
                ev.unknown_fields += 1;
                continue;
            };
            let name = FIELDS[idx];
            self.cursor.set(Some(name));
            let bit = 1u32 << idx;
            debug_assert_eq!(field_index(name), Some(idx));
            if seen & bit != 0 {
                return Err(de::Error::custom(format_args!("duplicate field `{name}`")));
            }
            seen |= bit;
            let present = match idx {
                0 => put(&mut ev.kind, map.next_value::<Option<CowStr>>()?),
                1 => put(&mut ev.event_id, map.next_value::<Option<CowStr>>()?),
                2 => put(&mut ev.sku, map.next_value::<Option<CowStr>>()?),
                3 => put(&mut ev.location, map.next_value::<Option<CowStr>>()?),
                4 => put(&mut ev.shipment_id, map.next_value::<Option<CowStr>>()?),
                5 => {
                    ev.qty = map.next_value::<Option<f64>>()?;
                    ev.qty.is_some()
                }
                6 => put(&mut ev.event_time, map.next_value::<Option<CowStr>>()?),
                7 => put(&mut ev.eta, map.next_value::<Option<CowStr>>()?),
                8 => {
                    ev.in_stock = map.next_value::<Option<bool>>()?;
                    ev.in_stock.is_some()
                }
                11 => map.next_value::<Option<f64>>()?.is_some(),
                // origin, source, channel, event_version: carried by producers, not used here;
                // they must still be strings (or null) to honour the contract.
                _ => map.next_value::<Option<CowStr>>()?.is_some(),
            };
            if !present {
                ev.nulls |= bit;
            }
        }
        self.cursor.set(None);
        Ok(ev)
    }
}

fn put<'a>(slot: &mut Option<Cow<'a, str>>, v: Option<CowStr<'a>>) -> bool {
    *slot = v.map(|s| s.0);
    slot.is_some()
}

/// Position of a known field in [`FIELDS`] (a `match` compiles to length + compare, not a scan).
fn field_index(key: &str) -> Option<usize> {
    Some(match key {
        "type" => 0,
        "event_id" => 1,
        "sku" => 2,
        "location" => 3,
        "shipment_id" => 4,
        "qty" => 5,
        "event_time" => 6,
        "eta" => 7,
        "in_stock" => 8,
        "origin" => 9,
        "source" => 10,
        "unit_price" => 11,
        "channel" => 12,
        "event_version" => 13,
        _ => return None,
    })
}

/// Bit of a known field in [`RawEvent::nulls`].
pub fn field_bit(name: &str) -> u32 {
    field_index(name).map_or(0, |i| 1u32 << i)
}
