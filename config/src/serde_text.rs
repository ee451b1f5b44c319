//! Config-file fields held as domain types but written as text: through the type's
//! `Display` and `FromStr` (the spelling its flag takes), and durations as `30s`, `5m`.
//! Public for types of a caller's own that hold config values
//! (`#[serde(with = "berth_config::serde_text::duration_option")]`).

use std::fmt::Display;
use std::str::FromStr;
use std::time::Duration;

use serde::{Deserialize, Deserializer, Serializer};

/// `Option<T>` as the text of `T` (`#[serde(with = "serde_text::option")]`).
pub mod option {
    use super::*;

    /// Writes `Some` as its `Display` text.
    pub fn serialize<S: Serializer, T: Display>(
        value: &Option<T>,
        serializer: S,
    ) -> Result<S::Ok, S::Error> {
        match value {
            Some(value) => serializer.collect_str(value),
            None => serializer.serialize_none(),
        }
    }

    /// Reads a string through `T::from_str`; its error becomes the serde message.
    pub fn deserialize<'de, D, T>(deserializer: D) -> Result<Option<T>, D::Error>
    where
        D: Deserializer<'de>,
        T: FromStr,
        T::Err: Display,
    {
        Option::<String>::deserialize(deserializer)?
            .map(|text| text.parse().map_err(serde::de::Error::custom))
            .transpose()
    }
}

/// Writes a value as its `Display` text (`#[serde(serialize_with = "serde_text::value")]`).
pub(crate) fn value<S: Serializer, T: Display>(
    value: &T,
    serializer: S,
) -> Result<S::Ok, S::Error> {
    serializer.collect_str(value)
}

/// Writes a duration in humantime's form (`2m`, `1h 30m`), as the file takes it.
pub(crate) fn duration<S: Serializer>(value: &Duration, serializer: S) -> Result<S::Ok, S::Error> {
    serializer.collect_str(&humantime::format_duration(*value))
}

/// `Option<Duration>` as `30s`, `5m`, `1h30m` or a bare number of seconds in a string.
pub mod duration_option {
    use super::*;

    /// Writes `Some` in humantime's form (`2m`, `1h 30m`).
    pub fn serialize<S: Serializer>(
        value: &Option<Duration>,
        serializer: S,
    ) -> Result<S::Ok, S::Error> {
        match value {
            Some(value) => super::duration(value, serializer),
            None => serializer.serialize_none(),
        }
    }

    /// Reads the text `--…-timeout` flags take. The message never repeats the value:
    /// the file may hold a secret pasted into the wrong key.
    pub fn deserialize<'de, D: Deserializer<'de>>(
        deserializer: D,
    ) -> Result<Option<Duration>, D::Error> {
        Option::<String>::deserialize(deserializer)?
            .map(|text| {
                crate::parse_duration(&text)
                    .map_err(|_| serde::de::Error::custom("not a duration; write e.g. 30s, 5m, 1h"))
            })
            .transpose()
    }
}

/// Parses `90s`, `5m`, `1h30m`, `250ms` (humantime), or a bare number of seconds: how
/// every duration is written, in flags and in the file.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let text = text.trim();
    if let Ok(secs) = text.parse::<u64>() {
        return Ok(Duration::from_secs(secs));
    }
    humantime::parse_duration(text).map_err(|e| format!("{e} (write e.g. 30s, 5m, 1h)"))
}
