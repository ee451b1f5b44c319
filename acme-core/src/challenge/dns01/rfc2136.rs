//! RFC 2136 dynamic updates signed with TSIG (RFC 8945): works with BIND, Knot,
//! PowerDNS and Windows DNS, and lets the key be scoped to exactly the `_acme-challenge`
//! TXT names (BIND's `update-policy`, see the README).

use std::fmt;
use std::net::SocketAddr;
use std::str::FromStr;
use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use berth_secrets::Secret;
use hickory_net::client::{Client, ClientHandle};
use hickory_net::runtime::TokioRuntimeProvider;
use hickory_net::udp::UdpClientStream;
use hickory_proto::op::ResponseCode;
use hickory_proto::rr::rdata::TXT;
use hickory_proto::rr::rdata::tsig::TsigAlgorithm as HickoryAlgorithm;
use hickory_proto::rr::{Name, RData, Record, RecordSet, TSigner};
use zeroize::Zeroizing;

use super::DnsError;
use super::provider::{DnsProvider, ProviderError, ProviderFuture, TxtRecord};
use crate::Setting;

/// The clock skew a signed update tolerates (RFC 8945 §5.2.3 recommends 300 s).
const TSIG_FUDGE: u16 = 300;

/// The TSIG MAC algorithm.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum TsigAlgorithm {
    /// `hmac-sha256`: what `tsig-keygen` makes by default.
    #[default]
    HmacSha256,
    /// `hmac-sha384`.
    HmacSha384,
    /// `hmac-sha512`.
    HmacSha512,
}

impl TsigAlgorithm {
    /// The name BIND uses.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::HmacSha256 => "hmac-sha256",
            Self::HmacSha384 => "hmac-sha384",
            Self::HmacSha512 => "hmac-sha512",
        }
    }

    fn hickory(self) -> HickoryAlgorithm {
        match self {
            Self::HmacSha256 => HickoryAlgorithm::HmacSha256,
            Self::HmacSha384 => HickoryAlgorithm::HmacSha384,
            Self::HmacSha512 => HickoryAlgorithm::HmacSha512,
        }
    }
}

impl fmt::Display for TsigAlgorithm {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for TsigAlgorithm {
    type Err = DnsError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim().trim_end_matches('.').to_ascii_lowercase().as_str() {
            "hmac-sha256" => Ok(Self::HmacSha256),
            "hmac-sha384" => Ok(Self::HmacSha384),
            "hmac-sha512" => Ok(Self::HmacSha512),
            "hmac-md5" | "hmac-md5.sig-alg.reg.int" | "hmac-sha1" | "hmac-sha224" => {
                Err(DnsError::setting_at_fault(
                    Setting::TsigSecret,
                    format!(
                        "TSIG algorithm {s:?} is too weak; make a new key with `tsig-keygen -a hmac-sha256`"
                    ),
                ))
            }
            _ => Err(DnsError::config(format!(
                "unknown TSIG algorithm {s:?}; use hmac-sha256, hmac-sha384 or hmac-sha512"
            ))),
        }
    }
}

/// A TSIG key: its name, algorithm and secret.
#[derive(Clone)]
pub struct TsigKey {
    name: Name,
    algorithm: TsigAlgorithm,
    secret: Secret,
}

impl fmt::Debug for TsigKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TsigKey")
            .field("name", &self.name.to_string())
            .field("algorithm", &self.algorithm)
            .finish_non_exhaustive()
    }
}

impl TsigKey {
    /// A key from the contents of its secret file, which is either the base64 secret
    /// alone or a BIND key file as `tsig-keygen` writes it
    /// (`key "name" { algorithm hmac-sha256; secret "…"; };`). `name` and `algorithm`
    /// override what the key file says; the name is required one way or the other.
    pub fn parse(
        name: Option<&str>,
        algorithm: Option<TsigAlgorithm>,
        file: &Secret,
    ) -> Result<Self, DnsError> {
        let text = file.expose();
        let (file_name, file_algorithm, secret) = if text.contains("secret") {
            parse_key_file(text)?
        } else {
            (None, None, Secret::new(text.trim().to_owned()))
        };
        let name = name.map(str::to_owned).or(file_name).ok_or_else(|| {
            DnsError::setting_at_fault(
                Setting::TsigKeyName,
                "the TSIG key needs a name: give the one in the server's `key \"…\"` statement",
            )
        })?;
        let name = Name::from_ascii(&name).map_err(|e| {
            DnsError::setting_at_fault(
                Setting::TsigKeyName,
                format!("TSIG key name {name:?} is not a DNS name: {e}"),
            )
        })?;
        let algorithm = match (algorithm, file_algorithm) {
            (Some(a), _) => a,
            (None, Some((a, line))) => a.parse().map_err(|e| match e {
                // The weak names are fixed strings, safe to quote.
                DnsError::Config { ref reason, .. } if reason.contains("too weak") => e,
                // Anything else may be the secret itself (a statement missing its `;`).
                _ => DnsError::setting_at_fault(
                    Setting::TsigSecret,
                    format!(
                        "the TSIG key file's `algorithm` statement on line {line} names no known algorithm (is a `;` missing?); use hmac-sha256, hmac-sha384 or hmac-sha512"
                    ),
                ),
            })?,
            (None, None) => TsigAlgorithm::default(),
        };
        let decoded = Zeroizing::new(STANDARD.decode(secret.expose().as_bytes()).map_err(|_| {
            DnsError::setting_at_fault(
                Setting::TsigSecret,
                "the TSIG secret is not base64; give the file `tsig-keygen` wrote, or the secret alone",
            )
        })?);
        if decoded.len() < 16 {
            return Err(DnsError::setting_at_fault(
                Setting::TsigSecret,
                format!(
                    "the TSIG secret is only {} bytes; make a proper one with `tsig-keygen -a {algorithm}`",
                    decoded.len()
                ),
            ));
        }
        Ok(Self {
            name,
            algorithm,
            secret,
        })
    }

    /// The key's name.
    pub fn name(&self) -> String {
        self.name.to_string()
    }

    /// The algorithm.
    pub fn algorithm(&self) -> TsigAlgorithm {
        self.algorithm
    }

    fn signer(&self) -> Result<TSigner, ProviderError> {
        // Validated in `parse`. hickory keeps its copy in a plain Vec for the duration of
        // one update; ours is zeroized.
        let key = Zeroizing::new(
            STANDARD
                .decode(self.secret.expose().as_bytes())
                .unwrap_or_default(),
        );
        TSigner::new(
            key.to_vec(),
            self.algorithm.hickory(),
            self.name.clone(),
            TSIG_FUDGE,
        )
        .map_err(|e| ProviderError::new(format!("cannot use the TSIG key: {e}")))
    }
}

/// `key "name" { algorithm hmac-sha256; secret "base64"; };` — the algorithm comes with
/// its line number, for an error that must not quote the file. The name is looked for
/// only before the `{` and the statements only after it: a file without a name must not
/// make the secret its name (which errors, logs and every signed update would show).
#[allow(clippy::type_complexity)]
fn parse_key_file(
    text: &str,
) -> Result<(Option<String>, Option<(String, usize)>, Secret), DnsError> {
    let (head, body, body_start) = match text.find('{') {
        Some(open) => (&text[..open], &text[open + 1..], open + 1),
        None => ("", text, 0),
    };
    let quoted_after = |text: &str, keyword: &str| -> Option<String> {
        let start = text.find(keyword)? + keyword.len();
        let rest = &text[start..];
        let open = rest.find('"')?;
        let close = rest[open + 1..].find('"')?;
        Some(rest[open + 1..open + 1 + close].to_owned())
    };
    let name = head
        .trim_start()
        .starts_with("key")
        .then(|| quoted_after(head, "key"))
        .flatten();
    let algorithm = body.find("algorithm").and_then(|start| {
        let line = text[..body_start + start].matches('\n').count() + 1;
        body[start + "algorithm".len()..]
            .split(';')
            .next()
            .map(|a| (a.trim().trim_matches('"').to_owned(), line))
    });
    let secret = quoted_after(body, "secret").ok_or_else(|| {
        DnsError::setting_at_fault(
            Setting::TsigSecret,
            "the TSIG key file has no `secret \"…\";` line",
        )
    })?;
    Ok((name, algorithm, Secret::new(secret)))
}

/// Publishes DNS-01 records with signed RFC 2136 updates to one primary server.
#[derive(Debug, Clone)]
pub struct Rfc2136Provider {
    server: SocketAddr,
    key: TsigKey,
    timeout: Duration,
}

impl Rfc2136Provider {
    /// Updates go to `server` (the zone's primary), signed with `key`; each waits up to
    /// `timeout` for an answer.
    pub fn new(server: SocketAddr, key: TsigKey, timeout: Duration) -> Self {
        Self {
            server,
            key,
            timeout,
        }
    }

    async fn update(&self, record: &TxtRecord, add: bool) -> Result<(), ProviderError> {
        let name = Name::from_ascii(&record.fqdn)
            .map_err(|e| ProviderError::new(format!("{:?} is not a DNS name: {e}", record.fqdn)))?;
        let zone = Name::from_ascii(&record.zone)
            .map_err(|e| ProviderError::new(format!("{:?} is not a DNS zone: {e}", record.zone)))?;
        if !zone.zone_of(&name) {
            return Err(ProviderError::new(format!(
                "{} is not inside zone {}; check the zone",
                record.fqdn, record.zone
            ))
            .with_setting(Setting::DnsZone));
        }
        let rrset = RecordSet::from(Record::from_rdata(
            name,
            record.ttl,
            RData::TXT(TXT::new(vec![record.value.clone()])),
        ));
        let stream = UdpClientStream::builder(self.server, TokioRuntimeProvider::default())
            .with_timeout(Some(self.timeout))
            .with_signer(Some(self.key.signer()?))
            .build();
        let (mut client, background) = Client::<TokioRuntimeProvider>::from_sender(stream);
        let task = tokio::spawn(background);
        let answer = if add {
            client.append(rrset, zone.clone(), false).await
        } else {
            client.delete_by_rdata(rrset, zone.clone()).await
        };
        task.abort();
        let response = answer.map_err(|e| {
            let text = e.to_string();
            ProviderError::new(if text.contains("timed out") || text.contains("timeout") {
                format!(
                    "no answer within {}s; is the server running and reachable on {} (UDP)?",
                    self.timeout.as_secs(),
                    self.server
                )
            } else if ["tsig", "sign", "hmac"]
                .iter()
                .any(|w| text.to_ascii_lowercase().contains(w))
            {
                // The server answered unsigned (BADKEY/BADSIG/BADTIME): hickory's own
                // wording of that is no help to an operator.
                format!(
                    "the server rejected TSIG key {} ({}); check the key name, algorithm and secret against the server's `key` statement, and that the clocks agree within {TSIG_FUDGE}s",
                    self.key.name(),
                    self.key.algorithm()
                )
            } else {
                text
            })
        })?;
        match response.metadata.response_code {
            ResponseCode::NoError => Ok(()),
            ResponseCode::Refused => Err(ProviderError::new(format!(
                "the server refused the update (REFUSED): TSIG key {} may not change TXT {} — allow it in the zone's update-policy (see the README), or check that {} is the zone's primary",
                self.key.name(),
                record.fqdn,
                self.server
            ))),
            ResponseCode::NotAuth => Err(ProviderError::new(format!(
                "the server rejected the update (NOTAUTH): either TSIG key {} ({}) does not match the server's (name, algorithm, secret; or the clocks differ by more than {TSIG_FUDGE}s), or it is not authoritative for zone {}",
                self.key.name(),
                self.key.algorithm(),
                record.zone
            ))),
            ResponseCode::NotZone => Err(ProviderError::new(format!(
                "the server says {} is not in zone {} (NOTZONE); check the zone",
                record.fqdn, record.zone
            ))
            .with_setting(Setting::DnsZone)),
            code => Err(ProviderError::new(format!("the server answered {code}"))),
        }
    }
}

impl DnsProvider for Rfc2136Provider {
    fn describe(&self) -> String {
        format!("rfc2136 ({})", self.server)
    }

    fn add_txt<'a>(&'a self, record: &'a TxtRecord) -> ProviderFuture<'a> {
        Box::pin(self.update(record, true))
    }

    fn remove_txt<'a>(&'a self, record: &'a TxtRecord) -> ProviderFuture<'a> {
        Box::pin(self.update(record, false))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECRET: &str = "2Yfh2cB5vX3zQm+Z7cN8rWq5mJb0dT1uQk3L9e0sVwY=";

    #[test]
    fn reads_the_file_tsig_keygen_writes() {
        let file = format!(
            "key \"berth-acme\" {{\n\talgorithm hmac-sha512;\n\tsecret \"{SECRET}\";\n}};\n"
        );
        let key = TsigKey::parse(None, None, &Secret::new(file)).unwrap();
        assert_eq!(key.name(), "berth-acme");
        assert_eq!(key.algorithm(), TsigAlgorithm::HmacSha512);
        // Flags override the file.
        let key = TsigKey::parse(
            Some("other"),
            Some(TsigAlgorithm::HmacSha256),
            &Secret::new(format!("key \"berth-acme\" {{ secret \"{SECRET}\"; }};")),
        )
        .unwrap();
        assert_eq!(key.name(), "other");
        assert_eq!(key.algorithm(), TsigAlgorithm::HmacSha256);
    }

    #[test]
    fn a_key_file_missing_a_semicolon_is_refused_without_quoting_the_secret() {
        let file = format!(
            "key \"berth-acme\" {{\n\talgorithm hmac-sha512\n\tsecret \"{SECRET}\";\n}};\n"
        );
        let err = TsigKey::parse(None, None, &Secret::new(file))
            .unwrap_err()
            .to_string();
        assert!(!err.contains(&SECRET[..12]), "{err}");
        assert!(err.contains("line 2") && err.contains("`;`"), "{err}");
    }

    #[test]
    fn a_key_file_without_a_name_never_takes_the_secret_for_one() {
        // Found by the fuzz test: the first quoted string after `key` was the secret.
        let file = format!("key {{ algorithm hmac-sha256; secret \"{SECRET}\"; }};");
        let err = TsigKey::parse(None, None, &Secret::new(file.clone())).unwrap_err();
        assert_eq!(err.setting(), Some(Setting::TsigKeyName));
        let err = err.to_string();
        assert!(!err.contains(&SECRET[..12]), "{err}");
        assert!(err.contains("the TSIG key needs a name"), "{err}");
        // A secret that is a valid DNS name became the key's name, shown everywhere.
        let named_like = file.replace(SECRET, "c2VjcmV0c2VjcmV0c2VjcmV0");
        assert!(TsigKey::parse(None, None, &Secret::new(named_like)).is_err());
        let key = TsigKey::parse(Some("k"), None, &Secret::new(file)).unwrap();
        assert_eq!(key.name(), "k");
        // A name holding the word `secret` is still the name.
        let file = format!("key \"secret-key\" {{ secret \"{SECRET}\"; }};");
        let key = TsigKey::parse(None, None, &Secret::new(file)).unwrap();
        assert_eq!(key.name(), "secret-key");
    }

    #[test]
    fn reads_a_bare_secret_and_needs_a_name() {
        let secret = Secret::new(format!("{SECRET}\n"));
        let key = TsigKey::parse(Some("k"), None, &secret).unwrap();
        assert_eq!(key.algorithm(), TsigAlgorithm::HmacSha256);
        let err = TsigKey::parse(None, None, &secret).unwrap_err();
        assert_eq!(err.setting(), Some(Setting::TsigKeyName));
        assert!(err.to_string().contains("`key \"…\"` statement"), "{err}");
    }

    #[test]
    fn bad_secrets_and_weak_algorithms_are_refused_without_echoing_the_secret() {
        let err = TsigKey::parse(Some("k"), None, &Secret::new("not base64!!".into())).unwrap_err();
        assert_eq!(err.setting(), Some(Setting::TsigSecret));
        let err = err.to_string();
        assert!(err.contains("not base64") && !err.contains("!!"), "{err}");
        let err = TsigKey::parse(Some("k"), None, &Secret::new("c2hvcnQ=".into()))
            .unwrap_err()
            .to_string();
        assert!(err.contains("tsig-keygen"), "{err}");
        let err = "hmac-md5".parse::<TsigAlgorithm>().unwrap_err().to_string();
        assert!(err.contains("too weak"), "{err}");
        let err = "sha256".parse::<TsigAlgorithm>().unwrap_err().to_string();
        assert!(err.contains("hmac-sha256"), "{err}");
    }

    #[test]
    fn debug_never_shows_the_secret() {
        let key = TsigKey::parse(Some("k"), None, &Secret::new(SECRET.into())).unwrap();
        let provider =
            Rfc2136Provider::new("127.0.0.1:53".parse().unwrap(), key, Duration::from_secs(1));
        let debug = format!("{provider:?}");
        assert!(!debug.contains(SECRET), "{debug}");
        assert!(!debug.contains(&SECRET[..10]), "{debug}");
    }
}
