//! The fuzz target's property test (runs in `cargo test`; `fuzz/` runs the same harness under
//! libFuzzer): valid events, mutated events and arbitrary bytes, with right, wrong and missing
//! keys, through decode → validate → apply → score. Every message is applied, pending or
//! rejected exactly once, nothing panics, every risk is in [0, 1].

use proptest::prelude::*;
use stockwatch::engine::exercise::exercise;
use stockwatch::engine::EngineConfig;

const NOW: i64 = 1_767_225_600_000; // 2026-01-01T00:00:00Z

/// Well-formed events of every type on a few keys (the mutation seeds).
fn seed(kind: u8, loc: u8, sku: u8, minute: u16, qty: u16) -> (String, String) {
    let (l, s) = (format!("L{loc}"), format!("K{sku}"));
    let t = format!(
        "2025-12-31T{:02}:{:02}:00Z",
        10 + minute / 60 % 12,
        minute % 60
    );
    let eta = format!("2026-01-0{}T08:00:00Z", 1 + minute % 5);
    let id = format!("e{kind}-{loc}-{sku}-{minute}");
    let body = match kind % 4 {
        0 => format!(
            r#"{{"event_id":"{id}","type":"sale","sku":"{s}","location":"{l}","qty":{qty},"event_time":"{t}"}}"#
        ),
        1 => format!(
            r#"{{"event_id":"{id}","type":"shipment","shipment_id":"SH{sku}","sku":"{s}","location":"{l}","qty":{qty},"event_time":"{t}","eta":"{eta}"}}"#
        ),
        2 => format!(
            r#"{{"event_id":"{id}","type":"receipt","shipment_id":"SH{sku}","sku":"{s}","location":"{l}","qty":{qty},"event_time":"{t}"}}"#
        ),
        _ => format!(
            r#"{{"event_id":"{id}","type":"availability","sku":"{s}","location":"{l}","in_stock":{},"event_time":"{t}"}}"#,
            qty % 2 == 0
        ),
    };
    (format!("{l}|{s}"), body)
}

#[derive(Debug, Clone)]
enum Mutation {
    None,
    Flip(usize, u8),
    Truncate(usize),
    Insert(usize, Vec<u8>),
    Replace(Vec<u8>),
}

#[derive(Debug, Clone)]
enum KeyChoice {
    Right,
    Missing,
    Other(Vec<u8>),
}

fn message() -> impl Strategy<Value = ((u8, u8, u8, u16, u16), Mutation, KeyChoice)> {
    let mutation = prop_oneof![
        4 => Just(Mutation::None),
        2 => (any::<usize>(), any::<u8>()).prop_map(|(i, b)| Mutation::Flip(i, b)),
        1 => any::<usize>().prop_map(Mutation::Truncate),
        1 => (any::<usize>(), proptest::collection::vec(any::<u8>(), 1..8))
            .prop_map(|(i, v)| Mutation::Insert(i, v)),
        1 => proptest::collection::vec(any::<u8>(), 0..64).prop_map(Mutation::Replace),
    ];
    let key = prop_oneof![
        8 => Just(KeyChoice::Right),
        1 => Just(KeyChoice::Missing),
        1 => proptest::collection::vec(any::<u8>(), 0..12).prop_map(KeyChoice::Other),
    ];
    ((0u8..4, 0u8..3, 0u8..3, 0u16..600, 0u16..30), mutation, key)
}

fn build(m: &((u8, u8, u8, u16, u16), Mutation, KeyChoice)) -> (Option<Vec<u8>>, Vec<u8>) {
    let ((kind, loc, sku, minute, qty), mutation, key) = m;
    let (k, body) = seed(*kind, *loc, *sku, *minute, *qty);
    let mut v = body.into_bytes();
    match mutation {
        Mutation::None => {}
        Mutation::Flip(i, b) => {
            let n = v.len();
            v[i % n] ^= b | 1;
        }
        Mutation::Truncate(i) => v.truncate(i % v.len()),
        Mutation::Insert(i, bytes) => {
            let at = i % (v.len() + 1);
            v.splice(at..at, bytes.iter().copied());
        }
        Mutation::Replace(bytes) => v = bytes.clone(),
    }
    let key = match key {
        KeyChoice::Right => Some(k.into_bytes()),
        KeyChoice::Missing => None,
        KeyChoice::Other(b) => Some(b.clone()),
    };
    (key, v)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn every_message_is_applied_pending_or_rejected_once(
        msgs in proptest::collection::vec(message(), 1..120),
        batch in 1usize..40,
    ) {
        let owned: Vec<(Option<Vec<u8>>, Vec<u8>)> = msgs.iter().map(build).collect();
        let refs: Vec<(Option<&[u8]>, &[u8])> =
            owned.iter().map(|(k, v)| (k.as_deref(), v.as_slice())).collect();
        let (acc, shard) = exercise(&refs, batch, NOW, EngineConfig::default());
        prop_assert!(acc.balanced(), "{acc:?}");
        // Bad messages add no keys: only the 9 keys of the seeds can exist.
        prop_assert!(shard.keys() <= 9, "keys {}", shard.keys());
    }
}
