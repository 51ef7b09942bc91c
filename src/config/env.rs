//! Environment variables as configuration layers: `STOCKWATCH__SECTION__KEY`, one figment
//! layer each, so an error names the variable.

use figment::value::{Dict, Map, Value};
use figment::{Figment, Metadata, Profile, Provider};

use super::secret::SASL_PASSWORD_ENV;
use super::ConfigError;

/// Environment variable prefix (`STOCKWATCH__ENGINE__ALLOWED_LATENESS_SECS=600`).
pub const ENV_PREFIX: &str = "STOCKWATCH__";

/// Pass-through maps whose values stay strings when they come from the environment.
const PROPERTY_MAPS: [&str; 2] = ["kafka.consumer.", "kafka.producer."];

/// One environment variable as a figment layer, so an error names the variable.
struct EnvVar {
    name: String,
    key: String,
    value: Value,
}

impl Provider for EnvVar {
    fn metadata(&self) -> Metadata {
        Metadata::named(format!("environment variable {}", self.name))
            .interpolater(|_, keys| keys.join("."))
    }

    fn data(&self) -> Result<Map<Profile, Dict>, figment::Error> {
        let dict = figment::util::nest(&self.key, self.value.clone())
            .into_dict()
            .unwrap_or_default();
        Ok(Profile::Default.collect(dict))
    }
}

/// The process's variables with the [`ENV_PREFIX`].
pub(super) fn process_vars() -> Result<Vec<(String, String)>, ConfigError> {
    let mut vars = Vec::new();
    for (k, v) in std::env::vars_os() {
        let Some(k) = k.to_str() else { continue };
        if !starts_with_ignore_case(k, ENV_PREFIX) {
            continue;
        }
        let v = v.into_string().map_err(|_| {
            ConfigError::Invalid(format!("environment variable {k} is not valid UTF-8"))
        })?;
        vars.push((k.to_owned(), v));
    }
    Ok(vars)
}

/// `fig` with one layer per variable of `vars` that has the [`ENV_PREFIX`] (in name order),
/// and the SASL password if [`SASL_PASSWORD_ENV`] is among them (it never becomes a layer).
/// `defaults` decides whether a value stays a string.
pub(super) fn merge_vars<I>(
    mut fig: Figment,
    defaults: &Figment,
    vars: I,
) -> (Figment, Option<String>)
where
    I: IntoIterator<Item = (String, String)>,
{
    let mut vars: Vec<(String, String)> = vars
        .into_iter()
        .filter(|(k, _)| starts_with_ignore_case(k, ENV_PREFIX))
        .collect();
    vars.sort();
    let mut password = None;
    for (name, raw) in vars {
        if name.eq_ignore_ascii_case(SASL_PASSWORD_ENV) {
            password = Some(raw);
            continue;
        }
        let key = name[ENV_PREFIX.len()..]
            .split("__")
            .collect::<Vec<_>>()
            .join(".")
            .to_ascii_lowercase();
        if key.split('.').any(|s| s.trim().is_empty()) {
            continue;
        }
        // The defaults' type decides: a string key keeps the raw text ("007" stays
        // "007", "0" is a valid instance id); anything else is parsed (600, true, ...).
        let raw_string = PROPERTY_MAPS.iter().any(|p| key.starts_with(p))
            || matches!(defaults.find_value(&key), Ok(Value::String(..)));
        let value = if raw_string {
            Value::from(raw)
        } else {
            raw.parse::<Value>().unwrap_or_else(|e| match e {})
        };
        fig = fig.merge(EnvVar { name, key, value });
    }
    (fig, password)
}

fn starts_with_ignore_case(s: &str, prefix: &str) -> bool {
    s.len() >= prefix.len()
        && s.is_char_boundary(prefix.len())
        && s[..prefix.len()].eq_ignore_ascii_case(prefix)
}
