//! Decode and validation: every bad-input kind yields exactly one rejection with its reason.

use super::*;

const NOW: i64 = 1_764_000_000_000; // 2025-11-24T16:00:00Z

fn dec() -> Decoder {
    Decoder::new(DecodeLimits::default(), KeyPolicy::Derive)
}

fn one(value: &[u8]) -> Result<(), (RejectReason, String)> {
    dec().check(MessageRef { key: None, value }, NOW, |_| ())
}

fn reason(value: &str) -> RejectReason {
    match one(value.as_bytes()) {
        Ok(()) => panic!("accepted: {value}"),
        Err((r, d)) => {
            assert!(!d.is_empty() && d.len() < 400, "detail {d:?}");
            r
        }
    }
}

const SALE: &str = r#"{"event_id":"e1","type":"sale","sku":"K","location":"S","qty":2,"event_time":"2025-11-24T10:15:00Z","unit_price":19.99}"#;

#[test]
fn contract_examples_decode() {
    let ok = [
        SALE,
        r#"{"event_id":"e2","type":"shipment","shipment_id":"SH1","sku":"K","origin":"DC-01","location":"S","qty":24,"event_time":"2025-11-24T06:00:00Z","eta":"2025-11-26T06:00:00Z"}"#,
        r#"{"event_id":"e3","type":"receipt","shipment_id":"SH1","sku":"K","location":"S","qty":24,"event_time":"2025-11-24T07:40:00Z"}"#,
        r#"{"event_id":"e4","type":"receipt","sku":"K","location":"S","qty":0.25,"event_time":"2025-11-24T07:40:00.123+01:00"}"#,
        r#"{"event_id":"e5","type":"availability","sku":"K","location":"S","in_stock":false,"event_time":"2025-11-24T08:30:00Z","source":"shelf_scan"}"#,
        r#"{"event_id":"e6","type":"sale","sku":"K\u00e9","location":"S","qty":1,"event_time":"2025-11-24T10:15:00Z","extra":{"nested":[1,2,3]}}"#,
    ];
    let mut d = dec();
    let mut rejects = Vec::new();
    let b = d.decode(
        ok.iter().map(|s| MessageRef {
            key: None,
            value: s.as_bytes(),
        }),
        NOW,
        &mut rejects,
    );
    assert!(rejects.is_empty(), "{rejects:?}");
    assert_eq!(b.len(), ok.len());
    let c = b.columns();
    assert_eq!(c.kind.value(1), EventType::Shipment as u8);
    assert_eq!(c.eta.value(1) - c.event_time.value(1), 48 * 3_600_000);
    assert!(c.eta.is_null(0));
    assert!(c.qty.is_null(4));
    assert!(!c.in_stock.value(4));
    assert_eq!(c.sku.value(5), "Ké", "escaped strings are unescaped");
    assert_eq!(d.stats().unknown_fields, 1);
    assert_eq!(
        c.event_time.value(3),
        1_763_966_400_123,
        "offsets are normalised to UTC"
    );
}

#[test]
fn bad_inputs_each_get_their_reason() {
    use RejectReason::*;
    let long = "x".repeat(129);
    let cases: Vec<(String, RejectReason)> = vec![
        (String::new(), InvalidJson),
        ("{\"event_id\":".into(), InvalidJson),
        ("not json".into(), InvalidJson),
        (format!("\u{feff}{SALE}"), InvalidJson),
        (format!("{SALE} trailing"), InvalidJson),
        (format!("{}{}", "[".repeat(200), "]".repeat(200)), SchemaViolation),
        ("[1,2]".into(), SchemaViolation),
        (SALE.replace("\"qty\":2", "\"qty\":\"2\""), SchemaViolation),
        (SALE.replace("\"qty\":2", "\"qty\":null"), SchemaViolation),
        (SALE.replace("\"qty\":2,", ""), SchemaViolation),
        (SALE.replace("\"sku\":\"K\"", "\"sku\":null"), SchemaViolation),
        (SALE.replace("\"sku\":\"K\"", "\"sku\":7"), SchemaViolation),
        (SALE.replace("\"type\":\"sale\"", "\"type\":\"refund\""), UnknownType),
        (SALE.replace("\"type\":\"sale\",", ""), SchemaViolation),
        (SALE.replace("\"qty\":2", "\"qty\":2,\"qty\":3"), SchemaViolation),
        (SALE.replace("\"qty\":2", "\"qty\":0"), InvalidValue),
        (SALE.replace("\"qty\":2", "\"qty\":-1"), InvalidValue),
        (SALE.replace("\"qty\":2", "\"qty\":1e400"), InvalidValue),
        (SALE.replace("\"qty\":2", "\"qty\":NaN"), InvalidJson),
        (SALE.replace("\"sku\":\"K\"", &format!("\"sku\":\"{long}\"")), InvalidValue),
        (SALE.replace("\"sku\":\"K\"", "\"sku\":\"\""), InvalidValue),
        (SALE.replace("\"sku\":\"K\"", "\"sku\":\"K\\u0007\""), InvalidValue),
        (SALE.replace("\"sku\":\"K\"", "\"sku\":\"K|L\""), InvalidValue),
        (SALE.replace("2025-11-24T10:15:00Z", "2035-01-01T00:00:00Z"), FutureEvent),
        (SALE.replace("2025-11-24T10:15:00Z", "1970-01-01T00:00:00Z"), AncientEvent),
        (SALE.replace("2025-11-24T10:15:00Z", "yesterday"), InvalidValue),
        (
            r#"{"event_id":"e2","type":"shipment","shipment_id":"SH1","sku":"K","location":"S","qty":24,"event_time":"2025-11-24T06:00:00Z","eta":"2025-11-23T06:00:00Z"}"#.into(),
            InvalidValue,
        ),
        (
            r#"{"event_id":"e2","type":"shipment","sku":"K","location":"S","qty":24,"event_time":"2025-11-24T06:00:00Z","eta":"2025-11-25T06:00:00Z"}"#.into(),
            SchemaViolation,
        ),
        (
            r#"{"event_id":"e5","type":"availability","sku":"K","location":"S","event_time":"2025-11-24T08:30:00Z"}"#.into(),
            SchemaViolation,
        ),
        (SALE.replace("\"unit_price\":19.99", &format!("\"pad\":\"{}\"", "x".repeat(70_000))), TooLarge),
    ];
    for (input, want) in &cases {
        assert_eq!(
            reason(input),
            *want,
            "input {:?}",
            &input[..input.len().min(120)]
        );
    }
    // Invalid UTF-8 inside a string.
    let mut bytes = SALE.as_bytes().to_vec();
    let at = SALE.find("\"K\"").unwrap() + 1;
    bytes[at] = 0xff;
    assert_eq!(one(&bytes).unwrap_err().0, InvalidJson);
}

#[test]
fn one_bad_record_never_fails_its_batch() {
    let msgs = [SALE.as_bytes(), b"{oops", SALE.as_bytes()];
    let mut rejects = Vec::new();
    let b = dec().decode(
        msgs.iter().map(|v| MessageRef {
            key: None,
            value: v,
        }),
        NOW,
        &mut rejects,
    );
    assert_eq!(b.len(), 2);
    assert_eq!(rejects.len(), 1);
    assert_eq!(rejects[0].index, 1);
    assert_eq!(b.columns().index.value(1), 2);
}

#[test]
fn key_must_match_body_when_required() {
    let mut d = Decoder::new(DecodeLimits::default(), KeyPolicy::Require);
    let v = SALE.as_bytes();
    let ok = d.check(
        MessageRef {
            key: Some(b"S|K"),
            value: v,
        },
        NOW,
        |_| (),
    );
    assert!(ok.is_ok());
    for key in [None, Some(&b"S|X"[..]), Some(b"SK"), Some(b"S|K|")] {
        let r = d.check(MessageRef { key, value: v }, NOW, |_| ());
        assert_eq!(r.unwrap_err().0, RejectReason::Miskeyed, "key {key:?}");
    }
}

#[test]
fn deep_nesting_in_an_ignored_field_is_skipped_without_recursion() {
    let deep = format!("{}{}", "[".repeat(100_000), "]".repeat(100_000));
    let v = SALE.replace("\"unit_price\":19.99", &format!("\"extra\":{deep}"));
    let mut d = Decoder::new(
        DecodeLimits {
            max_payload_bytes: 1 << 20,
            ..DecodeLimits::default()
        },
        KeyPolicy::Derive,
    );
    assert!(d
        .check(
            MessageRef {
                key: None,
                value: v.as_bytes()
            },
            NOW,
            |_| ()
        )
        .is_ok());
    assert_eq!(d.stats().unknown_fields, 1);
    // Nested where a value is expected: a schema violation, found at the first bracket.
    let v = SALE.replace("\"qty\":2", &format!("\"qty\":{deep}"));
    let r = d.check(
        MessageRef {
            key: None,
            value: v.as_bytes(),
        },
        NOW,
        |_| (),
    );
    assert_eq!(r.unwrap_err().0, RejectReason::SchemaViolation);
}

proptest::proptest! {
    /// The fast timestamp path agrees with chrono wherever it answers.
    #[test]
    fn fast_time_parser_agrees_with_chrono(
        ms in -62_000_000_000_000i64..253_000_000_000_000,
        digits in 0usize..10,
        mutate in proptest::option::of((0usize..30, 0u8..128)),
    ) {
        let t = chrono::DateTime::from_timestamp_millis(ms).unwrap();
        let mut s = t.format("%Y-%m-%dT%H:%M:%S").to_string();
        if digits > 0 {
            let nanos = format!("{:09}", t.timestamp_subsec_nanos() + (ms.rem_euclid(7) as u32));
            s.push('.');
            s.push_str(&nanos[..digits]);
        }
        s.push('Z');
        if let Some((at, byte)) = mutate {
            if at < s.len() && byte.is_ascii() {
                let mut v = s.clone().into_bytes();
                v[at] = byte;
                s = String::from_utf8(v).unwrap();
            }
        }
        let chrono_ms = chrono::DateTime::parse_from_rfc3339(&s).ok().map(|t| t.timestamp_millis());
        if let Some(fast) = parse_utc_fast(s.as_bytes()) {
            proptest::prop_assert_eq!(Some(fast), chrono_ms, "{}", s);
        }
        proptest::prop_assert_eq!(parse_time("t", &s).ok(), chrono_ms, "{}", s);
    }
}
