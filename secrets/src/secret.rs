//! [`Secret`] and [`SecretBytes`]: values that are zeroized on drop and never printed.

use std::fmt;

use zeroize::Zeroize;

/// The text every `Debug` and `Display` of a secret prints.
pub const REDACTED: &str = "[redacted]";

/// A UTF-8 secret (password, PEM key, HMAC in text form).
///
/// The bytes are overwritten with zeros when the value is dropped; `Debug` and `Display`
/// print `[redacted]`; there is no `Serialize`. The only way to the content is
/// [`Secret::expose`], which makes every use greppable.
///
/// ```
/// let password = berth_secrets::Secret::new("hunter2".to_owned());
/// assert_eq!(format!("{password:?} {password}"), "[redacted] [redacted]");
/// assert_eq!(password.expose(), "hunter2");
/// ```
#[derive(Clone, Default)]
pub struct Secret(String);

impl Drop for Secret {
    fn drop(&mut self) {
        self.0.zeroize();
    }
}

impl Secret {
    /// Wraps a string; the caller's `String` is moved, not copied.
    pub fn new(value: String) -> Self {
        Self(value)
    }

    /// The secret text. Do not log, format into errors, or keep copies of it.
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// Length in bytes (safe to print: it is how `berth secrets check` reports a value).
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Whether the secret is empty.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl From<String> for Secret {
    fn from(value: String) -> Self {
        Self(value)
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(REDACTED)
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(REDACTED)
    }
}

/// A binary secret (raw key material), with the same guarantees as [`Secret`].
///
/// ```
/// let key = berth_secrets::SecretBytes::new(vec![0x00, 0xff, 0x10]);
/// assert_eq!(format!("{key:?}"), "[redacted]");
/// assert_eq!(key.expose(), &[0x00, 0xff, 0x10]);
/// ```
#[derive(Clone, Default)]
pub struct SecretBytes(Vec<u8>);

impl Drop for SecretBytes {
    fn drop(&mut self) {
        self.0.zeroize();
    }
}

impl SecretBytes {
    /// Wraps bytes; the caller's `Vec` is moved, not copied.
    pub fn new(value: Vec<u8>) -> Self {
        Self(value)
    }

    /// The secret bytes. Do not log or keep copies of them.
    pub fn expose(&self) -> &[u8] {
        &self.0
    }

    /// Length in bytes.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Whether the secret is empty.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl From<Vec<u8>> for SecretBytes {
    fn from(value: Vec<u8>) -> Self {
        Self(value)
    }
}

impl fmt::Debug for SecretBytes {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(REDACTED)
    }
}

impl fmt::Display for SecretBytes {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(REDACTED)
    }
}
