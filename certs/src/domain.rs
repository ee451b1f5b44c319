//! Names a certificate covers: [`DomainName`] and [`DomainSet`].
//!
//! Both are parsed once, at the edge (flags, config, store); code that receives one
//! never re-checks it.

use std::fmt;
use std::net::IpAddr;
use std::str::FromStr;

/// Let's Encrypt's limit on names per certificate ("Names per Certificate", 100); other
/// public CAs use the same or lower.
pub const MAX_NAMES_PER_CERTIFICATE: usize = 100;

/// Why a name or a set of names was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum DomainError {
    /// The name is empty.
    #[error("domain name is empty; pass a name such as example.com")]
    Empty,
    /// The name is longer than DNS allows.
    #[error("domain name {name:?} is {len} characters long; DNS allows at most 253")]
    TooLong {
        /// The name as given.
        name: String,
        /// Its length.
        len: usize,
    },
    /// A label is empty, too long, or has characters DNS names cannot have.
    #[error("domain name {name:?} has an invalid label {label:?}: {reason}")]
    BadLabel {
        /// The name as given.
        name: String,
        /// The offending label.
        label: String,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// A name with a single label cannot get a publicly trusted certificate.
    #[error(
        "domain name {name:?} has a single label; use a fully qualified name such as {name}.example.com"
    )]
    SingleLabel {
        /// The name as given.
        name: String,
    },
    /// A `*` anywhere but as the whole leftmost label.
    #[error(
        "domain name {name:?} has a misplaced wildcard; only a leftmost \"*.\" is allowed, as in *.example.com"
    )]
    BadWildcard {
        /// The name as given.
        name: String,
    },
    /// Non-ASCII names must be given in their punycode form.
    #[error("domain name {name:?} is not ASCII; give its punycode form (xn--...)")]
    NotAscii {
        /// The name as given.
        name: String,
    },
    /// An IP address cannot be a wildcard, and IP certificates have no wildcard form
    /// (RFC 8738 §3 identifies one address).
    #[error(
        "{name:?} is a wildcard over an IP address; IP certificates name single addresses, give the address itself (such as {base})"
    )]
    IpWildcard {
        /// The name as given.
        name: String,
        /// The address without the wildcard label.
        base: String,
    },
    /// A domain set with no names.
    #[error("no domain names given; give at least one")]
    NoNames,
    /// More names than a certificate can hold.
    #[error(
        "{count} names in one certificate; CAs allow at most {MAX_NAMES_PER_CERTIFICATE}, split them into several domain sets"
    )]
    TooManyNames {
        /// How many were given.
        count: usize,
    },
}

/// `127.0.0.1.` and `*.127.0.0.1` pass the label rules, but a CA would see a DNS name
/// made of an address: the first is the address, the second is refused.
fn address_in_dns_form(name: &str) -> Result<Option<IpAddr>, DomainError> {
    let base = name.strip_prefix("*.").unwrap_or(name);
    match base.parse::<IpAddr>() {
        Ok(ip) if name.starts_with("*.") => Err(DomainError::IpWildcard {
            base: ip.to_string(),
            name: name.to_owned(),
        }),
        Ok(ip) => Ok(Some(ip)),
        Err(_) => Ok(None),
    }
}

/// Checks a lower-case ASCII name against the DNS rules (RFC 1035 lengths and labels) and
/// the wildcard position; gives it back if it passes.
fn check_dns_name(name: String) -> Result<String, DomainError> {
    if name.len() > 253 {
        return Err(DomainError::TooLong {
            len: name.len(),
            name,
        });
    }
    let labels: Vec<&str> = name.split('.').collect();
    if labels.len() < 2 {
        return Err(DomainError::SingleLabel { name });
    }
    for (i, label) in labels.iter().enumerate() {
        if *label == "*" && i == 0 {
            continue;
        }
        if label.contains('*') {
            return Err(DomainError::BadWildcard { name: name.clone() });
        }
        if let Some(reason) = label_problem(label) {
            return Err(DomainError::BadLabel {
                label: (*label).to_owned(),
                name,
                reason,
            });
        }
    }
    if labels.len() == 2 && labels[0] == "*" {
        // `*.com` would be a wildcard for a whole TLD; no CA issues it.
        return Err(DomainError::BadWildcard { name });
    }
    Ok(name)
}

/// What is wrong with one label of a DNS name, if anything.
fn label_problem(label: &str) -> Option<&'static str> {
    if label.is_empty() {
        Some("labels cannot be empty (two dots in a row?)")
    } else if label.len() > 63 {
        Some("labels are at most 63 characters")
    } else if !label
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b == b'-')
    {
        Some("only letters, digits and '-' are allowed")
    } else if label.starts_with('-') || label.ends_with('-') {
        Some("labels cannot start or end with '-'")
    } else {
        None
    }
}

/// A validated DNS name (lower-case ASCII, optional leading `*.` wildcard) or an IP
/// address identifier (RFC 8738).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct DomainName {
    name: String,
    ip: bool,
}

impl DomainName {
    /// Parses a name: trims one trailing dot, lower-cases, checks RFC 1035 label rules and
    /// the wildcard position. IP literals (`192.0.2.1`, `::1`) are accepted as IP
    /// identifiers.
    pub fn parse(input: &str) -> Result<Self, DomainError> {
        let trimmed = input.trim();
        if trimmed.is_empty() {
            return Err(DomainError::Empty);
        }
        let unbracketed = trimmed.trim_start_matches('[').trim_end_matches(']');
        if let Ok(ip) = unbracketed.parse::<IpAddr>() {
            return Ok(Self::address(ip));
        }
        if !trimmed.is_ascii() {
            return Err(DomainError::NotAscii {
                name: trimmed.to_owned(),
            });
        }
        let name = trimmed
            .strip_suffix('.')
            .unwrap_or(trimmed)
            .to_ascii_lowercase();
        if let Some(ip) = address_in_dns_form(&name)? {
            return Ok(Self::address(ip));
        }
        check_dns_name(name).map(|name| Self { name, ip: false })
    }

    /// An IP address identifier.
    fn address(ip: IpAddr) -> Self {
        Self {
            name: ip.to_string(),
            ip: true,
        }
    }

    /// The name as it goes on the wire and into certificates.
    pub fn as_str(&self) -> &str {
        &self.name
    }

    /// Whether this is a `*.` wildcard name.
    pub fn is_wildcard(&self) -> bool {
        self.name.starts_with("*.")
    }

    /// Whether this is an IP address identifier rather than a DNS name.
    pub fn is_ip(&self) -> bool {
        self.ip
    }

    /// The name without its wildcard label: `*.example.com` → `example.com`. The name
    /// under which DNS-01 places `_acme-challenge` and ACME reports the authorization.
    pub fn base(&self) -> &str {
        self.name.strip_prefix("*.").unwrap_or(&self.name)
    }

    /// The TLS server name (SNI) a CA sends when it validates this name with
    /// TLS-ALPN-01: the name itself, or for an IP address its reverse-DNS name
    /// (`1.0.0.127.in-addr.arpa`, nibbles under `ip6.arpa` for IPv6; RFC 8738 §6).
    pub fn tls_alpn_server_name(&self) -> String {
        match self.name.parse::<IpAddr>() {
            Ok(IpAddr::V4(v4)) => {
                let [a, b, c, d] = v4.octets();
                format!("{d}.{c}.{b}.{a}.in-addr.arpa")
            }
            Ok(IpAddr::V6(v6)) => {
                let mut name = String::with_capacity(72);
                for byte in v6.octets().iter().rev() {
                    name.push_str(&format!("{:x}.{:x}.", byte & 0x0f, byte >> 4));
                }
                name.push_str("ip6.arpa");
                name
            }
            Err(_) => self.base().to_owned(),
        }
    }

    /// Whether a TLS server name (SNI) is covered by this name: exactly, or by a wildcard
    /// covering exactly one label.
    pub fn matches(&self, server_name: &str) -> bool {
        let server_name = server_name.strip_suffix('.').unwrap_or(server_name);
        if self.name.eq_ignore_ascii_case(server_name) {
            return true;
        }
        match (self.name.strip_prefix("*."), server_name.split_once('.')) {
            (Some(parent), Some((first, rest))) => {
                !first.is_empty() && !self.ip && rest.eq_ignore_ascii_case(parent)
            }
            _ => false,
        }
    }
}

impl fmt::Display for DomainName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.name)
    }
}

impl FromStr for DomainName {
    type Err = DomainError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s)
    }
}

/// The names of one certificate: the first is the main name (Traefik's `domain.main`),
/// the rest are SANs. Duplicates are removed, order is otherwise kept.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct DomainSet {
    names: Vec<DomainName>,
}

impl DomainSet {
    /// Builds a set from parsed names; refuses an empty set and more than
    /// [`MAX_NAMES_PER_CERTIFICATE`] names.
    pub fn new(names: impl IntoIterator<Item = DomainName>) -> Result<Self, DomainError> {
        let mut unique: Vec<DomainName> = Vec::new();
        for name in names {
            if !unique.contains(&name) {
                unique.push(name);
            }
        }
        if unique.is_empty() {
            return Err(DomainError::NoNames);
        }
        if unique.len() > MAX_NAMES_PER_CERTIFICATE {
            return Err(DomainError::TooManyNames {
                count: unique.len(),
            });
        }
        Ok(Self { names: unique })
    }

    /// Parses each string with [`DomainName::parse`] and builds the set.
    pub fn parse<S: AsRef<str>>(names: impl IntoIterator<Item = S>) -> Result<Self, DomainError> {
        let parsed = names
            .into_iter()
            .map(|n| DomainName::parse(n.as_ref()))
            .collect::<Result<Vec<_>, _>>()?;
        Self::new(parsed)
    }

    /// The main name (first given).
    pub fn main(&self) -> &DomainName {
        &self.names[0]
    }

    /// The names after the main one.
    pub fn sans(&self) -> &[DomainName] {
        &self.names[1..]
    }

    /// All names, main first.
    pub fn names(&self) -> &[DomainName] {
        &self.names
    }

    /// Whether any name is a wildcard.
    pub fn has_wildcard(&self) -> bool {
        self.names.iter().any(DomainName::is_wildcard)
    }

    /// Whether the set names exactly the same names as `other`, in any order. Used to
    /// find a stored certificate for a configured set, and for the CA's
    /// "duplicate certificate" limit, which ignores order.
    pub fn same_names(&self, other: &DomainSet) -> bool {
        self.key() == other.key()
    }

    /// A canonical, order-independent key (`a.example.com,b.example.com`) for ledgers and
    /// maps.
    pub fn key(&self) -> String {
        let mut names: Vec<&str> = self.names.iter().map(DomainName::as_str).collect();
        names.sort_unstable();
        names.join(",")
    }
}

impl fmt::Display for DomainSet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let names: Vec<&str> = self.names.iter().map(DomainName::as_str).collect();
        f.write_str(&names.join(","))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_lowercases_and_strips_trailing_dot() {
        let name = DomainName::parse("WWW.Example.COM.").unwrap();
        assert_eq!(name.as_str(), "www.example.com");
        assert!(!name.is_wildcard());
    }

    #[test]
    fn wildcard_only_as_whole_leftmost_label() {
        assert!(DomainName::parse("*.example.com").unwrap().is_wildcard());
        for bad in [
            "a.*.example.com",
            "*a.example.com",
            "*.com",
            "**.example.com",
        ] {
            assert!(
                matches!(DomainName::parse(bad), Err(DomainError::BadWildcard { .. })),
                "{bad} should be refused as a bad wildcard"
            );
        }
    }

    #[test]
    fn malformed_names_are_refused_with_the_reason() {
        let cases = [
            ("", "empty"),
            ("example", "single label"),
            ("exa_mple.com", "only letters"),
            ("-a.example.com", "start or end"),
            ("a..example.com", "empty"),
            ("ünïcode.example", "punycode"),
        ];
        for (input, needle) in cases {
            let err = DomainName::parse(input).unwrap_err().to_string();
            assert!(err.contains(needle), "{input:?}: {err}");
        }
        let long_label = format!("{}.example.com", "a".repeat(64));
        assert!(
            DomainName::parse(&long_label)
                .unwrap_err()
                .to_string()
                .contains("63")
        );
        let long_name = format!("{}example.com", "abcdefghi.".repeat(26));
        assert!(matches!(
            DomainName::parse(&long_name),
            Err(DomainError::TooLong { .. })
        ));
    }

    #[test]
    fn ip_literals_are_ip_identifiers() {
        let v4 = DomainName::parse("127.0.0.1").unwrap();
        assert!(v4.is_ip());
        let v6 = DomainName::parse("[::1]").unwrap();
        assert_eq!(v6.as_str(), "::1");
        assert!(v6.is_ip());
    }

    #[test]
    fn addresses_written_as_dns_names_are_ips_and_ip_wildcards_are_refused() {
        let dotted = DomainName::parse("127.0.0.1.").unwrap();
        assert!(dotted.is_ip());
        assert_eq!(dotted.as_str(), "127.0.0.1");
        let err = DomainName::parse("*.127.0.0.1").unwrap_err();
        assert!(matches!(err, DomainError::IpWildcard { .. }), "{err:?}");
        assert!(
            err.to_string()
                .contains("give the address itself (such as 127.0.0.1)"),
            "{err}"
        );
    }

    #[test]
    fn tls_alpn_server_name_is_the_reverse_dns_name_for_ips() {
        let name = |s: &str| DomainName::parse(s).unwrap().tls_alpn_server_name();
        assert_eq!(name("127.0.0.1"), "1.0.0.127.in-addr.arpa");
        assert_eq!(name("192.0.2.10"), "10.2.0.192.in-addr.arpa");
        // RFC 8738 §6's own example.
        assert_eq!(
            name("2001:db8::1"),
            "1.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.8.b.d.0.1.0.0.2.ip6.arpa"
        );
        assert_eq!(name("Example.COM"), "example.com");
    }

    #[test]
    fn wildcard_matches_exactly_one_label() {
        let wildcard = DomainName::parse("*.example.com").unwrap();
        assert!(wildcard.matches("a.example.com"));
        assert!(wildcard.matches("A.EXAMPLE.com"));
        assert!(!wildcard.matches("example.com"));
        assert!(!wildcard.matches("a.b.example.com"));
        assert!(!wildcard.matches(".example.com"));
        let exact = DomainName::parse("example.com").unwrap();
        assert!(exact.matches("example.com."));
        assert!(!exact.matches("www.example.com"));
    }

    #[test]
    fn domain_set_dedups_keeps_main_and_bounds_size() {
        let set = DomainSet::parse(["b.example.com", "a.example.com", "B.example.com"]).unwrap();
        assert_eq!(set.main().as_str(), "b.example.com");
        assert_eq!(set.sans().len(), 1);
        assert_eq!(set.key(), "a.example.com,b.example.com");
        let reordered = DomainSet::parse(["a.example.com", "b.example.com"]).unwrap();
        assert!(set.same_names(&reordered));
        assert_eq!(
            DomainSet::parse(Vec::<&str>::new()),
            Err(DomainError::NoNames)
        );
        let many: Vec<String> = (0..101).map(|i| format!("n{i}.example.com")).collect();
        assert_eq!(
            DomainSet::parse(&many),
            Err(DomainError::TooManyNames { count: 101 })
        );
    }
}
