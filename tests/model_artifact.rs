//! Train offline, ship, warm start: `evaluate --save-model` writes a model artifact, every
//! shard of `replay` starts from it with `model.initial`, and a file whose horizon or feature
//! set does not fit is refused with a message naming both values. (The service started from
//! the same file publishes the replay's alerts: `tests/kafka/warm_start.rs`.)

use std::path::Path;
use std::process::{Command, Output};

use stockwatch::model::{self, artifact, InitialModel, ModelArtifact, ModelConfig};

fn stockwatch(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_stockwatch"))
        .args(args)
        .output()
        .expect("cannot run stockwatch")
}

fn ok(args: &[&str]) -> Output {
    let out = stockwatch(args);
    assert!(
        out.status.success(),
        "stockwatch {}: {}",
        args.join(" "),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// The arguments of `evaluate` on the embedded FreshRetailNet-50K sample into `out`, with
/// `extra` flags.
fn evaluate<'a>(out: &'a Path, extra: &[&'a str]) -> Vec<&'a str> {
    let mut args = vec![
        "evaluate",
        "--quiet",
        "--no-plots",
        "--dataset",
        "frn50k",
        "--input",
        "data/frn50k_sample.csv",
        "--out",
        out.to_str().unwrap(),
    ];
    args.extend_from_slice(extra);
    args
}

/// Trains on the embedded FreshRetailNet-50K sample at `horizon` hours; returns the file.
fn train(dir: &Path, horizon: u32) -> std::path::PathBuf {
    let file = dir.join(format!("model-h{horizon}.json"));
    let h = horizon.to_string();
    let out = dir.join(format!("eval-h{horizon}"));
    ok(&evaluate(
        &out,
        &[
            "--horizon-hours",
            &h,
            "--label-sample-hours",
            "1",
            "--save-model",
            file.to_str().unwrap(),
        ],
    ));
    file
}

fn write_config(dir: &Path, name: &str, body: &str) -> std::path::PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, body).unwrap();
    p
}

#[test]
fn a_saved_model_round_trips_warm_starts_replay_and_is_refused_at_another_horizon() {
    let dir = tempfile::tempdir().unwrap();
    let file = train(dir.path(), 72);

    // The artifact: format, fingerprint, horizon, a model card, a state that learned.
    let a = ModelArtifact::read(&file).expect("reads back");
    assert_eq!(a.format, artifact::FORMAT);
    assert_eq!(a.fingerprint, artifact::fingerprint());
    assert_eq!(a.horizon_hours, 72);
    assert_eq!(a.card.series, 30);
    assert!(
        a.card.labels > 10_000 && a.card.positives > 0,
        "{:?}",
        a.card
    );
    assert!(a.card.metrics.roc_auc > 0.6, "{:?}", a.card.metrics);
    assert!(a.card.data.contains("frn50k_sample.csv"));

    // Round trip: a model built from it exports exactly the saved state, and differs from a
    // fresh one.
    let init = InitialModel::load(&file).expect("loads");
    let cfg = ModelConfig {
        initial: Some(init),
        ..ModelConfig::default()
    };
    cfg.check().expect("fits the default horizon (72)");
    let warm = model::build(&cfg);
    assert_eq!(warm.export(), a.state);
    assert!(warm.updates() > 10_000);
    assert_ne!(model::build(&ModelConfig::default()).export(), a.state);

    // Replay from the file: every shard starts from it (other risks than cold), the same
    // alerts on every run.
    let events = dir.path().join("events.jsonl");
    ok(&[
        "simulate",
        "--quiet",
        "--out",
        events.to_str().unwrap(),
        "--events",
        "20000",
        "--stores",
        "4",
        "--skus",
        "30",
        "--days",
        "10",
        "--seed",
        "3",
    ]);
    let warm_cfg = write_config(
        dir.path(),
        "warm.toml",
        &format!("[model]\ninitial = {:?}\n", file.to_str().unwrap()),
    );
    let replay = |config: Option<&Path>, out: &str| {
        let out = dir.path().join(out);
        let mut args = vec![
            "replay",
            "--quiet",
            "--input",
            events.to_str().unwrap(),
            "--alerts-out",
            out.to_str().unwrap(),
            "--partitions",
            "3",
        ];
        if let Some(c) = config {
            args.extend(["--config", c.to_str().unwrap()]);
        }
        ok(&args);
        std::fs::read_to_string(out).unwrap()
    };
    let cold = replay(None, "cold.jsonl");
    let warm1 = replay(Some(&warm_cfg), "warm1.jsonl");
    let warm2 = replay(Some(&warm_cfg), "warm2.jsonl");
    assert!(!warm1.is_empty(), "the warm replay raises alerts");
    assert_eq!(warm1, warm2, "deterministic");
    assert_ne!(cold, warm1, "the model file changes the risks");

    // The same file as a challenger: scored beside the champion, never alerting, so the
    // alerts are the champion's alone (cold, and warm with both).
    let file_s = file.to_str().unwrap();
    let ch_cfg = write_config(
        dir.path(),
        "challenger.toml",
        &format!("[model]\nchallenger = {file_s:?}\n"),
    );
    assert_eq!(
        replay(Some(&ch_cfg), "ch.jsonl"),
        cold,
        "a challenger never alerts"
    );
    let both_cfg = write_config(
        dir.path(),
        "both.toml",
        &format!("[model]\ninitial = {file_s:?}\nchallenger = {file_s:?}\n"),
    );
    assert_eq!(replay(Some(&both_cfg), "both.jsonl"), warm1);

    // Another horizon: refused by replay and by evaluate, naming both values and the file.
    let h24 = write_config(
        dir.path(),
        "h24.toml",
        &format!(
            "[model]\nhorizon_hours = 24\ninitial = {:?}\n",
            file.to_str().unwrap()
        ),
    );
    let out = stockwatch(&[
        "replay",
        "--quiet",
        "--input",
        events.to_str().unwrap(),
        "--alerts-out",
        dir.path().join("never.jsonl").to_str().unwrap(),
        "--config",
        h24.to_str().unwrap(),
    ]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        err.contains("horizon_hours = 72")
            && err.contains("model.horizon_hours = 24")
            && err.contains(file.to_str().unwrap()),
        "{err}"
    );
    // As a challenger: refused the same way, naming the field.
    let ch24 = write_config(
        dir.path(),
        "ch24.toml",
        &format!(
            "[model]\nhorizon_hours = 24\nchallenger = {:?}\n",
            file.to_str().unwrap()
        ),
    );
    let out = stockwatch(&["check-config", "--config", ch24.to_str().unwrap()]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        err.contains("model.challenger:")
            && err.contains("horizon_hours = 72")
            && err.contains("model.horizon_hours = 24"),
        "{err}"
    );
    let never = dir.path().join("never");
    let out = stockwatch(&evaluate(
        &never,
        &[
            "--config",
            warm_cfg.to_str().unwrap(),
            "--horizon-hours",
            "6",
        ],
    ));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        err.contains("horizon_hours = 72") && err.contains("model.horizon_hours = 6"),
        "{err}"
    );

    // An artifact trained at the horizon evaluate is told to run is accepted, though the
    // file's (here the default) horizon differs: the flag is checked, not the file alone.
    let file6 = train(dir.path(), 6);
    let warm6 = write_config(
        dir.path(),
        "warm6.toml",
        &format!("[model]\ninitial = {:?}\n", file6.to_str().unwrap()),
    );
    let warm6_out = dir.path().join("warm6");
    ok(&evaluate(
        &warm6_out,
        &["--config", warm6.to_str().unwrap(), "--horizon-hours", "6"],
    ));

    // Another feature set: refused, naming both fingerprints.
    let mut other = a.clone();
    other.fingerprint = "0123456789abcdef".into();
    let stale = dir.path().join("stale.json");
    other.write(&stale).unwrap();
    let e = InitialModel::load(&stale).expect_err("refused").to_string();
    assert!(
        e.contains("0123456789abcdef") && e.contains(&artifact::fingerprint()),
        "{e}"
    );
}
