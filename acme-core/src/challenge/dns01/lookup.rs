//! The lookups DNS-01 needs before and after an update: where `_acme-challenge` really
//! points (CNAME delegation), which zone holds a name (SOA walk), the zone's
//! authoritative nameservers, and what TXT values a given server answers.
//!
//! Plain UDP queries with hickory's client, one server per query; no caching, so the
//! propagation check sees what the servers hold now.

use std::net::{IpAddr, SocketAddr};
use std::path::Path;
use std::time::Duration;

use hickory_net::client::{Client, ClientHandle};
use hickory_net::runtime::TokioRuntimeProvider;
use hickory_net::udp::UdpClientStream;
use hickory_proto::op::{DnsResponse, ResponseCode};
use hickory_proto::rr::{DNSClass, Name, RData, RecordType};

use super::DnsError;
use crate::Setting;
use crate::store::atomic::blocking_io;

/// How many CNAMEs berth follows from `_acme-challenge.<name>` before giving up (a
/// delegation is one hop; a loop is a mistake).
const MAX_CNAME_HOPS: usize = 8;

/// Sends queries to one DNS server.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Lookup {
    server: SocketAddr,
    timeout: Duration,
}

impl Lookup {
    pub(crate) fn new(server: SocketAddr, timeout: Duration) -> Self {
        Self { server, timeout }
    }

    /// One query; NOERROR and NXDOMAIN are answers, everything else an error.
    async fn query(&self, name: &Name, record_type: RecordType) -> Result<DnsResponse, DnsError> {
        let error = |reason: String| DnsError::Lookup {
            name: name.to_string(),
            record_type: record_type.to_string(),
            server: self.server.to_string(),
            reason,
        };
        let stream = UdpClientStream::builder(self.server, TokioRuntimeProvider::default())
            .with_timeout(Some(self.timeout))
            .build();
        let (mut client, background) = Client::<TokioRuntimeProvider>::from_sender(stream);
        let task = tokio::spawn(background);
        let response = client
            .query(name.clone(), DNSClass::IN, record_type)
            .await
            .map_err(|e| error(e.to_string()));
        task.abort();
        let response = response?;
        match response.metadata.response_code {
            ResponseCode::NoError | ResponseCode::NXDomain => Ok(response),
            code => Err(error(format!("the server answered {code}"))),
        }
    }

    /// Follows CNAMEs from `name`; returns the name that finally holds no CNAME.
    pub(crate) async fn follow_cname(&self, name: &Name) -> Result<Name, DnsError> {
        let mut current = name.clone();
        for _ in 0..MAX_CNAME_HOPS {
            let response = self.query(&current, RecordType::CNAME).await?;
            let target = response.answers.iter().find_map(|r| match &r.data {
                RData::CNAME(cname) if r.name == current => Some(cname.0.clone()),
                _ => None,
            });
            match target {
                Some(target) => {
                    tracing::debug!(from = %current, to = %target, "following CNAME");
                    current = target;
                }
                None => return Ok(current),
            }
        }
        Err(DnsError::Lookup {
            name: name.to_string(),
            record_type: "CNAME".into(),
            server: self.server.to_string(),
            reason: format!("more than {MAX_CNAME_HOPS} CNAMEs in a row (a loop?)"),
        })
    }

    /// The zone that holds `name`: the owner of the SOA in the answer (the name is a
    /// zone apex) or in the authority section (a name inside a zone, existing or not);
    /// without either, the parent is asked, up to the root.
    pub(crate) async fn find_zone(&self, name: &Name) -> Result<Name, DnsError> {
        let mut candidate = name.clone();
        loop {
            let response = self.query(&candidate, RecordType::SOA).await?;
            let soa_owner = response
                .answers
                .iter()
                .chain(response.authorities.iter())
                .find(|r| r.record_type() == RecordType::SOA)
                .map(|r| r.name.clone());
            if let Some(zone) = soa_owner.filter(|z| !z.is_root()) {
                return Ok(zone);
            }
            if candidate.is_root() {
                return Err(DnsError::NoZone {
                    name: name.to_string(),
                    server: self.server.to_string(),
                });
            }
            candidate = candidate.base_name();
        }
    }

    /// The addresses of `zone`'s authoritative nameservers, on `port`.
    pub(crate) async fn nameservers(
        &self,
        zone: &Name,
        port: u16,
    ) -> Result<Vec<SocketAddr>, DnsError> {
        let response = self.query(zone, RecordType::NS).await?;
        let names: Vec<Name> = response
            .answers
            .iter()
            .filter_map(|r| match &r.data {
                RData::NS(ns) => Some(ns.0.clone()),
                _ => None,
            })
            .collect();
        let mut addrs = Vec::new();
        for ns in &names {
            for record_type in [RecordType::A, RecordType::AAAA] {
                for ip in self.addresses(ns, record_type).await? {
                    let addr = SocketAddr::new(ip, port);
                    if !addrs.contains(&addr) {
                        addrs.push(addr);
                    }
                }
            }
        }
        if addrs.is_empty() {
            return Err(DnsError::setting_at_fault(
                Setting::DnsPropagationServers,
                format!(
                    "zone {zone} lists no nameserver with an address (asked {}); name the servers to check propagation on",
                    self.server
                ),
            ));
        }
        Ok(addrs)
    }

    async fn addresses(
        &self,
        name: &Name,
        record_type: RecordType,
    ) -> Result<Vec<IpAddr>, DnsError> {
        let response = self.query(name, record_type).await?;
        Ok(response
            .answers
            .iter()
            .filter_map(|r| match &r.data {
                RData::A(a) => Some(IpAddr::V4(a.0)),
                RData::AAAA(aaaa) => Some(IpAddr::V6(aaaa.0)),
                _ => None,
            })
            .collect())
    }

    /// The TXT values this server holds for `name` (each value's strings joined).
    pub(crate) async fn txt(&self, name: &Name) -> Result<Vec<String>, DnsError> {
        let response = self.query(name, RecordType::TXT).await?;
        Ok(response
            .answers
            .iter()
            .filter_map(|r| match &r.data {
                RData::TXT(txt) if r.name == *name => Some(
                    txt.txt_data
                        .iter()
                        .map(|part| String::from_utf8_lossy(part).into_owned())
                        .collect::<String>(),
                ),
                _ => None,
            })
            .collect())
    }
}

/// The first `nameserver` in `/etc/resolv.conf`, the server lookups go to unless
/// the configuration names one.
pub(crate) async fn system_resolver() -> Result<SocketAddr, DnsError> {
    first_nameserver(Path::new(RESOLV_CONF)).await
}

/// Where the system names its resolvers.
const RESOLV_CONF: &str = "/etc/resolv.conf";

/// The first `nameserver` in the resolv.conf at `path`, read on tokio's blocking pool:
/// lookups run on whatever runtime drives the orders, which may be a single thread
/// shared with a server.
async fn first_nameserver(path: &Path) -> Result<SocketAddr, DnsError> {
    let owned = path.to_path_buf();
    let conf = blocking_io(move || std::fs::read_to_string(owned))
        .await
        .map_err(|e| {
            DnsError::setting_at_fault(
                Setting::DnsResolver,
                format!(
                    "cannot read {} ({e}); configure the resolver",
                    path.display()
                ),
            )
        })?;
    conf.lines()
        .filter_map(|line| line.trim().strip_prefix("nameserver"))
        .filter_map(|rest| rest.trim().parse::<IpAddr>().ok())
        .map(|ip| SocketAddr::new(ip, 53))
        .next()
        .ok_or_else(|| {
            DnsError::setting_at_fault(
                Setting::DnsResolver,
                format!(
                    "{} lists no nameserver; configure the resolver",
                    path.display()
                ),
            )
        })
}

/// Parses `host`, `host:port`, `[v6]:port` or a bare IPv6 address; the port defaults to 53.
pub fn parse_server(text: &str) -> Result<SocketAddr, DnsError> {
    let text = text.trim();
    if let Ok(addr) = text.parse::<SocketAddr>() {
        return Ok(addr);
    }
    if let Ok(ip) = text.parse::<IpAddr>() {
        return Ok(SocketAddr::new(ip, 53));
    }
    Err(DnsError::config(format!(
        "{text:?} is not a DNS server address; use an IP address with an optional port, e.g. 192.0.2.53 or 192.0.2.53:5353"
    )))
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::time::Instant;

    use super::*;

    /// A resolv.conf that takes 600 ms to open (a FIFO fed by a thread) leaves a 10 ms
    /// ticker on the same single-threaded runtime running: `berth run` shares it with the
    /// admin server.
    #[test]
    fn a_slow_resolv_conf_does_not_stall_the_runtime() {
        let dir = tempfile::tempdir().unwrap();
        let fifo = dir.path().join("resolv.conf");
        let made = std::process::Command::new("mkfifo")
            .arg(&fifo)
            .status()
            .unwrap();
        assert!(made.success());
        let writer = std::thread::spawn({
            let fifo = fifo.clone();
            move || {
                std::thread::sleep(Duration::from_millis(600));
                // Blocks until the reader opens its end; closing it ends the read.
                std::fs::write(&fifo, "# test\nnameserver 192.0.2.53\n").unwrap();
            }
        });
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let (found, longest) = runtime.block_on(async {
            let done = Arc::new(AtomicBool::new(false));
            let ticker = tokio::spawn({
                let done = Arc::clone(&done);
                async move {
                    let mut longest = Duration::ZERO;
                    while !done.load(Ordering::Acquire) {
                        let before = Instant::now();
                        tokio::time::sleep(Duration::from_millis(10)).await;
                        longest = longest.max(before.elapsed());
                    }
                    longest
                }
            });
            // The ticker runs first, so a read that blocks the thread shows as a gap.
            tokio::time::sleep(Duration::from_millis(50)).await;
            let found = tokio::spawn(async move { first_nameserver(&fifo).await })
                .await
                .unwrap();
            done.store(true, Ordering::Release);
            (found, ticker.await.unwrap())
        });
        writer.join().unwrap();
        assert_eq!(found.unwrap(), "192.0.2.53:53".parse().unwrap());
        assert!(
            longest < Duration::from_millis(300),
            "the runtime stalled for {longest:?} while reading resolv.conf"
        );
    }

    #[tokio::test]
    async fn a_resolv_conf_that_cannot_be_read_or_lists_no_server_says_so() {
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("missing");
        let err = first_nameserver(&missing).await.unwrap_err().to_string();
        assert!(
            err.contains(&format!("cannot read {} (", missing.display()))
                && err.contains("); configure the resolver"),
            "{err}"
        );
        let empty = dir.path().join("empty");
        std::fs::write(&empty, "search example.com\n").unwrap();
        let err = first_nameserver(&empty).await.unwrap_err().to_string();
        assert!(
            err.contains(&format!(
                "{} lists no nameserver; configure the resolver",
                empty.display()
            )),
            "{err}"
        );
    }

    #[test]
    fn server_addresses_default_to_port_53() {
        assert_eq!(
            parse_server("192.0.2.53").unwrap(),
            "192.0.2.53:53".parse().unwrap()
        );
        assert_eq!(
            parse_server("192.0.2.53:5353").unwrap(),
            "192.0.2.53:5353".parse().unwrap()
        );
        assert_eq!(parse_server("::1").unwrap(), "[::1]:53".parse().unwrap());
        assert_eq!(
            parse_server("[::1]:5353").unwrap(),
            "[::1]:5353".parse().unwrap()
        );
        let err = parse_server("ns1.example.com").unwrap_err().to_string();
        assert!(
            err.contains("ns1.example.com") && err.contains("IP address"),
            "{err}"
        );
    }
}
