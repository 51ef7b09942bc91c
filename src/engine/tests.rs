//! Engine-level tests: the shard against the state's own transition and persistence code.

use super::{EngineConfig, Shard};
use crate::event::EventType;
use crate::state::columns::{flag, HOUR_MS};
use crate::state::inbound::KeySchedule;
use crate::state::order::PendingEvent;

/// A copy of a key's row with a standalone schedule, advanced event by event, stays equal to
/// the shard's own row (apart from what scoring and the alert policy write) and gives the
/// same model inputs.
#[test]
fn a_copied_row_with_a_vec_schedule_follows_the_shard() {
    let t0 = 1_767_225_600_000i64;
    let mut s = Shard::new(EngineConfig::default());
    let h = i64::from(s.config().model.horizon_hours) * HOUR_MS;
    let (row, _) = s.state.keys.get_or_insert("S1", "K1");
    s.state.rows.push_key();
    let mut next = crate::xorshift(0x2545_f491_4f6c_dd1du64);
    let mut t = t0;
    let events: Vec<PendingEvent> = (0..1200u64)
        .map(|n| {
            t += (next() % 4) as i64 * HOUR_MS / 2 + 1;
            let dice = next() % 100;
            let (kind, qty) = match dice {
                0..=49 => (EventType::Sale, (next() % 3) as f64),
                50..=61 => (EventType::Availability, 0.0),
                62..=71 => (EventType::Receipt, (next() % 40) as f64),
                72..=79 => (EventType::InventoryCount, (next() % 30) as f64),
                80..=87 => (EventType::Adjustment, (next() % 9) as f64 - 4.0),
                _ => (EventType::Shipment, (next() % 30) as f64),
            };
            PendingEvent {
                time_ms: t,
                id_hash: n + 1,
                row,
                kind,
                in_stock: next() % 3 == 0,
                qty,
                eta_ms: t + ((next() % 30) as i64 - 5) * 24 * HOUR_MS,
                shipment_hash: next() % 24,
                // Shipments: one in four cancels.
                sub: u8::from(next() % 4 == 0),
                source: n,
            }
        })
        .collect();
    let (first, second) = events.split_at(200);
    let mut alerts = Vec::new();
    for e in first {
        assert!(s.state.order.accept_from(0, *e).is_ok());
    }
    s.advance(true, None, &mut alerts);
    let mut copy = *s.state.rows.get(row as usize);
    let mut sched = s.state.inbound.schedule_of(copy.inbound_head);
    let mut opened = 0;
    for e in second {
        assert!(s.state.order.accept_from(0, *e).is_ok());
        s.advance(true, None, &mut alerts);
        copy.apply(e, &mut sched);
        let mine = *s.state.rows.get(row as usize);
        let theirs = mine.inputs(
            &KeySchedule::new(&mut s.state.inbound, row, mine.inbound_head),
            e.time_ms,
            h,
        );
        assert_eq!(copy.inputs(&sched, e.time_ms, h), theirs, "{e:?}");
        // What scoring and the alert policy write is the shard's business.
        copy.risk = mine.risk;
        copy.alert_risk = mine.alert_risk;
        copy.last_alert_ms = mine.last_alert_ms;
        copy.last_sample_hour = mine.last_sample_hour;
        copy.inbound_head = mine.inbound_head;
        assert_eq!(copy.count_gap, mine.count_gap);
        copy.flags = (copy.flags & !flag::RISK_OPEN) | (mine.flags & flag::RISK_OPEN);
        assert_eq!(copy, mine, "{e:?}");
        assert_eq!(
            sched.shipments(),
            s.state.inbound.schedule_of(mine.inbound_head).shipments()
        );
        opened = opened.max(sched.shipments().len());
    }
    assert!(opened > 3, "the schedule was exercised ({opened})");
    let c = s.counters();
    assert!(c.shipments_dropped > 0 && c.stockouts > 0, "{c:?}");
    assert!(c.shipments_refused > 0, "closed shipments were revised");
    assert!(c.counts_below_book > 0 && c.phantom_units > 0.0);
}
