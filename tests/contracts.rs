//! The committed JSON Schemas match the Rust types, and real outputs validate against them.

use std::path::Path;

fn schemas_dir() -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("schemas")
}

#[test]
fn committed_schemas_match_the_types() {
    for (name, text) in stockwatch::schema::all() {
        let path = schemas_dir().join(name);
        if std::env::var_os("UPDATE_SCHEMAS").is_some() {
            std::fs::write(&path, &text).unwrap();
        }
        let committed = std::fs::read_to_string(&path).unwrap_or_else(|e| {
            panic!("{}: {e} (run UPDATE_SCHEMAS=1 cargo test)", path.display())
        });
        assert_eq!(
            committed, text,
            "{name} drifted from the Rust types: review the change, then UPDATE_SCHEMAS=1 cargo test"
        );
    }
}

fn validator(name: &str) -> jsonschema::Validator {
    let s: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(schemas_dir().join(name)).unwrap()).unwrap();
    jsonschema::validator_for(&s).unwrap()
}

#[test]
fn contract_examples_validate_and_bad_ones_do_not() {
    let v = validator("event.v1.schema.json");
    for line in std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/golden_events.jsonl"),
    )
    .unwrap()
    .lines()
    {
        let j: serde_json::Value = serde_json::from_str(line).unwrap();
        assert!(v.is_valid(&j), "{line}");
    }
    let bad = serde_json::json!({"event_id":"e","type":"sale","sku":"K","location":"S","event_time":"2026-01-01T00:00:00Z"});
    assert!(!v.is_valid(&bad), "missing qty must not validate");
}

#[test]
fn golden_alerts_validate() {
    let v = validator("alert.v1.schema.json");
    let text = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/golden_alerts.jsonl"),
    )
    .unwrap();
    let mut n = 0;
    for line in text.lines() {
        let j: serde_json::Value = serde_json::from_str(line).unwrap();
        let errors: Vec<String> = v.iter_errors(&j).map(|e| e.to_string()).collect();
        assert!(errors.is_empty(), "{line}: {errors:?}");
        n += 1;
    }
    assert!(n > 0);
}

#[test]
fn master_data_records_validate_and_bad_ones_do_not() {
    let locations = validator("location.v1.schema.json");
    let items = validator("item.v1.schema.json");
    let csv = b"location,kind,time_zone,dc,region\nDC-01,dc,America/Chicago,,central\nS-1,store,Asia/Tokyo,DC-01,\n";
    let records = stockwatch::master::location_records_of("locations", csv).unwrap();
    assert_eq!(records.len(), 2);
    for (_, v) in &records {
        let v: serde_json::Value = serde_json::from_slice(v).unwrap();
        assert!(locations.is_valid(&v), "{v}");
    }
    let records = stockwatch::master::item_records_of(
        "items",
        b"sku,category,case_pack\nK1,grocery/dry,12\nK2,,\n",
    )
    .unwrap();
    for (_, v) in &records {
        let v: serde_json::Value = serde_json::from_slice(v).unwrap();
        assert!(items.is_valid(&v), "{v}");
    }
    for bad in [
        r#"{"location":"S","kind":"kiosk","time_zone":"UTC"}"#,
        r#"{"location":"S","kind":"store"}"#,
        r#"{"location":"S","kind":"store","time_zone":"UTC","extra":1}"#,
    ] {
        let v: serde_json::Value = serde_json::from_str(bad).unwrap();
        assert!(!locations.is_valid(&v), "{bad}");
    }
    for bad in [r#"{"category":"x"}"#, r#"{"sku":"K","case_pack":-1}"#] {
        let v: serde_json::Value = serde_json::from_str(bad).unwrap();
        assert!(!items.is_valid(&v), "{bad}");
    }
}
