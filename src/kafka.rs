//! What every Kafka client of the service shares: the features of the linked librdkafka, and
//! the security checks a client configuration passes before the consumer or producer is
//! created (so that a build without TLS or SCRAM fails naming `kafka.security.protocol`, not
//! with librdkafka's message).

use std::sync::OnceLock;

use rdkafka::config::ClientConfig;

use crate::config::{SaslMechanism, SecurityProtocol, SecuritySection};

/// The check behind [`crate::config::SecuritySection::check_support`] and [`check_client_security`].
pub(crate) fn support(
    features: &str,
    protocol: SecurityProtocol,
    mechanism: Option<SaslMechanism>,
) -> Result<(), String> {
    let proto = protocol.as_str();
    let has = |f: &str| features.split(',').any(|x| x.trim() == f);
    if protocol.uses_tls() && !has("ssl") {
        return Err(format!(
            "kafka.security.protocol = {proto:?} needs TLS, which this build's librdkafka lacks \
             (builtin.features = {features:?}): build with rdkafka's `ssl` feature"
        ));
    }
    if let Some(m) = mechanism.filter(|m| !has(m.feature())) {
        return Err(format!(
            "kafka.security.protocol = {proto:?} with kafka.security.sasl_mechanism = {:?} is not \
             supported by this build's librdkafka (builtin.features = {features:?}): build with \
             rdkafka's `ssl` feature",
            m.as_str()
        ));
    }
    Ok(())
}

/// Checks a client's `security.protocol` and `sasl.mechanism` properties against the linked
/// librdkafka, before the client is created: a build without TLS or SCRAM fails with a message
/// naming `kafka.security.protocol` rather than librdkafka's. Values it does not know are left
/// to librdkafka to refuse.
pub fn check_client_security(c: &ClientConfig) -> Result<(), String> {
    check_client_security_with(c, librdkafka_features())
}

pub(crate) fn check_client_security_with(c: &ClientConfig, features: &str) -> Result<(), String> {
    let Some(protocol) = c.get("security.protocol").and_then(|p| {
        [
            SecurityProtocol::Plaintext,
            SecurityProtocol::Ssl,
            SecurityProtocol::SaslPlaintext,
            SecurityProtocol::SaslSsl,
        ]
        .into_iter()
        .find(|x| x.as_str().eq_ignore_ascii_case(p.trim()))
    }) else {
        return Ok(());
    };
    let mechanism = c
        .get("sasl.mechanism")
        .or_else(|| c.get("sasl.mechanisms"))
        .and_then(|m| {
            [
                SaslMechanism::Plain,
                SaslMechanism::ScramSha256,
                SaslMechanism::ScramSha512,
            ]
            .into_iter()
            .find(|x| x.as_str().eq_ignore_ascii_case(m.trim()))
        })
        .filter(|_| protocol.uses_sasl());
    support(features, protocol, mechanism)
}

/// librdkafka's `builtin.features` (e.g. `gzip,snappy,ssl,sasl,…`), read once.
pub fn librdkafka_features() -> &'static str {
    static FEATURES: OnceLock<String> = OnceLock::new();
    FEATURES.get_or_init(|| {
        ClientConfig::new()
            .create_native_config()
            .and_then(|c| c.get("builtin.features"))
            .unwrap_or_default()
    })
}

/// Creates (and drops) a client with the TLS settings alone and no broker, so that a CA
/// file librdkafka cannot use is reported now, naming the field, rather than when the
/// service starts. No connection is made.
pub(crate) fn check_tls_context(sec: &SecuritySection) -> Result<(), String> {
    let mut c = ClientConfig::new();
    sec.apply_to(&mut c);
    // No bootstrap.servers: nothing to connect to. librdkafka wants a SASL password to be
    // set, not the real one. Silent: its "no bootstrap.servers" warning would mislead.
    if sec.protocol.uses_sasl() {
        c.set("sasl.password", "unused");
    }
    c.set("log_level", "0")
        .set_log_level(rdkafka::config::RDKafkaLogLevel::Emerg);
    match c.create::<rdkafka::producer::BaseProducer>() {
        Ok(_) => Ok(()),
        Err(e) => {
            let field = if sec.ssl_ca_location.is_empty() {
                "kafka.security.protocol".to_owned()
            } else {
                format!("kafka.security.ssl_ca_location = {:?}", sec.ssl_ca_location)
            };
            Err(format!(
                "{field}: librdkafka cannot set up TLS with it ({}): {e}",
                sec.protocol.as_str()
            ))
        }
    }
}
