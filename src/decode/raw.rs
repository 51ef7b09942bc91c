//! One JSON message -> borrowed fields, with the failing field remembered so a parse error can be
//! classified (wrong type vs. malformed JSON vs. out-of-range number). Hand-written visitor: it
//! borrows unescaped strings from the message, detects duplicate keys and counts unknown fields,
//! which derive cannot do together. In front of it, a scanner for the common case (a flat object
//! of scalars, strings without escapes) gives the same event in about half the time and leaves
//! everything else, every error included, to the visitor.

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
    /// `source` (an availability's is free text; a count's is a bounded set).
    pub source: Option<Cow<'a, str>>,
    /// `reason` (adjustments).
    pub reason: Option<Cow<'a, str>>,
    /// `reference_id` (adjustments).
    pub reference_id: Option<Cow<'a, str>>,
    /// `status` (shipments).
    pub status: Option<Cow<'a, str>>,
    /// Bit set of known fields that were present with a `null` value.
    pub nulls: u32,
    /// Number of fields outside the contract (ignored, counted).
    pub unknown_fields: u32,
}

/// Known field names; the bit index is the position here.
pub const FIELDS: [&str; 17] = [
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
    "reason",
    "reference_id",
    "status",
];

/// Which field the parser was in when it failed (for classification), `None` = structure.
pub type FieldCursor = Cell<Option<&'static str>>;

/// Parses one message into `ev` (a fresh `RawEvent`, filled in place: the event is ~200 bytes,
/// and returning it by value cost a copy per message), recording in `cursor` the field being
/// read on failure.
pub fn parse<'a>(
    json: &'a str,
    cursor: &FieldCursor,
    ev: &mut RawEvent<'a>,
) -> Result<(), serde_json::Error> {
    if parse_flat(json, ev).is_some() {
        cursor.set(None);
        return Ok(());
    }
    let mut de = serde_json::Deserializer::from_str(json);
    *ev = RawSeed { cursor }.deserialize(&mut de)?;
    cursor.set(None);
    de.end()
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
                10 => put(&mut ev.source, map.next_value::<Option<CowStr>>()?),
                11 => map.next_value::<Option<f64>>()?.is_some(),
                14 => put(&mut ev.reason, map.next_value::<Option<CowStr>>()?),
                15 => put(&mut ev.reference_id, map.next_value::<Option<CowStr>>()?),
                16 => put(&mut ev.status, map.next_value::<Option<CowStr>>()?),
                // origin, channel, event_version: carried by producers, not used here;
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
        "reason" => 14,
        "reference_id" => 15,
        "status" => 16,
        _ => return None,
    })
}

/// Bit of a known field in [`RawEvent::nulls`].
pub fn field_bit(name: &str) -> u32 {
    field_index(name).map_or(0, |i| 1u32 << i)
}

/// The fast path of [`parse`]: a scanner for the flat objects the contract describes — string,
/// number, boolean and null values, strings without escapes or control characters. It returns
/// the very event the serde visitor would, or `None` for anything else (escapes, nested values,
/// malformed JSON, a duplicate field, a value of the wrong type, a number out of range), which
/// the visitor then parses — so every rejection and its reason still come from the visitor.
/// Fills `ev` (fresh) on success; leaves it partly filled otherwise.
fn parse_flat<'a>(json: &'a str, ev: &mut RawEvent<'a>) -> Option<()> {
    let b = json.as_bytes();
    let mut s = Scan { b, i: 0 };
    let mut seen: u32 = 0;
    s.ws();
    s.eat(b'{')?;
    s.ws();
    if s.peek() == Some(b'}') {
        s.i += 1;
    } else {
        loop {
            let idx = s.key(json)?;
            s.ws();
            s.eat(b':')?;
            s.ws();
            match idx {
                None => {
                    s.skip_scalar(json)?;
                    ev.unknown_fields += 1;
                }
                Some(idx) => {
                    let bit = 1u32 << idx;
                    if seen & bit != 0 {
                        return None; // the visitor names the duplicate
                    }
                    seen |= bit;
                    let present = match idx {
                        5 => {
                            ev.qty = s.opt_number(json)?;
                            ev.qty.is_some()
                        }
                        8 => {
                            ev.in_stock = s.opt_bool()?;
                            ev.in_stock.is_some()
                        }
                        11 => s.opt_number_unused(json)?,
                        _ => {
                            let v = s.opt_string(json)?.map(Cow::Borrowed);
                            let present = v.is_some();
                            match idx {
                                0 => ev.kind = v,
                                1 => ev.event_id = v,
                                2 => ev.sku = v,
                                3 => ev.location = v,
                                4 => ev.shipment_id = v,
                                6 => ev.event_time = v,
                                7 => ev.eta = v,
                                10 => ev.source = v,
                                14 => ev.reason = v,
                                15 => ev.reference_id = v,
                                16 => ev.status = v,
                                _ => {} // origin, channel, event_version: strings
                            }
                            present
                        }
                    };
                    if !present {
                        ev.nulls |= bit;
                    }
                }
            }
            s.ws();
            match s.next()? {
                b',' => s.ws(),
                b'}' => break,
                _ => return None,
            }
        }
    }
    s.ws();
    (s.i == b.len()).then_some(())
}

/// Each known field name followed by its closing quote, as the low bytes of a little-endian
/// `u128`, with the mask of those bytes ([`known_key`] compares 16 bytes at once).
const KEY_PATTERNS: [(u128, u128); FIELDS.len()] = {
    let mut t = [(0u128, 0u128); FIELDS.len()];
    let mut i = 0;
    while i < FIELDS.len() {
        let f = FIELDS[i].as_bytes();
        assert!(f.len() < 16);
        let mut k = 0;
        while k <= f.len() {
            let byte = if k < f.len() { f[k] } else { b'"' };
            t[i].0 |= (byte as u128) << (8 * k);
            t[i].1 |= 0xff << (8 * k);
            k += 1;
        }
        i += 1;
    }
    t
};

/// The known field whose name and closing quote start `rest` (the bytes after a key's opening
/// quote), if `rest` has 16 bytes to compare: a field name is recognised without scanning it
/// as a string, by its first byte and one 16-byte comparison per candidate. `None` says only
/// "not recognised here": the caller then scans the key as any string.
#[inline]
fn known_key(rest: &[u8]) -> Option<usize> {
    let head = u128::from_le_bytes(rest.get(..16)?.try_into().ok()?);
    let candidates: &[usize] = match rest[0] {
        b't' => &[0],
        b'e' => &[1, 6, 7, 13],
        b's' => &[2, 4, 10, 16],
        b'l' => &[3],
        b'q' => &[5],
        b'i' => &[8],
        b'o' => &[9],
        b'u' => &[11],
        b'c' => &[12],
        b'r' => &[14, 15],
        _ => &[],
    };
    candidates.iter().copied().find(|&i| {
        let (pattern, mask) = KEY_PATTERNS[i];
        head & mask == pattern
    })
}

/// Position of the first `"`, `\\` or control character (< 0x20) in `b`, 8 bytes at a time
/// (SWAR): a byte is flagged by the classic "has a zero byte" test on `w ^ '"'`, `w ^ '\\'`
/// and "has a byte below 0x20". A borrow can flag a byte only above a byte that truly matches,
/// so the lowest flagged byte is the first match. Strings are most of an event's bytes.
#[inline]
fn string_end(b: &[u8]) -> Option<usize> {
    const ONES: u64 = 0x0101_0101_0101_0101;
    const HIGH: u64 = 0x8080_8080_8080_8080;
    let zero = |v: u64| v.wrapping_sub(ONES) & !v & HIGH;
    let mut i = 0;
    while let Some(chunk) = b.get(i..i + 8) {
        let mut w = [0u8; 8];
        w.copy_from_slice(chunk);
        let w = u64::from_le_bytes(w);
        let hit = zero(w ^ (ONES * u64::from(b'"')))
            | zero(w ^ (ONES * u64::from(b'\\')))
            | (w.wrapping_sub(ONES * 0x20) & !w & HIGH);
        if hit != 0 {
            return Some(i + (hit.trailing_zeros() / 8) as usize);
        }
        i += 8;
    }
    b[i..]
        .iter()
        .position(|&c| c == b'"' || c == b'\\' || c < 0x20)
        .map(|p| i + p)
}

struct Scan<'a> {
    b: &'a [u8],
    i: usize,
}

impl<'a> Scan<'a> {
    #[inline]
    fn peek(&self) -> Option<u8> {
        self.b.get(self.i).copied()
    }

    #[inline]
    fn next(&mut self) -> Option<u8> {
        let c = self.peek()?;
        self.i += 1;
        Some(c)
    }

    #[inline]
    fn eat(&mut self, c: u8) -> Option<()> {
        (self.next()? == c).then_some(())
    }

    /// JSON whitespace.
    #[inline]
    fn ws(&mut self) {
        while let Some(b' ' | b'\n' | b'\t' | b'\r') = self.peek() {
            self.i += 1;
        }
    }

    /// A string without escapes or control characters, borrowed (`None` otherwise).
    #[inline]
    fn string(&mut self, json: &'a str) -> Option<&'a str> {
        self.eat(b'"')?;
        let start = self.i;
        let rest = &self.b[start..];
        let len = string_end(rest)?;
        if rest[len] != b'"' {
            return None;
        }
        self.i = start + len + 1;
        // `"` is ASCII, so both ends are on character boundaries.
        json.get(start..start + len)
    }

    /// An object key: `Some(index)` of a known field ([`FIELDS`]), `None` for another name;
    /// the outer `None` where [`Scan::string`] fails.
    #[inline]
    fn key(&mut self, json: &'a str) -> Option<Option<usize>> {
        if self.peek()? == b'"' {
            if let Some(idx) = known_key(&self.b[self.i + 1..]) {
                self.i += FIELDS[idx].len() + 2;
                return Some(Some(idx));
            }
        }
        self.string(json).map(field_index)
    }

    #[inline]
    fn null(&mut self) -> Option<()> {
        if self.b.get(self.i..self.i + 4)? == b"null" {
            self.i += 4;
            Some(())
        } else {
            None
        }
    }

    #[inline]
    fn opt_string(&mut self, json: &'a str) -> Option<Option<&'a str>> {
        match self.peek()? {
            b'"' => self.string(json).map(Some),
            b'n' => self.null().map(|()| None),
            _ => None,
        }
    }

    #[inline]
    fn opt_bool(&mut self) -> Option<Option<bool>> {
        let rest = self.b.get(self.i..)?;
        if rest.starts_with(b"true") {
            self.i += 4;
            Some(Some(true))
        } else if rest.starts_with(b"false") {
            self.i += 5;
            Some(Some(false))
        } else {
            self.null().map(|()| None)
        }
    }

    /// A number token in JSON's grammar, unparsed.
    fn number_token(&mut self, json: &'a str) -> Option<&'a str> {
        let b = self.b;
        let start = self.i;
        let mut i = start;
        if b.get(i) == Some(&b'-') {
            i += 1;
        }
        let digits = |i: &mut usize| {
            let s = *i;
            while b.get(*i).is_some_and(u8::is_ascii_digit) {
                *i += 1;
            }
            *i - s
        };
        match b.get(i)? {
            b'0' => i += 1,
            b'1'..=b'9' => {
                digits(&mut i);
            }
            _ => return None,
        }
        if b.get(i) == Some(&b'.') {
            i += 1;
            if digits(&mut i) == 0 {
                return None;
            }
        }
        if let Some(b'e' | b'E') = b.get(i) {
            i += 1;
            if let Some(b'+' | b'-') = b.get(i) {
                i += 1;
            }
            if digits(&mut i) == 0 {
                return None;
            }
        }
        self.i = i;
        json.get(start..i)
    }

    /// `null` or a number, as serde_json reads it into an `f64`.
    #[inline]
    fn opt_number(&mut self, json: &'a str) -> Option<Option<f64>> {
        if self.peek()? == b'n' {
            return self.null().map(|()| None);
        }
        let t = self.number_token(json)?;
        // Plain non-negative integers of up to 15 digits are exact in an f64, as serde_json
        // makes them; anything else goes through serde_json's own number parser.
        if t.len() <= 15 && t.bytes().all(|c| c.is_ascii_digit()) {
            let v = t
                .bytes()
                .fold(0u64, |acc, c| acc * 10 + u64::from(c - b'0'));
            return Some(Some(v as f64));
        }
        serde_json::from_str::<f64>(t).ok().map(Some)
    }

    /// `null` or a number whose value is not needed (`unit_price`): true when a number. A
    /// token without an exponent and under 300 characters is always within `f64` range, so
    /// only others are given to `serde_json` to learn whether it accepts them.
    #[inline]
    fn opt_number_unused(&mut self, json: &'a str) -> Option<bool> {
        if self.peek()? == b'n' {
            return self.null().map(|()| false);
        }
        let t = self.number_token(json)?;
        if t.len() < 300 && !t.bytes().any(|c| c == b'e' || c == b'E') {
            return Some(true);
        }
        serde_json::from_str::<f64>(t).ok().map(|_| true)
    }

    /// The value of a field outside the contract: any scalar (objects and arrays are left to
    /// the visitor).
    #[inline]
    fn skip_scalar(&mut self, json: &'a str) -> Option<()> {
        match self.peek()? {
            b'"' => self.string(json).map(|_| ()),
            b'n' => self.null(),
            b't' | b'f' => self.opt_bool().map(|_| ()),
            _ => self.number_token(json).map(|_| ()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn visitor(json: &str) -> Option<String> {
        let cursor = FieldCursor::default();
        let mut de = serde_json::Deserializer::from_str(json);
        let ev = RawSeed { cursor: &cursor }.deserialize(&mut de).ok()?;
        de.end().ok()?;
        Some(format!("{ev:?}"))
    }

    fn flat(json: &str) -> Option<RawEvent<'_>> {
        let mut ev = RawEvent::default();
        parse_flat(json, &mut ev).map(|()| ev)
    }

    fn check(json: &str) -> bool {
        match flat(json) {
            Some(ev) => {
                assert_eq!(Some(format!("{ev:?}")), visitor(json), "{json}");
                true
            }
            None => false,
        }
    }

    proptest! {
        /// The 8-bytes-at-a-time search finds what a byte-by-byte search finds, wherever the
        /// stop bytes fall (both ends of a word, next to UTF-8 and 0x7f/0x80 bytes).
        #[test]
        fn string_end_is_the_first_stop_byte(
            b in proptest::collection::vec(
                prop_oneof![
                    1 => Just(b'"'),
                    1 => Just(b'\\'),
                    1 => Just(0x1fu8),
                    1 => Just(0x00u8),
                    2 => Just(0x20u8),
                    2 => prop_oneof![Just(0x7fu8), Just(0x80u8), Just(0xffu8), Just(b'!'), Just(b']')],
                    40 => 0x21u8..0x7f,
                ],
                0..40,
            )
        ) {
            let naive = b.iter().position(|&c| c == b'"' || c == b'\\' || c < 0x20);
            prop_assert_eq!(string_end(&b), naive);
        }
    }

    #[test]
    fn known_keys_are_the_fields() {
        for (i, f) in FIELDS.iter().enumerate() {
            let rest = format!("{f}\":0,\"padding_to_16_bytes\":1}}");
            assert_eq!(known_key(rest.as_bytes()), Some(i), "{f}");
            assert_eq!(field_index(f), Some(i));
            // A longer name with the same start, and the name cut short: not this field.
            let longer = format!("{f}x\":0,\"padding_to_16_bytes\":1}}");
            assert_eq!(known_key(longer.as_bytes()), None, "{f}x");
            let shorter = format!("{}\":0,\"padding_to_16_bytes\":1}}", &f[..f.len() - 1]);
            assert_ne!(known_key(shorter.as_bytes()), Some(i), "{shorter}");
        }
        assert_eq!(
            known_key(b"type\":1}"),
            None,
            "under 16 bytes: left to the scan"
        );
    }

    #[test]
    fn flat_scanner_agrees_with_the_visitor() {
        for ok in [
            r#"{"event_id":"e1","type":"sale","sku":"K","location":"S","qty":1,"event_time":"2026-01-01T00:00:00Z","unit_price":19.99,"register":"R-01"}"#,
            r#" { "type" : null , "qty" : -0 , "in_stock" : false, "x": 1e400, "y": [1] } "#,
            r#"{"qty":123456789012345678,"in_stock":true,"z":true,"w":null}"#,
            r#"{"qty":1.5e2,"unit_price":null}"#,
            r#"{"unit_price":-0.5}"#,
            r#"{"unit_price":12345678901234567890.25}"#,
            r#"{"unit_price":2.5E+3}"#,
            "{}",
        ] {
            let fast = check(ok);
            assert_eq!(fast, !ok.contains('['), "{ok}");
        }
        for bail in [
            r#"{"type":"sa\"le"}"#,
            r#"{"type":"a","type":"b"}"#,
            r#"{"qty":"1"}"#,
            r#"{"qty":01}"#,
            r#"{"qty":1e400}"#,
            r#"{"unit_price":1e400}"#,
            r#"{"unit_price":"19.99"}"#,
            r#"{"unit_price":.5}"#,
            r#"{"in_stock":1}"#,
            r#"{"a":1,}"#,
            r#"{"a":1} x"#,
            r#"{"a":{"b":1}}"#,
            "{\"type\":\"a\tb\"}",
            r#"{"qty":1."#,
            "[]",
            "",
        ] {
            assert!(flat(bail).is_none(), "{bail}");
        }
        // Out of `f64` range without an exponent: the visitor's error, not the fast path.
        let huge = format!("{{\"unit_price\":{}}}", "9".repeat(400));
        assert!(flat(&huge).is_none());
        assert!(visitor(&huge).is_none());
        let long = format!("{{\"unit_price\":{}.5}}", "9".repeat(290));
        assert!(check(&long));
    }

    fn value() -> impl Strategy<Value = String> {
        prop_oneof![
            "[a-zA-Z0-9 _:.-]{0,12}".prop_map(|s| format!("\"{s}\"")),
            "[a-z\\\\\"\t\u{e9}]{0,4}".prop_map(|s| format!("\"{s}\"")),
            "-?[0-9]{1,20}(\\.[0-9]{0,6})?([eE][+-]?[0-9]{0,4})?",
            Just("null".to_string()),
            Just("true".to_string()),
            Just("false".to_string()),
            Just("[]".to_string()),
            Just("{}".to_string()),
            Just("nul".to_string()),
        ]
    }

    fn key() -> impl Strategy<Value = String> {
        prop_oneof![
            proptest::sample::select(FIELDS.to_vec()).prop_map(str::to_string),
            "[a-z_]{1,6}",
            Just("ty\\u0070e".to_string()),
        ]
    }

    proptest! {
        #[test]
        fn flat_scanner_never_disagrees(
            fields in proptest::collection::vec((key(), value(), "[ \t\n]{0,2}"), 0..10),
            tail in prop_oneof![Just(""), Just(" "), Just(","), Just("x")],
        ) {
            let body: Vec<String> =
                fields.iter().map(|(k, v, w)| format!("{w}\"{k}\"{w}:{w}{v}{w}")).collect();
            let json = format!("{{{}}}{tail}", body.join(","));
            check(&json);
        }
    }
}
