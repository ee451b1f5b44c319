//! `--ca`, `--challenge`, `--key-type`, `--reason`, `--dns-tsig-algorithm` and the
//! `--dns-*` durations (and their `BERTH_*` variables and config file keys) are parsed
//! once, where they enter: a bad value exits 2 naming the flag or key with the valid
//! choices, and a good one is used in its one canonical spelling.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use std::path::Path;

use berth_tests::free_port;
use support::{Finished, berth, berth_command, finish, start_upstream};

/// `berth args` with `env` set (nothing else `BERTH_*` inherited).
fn berth_env(args: &[&str], env: &[(&str, &str)]) -> Finished {
    let mut command = berth_command(args);
    for (name, value) in env {
        command.env(name, value);
    }
    finish(command.spawn().unwrap(), std::time::Duration::from_secs(60))
}

/// `berth config check` with a working baseline in `dir`, plus `extra`.
fn config_check(dir: &Path, extra: &[&str]) -> Finished {
    let store = dir.join("acme.json").display().to_string();
    let upstream = format!("http://{}", start_upstream());
    let http = format!("127.0.0.1:{}", free_port());
    let tls = format!("127.0.0.1:{}", free_port());
    let mut args = vec![
        "config",
        "check",
        "--agree-tos",
        "--store",
        &store,
        "--upstream",
        &upstream,
        "--http-addr",
        &http,
        "--tls-addr",
        &tls,
    ];
    args.extend_from_slice(extra);
    berth(&args)
}

/// Arguments, environment, the flag the error must name, the choices it must list.
type Case<'a> = (&'a [&'a str], &'a [(&'a str, &'a str)], &'a str, &'a str);

#[test]
fn bad_flag_and_variable_values_exit_2_naming_the_flag_and_the_choices() {
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("acme.json");
    let store_arg = store.display().to_string();
    let cases: [Case<'_>; 8] = [
        (
            &["issue", "-d", "a.example.com", "--challenge", "bogus"],
            &[],
            "--challenge",
            "use http-01, tls-alpn-01 or dns-01",
        ),
        (
            &["issue", "-d", "a.example.com"],
            &[("BERTH_CHALLENGE", "tls-sni-01")],
            "--challenge",
            "removed by the CAs in 2019; use tls-alpn-01 or http-01",
        ),
        (
            &["renew", "--standalone", "--key-type", "dsa"],
            &[],
            "--key-type",
            "use ec256, ec384, rsa2048 or rsa4096",
        ),
        (
            &[
                "run",
                "-d",
                "a.example.com",
                "--upstream",
                "http://127.0.0.1:9",
            ],
            &[("BERTH_KEY_TYPE", "dsa")],
            "--key-type",
            "use ec256, ec384, rsa2048 or rsa4096",
        ),
        (
            &["issue", "-d", "a.example.com", "--dns-exec-timeout", "5x"],
            &[],
            "--dns-exec-timeout",
            "write e.g. 30s, 5m, 1h",
        ),
        (
            &["renew", "--standalone"],
            &[("BERTH_DNS_TSIG_ALGORITHM", "hmac-md5")],
            "--dns-tsig-algorithm",
            "too weak; make a new key with `tsig-keygen -a hmac-sha256`",
        ),
        (
            &["certs", "prune", "--expired", "--revoke"],
            &[("BERTH_CA", "http://ca.example/dir")],
            "--ca",
            "use letsencrypt-staging, letsencrypt, zerossl, google, google-staging or an https:// directory URL",
        ),
        (
            &["revoke", "a.example.com", "--reason", "bored"],
            &[],
            "--reason",
            "use unspecified, key-compromise",
        ),
    ];
    for (args, env, flag, choices) in cases {
        let mut args = args.to_vec();
        args.extend_from_slice(&["--store", &store_arg]);
        let out = berth_env(&args, env);
        assert_eq!(out.code, 2, "{args:?} {env:?}: {}", out.stderr);
        assert!(
            out.stderr.contains(&format!("for '{flag} <")),
            "{args:?} {env:?}: the flag is not named: {}",
            out.stderr
        );
        assert!(
            out.stderr.contains(choices),
            "{args:?} {env:?}: {}",
            out.stderr
        );
    }
    assert!(!store.exists(), "a refused command wrote the store");
}

#[test]
fn bad_config_file_values_exit_2_naming_the_key_without_the_value() {
    let dir = tempfile::tempdir().unwrap();
    let cases = [
        (
            "challenge = \"s3cr3t-typo\"\n",
            "key challenge: unknown challenge",
            "use http-01, tls-alpn-01 or dns-01",
        ),
        (
            "[[certificates]]\ndomains = [\"b.example.com\"]\nkey_type = \"s3cr3t-typo\"\n",
            "key certificates.key_type: unknown key type",
            "use ec256, ec384, rsa2048 or rsa4096",
        ),
        (
            "ca = \"http://user:s3cr3t@ca.example/dir\"\n",
            "key ca: unknown CA",
            "or an https:// directory URL",
        ),
        (
            "[limits]\nheader_timeout = \"s3cr3t\"\n",
            "key limits.header_timeout: not a duration",
            "write e.g. 30s, 5m, 1h",
        ),
        (
            "[dns]\nexec_timeout = \"s3cr3t\"\n",
            "key dns.exec_timeout: not a duration",
            "write e.g. 30s, 5m, 1h",
        ),
        (
            "[dns]\ntsig_algorithm = \"s3cr3t\"\n",
            "key dns.tsig_algorithm: invalid DNS-01 settings: unknown TSIG algorithm",
            "use hmac-sha256, hmac-sha384 or hmac-sha512",
        ),
        (
            "[[certificates]]\ndomains = [\"b.example.com\"]\nchallenge = \"tls-sni-01\"\n",
            "key certificates.challenge: challenge",
            "removed by the CAs in 2019",
        ),
    ];
    let config = dir.path().join("berth.toml");
    let config_arg = config.display().to_string();
    for (text, key, choices) in cases {
        std::fs::write(&config, text).unwrap();
        for command in ["config check", "run"] {
            let mut args: Vec<&str> = command.split(' ').collect();
            args.extend_from_slice(&["--config", &config_arg, "-d", "a.example.com"]);
            args.extend_from_slice(&["--upstream", "http://127.0.0.1:9"]);
            let out = berth(&args);
            assert_eq!(out.code, 2, "{command} {text:?}: {}", out.stderr);
            assert!(
                out.stderr.contains(key),
                "{command} {text:?}: {}",
                out.stderr
            );
            assert!(
                out.stderr.contains(choices),
                "{command} {text:?}: {}",
                out.stderr
            );
            // The file may hold pasted secrets: a value it refuses is not echoed.
            assert!(
                !out.stderr.contains("s3cr3t"),
                "{command} {text:?}: {}",
                out.stderr
            );
        }
    }
}

#[test]
fn accepted_spellings_are_shown_in_their_canonical_form() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("berth.toml");
    std::fs::write(
        &config,
        "ca = \"LE\"\n[dns]\ntsig_algorithm = \"HMAC-SHA384.\"\nexec_timeout = \"90\"\n\n[[certificates]]\ndomains = [\"b.example.com\"]\nchallenge = \"TLS-ALPN\"\nkey_type = \"RSA2048\"\n",
    )
    .unwrap();
    let config_arg = config.display().to_string();
    let out = config_check(
        dir.path(),
        &[
            "--config",
            &config_arg,
            "-d",
            "a.example.com",
            "--challenge",
            "HTTP01",
            "--key-type",
            "P384",
        ],
    );
    assert!(
        out.stdout
            .contains("challenge = \"http-01\"\nkey_type = \"ec384\""),
        "{}{}",
        out.stdout,
        out.stderr
    );
    assert!(
        out.stdout
            .contains("challenge = \"tls-alpn-01\"\nkey_type = \"rsa2048\""),
        "{}{}",
        out.stdout,
        out.stderr
    );
    assert!(
        out.stdout
            .contains("tsig_algorithm = \"hmac-sha384\"\nexec_timeout = \"1m 30s\""),
        "{}{}",
        out.stdout,
        out.stderr
    );
    assert!(
        out.stdout.contains("\nca = \"letsencrypt\"\n"),
        "{}{}",
        out.stdout,
        out.stderr
    );
    assert!(!out.stdout.contains("HTTP01"), "{}", out.stdout);
}
