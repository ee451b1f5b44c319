//! Certificate private key types and generation.

use std::fmt;
use std::str::FromStr;

use berth_secrets::Secret;
use rcgen::{
    KeyPair, PKCS_ECDSA_P256_SHA256, PKCS_ECDSA_P384_SHA384, PKCS_RSA_SHA256, SignatureAlgorithm,
};
use rsa::pkcs8::EncodePrivateKey;
use rustls_pki_types::PrivatePkcs8KeyDer;

use crate::error::Error;

/// The private key algorithm of a certificate (`--key-type`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
#[non_exhaustive]
pub enum KeyType {
    /// ECDSA P-256 with SHA-256: small, fast handshakes, accepted everywhere that matters.
    #[default]
    Ec256,
    /// ECDSA P-384 with SHA-384.
    Ec384,
    /// RSA 2048: for old clients that cannot do ECDSA.
    Rsa2048,
    /// RSA 4096.
    Rsa4096,
}

/// An unknown `--key-type` value.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown key type {0:?}; use ec256, ec384, rsa2048 or rsa4096")]
pub struct KeyTypeError(pub String);

impl KeyType {
    /// The name used on the command line and in the store (`ec256`, ...).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Ec256 => "ec256",
            Self::Ec384 => "ec384",
            Self::Rsa2048 => "rsa2048",
            Self::Rsa4096 => "rsa4096",
        }
    }

    /// Generates a fresh private key of this type: the key pair (for signing a CSR) and
    /// the same key as PKCS#8 PEM (for the store), which is zeroized when dropped.
    ///
    /// RSA generation is CPU-bound (rsa4096 can take seconds); call it from
    /// `tokio::task::spawn_blocking` inside async code.
    pub fn generate(self) -> Result<(KeyPair, Secret), Error> {
        let key = match self {
            Self::Ec256 | Self::Ec384 => {
                KeyPair::generate_for(self.signature_algorithm()).map_err(Error::key_generation)?
            }
            Self::Rsa2048 => generate_rsa(2048)?,
            Self::Rsa4096 => generate_rsa(4096)?,
        };
        let pem = Secret::new(key.serialize_pem());
        Ok((key, pem))
    }

    /// The signature algorithm a CSR signed with this key type uses.
    fn signature_algorithm(self) -> &'static SignatureAlgorithm {
        match self {
            Self::Ec256 => &PKCS_ECDSA_P256_SHA256,
            Self::Ec384 => &PKCS_ECDSA_P384_SHA384,
            Self::Rsa2048 | Self::Rsa4096 => &PKCS_RSA_SHA256,
        }
    }
}

/// ring (our crypto provider) can sign with RSA keys but cannot generate them, so the
/// pure-Rust `rsa` crate generates the key and hands it over as PKCS#8. Only key
/// generation runs in `rsa`; every signature is made by ring.
fn generate_rsa(bits: usize) -> Result<KeyPair, Error> {
    // `RsaPrivateKey` zeroizes its primes on drop, and the PKCS#8 `SecretDocument`
    // zeroizes its buffer on drop; the DER is borrowed, never copied, on its way to rcgen.
    let private =
        rsa::RsaPrivateKey::new(&mut rsa::rand_core::OsRng, bits).map_err(Error::key_generation)?;
    let pkcs8 = private.to_pkcs8_der().map_err(Error::key_generation)?;
    KeyPair::from_pkcs8_der_and_sign_algo(
        &PrivatePkcs8KeyDer::from(pkcs8.as_bytes()),
        KeyType::Rsa2048.signature_algorithm(),
    )
    .map_err(Error::key_generation)
}

impl KeyType {
    /// The key pair of a PKCS#8 PEM key of this type (an order's key, stored while the
    /// order is in flight).
    pub(crate) fn load(self, pem: &Secret) -> Result<KeyPair, Error> {
        KeyPair::from_pkcs8_pem_and_sign_algo(pem.expose(), self.signature_algorithm())
            .map_err(Error::key_generation)
    }
}

impl serde::Serialize for KeyType {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.as_str())
    }
}

impl<'de> serde::Deserialize<'de> for KeyType {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        <String as serde::Deserialize>::deserialize(deserializer)?
            .parse()
            .map_err(serde::de::Error::custom)
    }
}

impl fmt::Display for KeyType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for KeyType {
    type Err = KeyTypeError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        // Traefik spells them EC256 / EC384 / RSA2048 / RSA4096; accept both spellings.
        match s
            .trim()
            .to_ascii_lowercase()
            .replace(['-', '_'], "")
            .as_str()
        {
            "ec256" | "p256" | "ecdsap256" => Ok(Self::Ec256),
            "ec384" | "p384" | "ecdsap384" => Ok(Self::Ec384),
            "rsa2048" => Ok(Self::Rsa2048),
            "rsa4096" => Ok(Self::Rsa4096),
            _ => Err(KeyTypeError(s.to_owned())),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_berth_and_traefik_spellings() {
        assert_eq!("ec256".parse::<KeyType>().unwrap(), KeyType::Ec256);
        assert_eq!("EC384".parse::<KeyType>().unwrap(), KeyType::Ec384);
        assert_eq!("RSA4096".parse::<KeyType>().unwrap(), KeyType::Rsa4096);
        assert_eq!("rsa-2048".parse::<KeyType>().unwrap(), KeyType::Rsa2048);
        let err = "dsa".parse::<KeyType>().unwrap_err().to_string();
        assert!(err.contains("ec256"), "{err}");
    }

    #[test]
    fn generated_keys_have_the_requested_algorithm_and_round_trip_as_pkcs8() {
        // rsa4096 is left to the Pebble tests: generating it here would slow every unit run.
        for (key_type, expected) in [
            (KeyType::Ec256, &PKCS_ECDSA_P256_SHA256),
            (KeyType::Ec384, &PKCS_ECDSA_P384_SHA384),
            (KeyType::Rsa2048, &PKCS_RSA_SHA256),
        ] {
            let (key, pem) = key_type.generate().unwrap();
            assert_eq!(key.algorithm(), expected, "{key_type}");
            assert!(
                pem.expose().starts_with("-----BEGIN PRIVATE KEY-----"),
                "{key_type}"
            );
            let reloaded =
                KeyPair::from_pkcs8_pem_and_sign_algo(pem.expose(), key_type.signature_algorithm())
                    .unwrap();
            assert_eq!(
                reloaded.public_key_raw(),
                key.public_key_raw(),
                "{key_type}"
            );
        }
    }

    #[test]
    fn rsa2048_key_is_2048_bits() {
        let (key, _) = KeyType::Rsa2048.generate().unwrap();
        // A 2048-bit modulus makes a PKCS#1 RSAPublicKey of 270 bytes (256 + DER framing).
        assert_eq!(key.public_key_raw().len(), 270);
        let (other, _) = KeyType::Rsa2048.generate().unwrap();
        assert_ne!(key.public_key_raw(), other.public_key_raw());
    }
}
