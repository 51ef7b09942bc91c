//! `schemas/asyncapi.yaml` covers what the code reads and writes: every topic of
//! `config/default.toml` (`[kafka.topics]`) is a channel address, every header name the code
//! writes is a documented message header (and every documented header is written), and every
//! contract JSON Schema is referenced. The AsyncAPI CLI (`scripts/asyncapi.sh validate`, run by
//! `.ci/run`) checks the document against the specification; this test needs no Node.js.
//!
//! **How header names are found in the code.** The producer takes headers as `(name, value)`
//! pairs, so a header name is a string literal in one of two places in `src/**/*.rs`:
//! - the first element of a tuple: `("ce_id", …)`, a `(` and the literal, then a `,`
//!   (whitespace and line breaks in between allowed: rustfmt wraps long tuples);
//! - the value of a `&str` constant: `const H_SEQ: &str = "stockwatch.seq";`.
//!
//! and it has the shape of one of our header families: `ce_*` (CloudEvents), `content-type`,
//! `__connect.errors.*` (Kafka Connect) or `stockwatch.*`. Literals equal to a topic name are
//! not headers (`const DEFAULT_TOPIC: &str = "stockwatch.sales"`). A header written another way
//! (a name built at run time, an array of names) escapes the scan: `every_documented_header_is_written`
//! then fails for it, which says the scan needs a new pattern.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use serde_norway::Value;

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn document() -> Value {
    let path = root().join("schemas/asyncapi.yaml");
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_norway::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// The channel addresses (topic names) of the document.
fn addresses(doc: &Value) -> BTreeSet<String> {
    doc["channels"]
        .as_mapping()
        .expect("channels")
        .values()
        .filter_map(|c| c["address"].as_str().map(str::to_owned))
        .collect()
}

/// The topics of `config/default.toml`, `(key, topic)`.
fn configured_topics() -> Vec<(String, String)> {
    let text = std::fs::read_to_string(root().join("config/default.toml")).expect("default.toml");
    let cfg: toml::Value = toml::from_str(&text).expect("default.toml parses");
    cfg["kafka"]["topics"]
        .as_table()
        .expect("[kafka.topics]")
        .iter()
        .map(|(k, v)| (k.clone(), v.as_str().expect("topic is a string").to_owned()))
        .collect()
}

/// Follows a local `$ref` (`#/components/...`) if `v` is one.
fn resolve<'a>(doc: &'a Value, v: &'a Value) -> &'a Value {
    match v["$ref"].as_str() {
        Some(r) => {
            let pointer = r
                .strip_prefix("#/")
                .unwrap_or_else(|| panic!("headers must use local $refs, found {r}"));
            pointer.split('/').fold(doc, |node, part| &node[part])
        }
        None => v,
    }
}

/// Property names of a header schema, through `$ref`, `allOf`, `oneOf` and `anyOf`.
fn header_names(doc: &Value, schema: &Value, out: &mut BTreeSet<String>, depth: u32) {
    assert!(depth < 16, "$ref cycle in a header schema");
    let schema = resolve(doc, schema);
    if let Some(props) = schema["properties"].as_mapping() {
        out.extend(props.keys().filter_map(|k| k.as_str().map(str::to_owned)));
    }
    for combinator in ["allOf", "oneOf", "anyOf"] {
        for s in schema[combinator].as_sequence().into_iter().flatten() {
            header_names(doc, s, out, depth + 1);
        }
    }
}

/// Every header name of every message in `components.messages`.
fn documented_headers(doc: &Value) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    for m in doc["components"]["messages"]
        .as_mapping()
        .expect("components.messages")
        .values()
    {
        let m = resolve(doc, m);
        if !m["headers"].is_null() {
            header_names(doc, &m["headers"], &mut out, 0);
        }
    }
    out
}

/// Whether `s` has the shape of one of our header families.
fn header_shaped(s: &str) -> bool {
    let tail_ok = |t: &str, dots: bool| {
        !t.is_empty()
            && !t.ends_with('.')
            && t.bytes().all(|b| {
                b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_' || (dots && b == b'.')
            })
    };
    s == "content-type"
        || s.strip_prefix("ce_").is_some_and(|t| tail_ok(t, false))
        || s.strip_prefix("__connect.errors.")
            .is_some_and(|t| tail_ok(t, true))
        || s.strip_prefix("stockwatch.")
            .is_some_and(|t| tail_ok(t, true))
}

/// Header-name literals of one Rust source (see the module doc for the two patterns).
fn header_literals(src: &str) -> Vec<String> {
    let b = src.as_bytes();
    let mut out = Vec::new();
    for (open, _) in src.match_indices('"') {
        // A literal without escapes: `"` name-characters `"`.
        let len = b[open + 1..]
            .iter()
            .take_while(|c| c.is_ascii_alphanumeric() || b"_.-".contains(c))
            .count();
        let close = open + 1 + len;
        if len == 0 || b.get(close) != Some(&b'"') {
            continue;
        }
        let lit = &src[open + 1..close];
        if !header_shaped(lit) {
            continue;
        }
        let before = src[..open].trim_end();
        let after = src[close + 1..].trim_start();
        let tuple_head = before.ends_with('(') && after.starts_with(',');
        let str_const = before.ends_with("&str =")
            && before.lines().last().is_some_and(|l| {
                l.trim_start()
                    .trim_start_matches("pub ")
                    .starts_with("const ")
            });
        if tuple_head || str_const {
            out.push(lit.to_owned());
        }
    }
    out
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for e in std::fs::read_dir(dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display())) {
        let p = e.expect("dir entry").path();
        if p.is_dir() {
            rust_files(&p, out);
        } else if p.extension().is_some_and(|x| x == "rs") {
            out.push(p);
        }
    }
}

/// Header names the code writes, with the first file that writes each.
fn written_headers() -> std::collections::BTreeMap<String, PathBuf> {
    let topics: BTreeSet<String> = configured_topics().into_iter().map(|(_, t)| t).collect();
    let topics = topics
        .union(&addresses(&document()))
        .cloned()
        .collect::<BTreeSet<_>>();
    let mut files = Vec::new();
    rust_files(&root().join("src"), &mut files);
    files.sort();
    let mut out = std::collections::BTreeMap::new();
    for f in files {
        let src = std::fs::read_to_string(&f).expect("source");
        for h in header_literals(&src) {
            if !topics.contains(&h) {
                out.entry(h).or_insert_with(|| f.clone());
            }
        }
    }
    out
}

#[test]
fn every_configured_topic_is_a_channel() {
    let addrs = addresses(&document());
    let topics = configured_topics();
    assert!(topics.len() >= 8, "[kafka.topics] read: {topics:?}");
    let missing: Vec<_> = topics.iter().filter(|(_, t)| !addrs.contains(t)).collect();
    assert!(
        missing.is_empty(),
        "topics of config/default.toml missing from schemas/asyncapi.yaml (add a channel with \
         this address): {missing:?}"
    );
}

#[test]
fn every_written_header_is_documented() {
    let documented = documented_headers(&document());
    let missing: Vec<_> = written_headers()
        .into_iter()
        .filter(|(h, _)| !documented.contains(h))
        .collect();
    assert!(
        missing.is_empty(),
        "header names written by the code but not in schemas/asyncapi.yaml (add them to the \
         message's headers schema): {missing:?}"
    );
}

#[test]
fn every_documented_header_is_written() {
    let written = written_headers();
    let stale: Vec<_> = documented_headers(&document())
        .into_iter()
        .filter(|h| !written.contains_key(h))
        .collect();
    assert!(
        stale.is_empty(),
        "headers in schemas/asyncapi.yaml that the scan of src/ does not find (removed from the \
         code, or written in a way the scan in tests/asyncapi.rs does not know): {stale:?}"
    );
}

#[test]
fn every_contract_schema_is_referenced() {
    let text = std::fs::read_to_string(root().join("schemas/asyncapi.yaml")).expect("document");
    for (name, _) in stockwatch::schema::all() {
        assert!(
            text.contains(&format!("$ref: './{name}'")),
            "schemas/{name} is not referenced by schemas/asyncapi.yaml"
        );
    }
}

#[test]
fn the_scan_finds_both_patterns_and_nothing_else() {
    let src = r#"
        pub const H_SEQ: &str = "stockwatch.seq";
        const TOPIC: &str = "stockwatch.sales";
        let h = [("ce_id", id), ("content-type", b"application/json")];
        let w = vec![
            (
                "__connect.errors.exception.class.name",
                Cow::Owned(format!("stockwatch.reject.{reason}")),
            ),
        ];
        map.get("stockwatch.shards");
        let s = ("stockwatch.", 1);
        let t = ("isolation.level", "read_committed");
    "#;
    assert_eq!(
        header_literals(src),
        [
            "stockwatch.seq",
            "stockwatch.sales",
            "ce_id",
            "content-type",
            "__connect.errors.exception.class.name",
        ]
    );
}
