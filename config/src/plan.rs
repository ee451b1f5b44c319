//! What [`RunSettings`] turn into: the managed certificates and the route table, every
//! name, challenge, key type, profile and route parsed — built the same way at start and
//! on reload. Reads no file and no secret; the account and the DNS solver are the
//! caller's (they read secret files).

use std::collections::HashSet;

use berth_acme_core::{ChallengeKind, DomainSet, ManagedCert};
use berth_proxy::{Route, Routes, TrustedProxies, Upstream};

use crate::error::Error;
use crate::settings::RunSettings;

/// The parsed, checked form of the settings.
#[derive(Debug)]
#[non_exhaustive]
pub struct Plan {
    /// Domain sets to keep issued.
    pub managed: Vec<ManagedCert>,
    /// Where requests go.
    pub routes: Routes,
    /// Every distinct upstream (for reachability checks).
    pub upstreams: Vec<Upstream>,
    /// Peers whose forwarding headers the proxy keeps.
    pub trusted_proxies: TrustedProxies,
}

impl Plan {
    /// Parses every name, challenge, key type, profile and route.
    pub fn build(settings: &RunSettings) -> Result<Self, Error> {
        let managed = managed(settings)?;
        let routes = routes(settings)?;
        let mut upstreams: Vec<Upstream> = Vec::new();
        for route in routes.routes() {
            if !upstreams.contains(route.upstream()) {
                upstreams.push(route.upstream().clone());
            }
        }
        let trusted_proxies = TrustedProxies::parse(&settings.trusted_proxies)
            .map_err(|e| Error::refused("--trusted-proxies", e))?;
        Ok(Self {
            managed,
            routes,
            upstreams,
            trusted_proxies,
        })
    }

    /// Whether any managed set is proven with `kind`.
    pub fn uses(&self, kind: ChallengeKind) -> bool {
        self.managed.iter().any(|m| m.challenge == kind)
    }

    /// The name served to clients that send none (IP addresses, some health checkers):
    /// the first domain set's main name, as a single-site server would serve them.
    pub fn default_server_name(&self) -> Option<&str> {
        self.managed.first().map(|m| m.domains.main().as_str())
    }
}

/// Every domain set with its challenge, key type and profile; a set listed twice (in
/// any order) is refused.
fn managed(settings: &RunSettings) -> Result<Vec<ManagedCert>, Error> {
    if settings.certificates.is_empty() {
        return Err(Error::NoDomains);
    }
    let mut managed = Vec::with_capacity(settings.certificates.len());
    // Set keys seen so far: a duplicate check that stays linear for 10,000 sets.
    let mut seen = HashSet::with_capacity(settings.certificates.len());
    for cert in &settings.certificates {
        let domains = DomainSet::parse(
            cert.domains
                .iter()
                .map(|d| d.trim())
                .filter(|d| !d.is_empty()),
        )
        .map_err(|e| Error::refused(format!("domains {:?}", cert.domains), e))?;
        let challenge = cert.challenge.unwrap_or(settings.challenge);
        let key_type = cert.key_type.unwrap_or(settings.key_type);
        if !seen.insert(domains.key()) {
            return Err(Error::Duplicate(domains.to_string()));
        }
        let profile = profile(cert.profile.as_ref().or(settings.profile.as_ref()))
            .map_err(|e| Error::invalid(format!("profile for {domains}"), e))?;
        managed.push(
            ManagedCert::new(domains.clone(), challenge, key_type)
                .map_err(|e| Error::refused(domains.to_string(), e))?
                .with_profile(profile),
        );
    }
    Ok(managed)
}

/// The routes, then the upstream as the route that matches everything.
fn routes(settings: &RunSettings) -> Result<Routes, Error> {
    let mut routes = Routes::new();
    for text in settings.routes.iter().filter(|r| !r.trim().is_empty()) {
        let route: Route = text.parse().map_err(|e| Error::refused("--route", e))?;
        routes = routes.with(route);
    }
    if let Some(upstream) = &settings.upstream {
        let upstream = Upstream::parse(upstream).map_err(|e| Error::refused("--upstream", e))?;
        routes = routes.with(Route::new(upstream));
    }
    if routes.is_empty() {
        return Err(Error::NoRoutes);
    }
    Ok(routes)
}

/// A profile name as given (`--profile`, `profile = "…"`): trimmed; empty means none.
/// Whether the CA offers it is checked against its directory before ordering.
pub fn profile(text: Option<&String>) -> Result<Option<String>, String> {
    let Some(name) = text.map(|t| t.trim()).filter(|t| !t.is_empty()) else {
        return Ok(None);
    };
    if !name.bytes().all(|b| b.is_ascii_graphic()) {
        return Err(format!(
            "{name:?} is not a profile name; profile names are short ASCII words such as shortlived or tlsserver"
        ));
    }
    Ok(Some(name.to_owned()))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

    use std::time::Duration;

    use super::*;
    use crate::Layer;

    fn settings(text: &str) -> RunSettings {
        Layer::from_toml(text).unwrap().resolve().unwrap()
    }

    #[test]
    fn ten_thousand_certificates_plan_in_linear_time_and_a_reordered_duplicate_is_refused() {
        let mut text = String::from("agree_tos = true\nupstream = \"http://127.0.0.1:1\"\n");
        for i in 0..10_000 {
            text.push_str(&format!(
                "[[certificates]]\ndomains = [\"c{i}.example.com\", \"www.c{i}.example.com\"]\n"
            ));
        }
        let s = settings(&text);
        // Generous: the duplicate check compared every pair (50 million set keys, seconds
        // even in a release build); linear, it takes milliseconds.
        let started = std::time::Instant::now();
        let plan = Plan::build(&s).unwrap();
        assert_eq!(plan.managed.len(), 10_000);
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "{:?}",
            started.elapsed()
        );
        text.push_str("[[certificates]]\ndomains = [\"www.c5.example.com\", \"c5.example.com\"]\n");
        let err = Plan::build(&settings(&text)).err().unwrap().to_string();
        assert!(err.contains("listed twice"), "{err}");
    }

    #[test]
    fn profiles_come_from_the_set_then_the_top_level_and_a_malformed_one_is_refused() {
        let text = "agree_tos = true\nupstream = \"http://127.0.0.1:1\"\nprofile = \"tlsserver\"\n\
            [[certificates]]\ndomains = [\"a.example.com\"]\n\
            [[certificates]]\ndomains = [\"192.0.2.10\"]\nprofile = \"shortlived\"\n";
        let plan = Plan::build(&settings(text)).unwrap();
        let profiles: Vec<Option<&str>> =
            plan.managed.iter().map(|m| m.profile.as_deref()).collect();
        assert_eq!(profiles, [Some("tlsserver"), Some("shortlived")]);
        let mut flag = settings(text);
        flag.profile = Some("classic".into());
        assert_eq!(
            Plan::build(&flag).unwrap().managed[0].profile.as_deref(),
            Some("classic")
        );
        flag.profile = Some("short lived".into());
        let err = Plan::build(&flag).err().unwrap().to_string();
        assert!(err.contains("is not a profile name"), "{err}");
    }

    #[test]
    fn trusted_proxies_come_from_the_settings_and_bad_ones_stop_the_plan() {
        let text =
            "agree_tos = true\ndomains = [\"a.example.com\"]\nupstream = \"http://127.0.0.1:1\"\n";
        assert!(
            Plan::build(&settings(text))
                .unwrap()
                .trusted_proxies
                .is_empty()
        );
        let listed = format!("{text}trusted_proxies = [\"10.0.0.0/8\", \"2001:db8::/32\"]\n");
        let plan = Plan::build(&settings(&listed)).unwrap();
        assert_eq!(plan.trusted_proxies.to_string(), "10.0.0.0/8,2001:db8::/32");
        let bad = format!("{text}trusted_proxies = [\"10.0.0.0/33\"]\n");
        let err = Plan::build(&settings(&bad)).err().unwrap().to_string();
        assert!(
            err.contains("--trusted-proxies") && err.contains("10.0.0.0/33"),
            "{err}"
        );
    }

    #[test]
    fn a_refused_challenge_keeps_its_cause_so_the_setting_to_change_is_known() {
        let s = settings("domains = [\"*.example.com\"]\nupstream = \"http://127.0.0.1:1\"\n");
        let err = Plan::build(&s).err().unwrap();
        assert!(err.to_string().starts_with("*.example.com: "), "{err}");
        // The library's own error, not its text: the binary finds the setting to change
        // (dns-01 here) in the cause chain.
        let cause = std::error::Error::source(&err).unwrap();
        assert!(cause.to_string().contains("dns-01"), "{cause}");
        assert!(
            cause.downcast_ref::<berth_acme_core::Error>().is_some(),
            "{cause:?}"
        );
    }

    #[test]
    fn an_upstream_password_in_the_config_file_is_never_shown() {
        // Found by the fuzz test: the plan's error quoted the URL again, password included.
        for text in [
            "upstream = \"http://user:PLANTED-77ab@127.0.0.1:3000\"\n",
            "routes = [\"a.example.com=http://user:PLANTED-77ab@127.0.0.1:3000\"]\n",
        ] {
            let s = settings(&format!("domains = [\"a.example.com\"]\n{text}"));
            let err = Plan::build(&s).err().unwrap().to_string();
            assert!(!err.contains("PLANTED"), "{err}");
            assert!(err.contains("…@127.0.0.1:3000"), "{err}");
        }
    }

    #[test]
    fn the_default_server_name_is_the_first_sets_main_name() {
        let plan = Plan::build(&settings(
            r#"
            domains = ["app.example.com", "www.example.com"]
            upstream = "http://app:3000"
            [[certificates]]
            domains = ["other.example.com"]
        "#,
        ))
        .unwrap();
        assert_eq!(plan.default_server_name(), Some("app.example.com"));
        let plan = Plan::build(&settings(
            r#"
            upstream = "http://app:3000"
            [[certificates]]
            domains = ["other.example.com"]
        "#,
        ))
        .unwrap();
        assert_eq!(plan.default_server_name(), Some("other.example.com"));
    }
}
