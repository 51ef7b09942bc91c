//! Replenishment of the simulated world: the (s, S) reviews of DCs and stores, shipments
//! and their delivery and receipt draws.

use super::*;

impl World {
    /// Planned and actual delivery time of an order placed at `ordered_ms`.
    pub(super) fn draw_delivery(
        &mut self,
        ordered_ms: i64,
        lead: &[(i64, f64)],
        eta_hour: i64,
    ) -> (i64, i64) {
        let days = pick(&mut self.rng, lead);
        let eta = ordered_ms.div_euclid(DAY_MS) * DAY_MS + days * DAY_MS + eta_hour * HOUR_MS;
        let u: f64 = self.rng.random();
        let delay_s: i64 = if u < VERY_LATE_DELIVERY {
            self.rng.random_range(36 * 3_600..72 * 3_600)
        } else if u < VERY_LATE_DELIVERY + LATE_DELIVERY {
            self.rng.random_range(8 * 3_600..36 * 3_600)
        } else {
            self.rng.random_range(-40 * 60..80 * 60)
        };
        (eta, (eta + delay_s * 1_000).max(ordered_ms + HOUR_MS))
    }

    /// What arrives of `shipped`: usually exactly that, sometimes a little more or less.
    pub(super) fn draw_received(&mut self, shipped: i64, by_weight: bool) -> i64 {
        if !self.rng.random_bool(RECEIPT_MISMATCH) {
            return shipped;
        }
        if by_weight {
            let factor: f64 = self.rng.random_range(0.97..1.01);
            ((shipped as f64 * factor).round() as i64).max(1)
        } else {
            let delta = pick(
                &mut self.rng,
                &[(-1_000, 0.45), (-2_000, 0.2), (1_000, 0.35)],
            );
            (shipped + delta).max(1_000)
        }
    }

    /// Sends a shipment towards key `key` and schedules its arrival.
    #[allow(clippy::too_many_arguments)]
    pub(super) fn ship(
        &mut self,
        out: &mut Vec<Pending>,
        loc: u32,
        sku: u32,
        origin: Origin,
        qty_milli: i64,
        ordered_ms: i64,
        (eta_ms, arrival_ms): (i64, i64),
    ) {
        let shipment = self.next_shipment;
        self.next_shipment += 1;
        let body = Body::Shipment {
            shipment,
            origin,
            qty_milli,
            eta_ms,
        };
        self.emit(out, loc, sku, ordered_ms, body);
        let by_weight = self.demand.skus[sku as usize].by_weight;
        let mut received_milli = self.draw_received(qty_milli, by_weight);
        let mut shipped_milli = qty_milli;
        let key = loc * self.names.skus() + sku;
        self.keys[key as usize].in_transit += qty_milli;
        if let Some(v2) = self.v2.as_mut() {
            let revision = Revision {
                time_ms: 0,
                shipment,
                key,
                origin,
                qty_milli,
                eta_ms,
                cancel: false,
                short_by_milli: 0,
            };
            // Some supplier shipments never come: cancelled a few hours after the order.
            if origin == Origin::Supplier && v2.rng.random_bool(v2.knobs.cancel_share) {
                let at = ordered_ms + v2.rng.random_range(2 * 3_600..12 * 3_600) * 1_000;
                v2.revisions.push(Reverse(Revision {
                    time_ms: at.min(eta_ms - HOUR_MS).max(ordered_ms + 1_000),
                    cancel: true,
                    ..revision
                }));
                return;
            }
            // A delivery running late is announced with a new ETA before the old one.
            if arrival_ms - eta_ms >= ANNOUNCED_DELAY_MS
                && v2.rng.random_bool(v2.knobs.eta_revision_share)
            {
                let before = v2.rng.random_range(3_600..12 * 3_600) * 1_000;
                let new_eta = (arrival_ms + HOUR_MS - 1).div_euclid(HOUR_MS) * HOUR_MS;
                v2.revisions.push(Reverse(Revision {
                    time_ms: (eta_ms - before).max(ordered_ms + 1_000),
                    eta_ms: new_eta,
                    ..revision
                }));
            } else if origin == Origin::Supplier
                && v2.knobs.short_share > 0.0
                && v2.rng.random_bool(v2.knobs.short_share)
            {
                // Short-shipped: the supplier announces the smaller quantity before the ETA,
                // and what arrives is that (with the usual receiving mismatch).
                let share: f64 = v2.rng.random_range(0.5..0.9);
                let unit = if by_weight { 1 } else { 1_000 };
                let short = ((qty_milli as f64 * share) as i64 / unit * unit).max(unit);
                let before = v2.rng.random_range(3_600..24 * 3_600) * 1_000;
                // Announced before the goods arrive (an early delivery included).
                let at = (eta_ms - before)
                    .min(arrival_ms - HOUR_MS)
                    .max(ordered_ms + 1_000);
                if short < qty_milli && at < arrival_ms {
                    v2.revisions.push(Reverse(Revision {
                        time_ms: at,
                        qty_milli: short,
                        short_by_milli: qty_milli - short,
                        ..revision
                    }));
                    received_milli = (received_milli - qty_milli + short).max(unit);
                    shipped_milli = short;
                }
            }
        }
        self.arrivals.push(Reverse(Arrival {
            time_ms: arrival_ms,
            shipment,
            key,
            shipped_milli,
            received_milli,
        }));
    }

    /// Each DC orders from the supplier every SKU at or below its reorder point.
    pub(super) fn review_dcs(&mut self, out: &mut Vec<Pending>, hour_start: i64) {
        let skus = self.names.skus();
        for dc in 0..self.names.dcs() {
            let ordered_ms = hour_start + self.rng.random_range(0..3_600) * 1_000;
            for sku in 0..skus {
                let key = &self.keys[(dc * skus + sku) as usize];
                let params = &self.demand.skus[sku as usize];
                let position = key.on_hand + key.in_transit;
                let plan = params.plan_factor(DC_PLAN_HORIZON_DAYS);
                let Some(wanted) = key.order_for(position, plan) else {
                    continue;
                };
                let qty = round_up(wanted, params.pack_milli * DC_PALLET_PACKS);
                // Each SKU has its own supplier, hence its own lead time.
                let delivery =
                    self.draw_delivery(ordered_ms, &SUPPLIER_LEAD_DAYS, DC_DELIVERY_HOUR);
                self.ship(out, dc, sku, Origin::Supplier, qty, ordered_ms, delivery);
            }
        }
    }

    /// Each store orders every SKU whose book position is at or below its reorder point;
    /// its DC ships what it has (one truck per store and day).
    pub(super) fn review_stores(&mut self, out: &mut Vec<Pending>, hour_start: i64, day: i64) {
        let skus = self.names.skus();
        let dcs = self.names.dcs();
        let stores = self.names.locations() - dcs;
        // Rotate who is served first, so that a short DC does not always fail the same store.
        let first = day.rem_euclid(i64::from(stores)) as u32;
        for i in 0..stores {
            let loc = dcs + (first + i) % stores;
            let ordered_ms = hour_start + self.rng.random_range(0..3_600) * 1_000;
            let delivery = self.draw_delivery(ordered_ms, &STORE_LEAD_DAYS, STORE_DELIVERY_HOUR);
            let dc = self.names.dc_for_store(loc);
            for sku in 0..skus {
                let key = &self.keys[(loc * skus + sku) as usize];
                let params = &self.demand.skus[sku as usize];
                let position = key.book + key.in_transit;
                let plan = params.plan_factor(STORE_PLAN_HORIZON_DAYS);
                let Some(wanted) = key.order_for(position, plan) else {
                    continue;
                };
                let wanted = round_up(wanted, params.pack_milli);
                let (origin, qty) = match dc {
                    None => (Origin::Supplier, wanted),
                    Some(dc) => {
                        let stock = &mut self.keys[(dc * skus + sku) as usize];
                        let qty = wanted.min(stock.on_hand);
                        if qty < wanted {
                            self.stats.dc_shortfalls += 1;
                        }
                        if qty <= 0 {
                            continue;
                        }
                        let dc_key = (dc * skus + sku) as usize;
                        if self.v2.is_some() {
                            // Contract v2: the pick is a transfer out, referring to the
                            // shipment it fills.
                            let reference = Some(Reference::Shipment(self.next_shipment));
                            let reason = Reason::TransferOut;
                            self.adjust(out, dc_key, ordered_ms, -qty, reason, reference);
                            self.stats.dc_picks += 1;
                            self.ship(
                                out,
                                loc,
                                sku,
                                Origin::Location(dc),
                                qty,
                                ordered_ms,
                                delivery,
                            );
                            continue;
                        }
                        stock.on_hand -= qty;
                        stock.book -= qty;
                        self.note_stock(dc_key, ordered_ms);
                        // The DC's outbound is its demand: a sale on the transfer channel
                        // keeps its `receipts − sales` equal to its stock.
                        let body = Body::Sale {
                            qty_milli: qty,
                            unit_price_cents: None,
                            channel: Some("transfer"),
                        };
                        self.emit(out, dc, sku, ordered_ms, body);
                        (Origin::Location(dc), qty)
                    }
                };
                self.ship(out, loc, sku, origin, qty, ordered_ms, delivery);
            }
        }
    }
}
