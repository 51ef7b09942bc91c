//! The simulated network's master data: locations (kind, time zone, serving DC, region) and
//! items (category path, case pack), as the CSV tables `replay` and `evaluate` read with
//! `--locations FILE --items FILE` (`location,kind,time_zone,dc,region` and
//! `sku,category,case_pack`).
//!
//! With contract v2 the stores and DCs are spread over four US time zones (in turn) and the world keeps
//! their local time (opening hours, nightly snapshots); the simulator uses each zone's standard
//! offset all year (its runs default to January, before any daylight-saving change). With
//! contract v1 every location is in UTC, as the v1 world is.

use std::io::{self, Write};

use super::config::Contract;
use super::event::Names;

/// The US zones stores and DCs are spread over (in turn): IANA name, standard UTC offset in
/// hours, region.
pub(crate) const ZONES: [(&str, i64, &str); 4] = [
    ("America/New_York", -5, "east"),
    ("America/Chicago", -6, "central"),
    ("America/Denver", -7, "mountain"),
    ("America/Los_Angeles", -8, "west"),
];

/// The zone index of location `loc`: DCs and stores each take the zones in turn.
fn zone(names: &Names, loc: u32) -> usize {
    let n = if loc < names.dcs() {
        loc
    } else {
        loc - names.dcs()
    };
    n as usize % ZONES.len()
}

/// UTC offset in hours of location `loc` under `contract`.
pub(crate) fn offset_hours(names: &Names, contract: Contract, loc: u32) -> i64 {
    match contract {
        Contract::V1 => 0,
        Contract::V2 => ZONES[zone(names, loc)].1,
    }
}

/// Writes `location,kind,time_zone,dc,region` for every location.
pub(crate) fn write_locations(
    names: &Names,
    contract: Contract,
    out: &mut dyn Write,
) -> io::Result<()> {
    writeln!(out, "location,kind,time_zone,dc,region")?;
    for loc in 0..names.locations() {
        let kind = if loc < names.dcs() { "dc" } else { "store" };
        let (tz, region) = match contract {
            Contract::V1 => ("Etc/UTC", ""),
            Contract::V2 => {
                let z = ZONES[zone(names, loc)];
                (z.0, z.2)
            }
        };
        let dc = names.dc_for_store(loc).map_or("", |dc| names.location(dc));
        writeln!(out, "{},{kind},{tz},{dc},{region}", names.location(loc))?;
    }
    Ok(())
}

/// Category paths of the simulated SKUs: by-weight (fresh) items and packaged ones.
const FRESH: [&str; 3] = ["fresh/produce", "fresh/meat", "fresh/bakery"];
const PACKAGED: [&str; 4] = [
    "grocery/dry",
    "grocery/beverages",
    "household/cleaning",
    "personal_care/health",
];

/// Writes `sku,category,case_pack` for every SKU; `params(sku)` gives whether it is sold by
/// weight and its case pack in thousandths.
pub(crate) fn write_items(
    names: &Names,
    params: impl Fn(u32) -> (bool, i64),
    out: &mut dyn Write,
) -> io::Result<()> {
    writeln!(out, "sku,category,case_pack")?;
    for sku in 0..names.skus() {
        let (by_weight, pack_milli) = params(sku);
        let category = if by_weight {
            FRESH[sku as usize % FRESH.len()]
        } else {
            PACKAGED[sku as usize % PACKAGED.len()]
        };
        // A case pack is a count of units: left out for goods sold by weight (packs in kg).
        let pack = if by_weight || pack_milli % 1_000 != 0 {
            String::new()
        } else {
            (pack_milli / 1_000).to_string()
        };
        writeln!(out, "{},{category},{pack}", names.sku(sku))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn locations_take_the_zones_in_turn() {
        let names = Names::new(1, 2, 6, 3);
        let mut out = Vec::new();
        write_locations(&names, Contract::V2, &mut out).unwrap();
        let text = String::from_utf8(out).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines[0], "location,kind,time_zone,dc,region");
        assert_eq!(lines[1], "DC-01,dc,America/New_York,,east");
        assert_eq!(lines[2], "DC-02,dc,America/Chicago,,central");
        assert_eq!(lines[3], "STORE-0001,store,America/New_York,DC-01,east");
        assert_eq!(lines[4], "STORE-0002,store,America/Chicago,DC-02,central");
        assert_eq!(offset_hours(&names, Contract::V2, 3), -6);
        assert_eq!(offset_hours(&names, Contract::V1, 3), 0);
        let names = Names::new(1, 0, 5, 1);
        let zones: Vec<i64> = (0..5)
            .map(|l| offset_hours(&names, Contract::V2, l))
            .collect();
        assert_eq!(zones, [-5, -6, -7, -8, -5]);
        let mut out = Vec::new();
        write_items(&names, |_| (true, 2_500), &mut out).unwrap();
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "sku,category,case_pack\nSKU-00001,fresh/produce,\n"
        );
        let mut out = Vec::new();
        write_items(&names, |_| (false, 12_000), &mut out).unwrap();
        assert!(String::from_utf8(out)
            .unwrap()
            .ends_with("SKU-00001,grocery/dry,12\n"));
    }
}
