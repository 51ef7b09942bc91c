//! `[kafka.security]`: encryption and authentication towards the brokers, and the checks of
//! a configured protocol against the brokers' addresses.

use std::net::IpAddr;
use std::path::Path;

use rdkafka::config::ClientConfig;
use serde::{Deserialize, Serialize};

use super::{Secret, SASL_PASSWORD_ENV};
use crate::kafka::{librdkafka_features, support};

/// `kafka.security.protocol`: librdkafka's `security.protocol`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SecurityProtocol {
    /// No encryption, no authentication.
    Plaintext,
    /// TLS.
    Ssl,
    /// SASL authentication without encryption.
    SaslPlaintext,
    /// SASL authentication over TLS.
    SaslSsl,
}

impl SecurityProtocol {
    /// The config and librdkafka spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Plaintext => "plaintext",
            Self::Ssl => "ssl",
            Self::SaslPlaintext => "sasl_plaintext",
            Self::SaslSsl => "sasl_ssl",
        }
    }

    /// Authenticates with SASL (needs a username and a password).
    pub fn uses_sasl(self) -> bool {
        matches!(self, Self::SaslPlaintext | Self::SaslSsl)
    }

    /// Encrypts with TLS.
    pub fn uses_tls(self) -> bool {
        matches!(self, Self::Ssl | Self::SaslSsl)
    }
}

/// `kafka.security.sasl_mechanism`: the username/password mechanisms librdkafka supports.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum SaslMechanism {
    /// `PLAIN`: the password itself goes to the broker (use it over TLS only).
    #[serde(rename = "PLAIN")]
    Plain,
    /// `SCRAM-SHA-256`.
    #[serde(rename = "SCRAM-SHA-256")]
    ScramSha256,
    /// `SCRAM-SHA-512`.
    #[serde(rename = "SCRAM-SHA-512")]
    ScramSha512,
}

impl SaslMechanism {
    /// The config and librdkafka spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Plain => "PLAIN",
            Self::ScramSha256 => "SCRAM-SHA-256",
            Self::ScramSha512 => "SCRAM-SHA-512",
        }
    }

    /// The librdkafka `builtin.features` entry this mechanism needs.
    pub(crate) fn feature(self) -> &'static str {
        match self {
            Self::Plain => "sasl_plain",
            Self::ScramSha256 | Self::ScramSha512 => "sasl_scram",
        }
    }
}

/// `[kafka.security]`: encryption and authentication towards the brokers.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SecuritySection {
    /// `security.protocol`.
    pub protocol: SecurityProtocol,
    /// `sasl.mechanism`, for the `sasl_*` protocols.
    pub sasl_mechanism: SaslMechanism,
    /// `sasl.username`, for the `sasl_*` protocols.
    pub sasl_username: String,
    /// `ssl.ca.location`: CA certificate(s) to verify the brokers with; empty for the system's.
    pub ssl_ca_location: String,
    /// A file holding the SASL password (trailing newline ignored); empty for none.
    pub sasl_password_file: String,
    /// Allow an unencrypted protocol to a broker that is not on this machine.
    pub allow_plaintext_non_loopback: bool,
    /// The SASL password, read by [`Config::load`] from [`SASL_PASSWORD_ENV`] or from
    /// `sasl_password_file`; never from a config layer, never printed.
    #[serde(skip)]
    pub sasl_password: Option<Secret>,
}

impl SecuritySection {
    /// Sets `security.protocol` and, as the protocol needs them, the SASL and TLS properties.
    pub fn apply_to(&self, c: &mut ClientConfig) {
        c.set("security.protocol", self.protocol.as_str());
        if self.protocol.uses_sasl() {
            c.set("sasl.mechanism", self.sasl_mechanism.as_str());
            c.set("sasl.username", &self.sasl_username);
            if let Some(p) = &self.sasl_password {
                c.set("sasl.password", p.expose());
            }
        }
        if self.protocol.uses_tls() {
            // librdkafka's defaults since 2.0, set anyway: they must not depend on the
            // version, and the pass-through maps cannot turn them off (`check_properties`).
            c.set("enable.ssl.certificate.verification", "true")
                .set("ssl.endpoint.identification.algorithm", "https");
            if !self.ssl_ca_location.is_empty() {
                c.set("ssl.ca.location", &self.ssl_ca_location);
            }
        }
    }

    /// Where the SASL password came from, for `check-config`; `None` if there is none.
    pub fn sasl_password_source(&self) -> Option<String> {
        self.sasl_password.as_ref().map(|_| {
            if self.sasl_password_file.is_empty() {
                format!("environment variable {SASL_PASSWORD_ENV}")
            } else {
                "file named by kafka.security.sasl_password_file".to_owned()
            }
        })
    }

    pub(super) fn validate(&self, bootstrap_servers: &str) -> Result<(), String> {
        let proto = self.protocol.as_str();
        if self.protocol.uses_sasl() {
            if self.sasl_username.trim().is_empty() {
                return Err(format!(
                    "kafka.security.protocol = {proto:?} needs kafka.security.sasl_username, \
                     which is empty"
                ));
            }
            if self.sasl_password.is_none() {
                return Err(format!(
                    "kafka.security.protocol = {proto:?} needs a password: set the environment \
                     variable {SASL_PASSWORD_ENV} or kafka.security.sasl_password_file"
                ));
            }
        } else {
            let unused = [
                (
                    !self.sasl_username.is_empty(),
                    "kafka.security.sasl_username",
                ),
                (self.sasl_password.is_some(), "kafka.security.sasl_password"),
                (
                    !self.sasl_password_file.is_empty(),
                    "kafka.security.sasl_password_file",
                ),
            ];
            if let Some((_, field)) = unused.iter().find(|(set, _)| *set) {
                return Err(format!(
                    "{field} is set but kafka.security.protocol = {proto:?} does not use SASL \
                     (use sasl_ssl, or remove it)"
                ));
            }
        }
        if !self.ssl_ca_location.is_empty() && !self.protocol.uses_tls() {
            return Err(format!(
                "kafka.security.ssl_ca_location is set but kafka.security.protocol = {proto:?} \
                 does not use TLS (use ssl or sasl_ssl, or remove it)"
            ));
        }
        // librdkafka's special value: the system's usual CA locations.
        if self.protocol.uses_tls()
            && !self.ssl_ca_location.is_empty()
            && self.ssl_ca_location != "probe"
            && !Path::new(&self.ssl_ca_location).exists()
        {
            return Err(format!(
                "kafka.security.ssl_ca_location = {:?} does not exist",
                self.ssl_ca_location
            ));
        }
        if !self.protocol.uses_tls() && !self.allow_plaintext_non_loopback {
            if let Some(server) = first_non_loopback(bootstrap_servers) {
                return Err(format!(
                    "kafka.security.protocol = {proto:?} is unencrypted, and \
                     kafka.bootstrap_servers = {bootstrap_servers:?} has {server:?}, which is not \
                     a loopback address: use ssl or sasl_ssl, or set \
                     kafka.security.allow_plaintext_non_loopback = true"
                ));
            }
        }
        self.check_support(librdkafka_features())?;
        if self.protocol.uses_tls() {
            crate::kafka::check_tls_context(self)?;
        }
        Ok(())
    }

    /// Whether a librdkafka with these `builtin.features` can speak `protocol` (and
    /// `sasl_mechanism`); the error names the field and the rdkafka feature to build with.
    pub fn check_support(&self, features: &str) -> Result<(), String> {
        let mechanism = self.protocol.uses_sasl().then_some(self.sasl_mechanism);
        support(features, self.protocol, mechanism)
    }
}

/// The first entry of a `bootstrap.servers` list whose host is not a loopback address (a name
/// other than `localhost` counts as remote: it is not resolved here).
pub(super) fn first_non_loopback(servers: &str) -> Option<&str> {
    servers
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .find(|s| !is_loopback_host(host_of(s)))
}

/// The host of `[proto://]host[:port]`, without the brackets of an IPv6 literal.
pub(super) fn host_of(server: &str) -> &str {
    let s = server.split_once("://").map_or(server, |(_, rest)| rest);
    if let Some(rest) = s.strip_prefix('[') {
        return rest.split_once(']').map_or(rest, |(h, _)| h);
    }
    match s.rsplit_once(':') {
        // One colon: host:port. More: a bare IPv6 address.
        Some((h, _)) if !h.contains(':') => h,
        _ => s,
    }
}

pub(super) fn is_loopback_host(host: &str) -> bool {
    host.eq_ignore_ascii_case("localhost")
        || host
            .parse::<IpAddr>()
            .is_ok_and(|ip| ip.to_canonical().is_loopback())
}
