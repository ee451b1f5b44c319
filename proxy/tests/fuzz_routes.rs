//! Property/fuzz test of route specs (`[host][/prefix]=http://host:port`) and upstream
//! URLs: valid ones parse to the route the builder makes, an upstream prints as it
//! parses, nothing panics, and credentials in a URL never come back in the error.
//!
//! `cargo test` tries a short run; `scripts/fuzz.sh` sets `FUZZ_CASES` for the long one.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use berth_proxy::{Route, Upstream};
use berth_tests::fuzz::{assert_hidden, config, mutated, secret};
use proptest::prelude::*;

fn label() -> impl Strategy<Value = String> {
    "[a-zA-Z0-9]([a-zA-Z0-9-]{0,10}[a-zA-Z0-9])?"
}

fn host() -> impl Strategy<Value = String> {
    (any::<bool>(), prop::collection::vec(label(), 1..4)).prop_map(|(wild, labels)| {
        let host = labels.join(".");
        if wild { format!("*.{host}") } else { host }
    })
}

fn upstream() -> impl Strategy<Value = String> {
    (
        prop_oneof![
            label(),
            Just("127.0.0.1".to_owned()),
            Just("[::1]".to_owned())
        ],
        prop::option::of(any::<u16>()),
        any::<bool>(),
    )
        .prop_map(|(host, port, slash)| {
            let port = port.map(|p| format!(":{p}")).unwrap_or_default();
            let slash = if slash { "/" } else { "" };
            format!("http://{host}{port}{slash}")
        })
}

/// A valid route spec and its parts.
fn route() -> impl Strategy<Value = (String, String, String, String)> {
    (
        prop_oneof![Just(String::new()), host()],
        prop_oneof![
            Just(String::new()),
            prop::collection::vec("[a-zA-Z0-9._~-]{1,8}", 1..4)
                .prop_map(|s| format!("/{}", s.join("/"))),
        ],
        upstream(),
    )
        .prop_map(|(host, prefix, upstream)| {
            (format!("{host}{prefix}={upstream}"), host, prefix, upstream)
        })
}

/// Anything a user may pass as `--route`: valid specs, mutated ones, arbitrary text.
fn any_route() -> impl Strategy<Value = String> {
    prop_oneof![
        2 => route().prop_map(|(spec, ..)| spec),
        4 => mutated(route().prop_map(|(spec, ..)| spec.into_bytes()))
            .prop_map(|b| String::from_utf8_lossy(&b).into_owned()),
        1 => "\\PC{0,60}",
    ]
}

proptest! {
    #![proptest_config(config(2000))]

    #[test]
    fn valid_routes_parse_to_what_the_builder_makes((spec, host, prefix, upstream) in route()) {
        let parsed: Route = spec.parse().unwrap();
        let built = Route::new(Upstream::parse(&upstream).unwrap()).host(&host).path_prefix(&prefix);
        prop_assert_eq!(parsed, built);
    }

    #[test]
    fn routes_never_panic_and_upstreams_print_as_they_parse(spec in any_route()) {
        if let Ok(route) = spec.parse::<Route>() {
            let up = route.upstream();
            prop_assert_eq!(&Upstream::parse(&up.to_string()).unwrap(), up);
        }
        if let Some((_, up)) = spec.split_once('=') {
            let _ = Upstream::parse(up);
        }
    }

    #[test]
    fn credentials_in_an_upstream_are_never_shown(
        password in secret(),
        user in "[a-z]{0,8}",
        spec in route(),
        shape in 0..4u8,
    ) {
        let (_, host, prefix, upstream) = spec;
        let rest = upstream.trim_start_matches("http://");
        let url = match shape {
            0 => format!("http://{user}:{password}@{rest}"),
            1 => format!("http://{password}@{rest}"),
            2 => format!("https://{user}:{password}@{rest}"),
            _ => format!("http://{user}:{password}@{rest}/x?y"),
        };
        let err = Upstream::parse(&url).unwrap_err();
        assert_hidden(&format!("{err} {err:?}"), &password)?;
        for spec in [format!("{host}{prefix}={url}"), format!("{host}{prefix} {url}")] {
            let err = spec.parse::<Route>().unwrap_err();
            assert_hidden(&format!("{err} {err:?}"), &password)?;
        }
    }
}
