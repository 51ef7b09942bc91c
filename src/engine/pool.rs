//! Pooled (hierarchical) state of a shard: for every location and every SKU of the shard's
//! keys, the sums of what those keys say about availability and demand ([`PoolSums`]), and the
//! same over the whole shard. The model reads a key's pools with the key itself left out
//! ([`Pools::others`]): how the other products of the store and the same product in the other
//! stores are doing.
//!
//! The pools are kept beside the key rows, not in them: one [`PoolSums`] per location and per
//! SKU in small side tables indexed by dense group ids, so a key's state does not grow. A key's
//! part of its pools is a pure function of its row ([`contribution`]); the shard removes the
//! part before an event and adds it back after, so the pools are always the sums of the rows'
//! parts. They are therefore not persisted: a restored shard rebuilds them from its rows
//! ([`Pools::rebuild`]) and gets the very sums it had (integers, so the order of the
//! additions does not matter): replay = run.
//!
//! A shard sees only its partition's keys, so its pools are estimated from those (see
//! `docs/model.md`, "Pooled features").

use hashbrown::HashMap;

use crate::model::features::{PoolInputs, PoolSums};
use crate::state::columns::{flag, KeyRow, Rows, DAYS, NO_HOUR};
use crate::state::keys::KeyDict;

pub use crate::state::order::Groups;

/// The pools of one shard.
#[derive(Debug, Clone, Default)]
pub struct Pools {
    /// Hours of the horizon's window yesterday ([`crate::model::features::window_hours`]).
    window: u32,
    location_ids: HashMap<Box<str>, u32, foldhash::fast::FixedState>,
    sku_ids: HashMap<Box<str>, u32, foldhash::fast::FixedState>,
    locations: Vec<PoolSums>,
    skus: Vec<PoolSums>,
    total: PoolSums,
}

/// What the key of `row` adds to each of its pools (`window`: hours of the horizon's window
/// yesterday): its availability history if it has one, and its demand today and usual daily
/// demand once it has a complete day, as of its last event.
#[inline]
pub fn contribution(row: &KeyRow, window: u32) -> PoolSums {
    let mut s = PoolSums::default();
    if row.flags & flag::HAS_OBS != 0 {
        let hours24 = row.oos_hours & 0x00ff_ffff;
        s.keys = 1;
        s.oos_hours = hours24.count_ones();
        s.oos_window = (hours24 >> (24 - window)).count_ones();
        s.oos_now = u32::from(row.flags & flag::IN_STOCKOUT != 0);
        s.oos_days = (row.oos_days & 0xfe).count_ones();
    }
    if row.ring_hour != NO_HOUR {
        let day = i64::from(row.ring_hour).div_euclid(24);
        let complete = (day - i64::from(row.first_hour).div_euclid(24)).clamp(0, DAYS as i64 - 1);
        if complete > 0 {
            let bucket = |d: i64| f64::from(row.daily[d.rem_euclid(DAYS as i64) as usize]);
            let past: f64 = (1..=complete).map(|k| bucket(day - k)).sum();
            s.today = fixed(bucket(day));
            s.usual = fixed(past / complete as f64);
        }
    }
    s
}

/// A demand in [`PoolSums`]' fixed point (negative demand, from returns, counts as none).
#[inline]
fn fixed(q: f64) -> i64 {
    (q.max(0.0) * PoolSums::QTY_SCALE).round() as i64
}

impl Pools {
    /// Empty pools for a horizon of `horizon_hours`.
    pub fn new(horizon_hours: u32) -> Self {
        Pools {
            window: crate::model::features::window_hours(i64::from(horizon_hours) * 3_600_000),
            ..Pools::default()
        }
    }

    /// The pools of the given rows (a restored shard's): every key's [`contribution`] added.
    pub fn rebuild(horizon_hours: u32, rows: &Rows, keys: &KeyDict) -> Self {
        let mut p = Pools::new(horizon_hours);
        for (r, row) in rows.as_slice().iter().enumerate() {
            let g = p.groups(keys.location(r as u32), keys.sku(r as u32));
            let c = p.contribution(row);
            p.update(g, &PoolSums::default(), &c);
        }
        p
    }

    /// The key's part of its pools (see [`contribution`]).
    #[inline]
    pub fn contribution(&self, row: &KeyRow) -> PoolSums {
        contribution(row, self.window)
    }

    /// The group ids of a key; a location or SKU seen for the first time gets the next id (and
    /// its name is stored: the one allocation, once per group).
    #[inline]
    pub fn groups(&mut self, location: &str, sku: &str) -> Groups {
        Groups {
            location: id_of(&mut self.location_ids, &mut self.locations, location),
            sku: id_of(&mut self.sku_ids, &mut self.skus, sku),
        }
    }

    /// Replaces a key's part `old` by `new` in its pools.
    #[inline]
    pub fn update(&mut self, g: Groups, old: &PoolSums, new: &PoolSums) {
        if old == new {
            return;
        }
        for s in [
            &mut self.locations[g.location as usize],
            &mut self.skus[g.sku as usize],
            &mut self.total,
        ] {
            s.sub(old);
            s.add(new);
        }
    }

    /// The key's pools without the key itself (`own`: its current part). `g` must be resolved
    /// ([`Pools::groups`]).
    #[inline]
    pub fn others(&self, g: Groups, own: &PoolSums) -> PoolInputs {
        PoolInputs {
            location: self.locations[g.location as usize].minus(own),
            sku: self.skus[g.sku as usize].minus(own),
            shard: self.total.minus(own),
        }
    }

    /// As [`Pools::others`], by name and without adding groups (a key whose first event is
    /// not applied yet: its location or SKU may be new, an empty pool).
    pub fn others_of(&self, location: &str, sku: &str, own: &PoolSums) -> PoolInputs {
        let of = |ids: &HashMap<Box<str>, u32, foldhash::fast::FixedState>,
                  sums: &[PoolSums],
                  name: &str| {
            ids.get(name)
                .map_or_else(PoolSums::default, |&i| sums[i as usize].minus(own))
        };
        PoolInputs {
            location: of(&self.location_ids, &self.locations, location),
            sku: of(&self.sku_ids, &self.skus, sku),
            shard: self.total.minus(own),
        }
    }

    /// Locations and SKUs pooled.
    pub fn groups_len(&self) -> (usize, usize) {
        (self.locations.len(), self.skus.len())
    }

    /// Heap bytes of the pools (the sums, the name-to-id maps and their names).
    pub fn heap_bytes(&self) -> usize {
        fn map_bytes(m: &HashMap<Box<str>, u32, foldhash::fast::FixedState>) -> usize {
            // A slot (the name's box and the id) and a control byte per bucket, and the names.
            m.capacity() * (std::mem::size_of::<(Box<str>, u32)>() + 1)
                + m.keys().map(|k| k.len()).sum::<usize>()
        }
        let sums = std::mem::size_of::<PoolSums>();
        (self.locations.capacity() + self.skus.capacity()) * sums
            + map_bytes(&self.location_ids)
            + map_bytes(&self.sku_ids)
    }
}

fn id_of(
    ids: &mut HashMap<Box<str>, u32, foldhash::fast::FixedState>,
    sums: &mut Vec<PoolSums>,
    name: &str,
) -> u32 {
    if let Some(&id) = ids.get(name) {
        return id;
    }
    let id = sums.len() as u32;
    ids.insert(name.into(), id);
    sums.push(PoolSums::default());
    id
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row_with(oos_hours: u32, in_stockout: bool) -> KeyRow {
        let mut r = KeyRow::default();
        r.roll(24 * 10 + 5);
        r.first_hour = 24 * 8;
        r.flags |= flag::HAS_OBS;
        if in_stockout {
            r.flags |= flag::IN_STOCKOUT;
        }
        r.oos_hours = oos_hours;
        r.oos_days = 0b110;
        r.daily[(10 % DAYS as i64) as usize] = 1.5;
        r.daily[(9 % DAYS as i64) as usize] = 2.0;
        r.daily[(8 % DAYS as i64) as usize] = 4.0;
        r
    }

    #[test]
    fn a_contribution_counts_the_rows_history() {
        let r = row_with(0b1011 | 1 << 23 | 1 << 30, true);
        let c = contribution(&r, 6);
        assert_eq!(c.keys, 1);
        // Bit 30 is older than a day.
        assert_eq!(c.oos_hours, 4);
        // The window yesterday at H = 6: hours 18..=23 ago.
        assert_eq!(c.oos_window, 1);
        assert_eq!(c.oos_now, 1);
        assert_eq!(c.oos_days, 2);
        assert_eq!(c.today, 1500);
        assert_eq!(c.usual, 3000);
        // Without an observation there is no availability part.
        let mut r = r;
        r.flags &= !flag::HAS_OBS;
        assert_eq!(contribution(&r, 6).keys, 0);
        assert_eq!(contribution(&r, 6).oos_hours, 0);
        assert_eq!(contribution(&KeyRow::default(), 6), PoolSums::default());
    }

    #[test]
    fn others_leave_the_key_out_and_a_rebuild_equals_the_updates() {
        let mut keys = KeyDict::default();
        let mut rows = Rows::default();
        let mut p = Pools::new(24);
        let specs = [("L1", "A", 0b1), ("L1", "B", 0b11), ("L2", "A", 0b111)];
        for (loc, sku, bits) in specs {
            keys.get_or_insert(loc, sku);
            rows.push_key();
            let g = p.groups(loc, sku);
            let new = p.contribution(&row_with(bits, false));
            p.update(g, &PoolSums::default(), &new);
            *rows.get_mut(rows.len() - 1) = row_with(bits, false);
        }
        // L1|A: location L1 without it is L1|B, SKU A without it is L2|A.
        let g = p.groups("L1", "A");
        let own = p.contribution(rows.get(0));
        let o = p.others(g, &own);
        assert_eq!((o.location.keys, o.location.oos_hours), (1, 2));
        assert_eq!((o.sku.keys, o.sku.oos_hours), (1, 3));
        assert_eq!((o.shard.keys, o.shard.oos_hours), (2, 5));
        // An update moves the key's part; the others do not see the key's change.
        let changed = row_with(0b1111, true);
        let new = p.contribution(&changed);
        p.update(g, &own, &new);
        *rows.get_mut(0) = changed;
        assert_eq!(p.others(g, &new), o);
        let g2 = p.groups("L1", "B");
        assert_eq!(
            p.others(g2, &p.contribution(rows.get(1)))
                .location
                .oos_hours,
            4
        );
        // A rebuild from the rows gives the same sums.
        let r = Pools::rebuild(24, &rows, &keys);
        assert_eq!(r.locations, p.locations);
        assert_eq!(r.skus, p.skus);
        assert_eq!(r.total, p.total);
        assert_eq!(p.groups_len(), (2, 2));
        assert!(p.heap_bytes() > 0);
    }
}
