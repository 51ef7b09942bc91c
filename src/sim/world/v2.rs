//! The contract-v2 part of the simulated world: nightly snapshots, shipment revisions and
//! cancellations, adjustments, expiry and transfers between locations.

use super::*;

impl World {
    /// [`World::next_hour`] of the contract-v2 world.
    pub(super) fn next_hour_v2(&mut self, out: &mut Vec<Pending>) -> bool {
        let hour_start = self.start_ms + self.hour as i64 * HOUR_MS;
        let hour = hour_of_day(hour_start);
        let day = hour_start.div_euclid(DAY_MS) - self.start_ms.div_euclid(DAY_MS);
        if self.hour == 0 {
            self.stats.promotions += self.demand.start_day(&mut self.rng, day, true);
            // The stock already on the shelves is known only to the ERPs that send snapshots.
            for loc in 0..self.names.locations() {
                self.snapshot(out, loc, self.start_ms);
            }
        } else if hour == 0 {
            self.close_day();
            self.stats.promotions += self.demand.start_day(&mut self.rng, day, false);
        }
        self.due_revisions(out, hour_start + HOUR_MS);
        for loc in 0..self.names.locations() {
            let local = hour_start + self.offset_ms(loc);
            // As of the hour's start, before anything of the hour happens to the book.
            if hour_of_day(local) == SNAPSHOT_LOCAL_HOUR {
                self.snapshot(out, loc, hour_start);
            }
        }
        if hour == DC_REVIEW_HOUR {
            self.review_dcs(out, hour_start);
        }
        if hour == STORE_REVIEW_HOUR {
            self.expire_and_transfer(out, hour_start);
            self.review_stores(out, hour_start, day);
        }
        self.run_hour(out, hour_start, hour, weekday(hour_start));
        self.hour += 1;
        self.stats.hours += 1;
        true
    }

    /// The v2 world's random stream (only called with contract v2).
    pub(super) fn v2_rng(&mut self) -> &mut ChaCha8Rng {
        &mut self
            .v2
            .as_mut()
            .expect("contract v2 world has its v2 part")
            .rng
    }

    /// UTC offset of location `loc`, ms (0 with contract v1).
    pub(super) fn offset_ms(&self, loc: u32) -> i64 {
        self.v2
            .as_ref()
            .map_or(0, |v| v.offsets[loc as usize] * HOUR_MS)
    }

    /// The nightly ERP position of every SKU at `loc` (its book), if `loc` sends snapshots.
    pub(super) fn snapshot(&mut self, out: &mut Vec<Pending>, loc: u32, time_ms: i64) {
        if !self.v2.as_ref().is_some_and(|v| v.snapshots[loc as usize]) {
            return;
        }
        let skus = self.names.skus();
        for sku in 0..skus {
            let qty_milli = self.keys[(loc * skus + sku) as usize].book;
            let body = Body::Count {
                qty_milli,
                source: CountSource::Snapshot,
            };
            self.emit(out, loc, sku, time_ms, body);
        }
    }

    /// Emits the shipment revisions and cancellations due before `until`.
    pub(super) fn due_revisions(&mut self, out: &mut Vec<Pending>, until: i64) {
        let skus = self.names.skus();
        loop {
            let Some(v2) = self.v2.as_mut() else { return };
            let Some(Reverse(next)) = v2.revisions.peek() else {
                return;
            };
            if next.time_ms >= until {
                return;
            }
            let r = *next;
            v2.revisions.pop();
            let (loc, sku) = (r.key / skus, r.key % skus);
            let body = if r.cancel {
                self.keys[r.key as usize].in_transit -= r.qty_milli;
                self.stats.cancellations += 1;
                Body::Cancel {
                    shipment: r.shipment,
                    origin: r.origin,
                    qty_milli: r.qty_milli,
                    eta_ms: r.eta_ms,
                }
            } else {
                self.stats.shipment_revisions += 1;
                if r.short_by_milli > 0 {
                    self.keys[r.key as usize].in_transit -= r.short_by_milli;
                    self.stats.short_shipments += 1;
                }
                Body::Shipment {
                    shipment: r.shipment,
                    origin: r.origin,
                    qty_milli: r.qty_milli,
                    eta_ms: r.eta_ms,
                }
            };
            self.emit(out, loc, sku, r.time_ms, body);
        }
    }

    /// A recorded stock movement at `key`: stock and book move by `qty_milli`.
    pub(super) fn adjust(
        &mut self,
        out: &mut Vec<Pending>,
        key: usize,
        time_ms: i64,
        qty_milli: i64,
        reason: Reason,
        reference: Option<Reference>,
    ) {
        if qty_milli == 0 {
            return;
        }
        let skus = self.names.skus();
        let k = &mut self.keys[key];
        k.on_hand += qty_milli;
        k.book += qty_milli;
        self.note_stock(key, time_ms);
        let body = Body::Adjustment {
            qty_milli,
            reason,
            reference,
        };
        self.emit(out, key as u32 / skus, key as u32 % skus, time_ms, body);
    }

    /// The morning (contract v2): fresh goods past their date are written off, and stores
    /// running low borrow a case from a store with plenty (both legs in this hour: stores are
    /// closed).
    pub(super) fn expire_and_transfer(&mut self, out: &mut Vec<Pending>, hour_start: i64) {
        let skus = self.names.skus();
        let dcs = self.names.dcs();
        let stores = self.names.locations() - dcs;
        let transfer_chance = self.v2.as_ref().map_or(0.0, |v| v.knobs.transfer_chance);
        for loc in dcs..self.names.locations() {
            for sku in 0..skus {
                let key = (loc * skus + sku) as usize;
                let params = &self.demand.skus[sku as usize];
                let (by_weight, pack) = (params.by_weight, params.pack_milli);
                let rng = self.v2_rng();
                let at = hour_start + rng.random_range(0..1_800) * 1_000;
                if by_weight && rng.random_bool(EXPIRY_CHANCE) {
                    let share: f64 = rng.random_range(0.05..0.15);
                    let loss = ((self.keys[key].on_hand as f64 * share) as i64 / 100) * 100;
                    self.adjust(out, key, at, -loss, Reason::Expiry, None);
                }
                if stores < 2 || !self.v2_rng().random_bool(transfer_chance) {
                    continue;
                }
                let k = &self.keys[key];
                if k.book + k.in_transit > k.reorder {
                    continue;
                }
                let donor = dcs + self.v2_rng().random_range(0..stores);
                let from = (donor * skus + sku) as usize;
                let d = &self.keys[from];
                if donor == loc || d.on_hand < 2 * pack || d.book < d.order_up_to / 2 {
                    continue;
                }
                let qty = pack.min(d.on_hand / 2);
                let (id, arrive) = {
                    let v2 = self.v2.as_mut().expect("contract v2");
                    v2.next_transfer += 1;
                    let arrive = at + v2.rng.random_range(600..1_800) * 1_000;
                    (v2.next_transfer - 1, arrive)
                };
                self.stats.transfers_between_stores += 1;
                let reference = Some(Reference::Transfer(id));
                self.adjust(out, from, at, -qty, Reason::TransferOut, reference);
                self.adjust(out, key, arrive, qty, Reason::TransferIn, reference);
            }
        }
    }
}
