//! decode → validate → apply → score under libFuzzer. The input is a batch of messages, one a
//! line: `KEY\tVALUE` (a line without a tab has no key). The same harness runs as a property
//! test in `tests/fuzz_props.rs`.
#![no_main]

use libfuzzer_sys::fuzz_target;
use stockwatch::engine::exercise::exercise;
use stockwatch::engine::EngineConfig;

const NOW: i64 = 1_767_225_600_000; // 2026-01-01T00:00:00Z

fuzz_target!(|data: &[u8]| {
    let messages: Vec<(Option<&[u8]>, &[u8])> = data
        .split(|&b| b == b'\n')
        .map(|line| match line.iter().position(|&b| b == b'\t') {
            Some(i) => (Some(&line[..i]), &line[i + 1..]),
            None => (None, line),
        })
        .collect();
    let (acc, _) = exercise(&messages, 7, NOW, EngineConfig::default());
    assert!(acc.balanced(), "{acc:?}");
});
