//! Which event types an input topic may carry. An event of another type is refused
//! (`schema_violation`), not applied under the wrong input's clock: the watermark of a shard
//! follows each input topic separately.

use crate::event::EventType;
use crate::reject::{RejectReason, Rejection};

use super::DecodedBatch;

/// The event types one input topic may carry (a set: a topic may carry several).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TopicTypes {
    /// Bit `code` set for every allowed [`EventType`] code.
    mask: u64,
    /// The allowed types' names joined with `/`, for the rejection detail.
    names: String,
}

impl TopicTypes {
    /// The topic carries the types named `names` (the contract's `type` values, e.g.
    /// `["sale"]`); an unknown name is an error that names it.
    pub fn from_names<'a>(names: impl IntoIterator<Item = &'a str>) -> Result<Self, String> {
        let mut types = Vec::new();
        for n in names {
            types.push(EventType::parse(n).ok_or_else(|| format!("{n:?} is not an event type"))?);
        }
        if types.is_empty() {
            return Err("an input topic must carry at least one event type".into());
        }
        Ok(Self::of(&types))
    }

    /// The topic carries `types`.
    pub fn of(types: &[EventType]) -> Self {
        let mut t = TopicTypes {
            mask: 0,
            names: String::new(),
        };
        for &ty in types {
            if t.allows(ty as u8) {
                continue;
            }
            t.mask |= 1 << (ty as u8);
            if !t.names.is_empty() {
                t.names.push('/');
            }
            t.names.push_str(ty.as_str());
        }
        t
    }

    /// The topic's type, if it carries exactly one.
    pub fn only(&self) -> Option<EventType> {
        if self.mask.count_ones() != 1 {
            return None;
        }
        EventType::from_code(self.mask.trailing_zeros() as u8)
    }

    /// Whether an event of type code `code` may be on the topic.
    pub fn allows(&self, code: u8) -> bool {
        code < 64 && self.mask & (1 << code) != 0
    }

    /// Splits `batch`'s rows: those the topic may carry go to `rows` (row numbers, in order),
    /// the others to `rejects`.
    pub fn check(&self, batch: &DecodedBatch, rows: &mut Vec<u32>, rejects: &mut Vec<Rejection>) {
        let columns = batch.columns();
        for (row, &kind) in columns.kind.values().iter().enumerate() {
            if self.allows(kind) {
                rows.push(row as u32);
                continue;
            }
            rejects.push(Rejection {
                index: columns.index.value(row),
                reason: RejectReason::SchemaViolation,
                detail: format!(
                    "a {} event on the {} topic, which carries {} events",
                    EventType::from_code(kind).map_or("unknown", EventType::as_str),
                    self.names,
                    self.names
                ),
            });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::decode::{DecodeLimits, Decoder, KeyPolicy, MessageRef};

    fn batch(types: &[&str]) -> DecodedBatch {
        let bodies: Vec<String> = types
            .iter()
            .enumerate()
            .map(|(i, t)| {
                let extra = match *t {
                    "shipment" => r#","shipment_id":"sh1","eta":"2026-01-02T00:00:00Z""#,
                    "receipt" => r#","shipment_id":"sh1""#,
                    "availability" => r#","in_stock":false"#,
                    _ => "",
                };
                let qty = if *t == "availability" { "" } else { r#","qty":1"# };
                format!(
                    r#"{{"event_id":"e{i}","type":"{t}","sku":"A","location":"L","event_time":"2026-01-01T00:00:00Z"{qty}{extra}}}"#
                )
            })
            .collect();
        let msgs: Vec<MessageRef<'_>> = bodies
            .iter()
            .map(|v| MessageRef {
                key: None,
                value: v.as_bytes(),
            })
            .collect();
        let now = crate::decode::parse_time("now", "2026-01-01T00:00:01Z").unwrap();
        let mut decoder = Decoder::new(DecodeLimits::default(), KeyPolicy::Derive);
        let mut rejects = Vec::new();
        let b = decoder.decode(msgs, now, &mut rejects);
        assert!(rejects.is_empty(), "{rejects:?}");
        b
    }

    #[test]
    fn events_of_another_type_are_refused_naming_both_types() {
        let b = batch(&["sale", "receipt", "sale"]);
        let (mut rows, mut rejects) = (Vec::new(), Vec::new());
        TopicTypes::from_names(["sale"])
            .unwrap()
            .check(&b, &mut rows, &mut rejects);
        assert_eq!(rows, [0, 2]);
        assert_eq!(rejects.len(), 1);
        assert_eq!(rejects[0].index, 1);
        assert_eq!(rejects[0].reason, RejectReason::SchemaViolation);
        assert_eq!(
            rejects[0].detail,
            "a receipt event on the sale topic, which carries sale events"
        );
    }

    #[test]
    fn a_topic_may_carry_several_types() {
        let b = batch(&["sale", "receipt", "availability"]);
        let (mut rows, mut rejects) = (Vec::new(), Vec::new());
        let t = TopicTypes::from_names(["receipt", "availability"]).unwrap();
        t.check(&b, &mut rows, &mut rejects);
        assert_eq!(rows, [1, 2]);
        assert_eq!(
            rejects[0].detail,
            "a sale event on the receipt/availability topic, which carries \
             receipt/availability events"
        );
        assert!(TopicTypes::from_names(["sales"]).is_err());
        assert!(TopicTypes::from_names([]).is_err());
    }
}
