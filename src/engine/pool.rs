//! Pooled (hierarchical) state of a shard: for every location, every SKU and every item
//! category of the shard's keys, the sums of what those keys say about availability and demand
//! ([`PoolSums`]), and the same over the whole shard. The model reads a key's pools with the
//! key itself left out ([`Pools::others`]): how the other products of the store, the same
//! product in the other stores and the products of its category everywhere are doing.
//!
//! A SKU's category is the first [`CATEGORY_LEVEL`] levels of its category path in the item
//! table (`master`), read when the shard first sees the SKU; a SKU without a category (or not
//! in the table) is in no category pool, and its key reads an empty one. A change of the item
//! table rebuilds the pools ([`Pools::rebuild`], from `Shard::set_master`).
//!
//! The pools are kept beside the key rows, not in them: one [`PoolSums`] per location, per SKU
//! and per category in small side tables indexed by dense group ids, so a key's state does not
//! grow. A key's part of its pools is a pure function of its row ([`contribution`]); the shard
//! removes the part before an event and adds it back after, so the pools are always the sums of
//! the rows' parts. They are therefore not persisted: a restored shard rebuilds them from its rows
//! ([`Pools::rebuild`]) and gets the very sums it had (integers, so the order of the
//! additions does not matter): replay = run.
//!
//! A shard sees only its partition's keys, so its pools are estimated from those (see
//! `docs/model.md`, "Pooled features").

use hashbrown::HashMap;

use crate::master::MasterData;
use crate::model::features::{DemandStats, PoolInputs, PoolSums, CATEGORY_LEVEL};
use crate::state::columns::{flag, KeyRow, Rows, DAYS, NO_HOUR};
use crate::state::keys::KeyDict;

pub use crate::state::order::Groups;

/// The group id of "no category".
const NO_CATEGORY: u32 = u32::MAX;

/// The first `level` levels of a `/`-separated category path (all of it if it has fewer),
/// `None` for an empty one.
pub fn category_prefix(path: &str, level: usize) -> Option<&str> {
    let end = path
        .match_indices('/')
        .nth(level.saturating_sub(1))
        .map_or(path.len(), |(i, _)| i);
    let prefix = &path[..end];
    (!prefix.is_empty()).then_some(prefix)
}

type Ids = HashMap<Box<str>, u32, foldhash::fast::FixedState>;

/// The pools of one shard.
#[derive(Debug, Clone, Default)]
pub struct Pools {
    /// Hours of the horizon's window yesterday ([`crate::model::features::window_hours`]).
    window: u32,
    location_ids: Ids,
    sku_ids: Ids,
    category_ids: Ids,
    locations: Vec<PoolSums>,
    skus: Vec<PoolSums>,
    categories: Vec<PoolSums>,
    /// Category id of each SKU id ([`NO_CATEGORY`]: none).
    sku_category: Vec<u32>,
    total: PoolSums,
}

/// What the key of `row` adds to each of its pools (`window`: hours of the horizon's window
/// yesterday): its availability history if it has one, and its demand today and usual daily
/// demand once it has a complete day, as of its last event.
#[inline]
pub fn contribution(row: &KeyRow, window: u32) -> PoolSums {
    let mut s = availability(row, window);
    if row.ring_hour != NO_HOUR {
        let day = i64::from(row.ring_hour).div_euclid(24);
        let complete = (day - i64::from(row.first_hour).div_euclid(24)).clamp(0, DAYS as i64 - 1);
        if complete > 0 {
            // Today's bucket, then the complete days before it, newest first (one remainder,
            // not one per day).
            let mut i = day.rem_euclid(DAYS as i64) as usize;
            s.today = fixed(f64::from(row.daily[i]));
            let mut past = 0.0f64;
            for _ in 0..complete {
                i = if i == 0 { DAYS - 1 } else { i - 1 };
                past += f64::from(row.daily[i]);
            }
            s.usual = fixed(past / complete as f64);
        }
    }
    s
}

/// [`contribution`] of a row whose demand statistics are `d`, the row's own
/// [`KeyRow::demand`] (same days, same sums, same bits): the daily ring is not walked again.
#[inline]
pub fn contribution_with(row: &KeyRow, window: u32, d: &DemandStats) -> PoolSums {
    let mut s = availability(row, window);
    if row.ring_hour != NO_HOUR && d.complete_days > 0 {
        s.today = fixed(d.today);
        s.usual = fixed(d.past / f64::from(d.complete_days));
    }
    s
}

/// The availability part of [`contribution`].
#[inline]
fn availability(row: &KeyRow, window: u32) -> PoolSums {
    let mut s = PoolSums::default();
    if row.flags & flag::HAS_OBS != 0 {
        let hours24 = row.oos_hours & 0x00ff_ffff;
        s.keys = 1;
        s.oos_hours = hours24.count_ones();
        s.oos_window = (hours24 >> (24 - window)).count_ones();
        s.oos_now = u32::from(row.flags & flag::IN_STOCKOUT != 0);
        s.oos_days = (row.oos_days & 0xfe).count_ones();
    }
    s
}

/// A demand in [`PoolSums`]' fixed point (negative demand, from returns, counts as none).
#[inline]
fn fixed(q: f64) -> i64 {
    // `v.round() as i64` for `v >= 0` (NaN: 0) without the libm call: the cast truncates, and
    // below 2^53 the fraction `v - t` is exact; above, `v` is whole; past `i64::MAX` both
    // saturate.
    let v = q.max(0.0) * PoolSums::QTY_SCALE;
    let t = v as i64;
    t.saturating_add(i64::from(v - t as f64 >= 0.5))
}

impl Pools {
    /// Empty pools for a horizon of `horizon_hours`.
    pub fn new(horizon_hours: u32) -> Self {
        Pools {
            window: crate::model::features::window_hours(i64::from(horizon_hours) * 3_600_000),
            ..Pools::default()
        }
    }

    /// The pools of the given rows (a restored shard's): every key's [`contribution`] added,
    /// the SKUs' categories from `master`'s item table.
    pub fn rebuild(horizon_hours: u32, rows: &Rows, keys: &KeyDict, master: &MasterData) -> Self {
        let mut p = Pools::new(horizon_hours);
        for (r, row) in rows.as_slice().iter().enumerate() {
            let g = p.groups(keys.location(r as u32), keys.sku(r as u32), master);
            let c = p.contribution(row);
            p.update(g, &PoolSums::default(), &c);
        }
        p
    }

    /// These pools under another item table (`Shard::set_master`): the same location and SKU
    /// ids (admitted events carry them, see [`Groups`]), the SKUs' categories read anew from
    /// `master`, every sum rebuilt from the rows. Equal, but for the ids of the categories, to
    /// [`Pools::rebuild`] with `master`.
    pub fn recategorised(&self, rows: &Rows, keys: &KeyDict, master: &MasterData) -> Self {
        let mut p = Pools {
            window: self.window,
            location_ids: self.location_ids.clone(),
            sku_ids: self.sku_ids.clone(),
            locations: vec![PoolSums::default(); self.locations.len()],
            skus: vec![PoolSums::default(); self.skus.len()],
            ..Pools::default()
        };
        let mut skus: Vec<(&str, u32)> = self.sku_ids.iter().map(|(n, &i)| (&**n, i)).collect();
        skus.sort_unstable_by_key(|&(_, i)| i);
        for (sku, _) in skus {
            let c = category_of(master, sku).map_or(NO_CATEGORY, |c| {
                id_of(&mut p.category_ids, &mut p.categories, c)
            });
            p.sku_category.push(c);
        }
        for (r, row) in rows.as_slice().iter().enumerate() {
            let g = p.groups(keys.location(r as u32), keys.sku(r as u32), master);
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

    /// The key's part of its pools from its demand statistics (see [`contribution_with`]).
    #[inline]
    pub fn contribution_with(&self, row: &KeyRow, d: &DemandStats) -> PoolSums {
        contribution_with(row, self.window, d)
    }

    /// The group ids of a key; a location, SKU or category seen for the first time gets the
    /// next id (and its name is stored: the one allocation, once per group). A new SKU's
    /// category is looked up in `master`'s item table.
    #[inline]
    pub fn groups(&mut self, location: &str, sku: &str, master: &MasterData) -> Groups {
        let location = id_of(&mut self.location_ids, &mut self.locations, location);
        let sku_id = id_of(&mut self.sku_ids, &mut self.skus, sku);
        if sku_id as usize == self.sku_category.len() {
            let c = category_of(master, sku).map_or(NO_CATEGORY, |c| {
                id_of(&mut self.category_ids, &mut self.categories, c)
            });
            self.sku_category.push(c);
        }
        Groups {
            location,
            sku: sku_id,
        }
    }

    /// The category id of the key's SKU ([`NO_CATEGORY`]: none).
    #[inline]
    fn category(&self, g: Groups) -> u32 {
        self.sku_category[g.sku as usize]
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
        let category = self.category(g);
        if let Some(s) = self.categories.get_mut(category as usize) {
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
            category: self
                .categories
                .get(self.category(g) as usize)
                .map_or_else(PoolSums::default, |c| c.minus(own)),
            shard: self.total.minus(own),
        }
    }

    /// As [`Pools::others`], by name and without adding groups (a key whose first event is
    /// not applied yet: its location, SKU or category may be new, an empty pool).
    pub fn others_of(
        &self,
        location: &str,
        sku: &str,
        master: &MasterData,
        own: &PoolSums,
    ) -> PoolInputs {
        let of = |ids: &Ids, sums: &[PoolSums], name: &str| {
            ids.get(name)
                .map_or_else(PoolSums::default, |&i| sums[i as usize].minus(own))
        };
        let category = match self.sku_ids.get(sku) {
            Some(&i) => self
                .categories
                .get(self.sku_category[i as usize] as usize)
                .map_or_else(PoolSums::default, |c| c.minus(own)),
            None => category_of(master, sku).map_or_else(PoolSums::default, |c| {
                of(&self.category_ids, &self.categories, c)
            }),
        };
        PoolInputs {
            location: of(&self.location_ids, &self.locations, location),
            sku: of(&self.sku_ids, &self.skus, sku),
            category,
            shard: self.total.minus(own),
        }
    }

    /// Locations, SKUs and categories pooled.
    pub fn groups_len(&self) -> (usize, usize, usize) {
        (self.locations.len(), self.skus.len(), self.categories.len())
    }

    /// Heap bytes of the pools (the sums, the name-to-id maps and their names, the SKUs'
    /// categories).
    pub fn heap_bytes(&self) -> usize {
        fn map_bytes(m: &Ids) -> usize {
            // A slot (the name's box and the id) and a control byte per bucket, and the names.
            m.capacity() * (std::mem::size_of::<(Box<str>, u32)>() + 1)
                + m.keys().map(|k| k.len()).sum::<usize>()
        }
        let sums = std::mem::size_of::<PoolSums>();
        (self.locations.capacity() + self.skus.capacity() + self.categories.capacity()) * sums
            + self.sku_category.capacity() * std::mem::size_of::<u32>()
            + map_bytes(&self.location_ids)
            + map_bytes(&self.sku_ids)
            + map_bytes(&self.category_ids)
    }
}

/// The pooled category of `sku` in `master`'s item table, if it has one.
fn category_of<'a>(master: &'a MasterData, sku: &str) -> Option<&'a str> {
    category_prefix(master.item(sku)?.category.as_deref()?, CATEGORY_LEVEL)
}

fn id_of(ids: &mut Ids, sums: &mut Vec<PoolSums>, name: &str) -> u32 {
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
    fn fixed_point_rounds_as_round_does() {
        let mut next = crate::xorshift(7);
        let edge = [
            0.0,
            -0.0,
            -1.0,
            0.0004999,
            0.0005,
            0.0015,
            2.5e-3,
            0.5f64.next_down() / 1000.0,
            1e13,
            9.3e15,
            1e300,
            f64::INFINITY,
            f64::NEG_INFINITY,
            f64::NAN,
        ];
        let random = (0..100_000).map(|_| {
            let bits = next();
            // Whole thousandths and halves, and arbitrary quantities.
            match bits % 3 {
                0 => (bits >> 12) as f64 % 1e6 / 1000.0,
                1 => ((bits >> 12) % 1_000_000) as f64 / 2000.0,
                _ => f64::from(f32::from_bits((bits >> 32) as u32)),
            }
        });
        for q in edge.into_iter().chain(random) {
            let want = (q.max(0.0) * PoolSums::QTY_SCALE).round() as i64;
            assert_eq!(fixed(q), want, "{q:e}");
        }
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

    /// Items A (category `fresh/dairy`, pooled as `fresh`), C (`fresh/bakery/bread`) and D
    /// (`fresh/fish`), also `fresh`, and B (no category).
    fn master() -> MasterData {
        let mut m = MasterData::default();
        m.apply_item("A", Some(br#"{"sku":"A","category":"fresh/dairy"}"#))
            .unwrap();
        m.apply_item("C", Some(br#"{"sku":"C","category":"fresh/bakery/bread"}"#))
            .unwrap();
        m.apply_item("D", Some(br#"{"sku":"D","category":"fresh/fish"}"#))
            .unwrap();
        m.apply_item("B", Some(br#"{"sku":"B"}"#)).unwrap();
        m
    }

    #[test]
    fn a_category_is_a_prefix_of_the_path() {
        assert_eq!(category_prefix("fresh/dairy/milk", 1), Some("fresh"));
        assert_eq!(category_prefix("fresh/dairy/milk", 2), Some("fresh/dairy"));
        assert_eq!(
            category_prefix("fresh/dairy/milk", 3),
            Some("fresh/dairy/milk")
        );
        assert_eq!(category_prefix("fresh", 2), Some("fresh"));
        assert_eq!(category_prefix("", 1), None);
        assert_eq!(category_prefix("/x", 1), None);
    }

    #[test]
    fn others_leave_the_key_out_and_a_rebuild_equals_the_updates() {
        let master = master();
        let mut keys = KeyDict::default();
        let mut rows = Rows::default();
        let mut p = Pools::new(24);
        let specs = [
            ("L1", "A", 0b1),
            ("L1", "B", 0b11),
            ("L2", "A", 0b111),
            ("L2", "C", 0b1_1111),
        ];
        for (loc, sku, bits) in specs {
            keys.get_or_insert(loc, sku);
            rows.push_key();
            let g = p.groups(loc, sku, &master);
            let new = p.contribution(&row_with(bits, false));
            p.update(g, &PoolSums::default(), &new);
            *rows.get_mut(rows.len() - 1) = row_with(bits, false);
        }
        // L1|A: location L1 without it is L1|B, SKU A without it is L2|A, category `fresh`
        // without it is L2|A and L2|C.
        let g = p.groups("L1", "A", &master);
        let own = p.contribution(rows.get(0));
        let o = p.others(g, &own);
        assert_eq!((o.location.keys, o.location.oos_hours), (1, 2));
        assert_eq!((o.sku.keys, o.sku.oos_hours), (1, 3));
        assert_eq!((o.category.keys, o.category.oos_hours), (2, 8));
        assert_eq!((o.shard.keys, o.shard.oos_hours), (3, 10));
        // By name (a key not applied yet), the same.
        assert_eq!(p.others_of("L1", "A", &master, &own), o);
        // A SKU new to the shard, of a known category: that category's pool.
        let n = p.others_of("L3", "D", &master, &PoolSums::default());
        assert_eq!(n.category.keys, 3);
        // An update moves the key's part; the others do not see the key's change.
        let changed = row_with(0b1111, true);
        let new = p.contribution(&changed);
        p.update(g, &own, &new);
        *rows.get_mut(0) = changed;
        assert_eq!(p.others(g, &new), o);
        // L1|B has no category: an empty category pool, the rest as usual.
        let g2 = p.groups("L1", "B", &master);
        let o2 = p.others(g2, &p.contribution(rows.get(1)));
        assert_eq!(o2.location.oos_hours, 4);
        assert_eq!(o2.category, PoolSums::default());
        assert_eq!(o2.shard.keys, 3);
        // A rebuild from the rows gives the same sums.
        let r = Pools::rebuild(24, &rows, &keys, &master);
        assert_eq!(r.locations, p.locations);
        assert_eq!(r.skus, p.skus);
        assert_eq!(r.categories, p.categories);
        assert_eq!(r.total, p.total);
        assert_eq!(p.groups_len(), (2, 3, 1));
        assert!(p.heap_bytes() > 0);
        // Without the item table, no category pools.
        let bare = Pools::rebuild(24, &rows, &keys, &MasterData::default());
        assert_eq!(bare.groups_len(), (2, 3, 0));
        assert_eq!(bare.total, p.total);
    }
}
