//! `stockwatch check-config` seen from outside: the real binary, its stdout, stderr and exit
//! status. Environment variables are given to the child process only.

use std::path::Path;
use std::process::{Command, Output};

use stockwatch::config::{Config, SASL_PASSWORD_ENV};

const CANARY: &str = "canary-Xv9-must-never-be-printed";

/// `stockwatch check-config ARGS`, without any `STOCKWATCH__*` variable of the test's own
/// environment, plus `vars`.
fn check_config(args: &[&str], vars: &[(&str, &str)]) -> Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_stockwatch"));
    cmd.arg("check-config").args(args);
    for (k, _) in std::env::vars_os() {
        if k.to_string_lossy()
            .to_ascii_uppercase()
            .starts_with("STOCKWATCH__")
        {
            cmd.env_remove(k);
        }
    }
    cmd.envs(vars.iter().copied());
    cmd.output().expect("run stockwatch")
}

fn with_file(dir: &Path, toml: &str, vars: &[(&str, &str)]) -> Output {
    let p = dir.join("c.toml");
    std::fs::write(&p, toml).unwrap();
    check_config(&["--config", p.to_str().unwrap()], vars)
}

fn stdout(o: &Output) -> String {
    assert!(
        o.status.success(),
        "exit {:?}, stderr: {}",
        o.status,
        String::from_utf8_lossy(&o.stderr)
    );
    String::from_utf8(o.stdout.clone()).unwrap()
}

/// The error output of a failed run, checked to name every one of `parts`.
fn stderr_naming(o: &Output, parts: &[&str]) -> String {
    assert!(!o.status.success(), "should fail, stdout: {}", stdout(o));
    assert!(o.stdout.is_empty(), "stdout on error");
    let e = String::from_utf8(o.stderr.clone()).unwrap();
    assert!(e.starts_with("error: "), "{e}");
    for p in parts {
        assert!(e.contains(p), "{p:?} not in: {e}");
    }
    e
}

fn assert_no_canary(o: &Output) {
    for s in [&o.stdout, &o.stderr] {
        let s = String::from_utf8_lossy(s);
        assert!(!s.contains(CANARY), "secret printed: {s}");
    }
}

#[test]
fn defaults_print_and_load_back() {
    let dir = tempfile::tempdir().unwrap();
    let out = stdout(&check_config(&[], &[]));
    let parsed: Config = toml::from_str(&out).unwrap();
    assert_eq!(parsed, Config::defaults());
    assert!(out.contains("sasl_password = \"(not set)\""), "{out}");
    // The output is a config file that gives itself back.
    assert_eq!(stdout(&with_file(dir.path(), &out, &[])), out);
}

#[test]
fn env_overrides_show_up() {
    let out = stdout(&check_config(
        &[],
        &[
            ("STOCKWATCH__ENGINE__ALLOWED_LATENESS_SECS", "600"),
            ("STOCKWATCH__KAFKA__TOPICS__ALERTS", "x"),
        ],
    ));
    let c: Config = toml::from_str(&out).unwrap();
    assert_eq!(c.engine.allowed_lateness_secs, 600);
    assert_eq!(c.kafka.topics.alerts, "x");
}

#[test]
fn errors_name_the_field_and_the_value() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let cases: [(&str, &[&str]); 7] = [
        ("[http]\nlisten_addr = \"x\"\n", &["http.listen_addr"]),
        (
            "[service]\nshutdown_deadline_secs = \"soon\"\n",
            &["service.shutdown_deadline_secs", "\"soon\""],
        ),
        (
            "[service]\ndelivery = \"exactly_twice\"\n",
            &["service.delivery", "exactly_twice"],
        ),
        (
            "[http]\nlisten = \"127.0.0.1\"\n",
            &["http.listen", "\"127.0.0.1\""],
        ),
        (
            "[http]\nlisten = \"0.0.0.0:9464\"\n",
            &["http.listen", "0.0.0.0:9464", "http.allow_non_loopback"],
        ),
        (
            "[engine]\ndedupe_ttl_secs = 10\n",
            &["engine.dedupe_ttl_secs", "engine.allowed_lateness_secs"],
        ),
        (
            "[kafka.consumer]\n\"group.id\" = \"other\"\n",
            &["kafka.consumer", "group.id", "kafka.group_id"],
        ),
    ];
    for (toml, parts) in cases {
        stderr_naming(&with_file(d, toml, &[]), parts);
    }
    let missing = check_config(&["--config", "/nonexistent/stockwatch.toml"], &[]);
    stderr_naming(&missing, &["/nonexistent/stockwatch.toml"]);
    let o = check_config(&[], &[("STOCKWATCH__KAFKA__POLL_MAX_MS", "fast")]);
    stderr_naming(
        &o,
        &[
            "kafka.poll_max_ms",
            "\"fast\"",
            "STOCKWATCH__KAFKA__POLL_MAX_MS",
        ],
    );
}

#[test]
fn plaintext_to_a_remote_broker_is_refused_unless_allowed() {
    let dir = tempfile::tempdir().unwrap();
    let remote = "[kafka]\nbootstrap_servers = \"10.1.2.3:9092\"\n";
    stderr_naming(
        &with_file(dir.path(), remote, &[]),
        &[
            "kafka.bootstrap_servers",
            "10.1.2.3:9092",
            "kafka.security.allow_plaintext_non_loopback",
        ],
    );
    stderr_naming(
        &check_config(
            &[],
            &[("STOCKWATCH__KAFKA__BOOTSTRAP_SERVERS", "10.1.2.3:9092")],
        ),
        &["kafka.bootstrap_servers", "10.1.2.3:9092"],
    );
    let allowed = format!("{remote}[kafka.security]\nallow_plaintext_non_loopback = true\n");
    let out = stdout(&with_file(dir.path(), &allowed, &[]));
    assert!(
        out.contains("bootstrap_servers = \"10.1.2.3:9092\""),
        "{out}"
    );
}

/// SASL over loopback with PLAIN, which every librdkafka build supports.
const SASL: &str = "[kafka.security]\nprotocol = \"sasl_plaintext\"\n\
                    sasl_mechanism = \"PLAIN\"\nsasl_username = \"svc\"\n";

#[test]
fn canary_password_from_env_is_never_printed() {
    let dir = tempfile::tempdir().unwrap();
    let o = with_file(dir.path(), SASL, &[(SASL_PASSWORD_ENV, CANARY)]);
    assert_no_canary(&o);
    let out = stdout(&o);
    assert!(out.contains("sasl_password = \"***\""), "{out}");
    assert!(out.contains(SASL_PASSWORD_ENV), "{out}");
    let o = check_config(&["--client-properties"], &[(SASL_PASSWORD_ENV, CANARY)]);
    // Plaintext with a password: refused, without the password.
    assert_no_canary(&o);
    stderr_naming(
        &o,
        &["kafka.security.sasl_password", "kafka.security.protocol"],
    );
    let p = dir.path().join("c.toml");
    let o = check_config(
        &["--config", p.to_str().unwrap(), "--client-properties"],
        &[(SASL_PASSWORD_ENV, CANARY)],
    );
    assert_no_canary(&o);
    assert!(stdout(&o).contains("sasl.password = ***"));
}

#[test]
fn canary_password_from_file_is_never_printed() {
    let dir = tempfile::tempdir().unwrap();
    let pw = dir.path().join("sasl-password");
    std::fs::write(&pw, format!("{CANARY}\n")).unwrap();
    let toml = format!("{SASL}sasl_password_file = {:?}\n", pw.to_str().unwrap());
    let o = with_file(dir.path(), &toml, &[]);
    assert_no_canary(&o);
    assert!(stdout(&o).contains("sasl_password = \"***\""));
    // Given twice: refused, naming both places, showing neither value.
    let o = with_file(dir.path(), &toml, &[(SASL_PASSWORD_ENV, CANARY)]);
    assert_no_canary(&o);
    stderr_naming(
        &o,
        &[SASL_PASSWORD_ENV, "kafka.security.sasl_password_file"],
    );
    // An error elsewhere in the same configuration does not print it either.
    let broken = format!("{toml}[http]\nlisten = \"nowhere\"\n");
    let o = with_file(dir.path(), &broken, &[]);
    assert_no_canary(&o);
    stderr_naming(&o, &["http.listen", "nowhere"]);
}

#[test]
fn sasl_password_in_a_config_file_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    for toml in [
        format!("{SASL}sasl_password = \"{CANARY}\"\n"),
        format!("{SASL}sasl_password = {CANARY}\n"),
    ] {
        let o = with_file(dir.path(), &toml, &[]);
        assert_no_canary(&o);
        stderr_naming(
            &o,
            &[
                "kafka.security.sasl_password",
                SASL_PASSWORD_ENV,
                "kafka.security.sasl_password_file",
            ],
        );
    }
    let o = with_file(
        dir.path(),
        &format!("[kafka.consumer]\n\"sasl.password\" = \"{CANARY}\"\n"),
        &[],
    );
    assert_no_canary(&o);
    stderr_naming(&o, &["sasl.password"]);
}

#[test]
fn help_explains_layers_and_secrets() {
    let o = check_config(&["--help"], &[]);
    let out = stdout(&o);
    for p in ["--config", "STOCKWATCH__", SASL_PASSWORD_ENV, "Exit status"] {
        assert!(out.contains(p), "{p:?} not in: {out}");
    }
}
