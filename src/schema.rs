//! JSON Schemas of the contracts, generated from the Rust types. `schemas/*.json` are these,
//! committed; a test fails when they drift (regenerate with `UPDATE_SCHEMAS=1 cargo test`).

use crate::alert::Alert;
use crate::event::{InputEvent, InputEventV1};

/// `(file name, pretty JSON)` of every contract schema.
pub fn all() -> Vec<(&'static str, String)> {
    let pretty = |s: schemars::Schema| {
        let mut t = serde_json::to_string_pretty(&s).unwrap_or_default();
        t.push('\n');
        t
    };
    vec![
        (
            "event.v1.schema.json",
            pretty(schemars::schema_for!(InputEventV1)),
        ),
        (
            "event.v2.schema.json",
            pretty(schemars::schema_for!(InputEvent)),
        ),
        ("alert.v1.schema.json", pretty(schemars::schema_for!(Alert))),
        (
            "location.v1.schema.json",
            pretty(schemars::schema_for!(crate::master::LocationRecord)),
        ),
        (
            "item.v1.schema.json",
            pretty(schemars::schema_for!(crate::master::ItemRecord)),
        ),
    ]
}
