//! Contract v2 acceptance property: for any interleaving of every event type for a few keys
//! (sales, shipments with revisions and cancellations, receipts, availability, inventory
//! counts, adjustments), arriving in any order within the allowed lateness and in any batch
//! sizes, on hand and in transit after the watermark equal an independent ledger (counts set,
//! adjustments add, receipts add, sales subtract; shipments open, revise and cancel in
//! transit, receipts close them, closed ones refuse revisions), and the state and alerts do not
//! depend on the arrival order.

use std::collections::{BTreeMap, BTreeSet};

use arrow::array::{Array, Float64Array, RecordBatch, StringArray};
use proptest::prelude::*;
use stockwatch::alert::{rfc3339_ms, Alert};
use stockwatch::decode::{DecodeLimits, Decoder, KeyPolicy, MessageRef};
use stockwatch::engine::persist;
use stockwatch::engine::{EngineConfig, Shard};
use stockwatch::reject::{RejectReason, Rejection};

const T0: i64 = 1_767_225_600_000; // 2026-01-01T00:00:00Z
const NOW: i64 = T0 + 400 * 86_400_000;
const H: i64 = 3_600_000;
const REASONS: [&str; 7] = [
    "shrink",
    "damage",
    "expiry",
    "customer_return",
    "transfer_in",
    "transfer_out",
    "correction",
];

#[derive(Debug, Clone)]
enum Kind {
    Sale,
    /// Open or revise (`cancel`: cancel) shipment `ship`.
    Shipment {
        ship: u8,
        cancel: bool,
        eta_h: i64,
    },
    /// A receipt naming shipment `ship` (`None`: none).
    Receipt {
        ship: Option<u8>,
    },
    Availability(bool),
    Count {
        cycle: bool,
    },
    Adjustment {
        reason: usize,
    },
}

#[derive(Debug, Clone)]
struct Ev {
    id: usize,
    key: u8,
    t: i64,
    /// Units in quarters (exact in binary floating point); signed for adjustments.
    qty: f64,
    kind: Kind,
}

impl Ev {
    fn json(&self) -> String {
        let (loc, sku) = (format!("S{}", self.key), "K1");
        let head = format!(
            r#""event_id":"v{}","sku":"{sku}","location":"{loc}","event_time":"{}""#,
            self.id,
            rfc3339_ms(self.t)
        );
        match &self.kind {
            Kind::Sale => format!(r#"{{"type":"sale",{head},"qty":{}}}"#, self.qty),
            Kind::Shipment {
                ship,
                cancel,
                eta_h,
            } => format!(
                r#"{{"type":"shipment",{head},"shipment_id":"sh{ship}","qty":{},"eta":"{}"{}}}"#,
                self.qty,
                rfc3339_ms(self.t + eta_h * H),
                if *cancel {
                    r#","status":"cancelled""#
                } else if self.id % 2 == 0 {
                    r#","status":"open""#
                } else {
                    ""
                }
            ),
            Kind::Receipt { ship } => format!(
                r#"{{"type":"receipt",{head},"qty":{}{}}}"#,
                self.qty,
                ship.map_or(String::new(), |s| format!(r#","shipment_id":"sh{s}""#))
            ),
            Kind::Availability(in_stock) => {
                format!(r#"{{"type":"availability",{head},"in_stock":{in_stock}}}"#)
            }
            Kind::Count { cycle } => format!(
                r#"{{"type":"inventory_count",{head},"qty":{},"source":"{}"}}"#,
                self.qty,
                if *cycle { "cycle_count" } else { "snapshot" }
            ),
            Kind::Adjustment { reason } => format!(
                r#"{{"type":"adjustment",{head},"qty":{},"reason":"{}","reference_id":"r{}"}}"#,
                self.qty, REASONS[*reason], self.id
            ),
        }
    }
}

fn kind() -> impl Strategy<Value = (Kind, f64)> {
    let quarters = |lo: i32, hi: i32| (lo..hi).prop_map(|q| f64::from(q) / 4.0);
    prop_oneof![
        4 => quarters(1, 40).prop_map(|q| (Kind::Sale, q)),
        3 => (0u8..5, prop::bool::weighted(0.3), 1i64..150, quarters(1, 400))
            .prop_map(|(ship, cancel, eta_h, q)| (Kind::Shipment { ship, cancel, eta_h }, q)),
        2 => (prop::option::weighted(0.8, 0u8..5), quarters(1, 400))
            .prop_map(|(ship, q)| (Kind::Receipt { ship }, q)),
        1 => any::<bool>().prop_map(|b| (Kind::Availability(b), 0.0)),
        2 => (any::<bool>(), quarters(0, 300)).prop_map(|(cycle, q)| (Kind::Count { cycle }, q)),
        2 => (0usize..7, quarters(1, 80), any::<bool>())
            .prop_map(|(reason, q, neg)| (Kind::Adjustment { reason }, if neg { -q } else { q })),
    ]
}

/// Events with distinct times (so the ledger's order is the engine's event-time order), over
/// about three days: no shipment gets overdue.
fn stream(max: usize) -> impl Strategy<Value = Vec<Ev>> {
    prop::collection::vec((kind(), 0u8..3, 1i64..3 * H), 1..max).prop_map(|v| {
        let mut t = T0;
        v.into_iter()
            .enumerate()
            .map(|(id, ((kind, qty), key, gap))| {
                t += gap;
                Ev {
                    id,
                    key,
                    t,
                    qty,
                    kind,
                }
            })
            .collect()
    })
}

#[derive(Debug, Default, Clone, PartialEq)]
struct Book {
    on_hand: f64,
    /// Shipment id → open quantity (`None`: closed).
    shipments: BTreeMap<u8, Option<f64>>,
}

impl Book {
    fn in_transit(&self) -> f64 {
        self.shipments.values().flatten().sum()
    }
}

/// The independent ledger, in event-time order.
fn ledger(events: &[Ev]) -> BTreeMap<String, Book> {
    let mut sorted = events.to_vec();
    sorted.sort_by_key(|e| e.t);
    let mut books: BTreeMap<String, Book> = BTreeMap::new();
    for e in &sorted {
        let b = books.entry(format!("S{}", e.key)).or_default();
        match &e.kind {
            Kind::Sale => b.on_hand -= e.qty,
            Kind::Receipt { ship } => {
                b.on_hand += e.qty;
                if let Some(s) = ship {
                    if let Some(open @ Some(_)) = b.shipments.get_mut(s) {
                        *open = None;
                    }
                }
            }
            Kind::Count { .. } => b.on_hand = e.qty,
            Kind::Adjustment { .. } => b.on_hand += e.qty,
            Kind::Availability(_) => {}
            Kind::Shipment { ship, cancel, .. } => match (b.shipments.get(ship), cancel) {
                (Some(None), _) => {} // closed: refused
                (_, true) => {
                    b.shipments.insert(*ship, None);
                }
                (_, false) => {
                    b.shipments.insert(*ship, Some(e.qty));
                }
            },
        }
    }
    books
}

fn cfg() -> EngineConfig {
    let mut c = EngineConfig::default();
    c.model.horizon_hours = 24;
    c.model.label_sample_hours = 1;
    c
}

struct Run {
    shard: Shard,
    alerts: Vec<Alert>,
    rejects: Vec<Rejection>,
}

fn run(jsons: &[String], batch: usize) -> Run {
    let mut dec = Decoder::new(DecodeLimits::default(), KeyPolicy::Derive);
    let mut shard = Shard::new(cfg());
    let (mut alerts, mut rejects) = (Vec::new(), Vec::new());
    for chunk in jsons.chunks(batch.max(1)) {
        let b = dec.decode(
            chunk.iter().map(|s| MessageRef {
                key: None,
                value: s.as_bytes(),
            }),
            NOW,
            &mut rejects,
        );
        shard.process(&b, u64::from, None, &mut rejects, &mut alerts);
    }
    shard.advance(true, None, &mut alerts);
    Run {
        shard,
        alerts,
        rejects,
    }
}

/// The state without what depends on arrival order: remembered ids' order, pending events'
/// sources, and whether a closed shipment's revision was refused on arrival or when applied.
fn canonical(s: &Shard) -> RecordBatch {
    let b = persist::shard_to_batch(s, 0).unwrap();
    let keep: Vec<usize> = (0..b.num_columns())
        .filter(|&i| {
            !matches!(
                b.schema().field(i).name().as_str(),
                "seen_ids" | "pending_events"
            )
        })
        .collect();
    let b = b.project(&keep).unwrap();
    let mut meta = persist::shard_meta(&b).unwrap();
    let c = &mut meta["counters"];
    let refused = c["shipment_closed"].as_u64().unwrap() + c["shipments_refused"].as_u64().unwrap();
    c["shipment_closed"] = refused.into();
    c["shipments_refused"] = 0.into();
    let md = [(
        "stockwatch.shards".to_string(),
        serde_json::json!([meta]).to_string(),
    )]
    .into();
    let schema = std::sync::Arc::new(b.schema().as_ref().clone().with_metadata(md));
    RecordBatch::try_new(schema, b.columns().to_vec()).unwrap()
}

fn alert_set(a: &[Alert]) -> BTreeSet<String> {
    a.iter()
        .map(|a| serde_json::to_string(a).unwrap())
        .collect()
}

fn column<'a, T: 'static>(b: &'a RecordBatch, name: &str) -> &'a T {
    b.column_by_name(name)
        .unwrap()
        .as_any()
        .downcast_ref::<T>()
        .unwrap()
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 128, ..ProptestConfig::default() })]

    #[test]
    fn on_hand_and_in_transit_follow_the_ledger_in_any_order(
        events in stream(160),
        jitter in prop::collection::vec(0i64..3_599_000, 1..50),
        batch in 1usize..40,
    ) {
        // Arrival: sorted by (t + jitter), a permutation within the allowed lateness (1 h).
        let mut idx: Vec<usize> = (0..events.len()).collect();
        idx.sort_by_key(|&i| (events[i].t + jitter[i % jitter.len()], i));
        let arrived: Vec<String> = idx.iter().map(|&i| events[i].json()).collect();
        let in_order: Vec<String> = events.iter().map(Ev::json).collect();
        let a = run(&in_order, 7);
        let b = run(&arrived, batch);
        for r in a.rejects.iter().chain(&b.rejects) {
            prop_assert_eq!(r.reason, RejectReason::ShipmentClosed, "{:?}", r);
        }
        let want = ledger(&events);
        for run in [&a, &b] {
            let s = persist::shard_to_batch(&run.shard, 0).unwrap();
            let loc: &StringArray = column(&s, "location");
            let on_hand: &Float64Array = column(&s, "on_hand");
            let in_transit: &Float64Array = column(&s, "in_transit");
            prop_assert_eq!(s.num_rows(), want.len());
            for i in 0..s.num_rows() {
                let w = &want[loc.value(i)];
                prop_assert_eq!(on_hand.value(i), w.on_hand, "on hand of {}", loc.value(i));
                prop_assert_eq!(in_transit.value(i), w.in_transit(), "in transit of {}: {:?}", loc.value(i), w);
            }
        }
        // Refused revisions are refused whichever way they arrive, with the same state.
        prop_assert_eq!(canonical(&a.shard), canonical(&b.shard));
        prop_assert_eq!(alert_set(&a.alerts), alert_set(&b.alerts));
    }
}
