//! Where requests go: routes by Host and path prefix, each to one plain-HTTP upstream.

use std::fmt;
use std::str::FromStr;

use http::uri::{Authority, PathAndQuery, Uri};

use crate::error::Error;

/// A plain-HTTP upstream, `http://host:port` (the port defaults to 80). The proxy
/// terminates TLS and forwards plain HTTP, so `https://` upstreams are refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Upstream {
    authority: Authority,
}

impl Upstream {
    /// Parses `http://host:port` (a trailing `/` is allowed; a path is not, since it
    /// would silently be dropped).
    pub fn parse(input: &str) -> Result<Self, Error> {
        let bad = |reason: &str| Error::InvalidUpstream {
            input: without_credentials(input),
            reason: reason.to_owned(),
        };
        let uri: Uri = input
            .trim()
            .parse()
            .map_err(|_| bad("not a URL; write it as http://host:port"))?;
        match uri.scheme_str() {
            Some("http") => {}
            Some("https") => {
                return Err(bad(
                    "https upstreams are not supported; the proxy terminates TLS and forwards plain http://host:port",
                ));
            }
            _ => return Err(bad("missing http:// scheme; write it as http://host:port")),
        }
        let Some(authority) = uri.authority().cloned() else {
            return Err(bad("missing host; write it as http://host:port"));
        };
        if authority.as_str().contains('@') {
            return Err(bad("credentials in the upstream URL are not supported"));
        }
        if authority.host().is_empty() {
            return Err(bad("missing host; write it as http://host:port"));
        }
        if !matches!(uri.path(), "" | "/") || uri.query().is_some() {
            return Err(bad(
                "a path or query on the upstream is not supported; use a route prefix with strip instead",
            ));
        }
        Ok(Self { authority })
    }

    /// `host:port` as requests are sent to it.
    pub fn authority(&self) -> &str {
        self.authority.as_str()
    }

    /// The parsed `host:port`, the key upstream connections are pooled under.
    pub(crate) fn authority_ref(&self) -> &Authority {
        &self.authority
    }
}

impl FromStr for Upstream {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s)
    }
}

impl fmt::Display for Upstream {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "http://{}", self.authority)
    }
}

/// One route: requests for `host` (any host when unset; `*.example.com` covers one
/// label) whose path starts with `path_prefix` at a segment boundary go to `upstream`,
/// optionally with the prefix removed from the path.
///
/// Parses from `[host][/prefix]=http://host:port`, e.g. `=http://app:3000` (everything),
/// `api.example.com=http://api:8080`, `example.com/static=http://files:80`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Route {
    host: Option<String>,
    prefix: String,
    strip_prefix: bool,
    upstream: Upstream,
}

impl Route {
    /// A route sending every request, whatever its host and path, to `upstream`.
    pub fn new(upstream: Upstream) -> Self {
        Self {
            host: None,
            prefix: "/".to_owned(),
            strip_prefix: false,
            upstream,
        }
    }

    /// Restricts the route to requests for `host` (compared without case and port;
    /// `*.example.com` matches exactly one extra label).
    pub fn host(mut self, host: &str) -> Self {
        let host = host.trim().trim_end_matches('.').to_ascii_lowercase();
        self.host = (!host.is_empty()).then_some(host);
        self
    }

    /// Restricts the route to paths under `prefix`: `/api` matches `/api` and `/api/x`
    /// but not `/apix`. A missing leading `/` is added.
    pub fn path_prefix(mut self, prefix: &str) -> Self {
        self.prefix = normalize_prefix(prefix);
        self
    }

    /// Removes the prefix before forwarding: with prefix `/api`, `/api/users?x=1` reaches
    /// the upstream as `/users?x=1` and `/api` as `/`.
    pub fn strip_prefix(mut self, strip: bool) -> Self {
        self.strip_prefix = strip;
        self
    }

    /// Where the route sends requests.
    pub fn upstream(&self) -> &Upstream {
        &self.upstream
    }

    /// How well the route matches (higher is better), or `None` when it does not:
    /// a host-specific route beats a wildcard host, which beats any host; among those,
    /// the longest prefix wins.
    fn rank(&self, host: Option<&str>, path: &str) -> Option<(u8, usize)> {
        let host_rank = match (&self.host, host) {
            (None, _) => 0,
            (Some(want), Some(have)) if want.eq_ignore_ascii_case(have) => 2,
            (Some(want), Some(have)) => {
                let parent = want.strip_prefix("*.")?;
                let (first, rest) = have.split_once('.')?;
                if first.is_empty() || !rest.eq_ignore_ascii_case(parent) {
                    return None;
                }
                1
            }
            (Some(_), None) => return None,
        };
        if !prefix_matches(&self.prefix, path) {
            return None;
        }
        Some((host_rank, self.prefix.len()))
    }

    /// The path and query to send upstream.
    pub(crate) fn rewrite(&self, original: Option<&PathAndQuery>) -> PathAndQuery {
        let path = original.map_or("/", PathAndQuery::path);
        let query = original.and_then(PathAndQuery::query);
        if !self.strip_prefix || self.prefix == "/" {
            return original
                .cloned()
                .unwrap_or_else(|| PathAndQuery::from_static("/"));
        }
        let rest = path.strip_prefix(self.prefix.as_str()).unwrap_or(path);
        let rest = if rest.is_empty() { "/" } else { rest };
        let rebuilt = match query {
            Some(q) => format!("{rest}?{q}"),
            None => rest.to_owned(),
        };
        // The pieces came from a valid PathAndQuery, so this parse cannot fail; keep the
        // original rather than panic if it ever did.
        rebuilt.parse().unwrap_or_else(|_| {
            original
                .cloned()
                .unwrap_or_else(|| PathAndQuery::from_static("/"))
        })
    }
}

impl FromStr for Route {
    type Err = Error;

    /// Parses `[host][/prefix]=http://host:port`.
    fn from_str(input: &str) -> Result<Self, Self::Err> {
        let bad = |reason: &str| Error::InvalidRoute {
            input: without_credentials(input),
            reason: reason.to_owned(),
        };
        let Some((matcher, upstream)) = input.split_once('=') else {
            return Err(bad(
                "missing `=`; write it as [host][/prefix]=http://host:port",
            ));
        };
        let upstream = Upstream::parse(upstream)?;
        let matcher = matcher.trim();
        let (host, prefix) = match matcher.find('/') {
            Some(0) => ("", matcher),
            Some(i) => (&matcher[..i], &matcher[i..]),
            None => (matcher, "/"),
        };
        if !host.is_empty() && !valid_host(host) {
            return Err(bad(
                "the host may hold only letters, digits, `-` and `.`, optionally after a leading `*.`, and no port",
            ));
        }
        if prefix.contains(['?', '#', ' ']) {
            return Err(bad("the path prefix may not hold `?`, `#` or spaces"));
        }
        Ok(Self::new(upstream).host(host).path_prefix(prefix))
    }
}

/// The route table. Requests are matched by host first (exact, then wildcard, then
/// routes for any host), then by the longest path prefix; see [`Route`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Routes {
    routes: Vec<Route>,
}

impl Routes {
    /// No routes: every proxied request gets a 404.
    pub fn new() -> Self {
        Self::default()
    }

    /// The sidecar case: everything goes to one upstream.
    pub fn single(upstream: Upstream) -> Self {
        Self::new().with(Route::new(upstream))
    }

    /// Adds a route. Among equally good matches the one added first wins.
    pub fn with(mut self, route: Route) -> Self {
        self.routes.push(route);
        self
    }

    /// The routes, in the order added.
    pub fn routes(&self) -> &[Route] {
        &self.routes
    }

    /// Whether there are no routes.
    pub fn is_empty(&self) -> bool {
        self.routes.is_empty()
    }

    /// The best route for a request to `host` (any case, no port) and `path`.
    pub(crate) fn find(&self, host: Option<&str>, path: &str) -> Option<&Route> {
        let mut best: Option<((u8, usize), &Route)> = None;
        for route in &self.routes {
            if let Some(rank) = route.rank(host, path)
                && best.is_none_or(|(have, _)| rank > have)
            {
                best = Some((rank, route));
            }
        }
        best.map(|(_, route)| route)
    }
}

impl FromIterator<Route> for Routes {
    fn from_iter<T: IntoIterator<Item = Route>>(iter: T) -> Self {
        Self {
            routes: iter.into_iter().collect(),
        }
    }
}

fn normalize_prefix(prefix: &str) -> String {
    let trimmed = prefix.trim().trim_end_matches('/');
    if trimmed.is_empty() {
        "/".to_owned()
    } else if trimmed.starts_with('/') {
        trimmed.to_owned()
    } else {
        format!("/{trimmed}")
    }
}

fn prefix_matches(prefix: &str, path: &str) -> bool {
    if prefix == "/" {
        return true;
    }
    match path.strip_prefix(prefix) {
        Some(rest) => rest.is_empty() || rest.starts_with('/'),
        None => false,
    }
}

/// Whether a request path holds a dot-segment (`.` or `..`, RFC 3986 §3.3), written
/// plainly or percent-encoded (`%2e`), in any segment. Segments are split at `/` and
/// also at `\`, `%2f` and `%5c`, and a segment's path parameters (`;…`) are ignored,
/// because upstreams differ in which of these they decode or honour (Tomcat treats
/// `..;` as `..`, IIS `\` as `/`).
///
/// Route prefixes are compared with the raw path, so `/api/../admin` would match
/// `/api` and reach the upstream, which resolves it to `/admin`. Clients resolve
/// dot-segments before sending (RFC 3986 §5.2.4; browsers and curl do), so the proxy
/// refuses paths that still hold one rather than guess how the upstream would read them.
pub(crate) fn has_dot_segment(path: &str) -> bool {
    let bytes = path.as_bytes();
    // Most paths hold neither a dot nor an escape: nothing to split.
    if !bytes.iter().any(|&b| b == b'.' || b == b'%') {
        return false;
    }
    let mut start = 0;
    let mut i = 0;
    while i <= bytes.len() {
        let separator = match bytes.get(i) {
            None => 1,
            Some(b'/' | b'\\') => 1,
            Some(b'%')
                if escape_is(&bytes[i..], b'2', b'f') || escape_is(&bytes[i..], b'5', b'c') =>
            {
                3
            }
            Some(_) => 0,
        };
        if separator == 0 {
            i += 1;
            continue;
        }
        if is_dot_segment(&bytes[start..i]) {
            return true;
        }
        i += separator;
        start = i;
    }
    false
}

/// `%` followed by `high` and `low` (a letter in either case).
fn escape_is(at: &[u8], high: u8, low: u8) -> bool {
    at.len() >= 3 && at[0] == b'%' && at[1] == high && at[2].to_ascii_lowercase() == low
}

/// `.` or `..` (each dot plain or `%2e`), before any `;` parameters.
fn is_dot_segment(segment: &[u8]) -> bool {
    let segment = match segment.iter().position(|&b| b == b';') {
        Some(end) => &segment[..end],
        None => segment,
    };
    let (mut dots, mut i) = (0, 0);
    while i < segment.len() {
        if segment[i] == b'.' {
            i += 1;
        } else if escape_is(&segment[i..], b'2', b'e') {
            i += 3;
        } else {
            return false;
        }
        dots += 1;
    }
    dots == 1 || dots == 2
}

/// `input` with anything between `://` (or the start) and the last `@` replaced: an
/// error quoting a URL must not show the password in `http://user:password@host`.
fn without_credentials(input: &str) -> String {
    let Some(at) = input.rfind('@') else {
        return input.to_owned();
    };
    let start = input.find("://").map_or(0, |i| i + 3).min(at);
    format!("{}…{}", &input[..start], &input[at..])
}

fn valid_host(host: &str) -> bool {
    let body = host.strip_prefix("*.").unwrap_or(host);
    !body.is_empty()
        && body.split('.').all(|label| {
            !label.is_empty() && label.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn up(s: &str) -> Upstream {
        Upstream::parse(s).unwrap()
    }

    #[test]
    fn upstreams_must_be_plain_http_without_a_path() {
        assert_eq!(up("http://app:3000").authority(), "app:3000");
        assert_eq!(
            up("http://127.0.0.1:8080/").to_string(),
            "http://127.0.0.1:8080"
        );
        for (input, says) in [
            ("https://app:443", "https upstreams are not supported"),
            ("app:3000", "http://"),
            ("http://app:3000/base", "a path or query"),
            ("http://user:pw@app:3000", "credentials"),
            ("not a url", "not a URL"),
        ] {
            let err = Upstream::parse(input).unwrap_err().to_string();
            assert!(err.contains(says), "{input}: {err}");
        }
    }

    #[test]
    fn errors_never_show_the_password_of_an_upstream_url() {
        // Found by the route fuzz test: the error quoted the URL as given.
        for input in [
            "http://user:pw-Zq9x@app:3000",
            "http://:pw-Zq9x+/x-@a",
            "a.example.com=http://user:pw-Zq9x@app:3000",
            "a.example.com http://user:pw-Zq9x@app:3000",
        ] {
            let err = match input.strip_prefix("http") {
                Some(_) => Upstream::parse(input).unwrap_err(),
                None => input.parse::<Route>().unwrap_err(),
            };
            assert!(!format!("{err} {err:?}").contains("pw-Zq9x"), "{err}");
            assert!(err.to_string().contains("…@"), "{err}");
        }
    }

    #[test]
    fn host_beats_any_host_and_longest_prefix_wins() {
        let routes: Routes = [
            "=http://all:1",
            "/api=http://api:1",
            "/api/v2=http://api2:1",
            "example.com=http://ex:1",
            "*.example.com=http://wild:1",
            "example.com/static=http://static:1",
        ]
        .iter()
        .map(|s| s.parse::<Route>().unwrap())
        .collect();
        let target = |host: Option<&str>, path: &str| {
            routes
                .find(host, path)
                .unwrap()
                .upstream()
                .authority()
                .to_owned()
        };
        assert_eq!(target(Some("other.org"), "/"), "all:1");
        assert_eq!(target(Some("other.org"), "/api"), "api:1");
        assert_eq!(target(Some("other.org"), "/api/v2/x"), "api2:1");
        assert_eq!(target(Some("other.org"), "/apix"), "all:1");
        assert_eq!(target(None, "/api/x"), "api:1");
        assert_eq!(target(Some("example.com"), "/api"), "ex:1");
        assert_eq!(target(Some("example.com"), "/static/a.css"), "static:1");
        assert_eq!(target(Some("www.example.com"), "/"), "wild:1");
        assert_eq!(target(Some("a.b.example.com"), "/"), "all:1");
    }

    #[test]
    fn no_route_matches_without_a_catch_all() {
        let routes = Routes::new().with("example.com=http://ex:1".parse().unwrap());
        assert!(routes.find(Some("other.org"), "/").is_none());
        assert!(routes.find(None, "/").is_none());
        assert!(Routes::new().find(Some("example.com"), "/").is_none());
    }

    #[test]
    fn strip_prefix_keeps_the_query_and_leaves_a_slash() {
        let route = Route::new(up("http://a:1"))
            .path_prefix("/api/")
            .strip_prefix(true);
        let rewrite = |pq: &str| route.rewrite(Some(&pq.parse().unwrap())).to_string();
        assert_eq!(rewrite("/api/users?x=1"), "/users?x=1");
        assert_eq!(rewrite("/api"), "/");
        assert_eq!(rewrite("/api?x=1"), "/?x=1");
        let keep = Route::new(up("http://a:1")).path_prefix("api");
        assert_eq!(
            keep.rewrite(Some(&"/api/u".parse().unwrap())).to_string(),
            "/api/u"
        );
    }

    #[test]
    fn dot_segments_are_found_plain_encoded_and_behind_other_separators() {
        for path in [
            "/api/../admin",
            "/api/..",
            "/..",
            "/./x",
            "/api/.",
            "/api/%2e%2e/admin",
            "/api/%2E./admin",
            "/api/.%2e",
            "/api%2f..%2fadmin",
            "/api%2F%2e%2e%2Fadmin",
            "/api/..%5cadmin",
            "/api\\..\\admin",
            "/api/..;/admin",
            "/api/..;jsessionid=1/admin",
        ] {
            assert!(has_dot_segment(path), "{path}");
        }
        for path in [
            "/",
            "/api/x",
            "/api/v1.2/file..txt",
            "/api/...",
            "/api/.well-known/x",
            "/api/a%2fb",
            "/api/%2e%2e%2e",
            "/api/%2",
            "/api/..x",
            "/api/x..",
            "/api/%252e%252e/admin",
        ] {
            assert!(!has_dot_segment(path), "{path}");
        }
    }

    proptest::proptest! {
        #![proptest_config(berth_tests::fuzz::config(2000))]

        // Any path: no panic, and a literal `..` segment is always found.
        #[test]
        fn dot_segment_check_never_panics_and_finds_plain_traversal(
            before in "[a-zA-Z0-9%./;\\\\-]{0,40}",
            after in "[a-zA-Z0-9%./;\\\\-]{0,40}",
        ) {
            let _ = has_dot_segment(&before);
            let path = format!("/{before}/../{after}");
            proptest::prop_assert!(has_dot_segment(&path), "{}", path);
        }
    }

    #[test]
    fn malformed_routes_are_refused_with_the_syntax() {
        for (input, says) in [
            ("example.com", "missing `=`"),
            ("exa mple.com=http://a:1", "the host may hold only"),
            ("example.com:8443=http://a:1", "no port"),
            ("/a?b=http://a:1", "may not hold"),
            ("example.com=ftp://a:1", "http://"),
        ] {
            let err = input.parse::<Route>().unwrap_err().to_string();
            assert!(err.contains(says), "{input}: {err}");
        }
    }
}
