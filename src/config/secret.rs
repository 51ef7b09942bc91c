//! The one secret (the SASL password) and the secrets librdkafka properties may hold: where
//! they may come from, how they print, and the errors that keep them out of config files.

use std::collections::BTreeMap;
use std::fmt;
use std::path::Path;

use rdkafka::config::ClientConfig;
use serde::{Serialize, Serializer};

use super::{ConfigError, SecuritySection};

/// The environment variable that may carry the SASL password (the other place is the file
/// named by `kafka.security.sasl_password_file`).
pub const SASL_PASSWORD_ENV: &str = "STOCKWATCH__KAFKA__SECURITY__SASL_PASSWORD";

/// What a secret prints as.
pub const MASK: &str = "***";

/// What an absent secret prints as in `check-config`.
pub const NOT_SET: &str = "(not set)";

/// The key path of the SASL password, refused in config files.
pub(super) const SASL_PASSWORD_KEY: &str = "kafka.security.sasl_password";

/// librdkafka properties that hold secrets: refused in pass-through maps (they would be printed
/// with the configuration) and masked by [`redacted`].
pub(super) const SECRET_PROPERTIES: [&str; 6] = [
    "sasl.password",
    "ssl.key.password",
    "ssl.keystore.password",
    "ssl.truststore.password",
    "ssl.key.pem",
    "sasl.oauthbearer.client.secret",
];

/// It cannot be deserialized, so no config layer can carry one.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    /// Wraps a secret.
    pub fn new(value: impl Into<String>) -> Self {
        Self(value.into())
    }

    /// The value itself, for the one place that needs it (the Kafka client configuration).
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(MASK)
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(MASK)
    }
}

impl Serialize for Secret {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(MASK)
    }
}

pub(super) fn secret_property_error(map: &str, key: &str) -> String {
    format!(
        "{map}.{key:?} is a secret and must not be in the configuration: the only secret \
         accepted is the SASL password, from the environment variable {SASL_PASSWORD_ENV} or \
         the file named by kafka.security.sasl_password_file"
    )
}

/// librdkafka properties with the values of secrets replaced by [`MASK`], for logs and
/// `check-config`. (`ClientConfig`'s own `Debug` drops them; this keeps the keys visible.)
pub fn redacted(c: &ClientConfig) -> BTreeMap<String, String> {
    c.config_map()
        .into_iter()
        .map(|(k, v)| {
            let v = if SECRET_PROPERTIES.contains(&k) || c.get(k) != Some(v) {
                MASK
            } else {
                v
            };
            (k.to_owned(), v.to_owned())
        })
        .collect()
}

/// A key of a TOML text that names a secret (`sasl_password`, or a secret librdkafka
/// property), found line by line without parsing.
pub(super) fn secret_key_in_toml(text: &str) -> Option<&'static str> {
    for line in text.lines() {
        let Some((key, _)) = line.split_once('=') else {
            continue;
        };
        let key: String = key
            .chars()
            .filter(|c| !matches!(c, '"' | '\'' | ' ' | '\t'))
            .collect::<String>()
            .to_ascii_lowercase();
        if key.starts_with('#') {
            continue;
        }
        let names = |k: &str| key == k || key.ends_with(&format!(".{k}"));
        if names("sasl_password") {
            return Some(SASL_PASSWORD_KEY);
        }
        if let Some(p) = SECRET_PROPERTIES.iter().find(|p| names(p)) {
            return Some(p);
        }
    }
    None
}

pub(super) fn secret_in_file_error(key: &str, file: &Path) -> String {
    if key == SASL_PASSWORD_KEY {
        format!(
            "{key} must not be in a config file ({}): it is a secret. Put it in the environment \
             variable {SASL_PASSWORD_ENV}, or in a file named by kafka.security.sasl_password_file",
            file.display()
        )
    } else {
        format!(
            "{key:?} must not be in a config file ({}): it is a secret, and the only secret \
             accepted is the SASL password, from the environment variable {SASL_PASSWORD_ENV} or \
             the file named by kafka.security.sasl_password_file",
            file.display()
        )
    }
}

/// The SASL password from the environment or from `sasl_password_file` (not both).
pub(super) fn read_sasl_password(
    sec: &SecuritySection,
    from_env: Option<String>,
) -> Result<Option<Secret>, ConfigError> {
    let bad = |m: String| Err(ConfigError::Invalid(m));
    match (from_env, sec.sasl_password_file.as_str()) {
        (Some(_), f) if !f.is_empty() => bad(format!(
            "the SASL password is given twice, by {SASL_PASSWORD_ENV} and by \
             kafka.security.sasl_password_file = {f:?}: keep one"
        )),
        (Some(p), _) if p.is_empty() => bad(format!("{SASL_PASSWORD_ENV} is set but empty")),
        (Some(p), _) => Ok(Some(Secret::new(p))),
        (None, "") => Ok(None),
        (None, f) => {
            let text = std::fs::read_to_string(f).map_err(|e| {
                ConfigError::Invalid(format!(
                    "kafka.security.sasl_password_file = {f:?} cannot be read: {e}"
                ))
            })?;
            let p = text
                .strip_suffix('\n')
                .map_or(text.as_str(), |t| t.strip_suffix('\r').unwrap_or(t));
            if p.is_empty() {
                return bad(format!(
                    "kafka.security.sasl_password_file = {f:?} is empty"
                ));
            }
            Ok(Some(Secret::new(p)))
        }
    }
}
