//! The configuration's unit tests: loading, layering, secrets and security checks.

use rdkafka::config::ClientConfig;

use super::security::{first_non_loopback, host_of, is_loopback_host};
use super::*;
use crate::kafka::{check_client_security, check_client_security_with, librdkafka_features};

#[test]
fn defaults_are_valid_and_match_code_defaults() {
    let c = Config::defaults();
    c.validate().unwrap();
    assert_eq!(c.engine_config(), EngineConfig::default());
}

#[test]
fn unknown_key_is_named() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("c.toml");
    std::fs::write(&p, "[engine]\nallowed_lateness_sec = 5\n").unwrap();
    let e = Config::load(Some(&p)).unwrap_err().to_string();
    assert!(e.contains("allowed_lateness_sec"), "{e}");
}

#[test]
fn cross_field_error_names_both_fields() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("c.toml");
    std::fs::write(&p, "[engine]\ndedupe_ttl_secs = 10\n").unwrap();
    let e = Config::load(Some(&p)).unwrap_err().to_string();
    assert!(
        e.contains("engine.dedupe_ttl_secs") && e.contains("engine.allowed_lateness_secs"),
        "{e}"
    );
}

#[test]
fn wrong_type_is_named() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("c.toml");
    std::fs::write(&p, "[alerts]\nraise_threshold = \"high\"\n").unwrap();
    let e = Config::load(Some(&p)).unwrap_err().to_string();
    assert!(e.contains("raise_threshold"), "{e}");
}

const CANARY: &str = "canary-Zq7-do-not-print";

fn env(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
    pairs
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect()
}

/// Loads `toml` as a config file with the given environment.
fn load(toml: &str, vars: &[(&str, &str)]) -> Result<Config, ConfigError> {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("c.toml");
    std::fs::write(&p, toml).unwrap();
    Config::load_with_env(Some(&p), env(vars))
}

fn load_err(toml: &str, vars: &[(&str, &str)]) -> String {
    let e = load(toml, vars).unwrap_err().to_string();
    assert!(!e.contains(CANARY), "secret in error: {e}");
    e
}

fn assert_names(e: &str, parts: &[&str]) {
    for p in parts {
        assert!(e.contains(p), "{p:?} not in: {e}");
    }
}

const SASL: &str = "[kafka.security]\nprotocol = \"sasl_plaintext\"\n\
                    sasl_mechanism = \"PLAIN\"\nsasl_username = \"svc\"\n";

#[test]
fn defaults_round_trip_through_toml() {
    let d = Config::defaults();
    let text = d.to_toml().unwrap();
    assert_eq!(toml::from_str::<Config>(&text).unwrap(), d);
    assert_eq!(load(&text, &[]).unwrap(), d);
    assert_eq!(Config::load_with_env(None, Vec::new()).unwrap(), d);
}

#[test]
fn env_overrides_keep_string_keys_raw() {
    let c = Config::load_with_env(
        None,
        env(&[
            ("STOCKWATCH__ENGINE__ALLOWED_LATENESS_SECS", "600"),
            ("STOCKWATCH__KAFKA__TOPICS__ALERTS", "x"),
            ("STOCKWATCH__SERVICE__INSTANCE_ID", "007"),
            ("stockwatch__log__level", "warn"),
            ("STOCKWATCH__KAFKA__CONSUMER__FETCH__MIN__BYTES", "1"),
            ("OTHER__ENGINE__ALLOWED_LATENESS_SECS", "not even a number"),
        ]),
    )
    .unwrap();
    assert_eq!(c.engine.allowed_lateness_secs, 600);
    assert_eq!(c.kafka.topics.alerts, "x");
    assert_eq!(c.service.instance_id(), Some("007"));
    assert_eq!(c.log.level, "warn");
    assert_eq!(c.kafka.consumer["fetch.min.bytes"], "1");
}

#[test]
fn env_error_names_the_variable() {
    let e = Config::load_with_env(
        None,
        env(&[("STOCKWATCH__ENGINE__ALLOWED_LATENESS_SECS", "soon")]),
    )
    .unwrap_err()
    .to_string();
    assert_names(
        &e,
        &[
            "engine.allowed_lateness_secs",
            "\"soon\"",
            "STOCKWATCH__ENGINE__ALLOWED_LATENESS_SECS",
        ],
    );
}

#[test]
fn client_configs_have_the_fixed_properties_then_pass_through() {
    let c = load(
        "[service]\ninstance_id = \"pod-0\"\n[kafka.consumer]\n\
         auto.offset.reset = \"latest\"\n\"fetch.min.bytes\" = 1\n\
         [kafka.producer]\nlinger.ms = 20\n",
        &[],
    )
    .unwrap();
    let k = &c.kafka;
    let cc = k.consumer_config(&c.service);
    for (p, v) in [
        ("bootstrap.servers", "127.0.0.1:9092"),
        ("group.id", "stockwatch"),
        ("group.instance.id", "pod-0"),
        ("partition.assignment.strategy", "range"),
        ("enable.auto.commit", "false"),
        ("enable.auto.offset.store", "false"),
        ("isolation.level", "read_committed"),
        ("session.timeout.ms", "10000"),
        ("security.protocol", "plaintext"),
        ("auto.offset.reset", "latest"),
        ("fetch.min.bytes", "1"),
    ] {
        assert_eq!(cc.get(p), Some(v), "{p}");
    }
    let pc = k.producer_config();
    for (p, v) in [
        ("enable.idempotence", "true"),
        ("partitioner", "murmur2_random"),
        ("compression.type", "lz4"),
        ("linger.ms", "20"),
    ] {
        assert_eq!(pc.get(p), Some(v), "{p}");
    }
    assert_eq!(pc.get("group.id"), None);
    let plain = Config::defaults();
    let cc = plain.kafka.consumer_config(&plain.service);
    assert_eq!(cc.get("group.instance.id"), None);
    assert_eq!(cc.get("sasl.username"), None);
}

#[test]
fn sasl_password_from_env_is_used_and_never_shown() {
    let c = load(SASL, &[(SASL_PASSWORD_ENV, CANARY)]).unwrap();
    let cc = c.kafka.consumer_config(&c.service);
    let pc = c.kafka.producer_config();
    assert_eq!(cc.get("sasl.password"), Some(CANARY));
    assert_eq!(pc.get("sasl.password"), Some(CANARY));
    assert_eq!(cc.get("sasl.mechanism"), Some("PLAIN"));
    assert_eq!(cc.get("sasl.username"), Some("svc"));
    let shown = [
        format!("{c:?}"),
        format!("{c:#?}"),
        format!("{cc:?}"),
        format!("{:?}", redacted(&cc)),
        format!("{:?}", redacted(&pc)),
        c.to_toml().unwrap(),
        serde_json::to_string(&c).unwrap(),
    ];
    for s in shown {
        assert!(!s.contains(CANARY), "secret shown: {s}");
    }
    assert_eq!(redacted(&cc)["sasl.password"], MASK);
    let secret = c.kafka.security.sasl_password.as_ref().unwrap();
    assert_eq!(format!("{secret} {secret:?}"), "*** ***");
    assert_eq!(serde_json::to_string(secret).unwrap(), "\"***\"");
    assert_eq!(
        c.kafka.security.sasl_password_source().unwrap(),
        format!("environment variable {SASL_PASSWORD_ENV}")
    );
}

#[test]
fn sasl_password_from_file_drops_one_trailing_newline() {
    let dir = tempfile::tempdir().unwrap();
    for (content, want) in [
        (format!("{CANARY}\n"), CANARY.to_owned()),
        (format!("{CANARY}\r\n"), CANARY.to_owned()),
        (format!(" {CANARY} \n\n"), format!(" {CANARY} \n")),
    ] {
        let pw = dir.path().join("pw");
        std::fs::write(&pw, content).unwrap();
        let c = load(
            &format!("{SASL}sasl_password_file = {:?}\n", pw.to_str().unwrap()),
            &[],
        )
        .unwrap();
        let secret = c.kafka.security.sasl_password.as_ref().unwrap();
        assert_eq!(secret.expose(), want);
        assert!(!format!("{c:?}").contains(CANARY));
    }
}

#[test]
fn sasl_password_errors_name_the_field_and_hide_the_value() {
    let dir = tempfile::tempdir().unwrap();
    let pw = dir.path().join("pw");
    std::fs::write(&pw, CANARY).unwrap();
    let with_file = format!("{SASL}sasl_password_file = {:?}\n", pw.to_str().unwrap());
    let e = load_err(&with_file, &[(SASL_PASSWORD_ENV, CANARY)]);
    assert_names(
        &e,
        &[SASL_PASSWORD_ENV, "kafka.security.sasl_password_file"],
    );
    let missing = format!("{SASL}sasl_password_file = \"/nonexistent/pw\"\n");
    assert_names(
        &load_err(&missing, &[]),
        &["sasl_password_file", "/nonexistent/pw"],
    );
    let e = load_err("", &[(SASL_PASSWORD_ENV, CANARY)]);
    assert_names(
        &e,
        &["kafka.security.sasl_password", "kafka.security.protocol"],
    );
    let e = load_err(SASL, &[]);
    assert_names(&e, &[SASL_PASSWORD_ENV, "sasl_password_file"]);
    let no_user = SASL.replace("sasl_username = \"svc\"", "");
    let e = load_err(&no_user, &[(SASL_PASSWORD_ENV, CANARY)]);
    assert_names(&e, &["kafka.security.sasl_username"]);
}

#[test]
fn sasl_password_in_a_config_file_is_refused() {
    for file in [
        format!("[kafka.security]\nsasl_password = \"{CANARY}\"\n"),
        // A syntax error must not quote the line.
        format!("[kafka.security]\nsasl_password = {CANARY}\n"),
        format!("[kafka]\nsecurity.sasl_password = \"{CANARY}\"\n"),
        format!("[kafka]\nsecurity = {{ sasl_password = \"{CANARY}\" }}\n"),
    ] {
        let e = load_err(&file, &[]);
        assert_names(
            &e,
            &[
                "kafka.security.sasl_password",
                SASL_PASSWORD_ENV,
                "kafka.security.sasl_password_file",
            ],
        );
    }
    let e = load_err(
        &format!("[kafka.producer]\n\"ssl.key.password\" = \"{CANARY}\"\n"),
        &[],
    );
    assert_names(&e, &["ssl.key.password"]);
    let e = load_err(
        "",
        &[("STOCKWATCH__KAFKA__CONSUMER__SASL__PASSWORD", CANARY)],
    );
    assert_names(&e, &["kafka.consumer", "sasl.password"]);
}

#[test]
fn plaintext_to_a_remote_broker_needs_the_allow_flag() {
    for servers in ["10.1.2.3:9092", "127.0.0.1:9092,kafka.example:9092"] {
        let f = format!("[kafka]\nbootstrap_servers = {servers:?}\n");
        let e = load_err(&f, &[]);
        assert_names(
            &e,
            &[
                "kafka.bootstrap_servers",
                "kafka.security.allow_plaintext_non_loopback",
                servers.split(',').next_back().unwrap(),
            ],
        );
        let allowed = format!("{f}[kafka.security]\nallow_plaintext_non_loopback = true\n");
        load(&allowed, &[]).unwrap();
    }
    let sasl_remote = format!("{SASL}[kafka]\nbootstrap_servers = \"10.1.2.3:9092\"\n");
    let e = load_err(&sasl_remote, &[(SASL_PASSWORD_ENV, CANARY)]);
    assert_names(&e, &["\"sasl_plaintext\"", "allow_plaintext_non_loopback"]);
    let local = "localhost:9092, 127.0.0.2:1,[::1]:9092,PLAINTEXT://127.0.0.1:9,::1";
    load(&format!("[kafka]\nbootstrap_servers = {local:?}\n"), &[]).unwrap();
}

#[test]
fn bootstrap_hosts_are_parsed() {
    assert_eq!(host_of("10.1.2.3:9092"), "10.1.2.3");
    assert_eq!(host_of("[::1]:9092"), "::1");
    assert_eq!(host_of("::1"), "::1");
    assert_eq!(host_of("SASL_SSL://broker-1:9093"), "broker-1");
    assert_eq!(host_of("broker"), "broker");
    assert!(is_loopback_host("::ffff:127.0.0.1"));
    assert!(!is_loopback_host("0.0.0.0"));
    assert_eq!(
        first_non_loopback("127.0.0.1:1, 10.0.0.1:2"),
        Some("10.0.0.1:2")
    );
}

#[test]
fn pass_through_properties_are_checked() {
    for (file, parts) in [
        (
            "[kafka.consumer]\n\"group.id\" = \"x\"\n",
            &["kafka.consumer", "\"group.id\"", "kafka.group_id"][..],
        ),
        (
            "[kafka.producer]\nbootstrap.servers = \"x:1\"\n",
            &[
                "kafka.producer",
                "bootstrap.servers",
                "kafka.bootstrap_servers",
            ],
        ),
        (
            "[kafka.consumer]\npartition.assignment.strategy = \"roundrobin\"\n",
            &["partition.assignment.strategy", "range"],
        ),
        (
            "[kafka.consumer]\nfetch.min.byte = 1\n",
            &["kafka.consumer", "fetch.min.byte"],
        ),
        (
            "[kafka.consumer]\n\"fetch.min.bytes\" = \"lots\"\n",
            &["fetch.min.bytes", "lots"],
        ),
        (
            "[kafka.consumer]\nssl.endpoint.identification.algorithm = \"none\"\n",
            &["ssl.endpoint.identification.algorithm"],
        ),
        (
            "[kafka.consumer]\nfetch.min.bytes = [1]\n",
            &["kafka.consumer", "sequence"],
        ),
    ] {
        assert_names(&load_err(file, &[]), parts);
    }
}

#[test]
fn http_section_is_checked() {
    let e = load_err("[http]\nlisten = \"localhost:9464\"\n", &[]);
    assert_names(&e, &["http.listen", "\"localhost:9464\""]);
    let e = load_err("[http]\nlisten = \"0.0.0.0:9464\"\n", &[]);
    assert_names(
        &e,
        &["http.listen", "0.0.0.0:9464", "http.allow_non_loopback"],
    );
    // Beyond loopback, /v1/* needs a token file.
    let e = load_err(
        "[http]\nlisten = \"0.0.0.0:9464\"\nallow_non_loopback = true\n",
        &[],
    );
    assert_names(&e, &["http.listen", "0.0.0.0:9464", "http.token_file"]);
    let dir = tempfile::tempdir().unwrap();
    let token = dir.path().join("token");
    std::fs::write(&token, "s3cret-token\n").unwrap();
    let c = load(
        &format!(
            "[http]\nlisten = \"0.0.0.0:9464\"\nallow_non_loopback = true\ntoken_file = {:?}\n",
            token.display().to_string()
        ),
        &[],
    )
    .unwrap();
    assert_eq!(c.http.listen.port(), 9464);
    let t = c.http.read_token().unwrap().expect("a token");
    assert_eq!(
        t.expose(),
        "s3cret-token",
        "the trailing newline is not part of it"
    );
    assert_eq!(format!("{t:?}"), "***");
    assert!(Config::defaults().http.read_token().unwrap().is_none());
    std::fs::write(&token, " \n").unwrap();
    let e = c.http.read_token().unwrap_err().to_string();
    assert!(e.contains("http.token_file") && e.contains("empty"), "{e}");
    std::fs::remove_file(&token).unwrap();
    let e = c.http.read_token().unwrap_err().to_string();
    assert!(e.contains("http.token_file"), "{e}");
    load("[http]\nlisten = \"[::1]:0\"\n", &[]).unwrap();
    let e = load_err("[http]\nmax_concurrent_requests = 0\n", &[]);
    assert_names(&e, &["http.max_concurrent_requests"]);
    assert_eq!(
        Config::defaults().http.request_timeout(),
        Duration::from_secs(10)
    );
}

#[test]
fn service_and_log_sections_are_checked() {
    let e = load_err("[service]\ndelivery = \"exactly_twice\"\n", &[]);
    assert_names(&e, &["service.delivery", "exactly_twice", "at_least_once"]);
    let c = load("[service]\ndelivery = \"exactly_once\"\n", &[]).unwrap();
    assert_eq!(c.service.delivery, Delivery::ExactlyOnce);
    assert_eq!(c.service.shutdown_deadline(), Duration::from_secs(30));
    let e = load_err("[service]\ninstance_id = \"pod 0\"\n", &[]);
    assert_names(&e, &["service.instance_id", "pod 0"]);
    let e = load_err("[log]\nformat = \"xml\"\n", &[]);
    assert_names(&e, &["log.format", "xml"]);
    for bad in ["infoo", "info,stockwatch=loud", ""] {
        let e = load_err(&format!("[log]\nlevel = {bad:?}\n"), &[]);
        assert_names(&e, &["log.level"]);
    }
    for good in ["debug", "info,stockwatch=debug,rdkafka=warn", "OFF"] {
        let c = load(
            &format!("[log]\nlevel = {good:?}\nformat = \"json\"\n"),
            &[],
        )
        .unwrap();
        c.log.env_filter().unwrap();
        assert_eq!(c.log.format, LogFormat::Json);
    }
}

#[test]
fn tls_needs_a_librdkafka_with_ssl() {
    let r = load("[kafka.security]\nprotocol = \"ssl\"\n", &[]);
    if librdkafka_features().split(',').any(|f| f == "ssl") {
        r.unwrap();
    } else {
        assert_names(
            &r.unwrap_err().to_string(),
            &["kafka.security.protocol", "`ssl`"],
        );
    }
    let e = load_err("[kafka.security]\nssl_ca_location = \"/etc/ca.pem\"\n", &[]);
    assert_names(
        &e,
        &["kafka.security.ssl_ca_location", "kafka.security.protocol"],
    );
}

/// librdkafka 2.12.1's `builtin.features` as rdkafka builds it without the `ssl` feature.
const WITHOUT_SSL: &str = "gzip,snappy,sasl,regex,lz4,sasl_plain,plugins";

fn test_ca() -> String {
    format!("{}/tests/fixtures/test-ca.pem", env!("CARGO_MANIFEST_DIR"))
}

fn sasl_ssl(ca: &str) -> String {
    format!(
        "[kafka.security]\nprotocol = \"sasl_ssl\"\nsasl_mechanism = \"SCRAM-SHA-512\"\n\
         sasl_username = \"svc\"\nssl_ca_location = {ca:?}\n"
    )
}

#[test]
fn this_build_speaks_tls_and_scram() {
    let f = librdkafka_features();
    for needed in ["ssl", "sasl_scram", "sasl_plain"] {
        assert!(f.split(',').any(|x| x == needed), "{needed} not in {f}");
    }
}

#[test]
fn sasl_ssl_with_scram_and_a_ca_file_reaches_librdkafka() {
    let c = load(&sasl_ssl(&test_ca()), &[(SASL_PASSWORD_ENV, CANARY)]).unwrap();
    let configs = [
        c.kafka.consumer_config(&c.service),
        c.kafka.producer_config(),
    ];
    for cc in &configs {
        // As librdkafka holds them, not only as we wrote them.
        let native = cc.create_native_config().unwrap();
        for (p, v) in [
            ("security.protocol", "sasl_ssl"),
            ("sasl.mechanisms", "SCRAM-SHA-512"),
            ("sasl.username", "svc"),
            ("ssl.ca.location", test_ca().as_str()),
            ("enable.ssl.certificate.verification", "true"),
            ("ssl.endpoint.identification.algorithm", "https"),
        ] {
            assert_eq!(native.get(p).unwrap(), v, "{p}");
        }
    }
    // Client creation loads the CA file into an OpenSSL context; no broker is contacted
    // before the first request (the clients are dropped at once).
    let consumer: rdkafka::consumer::BaseConsumer = configs[0].create().unwrap();
    let producer: rdkafka::producer::BaseProducer = configs[1].create().unwrap();
    drop((consumer, producer));
    check_client_security(&configs[0]).unwrap();
}

#[test]
fn a_ca_file_librdkafka_cannot_use_names_the_field() {
    let e = load_err(
        &sasl_ssl("/nonexistent/ca.pem"),
        &[(SASL_PASSWORD_ENV, CANARY)],
    );
    assert_names(
        &e,
        &["kafka.security.ssl_ca_location", "/nonexistent/ca.pem"],
    );
    // Exists, but is no certificate: librdkafka refuses it when the client is created.
    let dir = tempfile::tempdir().unwrap();
    let junk = dir.path().join("ca.pem");
    std::fs::write(&junk, "not a certificate\n").unwrap();
    let junk = junk.to_str().unwrap();
    for (toml, vars) in [
        (sasl_ssl(junk), &[(SASL_PASSWORD_ENV, CANARY)][..]),
        (
            format!("[kafka.security]\nprotocol = \"ssl\"\nssl_ca_location = {junk:?}\n"),
            &[],
        ),
    ] {
        let e = load_err(&toml, vars);
        assert_names(&e, &["kafka.security.ssl_ca_location", junk, "TLS"]);
    }
}

#[test]
fn a_librdkafka_without_tls_or_scram_is_refused_naming_the_protocol() {
    let c = load(&sasl_ssl(&test_ca()), &[(SASL_PASSWORD_ENV, CANARY)]).unwrap();
    let mut sec = c.kafka.security.clone();
    let e = sec.check_support(WITHOUT_SSL).unwrap_err();
    assert_names(&e, &["kafka.security.protocol", "\"sasl_ssl\"", "`ssl`"]);
    sec.protocol = SecurityProtocol::SaslPlaintext;
    let e = sec.check_support(WITHOUT_SSL).unwrap_err();
    assert_names(
        &e,
        &[
            "kafka.security.protocol",
            "kafka.security.sasl_mechanism",
            "SCRAM-SHA-512",
            "`ssl`",
        ],
    );
    sec.sasl_mechanism = SaslMechanism::Plain;
    sec.check_support(WITHOUT_SSL).unwrap();
    // The same check on the properties a client is created with.
    let pc = c.kafka.producer_config();
    let e = check_client_security_with(&pc, WITHOUT_SSL).unwrap_err();
    assert_names(&e, &["kafka.security.protocol", "`ssl`"]);
    let mut plain = ClientConfig::new();
    plain.set("security.protocol", "SASL_PLAINTEXT");
    plain.set("sasl.mechanisms", "SCRAM-SHA-256");
    let e = check_client_security_with(&plain, WITHOUT_SSL).unwrap_err();
    assert_names(&e, &["kafka.security.protocol", "SCRAM-SHA-256"]);
    plain.set("sasl.mechanisms", "PLAIN");
    check_client_security_with(&plain, WITHOUT_SSL).unwrap();
    check_client_security_with(&ClientConfig::new(), WITHOUT_SSL).unwrap();
}

#[test]
fn pass_through_cannot_turn_tls_verification_off() {
    for (map, prop, value) in [
        ("consumer", "ssl.endpoint.identification.algorithm", "none"),
        ("producer", "ssl.endpoint.identification.algorithm", "NONE"),
        (
            "consumer",
            "ssl.endpoint.identification.algorithm",
            " None ",
        ),
        ("producer", "ssl.endpoint.identification.algorithm", ""),
        ("consumer", "enable.ssl.certificate.verification", "false"),
        ("producer", "enable.ssl.certificate.verification", "0"),
        ("consumer", "enable.ssl.certificate.verification", "f"),
        ("consumer", "sasl.oauthbearer.config", "principal=x"),
        ("producer", "sasl.kerberos.service.name", "kafka"),
    ] {
        let toml = format!("[kafka.{map}]\n{prop:?} = {value:?}\n");
        let e = load_err(&toml, &[]);
        assert_names(&e, &[&format!("kafka.{map}"), prop]);
    }
    // Setting what the service sets anyway, and librdkafka's debug log, are allowed.
    let c = load(
        &format!(
            "{}[kafka.consumer]\nssl.endpoint.identification.algorithm = \"HTTPS\"\n\
             enable.ssl.certificate.verification = true\ndebug = \"all\"\n\
             [kafka.producer]\ndebug = \"all\"\n",
            sasl_ssl(&test_ca())
        ),
        &[(SASL_PASSWORD_ENV, CANARY)],
    )
    .unwrap();
    assert_eq!(c.kafka.consumer["debug"], "all");
    assert_eq!(c.kafka.producer["debug"], "all");
}

#[test]
fn input_topics_are_one_per_type_or_shared_with_their_allowed_types() {
    use crate::event::EventType;
    let c = Config::defaults();
    let t = &c.kafka.topics;
    assert_eq!(t.inputs().len(), EventType::COUNT);
    for (types, ty) in t.input_types().iter().zip(EventType::ALL) {
        assert_eq!(types.only(), Some(ty));
    }
    // Adjustments and counts share the receipts topic: one input carries three types.
    let vars = [
        (
            "STOCKWATCH__KAFKA__TOPICS__ADJUSTMENTS",
            "stockwatch.receipts",
        ),
        (
            "STOCKWATCH__KAFKA__TOPICS__INVENTORY_COUNTS",
            "stockwatch.receipts",
        ),
    ];
    let c = Config::load_with_env(
        None,
        vars.iter().map(|(k, v)| (k.to_string(), v.to_string())),
    )
    .unwrap();
    let t = &c.kafka.topics;
    assert_eq!(
        t.inputs(),
        [
            "stockwatch.sales",
            "stockwatch.shipments",
            "stockwatch.receipts",
            "stockwatch.availability"
        ]
    );
    let receipts = &t.input_types()[2];
    assert_eq!(receipts.only(), None);
    for ty in [
        EventType::Receipt,
        EventType::InventoryCount,
        EventType::Adjustment,
    ] {
        assert!(receipts.allows(ty as u8), "{ty:?}");
    }
    assert!(!receipts.allows(EventType::Sale as u8));
    // An input topic may not be an output topic.
    let vars = [(
        "STOCKWATCH__KAFKA__TOPICS__ADJUSTMENTS",
        "stockwatch.alerts",
    )];
    let e = Config::load_with_env(
        None,
        vars.iter().map(|(k, v)| (k.to_string(), v.to_string())),
    )
    .unwrap_err()
    .to_string();
    assert!(
        e.contains("kafka.topics.adjustments") && e.contains("kafka.topics.alerts"),
        "{e}"
    );
}

#[test]
fn dead_letter_limits_must_fit_the_producers_message_size() {
    let e = load_err("[kafka]\ndead_letter_max_header_bytes = 600000\n", &[]);
    assert_names(
        &e,
        &[
            "kafka.dead_letter_max_value_bytes",
            "kafka.dead_letter_max_header_bytes",
            "message.max.bytes = 1000000",
        ],
    );
    // A producer allowed larger records makes room.
    load(
        "[kafka]\ndead_letter_max_header_bytes = 600000\n[kafka.producer]\n\"message.max.bytes\" = 2000000\n",
        &[],
    )
    .unwrap();
}
