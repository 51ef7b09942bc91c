//! Master data as tables (the Kafka Streams GlobalKTable pattern): locations (kind, IANA time
//! zone, serving DC, region) and items (category path, case pack), keyed by id, every instance
//! holding all of them. A record is an upsert, a `null` value deletes: the very semantics of
//! a compacted topic, so the same [`MasterData::apply_location`] / [`MasterData::apply_item`]
//! serve the CSV files of `replay` (`--locations`, `--items`) and a topic reader.
//!
//! Events of a location the table does not know still work: UTC, no category. The model's
//! local hour of day and day of week come from the location's time zone through
//! [`LocalClock`], which caches per location the UTC offset and the instant until which it
//! holds, so the hot path pays one lookup and a compare, and a daylight-saving change is
//! picked up at its exact instant.

use std::collections::HashMap;
use std::path::Path;

use chrono::{Offset, TimeZone};
use chrono_tz::Tz;
use serde::{Deserialize, Serialize};

use crate::event::MAX_ID_BYTES;
use crate::reject::RejectReason;

/// What kind of location.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum LocationKind {
    /// A store.
    Store,
    /// A distribution centre.
    Dc,
}

impl LocationKind {
    fn parse(s: &str) -> Option<LocationKind> {
        match s {
            "store" => Some(LocationKind::Store),
            "dc" => Some(LocationKind::Dc),
            _ => None,
        }
    }
}

/// One location of the table.
#[derive(Debug, Clone, PartialEq)]
pub struct Location {
    /// Store or DC.
    pub kind: LocationKind,
    /// IANA time zone.
    pub time_zone: Tz,
    /// The DC serving it, if any.
    pub dc: Option<String>,
    /// Region, if any.
    pub region: Option<String>,
}

/// One item of the table.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Item {
    /// Category path (`a/b/c`), if any.
    pub category: Option<String>,
    /// Units per case, if any.
    pub case_pack: Option<u32>,
}

/// Why a master-data record was refused.
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum MasterError {
    /// Not JSON (syntax error, truncated, not UTF-8).
    #[error("invalid JSON: {0}")]
    Json(String),
    /// JSON, but not the record's shape: a missing or mistyped field, an unknown field.
    #[error("invalid record: {0}")]
    Invalid(String),
    /// `kind` is neither `store` nor `dc`.
    #[error("unknown kind {0:?} (store or dc)")]
    UnknownKind(String),
    /// `time_zone` is not an IANA time zone name.
    #[error("unknown time zone {0:?}")]
    UnknownTimeZone(String),
    /// The record's id disagrees with its key (or the record has no key).
    #[error("id {0:?}: {1}")]
    Miskeyed(String, &'static str),
    /// The record's id is empty, too long or contains `|`.
    #[error("id {0:?}: {1}")]
    Id(String, &'static str),
    /// A CSV file could not be read.
    #[error("{path}: {error}")]
    File {
        /// The file.
        path: String,
        /// What went wrong (with the line).
        error: String,
    },
}

impl MasterError {
    /// The dead-letter reason code of a record refused for this (the reasons of every other
    /// bad record, [`RejectReason`]).
    pub fn reason(&self) -> RejectReason {
        match self {
            MasterError::Json(_) => RejectReason::InvalidJson,
            MasterError::Invalid(_) | MasterError::File { .. } => RejectReason::SchemaViolation,
            MasterError::UnknownKind(_) | MasterError::UnknownTimeZone(_) => {
                RejectReason::UnknownValue
            }
            MasterError::Miskeyed(..) => RejectReason::Miskeyed,
            MasterError::Id(..) => RejectReason::InvalidValue,
        }
    }

    fn from_json(e: &serde_json::Error) -> MasterError {
        match e.classify() {
            serde_json::error::Category::Data => MasterError::Invalid(e.to_string()),
            _ => MasterError::Json(e.to_string()),
        }
    }
}

/// One location of the master data: the value of a record of the compacted locations topic
/// (`kafka.topics.locations`), keyed by the location id (a null value deletes it), and a row
/// of the locations CSV. Unknown fields are refused.
#[derive(Debug, Deserialize, Serialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(title = "stockwatch location v1")]
pub(crate) struct LocationRecord {
    /// The location id, equal to the record's key (1..=128 bytes, no `|`).
    location: String,
    /// Store or distribution centre.
    #[schemars(with = "LocationKind")]
    kind: String,
    /// IANA time zone name (e.g. `America/New_York`): the local hour of day and day of week
    /// of the location's events come from it, daylight-saving changes included.
    time_zone: String,
    /// The DC serving the location, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    dc: Option<String>,
    /// Region, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    region: Option<String>,
}

/// One item of the master data: the value of a record of the compacted items topic
/// (`kafka.topics.items`), keyed by the SKU (a null value deletes it), and a row of the items
/// CSV. Unknown fields are refused.
#[derive(Debug, Deserialize, Serialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(title = "stockwatch item v1")]
pub(crate) struct ItemRecord {
    /// The SKU, equal to the record's key (1..=128 bytes, no `|`).
    sku: String,
    /// Category path, `/`-separated (e.g. `grocery/dry`), if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    category: Option<String>,
    /// Units per case, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    case_pack: Option<u32>,
}

/// The location and item tables.
#[derive(Debug, Clone, Default)]
pub struct MasterData {
    locations: HashMap<String, Location>,
    items: HashMap<String, Item>,
    /// A new process-unique value at every change of a location (clocks drop their cached
    /// offsets); 0 for a table that never had one.
    version: u64,
    /// The same for the items (shards rebuild their category pools); 0: never had one.
    items_version: u64,
}

fn check_id(id: &str, key: &str) -> Result<(), MasterError> {
    if id != key {
        return Err(MasterError::Miskeyed(
            id.to_owned(),
            "differs from the record's key",
        ));
    }
    if id.is_empty() || id.len() > MAX_ID_BYTES || id.contains('|') {
        return Err(MasterError::Id(
            id.to_owned(),
            "empty, too long or contains `|`",
        ));
    }
    Ok(())
}

/// Versions of location tables: unique over the process, so that a clock never mistakes
/// another table (a different instance that happens to have as many changes) for the one it
/// cached offsets of.
static NEXT_VERSION: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1);

impl MasterData {
    fn bump(&mut self) {
        self.version = NEXT_VERSION.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    }

    fn bump_items(&mut self) {
        self.items_version = NEXT_VERSION.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    }

    /// No locations, no items: every event is UTC, with no category.
    pub fn is_empty(&self) -> bool {
        self.locations.is_empty() && self.items.is_empty()
    }

    /// The location table has entries (without, every location is UTC: callers skip the
    /// lookup, and the key's location string is not even read).
    #[inline]
    pub fn has_locations(&self) -> bool {
        !self.locations.is_empty()
    }

    /// Locations and items held.
    pub fn len(&self) -> (usize, usize) {
        (self.locations.len(), self.items.len())
    }

    /// The location table's version: changes at every change of a location, and differs
    /// between two tables unless one is a copy of the other (0: never had a location).
    pub fn version(&self) -> u64 {
        self.version
    }

    /// The item table's version: changes at every change of an item, as [`MasterData::version`]
    /// for the locations (0: never had an item).
    pub fn items_version(&self) -> u64 {
        self.items_version
    }

    /// The location `id`, if known.
    pub fn location(&self, id: &str) -> Option<&Location> {
        self.locations.get(id)
    }

    /// The item `sku`, if known.
    pub fn item(&self, sku: &str) -> Option<&Item> {
        self.items.get(sku)
    }

    /// Applies one record of the locations table: `value` JSON
    /// `{"location","kind","time_zone","dc"?,"region"?}` upserts location `key`, `None` (a
    /// tombstone) deletes it. A refused record changes nothing.
    pub fn apply_location(&mut self, key: &str, value: Option<&[u8]>) -> Result<(), MasterError> {
        let Some(value) = value else {
            if self.locations.remove(key).is_some() {
                self.bump();
            }
            return Ok(());
        };
        let r: LocationRecord =
            serde_json::from_slice(value).map_err(|e| MasterError::from_json(&e))?;
        self.upsert_location(key, r)
    }

    fn upsert_location(&mut self, key: &str, r: LocationRecord) -> Result<(), MasterError> {
        check_id(&r.location, key)?;
        let kind = LocationKind::parse(&r.kind).ok_or(MasterError::UnknownKind(r.kind))?;
        let time_zone: Tz = r
            .time_zone
            .parse()
            .map_err(|_| MasterError::UnknownTimeZone(r.time_zone.clone()))?;
        let loc = Location {
            kind,
            time_zone,
            dc: r.dc.filter(|s| !s.is_empty()),
            region: r.region.filter(|s| !s.is_empty()),
        };
        if self.locations.get(key) != Some(&loc) {
            self.locations.insert(key.to_owned(), loc);
            self.bump();
        }
        Ok(())
    }

    /// Applies one record of the items table: `{"sku","category"?,"case_pack"?}` upserts item
    /// `key`, `None` deletes it.
    pub fn apply_item(&mut self, key: &str, value: Option<&[u8]>) -> Result<(), MasterError> {
        let Some(value) = value else {
            if self.items.remove(key).is_some() {
                self.bump_items();
            }
            return Ok(());
        };
        let r: ItemRecord =
            serde_json::from_slice(value).map_err(|e| MasterError::from_json(&e))?;
        self.upsert_item(key, r)
    }

    fn upsert_item(&mut self, key: &str, r: ItemRecord) -> Result<(), MasterError> {
        check_id(&r.sku, key)?;
        let item = Item {
            category: r.category.filter(|s| !s.is_empty()),
            case_pack: r.case_pack,
        };
        if self.items.get(key) != Some(&item) {
            self.items.insert(key.to_owned(), item);
            self.bump_items();
        }
        Ok(())
    }

    /// Loads a locations CSV (header `location,kind,time_zone,dc,region`; `dc` and `region`
    /// may be empty). The first bad line fails the load, naming the line.
    pub fn load_locations_csv(&mut self, path: &Path) -> Result<usize, MasterError> {
        let mut n = 0;
        for_each_row(path, |r: LocationRecord| {
            let key = r.location.clone();
            n += 1;
            self.upsert_location(&key, r)
        })?;
        Ok(n)
    }

    /// Loads an items CSV (header `sku,category,case_pack`; the last two may be empty).
    pub fn load_items_csv(&mut self, path: &Path) -> Result<usize, MasterError> {
        let mut n = 0;
        for_each_row(path, |r: ItemRecord| {
            let key = r.sku.clone();
            n += 1;
            self.upsert_item(&key, r)
        })?;
        Ok(n)
    }
}

/// A record of a master-data topic: its key (the id) and its JSON value.
pub type TopicRecord = (String, Vec<u8>);

/// The records of the locations topic for a locations CSV (the `load_locations_csv` format),
/// each checked as the service will check it: the first bad line fails, naming it.
pub fn location_records_csv(path: &Path) -> Result<Vec<TopicRecord>, MasterError> {
    location_records(&path.display().to_string(), open_csv(path)?)
}

/// The records of the items topic for an items CSV (the `load_items_csv` format).
pub fn item_records_csv(path: &Path) -> Result<Vec<TopicRecord>, MasterError> {
    item_records(&path.display().to_string(), open_csv(path)?)
}

/// [`location_records_csv`] of CSV bytes (`name` names them in errors).
pub fn location_records_of(name: &str, csv: &[u8]) -> Result<Vec<TopicRecord>, MasterError> {
    location_records(name, csv_reader().from_reader(csv))
}

/// [`item_records_csv`] of CSV bytes.
pub fn item_records_of(name: &str, csv: &[u8]) -> Result<Vec<TopicRecord>, MasterError> {
    item_records(name, csv_reader().from_reader(csv))
}

fn location_records<R: std::io::Read>(
    name: &str,
    rd: csv::Reader<R>,
) -> Result<Vec<TopicRecord>, MasterError> {
    let mut check = MasterData::default();
    let mut out = Vec::new();
    rows(name, rd, |r: LocationRecord| {
        let key = r.location.clone();
        let value = serde_json::to_vec(&r).map_err(|e| MasterError::Invalid(e.to_string()))?;
        check.apply_location(&key, Some(&value))?;
        out.push((key, value));
        Ok(())
    })?;
    Ok(out)
}

fn item_records<R: std::io::Read>(
    name: &str,
    rd: csv::Reader<R>,
) -> Result<Vec<TopicRecord>, MasterError> {
    let mut check = MasterData::default();
    let mut out = Vec::new();
    rows(name, rd, |r: ItemRecord| {
        let key = r.sku.clone();
        let value = serde_json::to_vec(&r).map_err(|e| MasterError::Invalid(e.to_string()))?;
        check.apply_item(&key, Some(&value))?;
        out.push((key, value));
        Ok(())
    })?;
    Ok(out)
}

fn csv_reader() -> csv::ReaderBuilder {
    let mut b = csv::ReaderBuilder::new();
    b.trim(csv::Trim::All);
    b
}

fn open_csv(path: &Path) -> Result<csv::Reader<std::fs::File>, MasterError> {
    csv_reader().from_path(path).map_err(|e| MasterError::File {
        path: path.display().to_string(),
        error: e.to_string(),
    })
}

fn for_each_row<R: serde::de::DeserializeOwned>(
    path: &Path,
    f: impl FnMut(R) -> Result<(), MasterError>,
) -> Result<(), MasterError> {
    rows(&path.display().to_string(), open_csv(path)?, f)
}

fn rows<R: serde::de::DeserializeOwned, I: std::io::Read>(
    name: &str,
    mut rd: csv::Reader<I>,
    mut f: impl FnMut(R) -> Result<(), MasterError>,
) -> Result<(), MasterError> {
    let file_err = |error: String| MasterError::File {
        path: name.to_owned(),
        error,
    };
    for (i, row) in rd.deserialize::<R>().enumerate() {
        // Line 1 is the header.
        let line = i + 2;
        let row = row.map_err(|e| file_err(format!("line {line}: {e}")))?;
        f(row).map_err(|e| file_err(format!("line {line}: {e}")))?;
    }
    Ok(())
}

/// One location's cached UTC offset.
#[derive(Debug, Clone, Copy)]
struct Cached {
    offset_ms: i64,
    /// The offset holds for instants in `[from_ms, until_ms)`.
    from_ms: i64,
    until_ms: i64,
}

/// Local time of the locations, for one shard: per location the UTC offset and the interval
/// of instants it holds for (up to the next daylight-saving change, looked up at most a day
/// ahead), recomputed only outside it or when the table changed.
#[derive(Debug, Default)]
pub struct LocalClock {
    cache: HashMap<Box<str>, Cached>,
    version: u64,
}

const DAY_MS: i64 = 86_400_000;
const MINUTE_MS: i64 = 60_000;

fn offset_at(tz: Tz, t_ms: i64) -> i64 {
    match chrono::DateTime::from_timestamp_millis(t_ms) {
        Some(t) => {
            i64::from(
                tz.offset_from_utc_datetime(&t.naive_utc())
                    .fix()
                    .local_minus_utc(),
            ) * 1000
        }
        None => 0,
    }
}

/// The first minute after `lo` (whose offset is `at_lo`) and at or before `hi` with another
/// offset, if the offset at `hi` differs (changes happen on whole minutes; at most one within
/// the day searched).
fn change_between(tz: Tz, lo: i64, hi: i64, at_lo: i64) -> Option<i64> {
    if offset_at(tz, hi) == at_lo {
        return None;
    }
    let (mut lo, mut hi) = (lo.div_euclid(MINUTE_MS), hi.div_euclid(MINUTE_MS));
    while hi - lo > 1 {
        let mid = lo + (hi - lo) / 2;
        if offset_at(tz, mid * MINUTE_MS) == at_lo {
            lo = mid;
        } else {
            hi = mid;
        }
    }
    Some(hi * MINUTE_MS)
}

impl LocalClock {
    /// The UTC offset of `location` at `t_ms` (0 for a location the table does not know).
    #[inline]
    pub fn offset_ms(&mut self, master: &MasterData, location: &str, t_ms: i64) -> i64 {
        if master.locations.is_empty() {
            return 0;
        }
        if self.version != master.version {
            self.cache.clear();
            self.version = master.version;
        }
        if let Some(c) = self.cache.get(location) {
            if (c.from_ms..c.until_ms).contains(&t_ms) {
                return c.offset_ms;
            }
        }
        let Some(loc) = master.location(location) else {
            return 0;
        };
        let offset_ms = offset_at(loc.time_zone, t_ms);
        let until_ms =
            change_between(loc.time_zone, t_ms, t_ms + DAY_MS, offset_ms).unwrap_or(t_ms + DAY_MS);
        let c = Cached {
            offset_ms,
            from_ms: t_ms,
            until_ms,
        };
        match self.cache.get_mut(location) {
            Some(old) => *old = c,
            None => {
                self.cache.insert(location.into(), c);
            }
        }
        offset_ms
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(s: &str) -> i64 {
        chrono::DateTime::parse_from_rfc3339(s)
            .unwrap()
            .timestamp_millis()
    }

    fn new_york() -> MasterData {
        let mut m = MasterData::default();
        m.apply_location(
            "STORE-NY",
            Some(br#"{"location":"STORE-NY","kind":"store","time_zone":"America/New_York","dc":"DC-01","region":"east"}"#),
        )
        .unwrap();
        m
    }

    /// Local hour at a UTC instant through the clock (cache included).
    fn local_hour(clock: &mut LocalClock, m: &MasterData, loc: &str, utc: &str) -> i64 {
        let t = ms(utc);
        (t + clock.offset_ms(m, loc, t))
            .div_euclid(3_600_000)
            .rem_euclid(24)
    }

    #[test]
    fn daylight_saving_days_in_new_york() {
        let m = new_york();
        let mut c = LocalClock::default();
        // 2026-03-08: 02:00 EST becomes 03:00 EDT (07:00 UTC). The clock is first asked the
        // day before, so the change is found from the cache's bound, not by a fresh lookup.
        assert_eq!(
            local_hour(&mut c, &m, "STORE-NY", "2026-03-07T12:00:00Z"),
            7
        );
        assert_eq!(
            local_hour(&mut c, &m, "STORE-NY", "2026-03-08T06:59:00Z"),
            1
        );
        assert_eq!(
            local_hour(&mut c, &m, "STORE-NY", "2026-03-08T07:00:00Z"),
            3
        );
        assert_eq!(
            local_hour(&mut c, &m, "STORE-NY", "2026-03-08T16:00:00Z"),
            12
        );
        // 2026-11-01: 02:00 EDT becomes 01:00 EST (06:00 UTC): 01:xx happens twice.
        assert_eq!(
            local_hour(&mut c, &m, "STORE-NY", "2026-10-31T20:00:00Z"),
            16
        );
        assert_eq!(
            local_hour(&mut c, &m, "STORE-NY", "2026-11-01T05:30:00Z"),
            1
        );
        assert_eq!(
            local_hour(&mut c, &m, "STORE-NY", "2026-11-01T06:30:00Z"),
            1
        );
        assert_eq!(
            local_hour(&mut c, &m, "STORE-NY", "2026-11-01T07:30:00Z"),
            2
        );
        assert_eq!(
            c.offset_ms(&m, "STORE-NY", ms("2026-11-01T07:30:00Z")),
            -5 * 3_600_000
        );
        // Unknown locations are UTC.
        assert_eq!(
            local_hour(&mut c, &m, "STORE-XX", "2026-03-08T07:00:00Z"),
            7
        );
    }

    #[test]
    fn the_cache_follows_every_minute_of_a_transition_day() {
        let m = new_york();
        let tz: Tz = "America/New_York".parse().unwrap();
        let mut c = LocalClock::default();
        let start = ms("2026-11-01T00:00:00Z");
        for k in 0..(2 * 24 * 60) {
            let t = start + k * MINUTE_MS;
            assert_eq!(
                c.offset_ms(&m, "STORE-NY", t),
                offset_at(tz, t),
                "minute {k}"
            );
        }
    }

    #[test]
    fn updates_deletes_and_refusals() {
        let mut m = new_york();
        let mut c = LocalClock::default();
        let t = ms("2026-06-01T12:00:00Z");
        assert_eq!(c.offset_ms(&m, "STORE-NY", t), -4 * 3_600_000);
        // A new time zone takes effect at once (the table's version drops the cache).
        m.apply_location(
            "STORE-NY",
            Some(br#"{"location":"STORE-NY","kind":"store","time_zone":"Europe/Paris"}"#),
        )
        .unwrap();
        assert_eq!(c.offset_ms(&m, "STORE-NY", t), 2 * 3_600_000);
        assert_eq!(m.location("STORE-NY").unwrap().dc, None);
        // Refused records change nothing.
        let bad: [(&[u8], RejectReason); 6] = [
            (b"{not json", RejectReason::InvalidJson),
            (
                br#"{"location":"STORE-NY","kind":"store","time_zone":"Mars/Olympus"}"#,
                RejectReason::UnknownValue,
            ),
            (
                br#"{"location":"STORE-NY","kind":"kiosk","time_zone":"UTC"}"#,
                RejectReason::UnknownValue,
            ),
            (
                br#"{"location":"OTHER","kind":"dc","time_zone":"UTC"}"#,
                RejectReason::Miskeyed,
            ),
            (
                br#"{"kind":"dc","time_zone":"UTC"}"#,
                RejectReason::SchemaViolation,
            ),
            (
                br#"{"location":"STORE-NY","kind":"dc","time_zone":"UTC","x":1}"#,
                RejectReason::SchemaViolation,
            ),
        ];
        for (v, reason) in bad {
            let e = m.apply_location("STORE-NY", Some(v)).unwrap_err();
            assert_eq!(e.reason(), reason, "{e}");
        }
        assert_eq!(c.offset_ms(&m, "STORE-NY", t), 2 * 3_600_000);
        // A tombstone deletes: back to UTC.
        m.apply_location("STORE-NY", None).unwrap();
        assert_eq!(c.offset_ms(&m, "STORE-NY", t), 0);
        m.apply_item(
            "SKU-1",
            Some(br#"{"sku":"SKU-1","category":"food/dairy/milk","case_pack":12}"#),
        )
        .unwrap();
        assert_eq!(m.item("SKU-1").unwrap().case_pack, Some(12));
        m.apply_item("SKU-1", None).unwrap();
        assert!(m.item("SKU-1").is_none());
    }

    #[test]
    fn csv_files_load_and_name_the_bad_line() {
        let dir = tempfile::tempdir().unwrap();
        let loc = dir.path().join("locations.csv");
        std::fs::write(
            &loc,
            "location,kind,time_zone,dc,region\nDC-01,dc,America/Chicago,,central\nSTORE-1,store,America/New_York,DC-01,east\n",
        )
        .unwrap();
        let items = dir.path().join("items.csv");
        std::fs::write(
            &items,
            "sku,category,case_pack\nSKU-1,food/dairy,12\nSKU-2,,\n",
        )
        .unwrap();
        let mut m = MasterData::default();
        assert_eq!(m.load_locations_csv(&loc).unwrap(), 2);
        assert_eq!(m.load_items_csv(&items).unwrap(), 2);
        assert_eq!(m.location("STORE-1").unwrap().dc.as_deref(), Some("DC-01"));
        assert_eq!(m.location("DC-01").unwrap().kind, LocationKind::Dc);
        assert_eq!(m.item("SKU-2"), Some(&Item::default()));
        std::fs::write(
            &loc,
            "location,kind,time_zone,dc,region\nDC-01,dc,America/Chicago,,\nS2,store,Nowhere/City,,\n",
        )
        .unwrap();
        let e = m.load_locations_csv(&loc).unwrap_err().to_string();
        assert!(e.contains("line 3") && e.contains("Nowhere/City"), "{e}");
        let e = location_records_csv(&loc).unwrap_err().to_string();
        assert!(e.contains("line 3") && e.contains("Nowhere/City"), "{e}");
    }

    #[test]
    fn csv_rows_become_topic_records_the_table_reads_back() {
        let dir = tempfile::tempdir().unwrap();
        let loc = dir.path().join("locations.csv");
        std::fs::write(
            &loc,
            "location,kind,time_zone,dc,region\nDC-01,dc,America/Chicago,,central\nSTORE-1,store,America/New_York,DC-01,\n",
        )
        .unwrap();
        let items = dir.path().join("items.csv");
        std::fs::write(
            &items,
            "sku,category,case_pack\nSKU-1,food/dairy,12\nSKU-2,,\n",
        )
        .unwrap();
        let locs = location_records_csv(&loc).unwrap();
        assert_eq!(locs[1].0, "STORE-1");
        assert_eq!(
            String::from_utf8(locs[1].1.clone()).unwrap(),
            r#"{"location":"STORE-1","kind":"store","time_zone":"America/New_York","dc":"DC-01"}"#
        );
        let its = item_records_csv(&items).unwrap();
        assert_eq!(
            String::from_utf8(its[1].1.clone()).unwrap(),
            r#"{"sku":"SKU-2"}"#
        );
        let (mut from_topic, mut from_csv) = (MasterData::default(), MasterData::default());
        for (k, v) in &locs {
            from_topic.apply_location(k, Some(v)).unwrap();
        }
        for (k, v) in &its {
            from_topic.apply_item(k, Some(v)).unwrap();
        }
        from_csv.load_locations_csv(&loc).unwrap();
        from_csv.load_items_csv(&items).unwrap();
        for id in ["DC-01", "STORE-1"] {
            assert_eq!(from_topic.location(id), from_csv.location(id));
        }
        for id in ["SKU-1", "SKU-2"] {
            assert_eq!(from_topic.item(id), from_csv.item(id));
        }
    }
}
