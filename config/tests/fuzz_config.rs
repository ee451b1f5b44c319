//! Property/fuzz test of the `--config` file: whatever the file holds, reading it and
//! planning from it never panics, an error never shows a value (a secret pasted into the
//! file, also on SIGHUP reload), and the effective configuration `berth config check`
//! prints reads back as a config file giving the same settings.
//!
//! `cargo test` tries a short run; `scripts/fuzz.sh` sets `FUZZ_CASES` for the long one.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use berth_config::{Layer, Plan, RunSettings};
use berth_tests::fuzz::{assert_hidden, config, mutated, secret};
use proptest::prelude::*;

/// The file's bytes read as `berth run --config` reads them (no flags).
fn resolve(text: &[u8]) -> Result<RunSettings, String> {
    let text = std::str::from_utf8(text).map_err(|e| e.to_string())?;
    let layer = Layer::from_toml(text).map_err(|e| format!("{e} {e:?}"))?;
    layer.resolve().map_err(|e| format!("{e} {e:?}"))
}

fn name() -> impl Strategy<Value = String> {
    "[a-z][a-z0-9-]{0,10}\\.(example\\.com|example\\.org)"
}

/// A line a user may write, valid or not, holding `secret` where people paste one.
fn line(secret: String) -> impl Strategy<Value = String> {
    let quoted = secret.replacen('A', "\\\"", 1);
    prop_oneof![
        4 => prop::collection::vec(name(), 1..3).prop_map(|d| format!("domains = {d:?}")),
        1 => Just("upstream = \"http://127.0.0.1:3000\"".to_owned()),
        1 => Just("routes = [\"api.example.com/v1=http://127.0.0.1:8080\"]".to_owned()),
        1 => Just("agree_tos = true".to_owned()),
        1 => Just("email = \"ops@example.com\"".to_owned()),
        1 => Just("ca = \"letsencrypt-staging\"".to_owned()),
        1 => Just("challenge = \"tls-alpn-01\"".to_owned()),
        1 => Just("http_addr = \"127.0.0.1:8080\"".to_owned()),
        1 => Just("trusted_proxies = [\"10.0.0.0/8\"]".to_owned()),
        1 => Just("order_concurrency = 4".to_owned()),
        1 => Just("eab_kid = \"kid-1\"".to_owned()),
        1 => Just(format!("eab_hmac = \"{secret}\"")),
        1 => Just(format!("store_password = '{secret}'")),
        1 => Just(format!("https_port = \"{secret}\"")),
        1 => Just(format!("agree_tos = \"{quoted}\"")),
        1 => Just(format!("eab_hmac = \"{secret}")),
        1 => Just(format!("upstream = \"http://user:{secret}@127.0.0.1:3000\"")),
        1 => Just(format!("# token {secret}")),
    ]
}

/// A file: top-level lines, then maybe `[limits]` and `[[certificates]]` tables.
fn config_text(secret: String) -> impl Strategy<Value = String> {
    let limits = prop::collection::vec(
        prop_oneof![
            Just("drain_timeout = \"3s\"".to_owned()),
            Just("max_connections = 100".to_owned()),
            Just("max_body_bytes = 1048576".to_owned()),
            Just(format!("max_connections = \"{secret}\"")),
            Just(format!("idle_timeout = \"{secret}\"")),
        ],
        0..3,
    );
    let certificates =
        prop::collection::vec((prop::collection::vec(name(), 1..3), any::<bool>()), 0..3);
    (
        prop::collection::vec(line(secret), 0..8),
        limits,
        certificates,
    )
        .prop_map(|(lines, limits, certificates)| {
            let mut text = lines.join("\n");
            if !limits.is_empty() {
                text.push_str(&format!("\n[limits]\n{}", limits.join("\n")));
            }
            for (domains, alpn) in certificates {
                text.push_str(&format!("\n[[certificates]]\ndomains = {domains:?}\n"));
                if alpn {
                    text.push_str("challenge = \"tls-alpn-01\"\n");
                }
            }
            text.push('\n');
            text
        })
}

/// Reads, plans and checks what berth would show; an error never shows the secret.
/// A URL holding the secret anywhere but as its password (a mutation removed the `@`, or
/// copied the comment into it) is quoted as given: nothing tells a secret from a host or
/// a path there, so that input is only checked for panics.
fn check(text: &[u8], secret: &str) -> Result<(), TestCaseError> {
    let lossy = String::from_utf8_lossy(text);
    let password = format!(":{secret}@");
    // Or a mutation spliced it into a key or table name, which errors name on purpose.
    let unmarked = lossy.lines().any(|l| {
        let name = l.split('=').next().unwrap_or_default();
        (l.contains("://") && assert_hidden(&l.replace(&password, ""), secret).is_err())
            || (!l.trim_start().starts_with('#') && assert_hidden(name, secret).is_err())
    });
    if unmarked {
        let _ = resolve(text).map(|s| Plan::build(&s).is_ok());
        return Ok(());
    }
    let settings = match resolve(text) {
        Ok(settings) => settings,
        Err(e) => return assert_hidden(&e, secret),
    };
    if let Err(e) = Plan::build(&settings) {
        assert_hidden(&format!("{e} {e:?}"), secret)?;
    }
    Ok(())
}

proptest! {
    #![proptest_config(config(300))]

    #[test]
    fn config_files_never_panic_nor_show_a_value(
        (text, secret) in secret().prop_flat_map(|s| {
            let text = prop_oneof![
                1 => config_text(s.clone()).prop_map(String::into_bytes),
                2 => mutated(config_text(s.clone()).prop_map(String::into_bytes)),
            ];
            (text, Just(s))
        })
    ) {
        check(&text, &secret)?;
    }

    #[test]
    fn the_effective_configuration_reads_back_as_a_config_file(
        text in config_text("Zq-never-valid".into())
    ) {
        let Ok(settings) = resolve(text.as_bytes()) else {
            return Ok(());
        };
        let mut shown: toml::Table = toml::from_str(&toml::to_string(&settings).unwrap()).unwrap();
        shown.remove("config");
        let again = resolve(toml::to_string(&shown).unwrap().as_bytes());
        prop_assert!(again.is_ok(), "{:?}", again.err());
        prop_assert_eq!(again.unwrap(), settings);
    }
}
