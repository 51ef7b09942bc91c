//! One hour of the simulated world: arrivals, and at open stores customers, shelf scans,
//! cycle counts, shrink, damage and returns, in time order.

use super::*;

impl World {
    /// Applies every key's arrivals, and at open stores its customers, scans and shrink.
    pub(super) fn run_hour(
        &mut self,
        out: &mut Vec<Pending>,
        hour_start: i64,
        hour: usize,
        weekday: usize,
    ) {
        let hour_end = hour_start + HOUR_MS;
        let mut due = std::mem::take(&mut self.due);
        while let Some(Reverse(next)) = self.arrivals.peek() {
            if next.time_ms >= hour_end {
                break;
            }
            due.push(*next);
            self.arrivals.pop();
        }
        due.sort_unstable_by_key(|a| (a.key, a.time_ms, a.shipment));
        let skus = self.names.skus();
        let dcs = self.names.dcs();
        let mut next_due = 0;
        for loc in 0..self.names.locations() {
            let store = loc.checked_sub(dcs).map(|s| s as usize);
            // Contract v2 stores keep their local time.
            let (hour, weekday) = match self.offset_ms(loc) {
                0 => (hour, weekday),
                offset => (
                    hour_of_day(hour_start + offset),
                    crate::sim::format::weekday(hour_start + offset),
                ),
            };
            let hour_factor = store.map_or(0.0, |s| self.demand.hour_factor(s, hour, weekday));
            if hour_factor <= 0.0 {
                // Closed (or a DC): only deliveries happen.
                while next_due < due.len() && due[next_due].key / skus == loc {
                    self.arrive(out, due[next_due]);
                    next_due += 1;
                }
                continue;
            }
            for sku in 0..skus {
                let key = loc * skus + sku;
                let first = next_due;
                while next_due < due.len() && due[next_due].key == key {
                    next_due += 1;
                }
                let sku_factor = store.map_or(hour_factor, |s| {
                    self.demand
                        .sku_hour_factor(s, sku as usize, hour, hour_factor)
                });
                self.open_key_hour(out, loc, sku, hour_start, sku_factor, &due[first..next_due]);
            }
        }
        due.clear();
        self.due = due;
    }

    /// A delivery: stock and book go up, the shipment leaves transit.
    pub(super) fn arrive(&mut self, out: &mut Vec<Pending>, arrival: Arrival) {
        let skus = self.names.skus();
        let (loc, sku) = (arrival.key / skus, arrival.key % skus);
        let key = &mut self.keys[arrival.key as usize];
        let book_was_empty = key.book <= 0;
        key.on_hand += arrival.received_milli;
        key.book += arrival.received_milli;
        key.in_transit -= arrival.shipped_milli;
        self.note_stock(arrival.key as usize, arrival.time_ms);
        let body = Body::Receipt {
            shipment: Some(arrival.shipment),
            qty_milli: arrival.received_milli,
        };
        self.emit(out, loc, sku, arrival.time_ms, body);
        if book_was_empty && loc >= self.names.dcs() {
            let flag_ms = arrival.time_ms + self.rng.random_range(1..1_000);
            let body = Body::Availability {
                in_stock: true,
                source: Source::StoreSystem,
            };
            self.emit(out, loc, sku, flag_ms, body);
        }
    }

    /// One key of an open store for one hour: deliveries, customers (censored by true
    /// stock), a possible shelf scan and a possible shrink, in time order.
    pub(super) fn open_key_hour(
        &mut self,
        out: &mut Vec<Pending>,
        loc: u32,
        sku: u32,
        hour_start: i64,
        hour_factor: f64,
        arrivals: &[Arrival],
    ) {
        let index = (loc * self.names.skus() + sku) as usize;
        let key = &mut self.keys[index];
        let empty = key.on_hand <= 0;
        self.stats.open_key_hours += 1;
        if empty {
            key.out_today = true;
            self.stats.out_of_stock_key_hours += 1;
            self.stats.phantom_key_hours += u64::from(key.book > 0);
        }
        let params = &self.demand.skus[sku as usize];
        let lambda =
            key.rate * params.today_factor * hour_factor * 1_000.0 / params.mean_basket_milli();
        let customers = poisson(&mut self.rng, lambda);
        let u: f64 = self.rng.random();
        let scan_chance = if empty {
            SCAN_EMPTY_CHANCE
        } else {
            SCAN_CHANCE
        };
        let scan = u < scan_chance;
        let shrink = !scan && u < scan_chance + SHRINK_CHANCE;
        // Contract v2: counts, damage and returns, from the v2 stream.
        let (mut count, mut damage, mut returns) = (false, false, 0);
        if let Some(v2) = self.v2.as_mut() {
            let days = v2.knobs.cycle_count_days;
            if days > 0.0 {
                let factor = if empty { 5.0 } else { 1.0 };
                count = v2
                    .rng
                    .random_bool((factor / (days * OPEN_HOURS_PER_DAY)).min(1.0));
            }
            damage = v2.rng.random_bool(DAMAGE_CHANCE);
            returns = poisson(&mut v2.rng, lambda * RETURNS_PER_CUSTOMER);
        }
        if customers == 0
            && !scan
            && !shrink
            && arrivals.is_empty()
            && !count
            && !damage
            && returns == 0
        {
            return;
        }
        let mut happenings = std::mem::take(&mut self.happenings);
        happenings.clear();
        happenings.extend(arrivals.iter().map(|a| (a.time_ms, Happening::Arrival(*a))));
        let at = |rng: &mut ChaCha8Rng| hour_start + rng.random_range(0..3_600) * 1_000;
        for _ in 0..customers {
            let wants_milli = params.basket_milli(&mut self.rng);
            happenings.push((at(&mut self.rng), Happening::Customer { wants_milli }));
        }
        if scan {
            happenings.push((at(&mut self.rng), Happening::Scan));
        }
        if shrink {
            happenings.push((at(&mut self.rng), Happening::Shrink));
        }
        if let Some(v2) = self.v2.as_mut() {
            let extra = [(count, Happening::Count), (damage, Happening::Damage)];
            for (_, h) in extra.into_iter().filter(|(on, _)| *on) {
                happenings.push((at(&mut v2.rng), h));
            }
            for _ in 0..returns {
                happenings.push((at(&mut v2.rng), Happening::Return));
            }
        }
        // Stable: at equal times deliveries come first, then customers in draw order.
        happenings.sort_by_key(|&(time, _)| time);
        let mut picker_reported = false;
        for &(time_ms, happening) in &happenings {
            match happening {
                Happening::Arrival(arrival) => self.arrive(out, arrival),
                Happening::Customer { wants_milli } => {
                    picker_reported |=
                        self.sell(out, loc, sku, time_ms, wants_milli, picker_reported);
                }
                Happening::Scan => self.scan(out, loc, sku, time_ms),
                Happening::Shrink => self.shrink(out, index, sku, time_ms),
                Happening::Count => self.count(out, loc, sku, time_ms),
                Happening::Damage => {
                    let params = &self.demand.skus[sku as usize];
                    let unit = if params.by_weight { 500 } else { 1_000 };
                    let loss = unit.min(self.keys[index].on_hand);
                    self.adjust(out, index, time_ms, -loss, Reason::Damage, None);
                }
                Happening::Return => {
                    let params = &self.demand.skus[sku as usize];
                    let unit = if params.by_weight { 500 } else { 1_000 };
                    self.adjust(out, index, time_ms, unit, Reason::CustomerReturn, None);
                }
            }
        }
        self.happenings = happenings;
    }

    /// One customer wanting `wants_milli`: a sale of what is there, or a lost sale. Returns
    /// whether a picker reported the item missing.
    pub(super) fn sell(
        &mut self,
        out: &mut Vec<Pending>,
        loc: u32,
        sku: u32,
        time_ms: i64,
        wants_milli: i64,
        picker_reported: bool,
    ) -> bool {
        let key = &mut self.keys[(loc * self.names.skus() + sku) as usize];
        if key.on_hand <= 0 {
            self.stats.lost_customers += 1;
            if picker_reported || !self.rng.random_bool(PICKER_CHANCE) {
                return false;
            }
            let body = Body::Availability {
                in_stock: false,
                source: Source::PickerNotFound,
            };
            self.emit(out, loc, sku, time_ms, body);
            return true;
        }
        let qty_milli = wants_milli.min(key.on_hand);
        key.on_hand -= qty_milli;
        key.book -= qty_milli;
        key.out_today |= key.on_hand <= 0;
        let book_empty = key.book <= 0;
        self.note_stock((loc * self.names.skus() + sku) as usize, time_ms);
        let body = Body::Sale {
            qty_milli,
            unit_price_cents: Some(self.demand.skus[sku as usize].today_price_cents),
            channel: None,
        };
        self.emit(out, loc, sku, time_ms, body);
        if book_empty {
            let flag_ms = time_ms + self.rng.random_range(1..1_000);
            let body = Body::Availability {
                in_stock: false,
                source: Source::StoreSystem,
            };
            self.emit(out, loc, sku, flag_ms, body);
        }
        false
    }

    /// A shelf scan reports what is physically there; an empty shelf also corrects the store
    /// system's book (but not the engine's `receipts − sales`, which never sees it).
    pub(super) fn scan(&mut self, out: &mut Vec<Pending>, loc: u32, sku: u32, time_ms: i64) {
        let key = &mut self.keys[(loc * self.names.skus() + sku) as usize];
        let in_stock = key.on_hand > 0;
        if !in_stock && key.book > 0 {
            key.book = key.on_hand;
            self.stats.book_corrections += 1;
        }
        let body = Body::Availability {
            in_stock,
            source: Source::ShelfScan,
        };
        self.emit(out, loc, sku, time_ms, body);
    }

    /// Contract v2: an associate counts the shelf; the count is the truth and corrects the
    /// book.
    pub(super) fn count(&mut self, out: &mut Vec<Pending>, loc: u32, sku: u32, time_ms: i64) {
        let key = &mut self.keys[(loc * self.names.skus() + sku) as usize];
        if key.book != key.on_hand {
            self.stats.book_corrections += 1;
        }
        key.book = key.on_hand;
        let body = Body::Count {
            qty_milli: key.on_hand,
            source: CountSource::CycleCount,
        };
        self.emit(out, loc, sku, time_ms, body);
    }

    /// Stock lost without a sale: usually a unit or two, sometimes a whole case. With
    /// contract v2 a share of it is recorded (a `shrink` adjustment).
    pub(super) fn shrink(&mut self, out: &mut Vec<Pending>, index: usize, sku: u32, time_ms: i64) {
        let params = &self.demand.skus[sku as usize];
        let loss = if self.rng.random_bool(0.2) {
            params.pack_milli
        } else if params.by_weight {
            self.rng.random_range(100..800)
        } else {
            self.rng.random_range(1..=2) * 1_000
        };
        let loss = loss.min(self.keys[index].on_hand);
        if loss <= 0 {
            return;
        }
        self.stats.shrink_events += 1;
        let recorded = self
            .v2
            .as_mut()
            .is_some_and(|v2| v2.rng.random_bool(v2.knobs.shrink_recorded_share));
        if recorded {
            self.adjust(out, index, time_ms, -loss, Reason::Shrink, None);
        } else {
            let key = &mut self.keys[index];
            key.on_hand -= loss;
            self.note_stock(index, time_ms);
        }
        let key = &mut self.keys[index];
        key.out_today |= key.on_hand <= 0;
    }
}
