//! Which TCP peers may tell the proxy who the client is: the load balancers in front
//! of it, whose `X-Forwarded-*` / `Forwarded` headers are kept and appended to.

use std::fmt;
use std::net::IpAddr;
use std::str::FromStr;

use ipnet::{IpNet, Ipv4Net};

use crate::error::Error;

/// Address ranges whose connections may carry forwarding headers
/// (`X-Forwarded-For`, `Forwarded`, `X-Real-IP`, `X-Forwarded-Proto`/`-Host`/`-Port`/
/// `-Prefix`) that the proxy keeps. From every other peer those headers are dropped
/// and set from what the proxy saw, so a client cannot make an upstream believe it
/// comes from another address. Empty (the default) trusts no one: the proxy is the edge.
///
/// Parse from a comma-separated list of CIDRs or single addresses:
///
/// ```
/// use berth_proxy::TrustedProxies;
///
/// let lbs: TrustedProxies = "10.0.0.0/8, 2001:db8::/32, 192.0.2.7".parse()?;
/// assert!(lbs.contains("10.1.2.3".parse()?));
/// assert!(lbs.contains("::ffff:10.1.2.3".parse()?));
/// assert!(!lbs.contains("192.0.2.8".parse()?));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TrustedProxies {
    nets: Vec<IpNet>,
}

impl TrustedProxies {
    /// Trusts no peer (the default).
    pub fn none() -> Self {
        Self::default()
    }

    /// Parses each item as `address/prefix` or a single address (IPv4 or IPv6).
    /// Empty items are skipped, so an empty list trusts no one.
    pub fn parse<I, S>(items: I) -> Result<Self, Error>
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        let mut nets = Vec::new();
        for item in items {
            let item = item.as_ref().trim();
            if item.is_empty() {
                continue;
            }
            nets.push(parse_net(item)?);
        }
        Ok(Self { nets })
    }

    /// Whether a connection from `peer` may carry forwarding headers. An IPv4-mapped
    /// IPv6 peer (`::ffff:a.b.c.d`, what a dual-stack listener reports) counts as IPv4.
    pub fn contains(&self, peer: IpAddr) -> bool {
        let peer = peer.to_canonical();
        self.nets.iter().any(|net| net.contains(&peer))
    }

    /// Whether no peer is trusted.
    pub fn is_empty(&self) -> bool {
        self.nets.is_empty()
    }
}

impl FromStr for TrustedProxies {
    type Err = Error;

    /// A comma-separated list, as `--trusted-proxies` takes it.
    fn from_str(list: &str) -> Result<Self, Error> {
        Self::parse(list.split(','))
    }
}

impl fmt::Display for TrustedProxies {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, net) in self.nets.iter().enumerate() {
            if i > 0 {
                f.write_str(",")?;
            }
            write!(f, "{net}")?;
        }
        Ok(())
    }
}

fn parse_net(item: &str) -> Result<IpNet, Error> {
    let bad = |reason: &str| Error::InvalidTrustedProxy {
        input: item.to_owned(),
        reason: reason.to_owned(),
    };
    let net = match item.parse::<IpNet>() {
        Ok(net) => net,
        Err(_) => match item.parse::<IpAddr>() {
            Ok(ip) => IpNet::from(ip),
            Err(_) if item.contains('/') => {
                return Err(bad(
                    "not a CIDR; write address/prefix, e.g. 10.0.0.0/8 or 2001:db8::/32 (prefix at most 32 for IPv4, 128 for IPv6)",
                ));
            }
            Err(_) => {
                return Err(bad(
                    "not an IP address or CIDR; write e.g. 10.0.0.0/8, 192.0.2.7 or 2001:db8::/32",
                ));
            }
        },
    };
    // Peers are compared as IPv4 when they are IPv4-mapped, so a mapped range is too.
    let net = match net {
        IpNet::V6(v6) if v6.prefix_len() >= 96 => match v6.addr().to_ipv4_mapped() {
            Some(v4) => Ipv4Net::new(v4, v6.prefix_len() - 96)
                .map(IpNet::V4)
                .unwrap_or(net),
            None => net,
        },
        _ => net,
    };
    Ok(net.trunc())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(text: &str) -> IpAddr {
        text.parse().unwrap()
    }

    #[test]
    fn cidrs_and_single_addresses_of_both_families_parse() {
        let trusted: TrustedProxies = " 10.0.0.0/8 ,192.0.2.7,2001:db8::/32,::1,".parse().unwrap();
        assert_eq!(
            trusted.to_string(),
            "10.0.0.0/8,192.0.2.7/32,2001:db8::/32,::1/128"
        );
        for inside in [
            "10.0.0.1",
            "10.255.255.255",
            "192.0.2.7",
            "2001:db8:1::5",
            "::1",
        ] {
            assert!(trusted.contains(ip(inside)), "{inside}");
        }
        for outside in ["11.0.0.1", "192.0.2.8", "2001:db9::1", "::2", "127.0.0.1"] {
            assert!(!trusted.contains(ip(outside)), "{outside}");
        }
    }

    #[test]
    fn ipv4_mapped_peers_and_ranges_count_as_ipv4() {
        let trusted: TrustedProxies = "10.0.0.0/8,::ffff:192.0.2.0/120".parse().unwrap();
        assert!(trusted.contains(ip("::ffff:10.1.2.3")));
        assert!(trusted.contains(ip("192.0.2.200")));
        assert!(trusted.contains(ip("::ffff:192.0.2.200")));
        assert!(!trusted.contains(ip("::ffff:11.1.2.3")));
    }

    #[test]
    fn host_bits_are_ignored_and_nothing_is_trusted_by_default() {
        let trusted: TrustedProxies = "10.1.2.3/8".parse().unwrap();
        assert_eq!(trusted.to_string(), "10.0.0.0/8");
        assert!(trusted.contains(ip("10.200.0.1")));
        let none = TrustedProxies::default();
        assert!(none.is_empty());
        assert!(!none.contains(ip("127.0.0.1")));
        assert_eq!("".parse::<TrustedProxies>().unwrap(), none);
    }

    #[test]
    fn bad_entries_are_refused_with_the_entry_named() {
        for bad in [
            "10.0.0.0/33",
            "2001:db8::/129",
            "10.0.0",
            "example.com",
            "10.0.0.0/",
            "/8",
            "*",
        ] {
            let error = bad.parse::<TrustedProxies>().unwrap_err().to_string();
            assert!(error.contains(&format!("{bad:?}")), "{bad}: {error}");
        }
    }
}
