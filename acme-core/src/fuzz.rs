//! Property/fuzz tests of every parser in this crate that reads outside input: domain
//! names and IP identifiers, `acme.json` (Traefik v1/v2/v3 shapes), the state file, TSIG
//! key files and a DNS exec hook's stderr. Each property holds for structured valid
//! inputs and for mutated bytes of them: no panic, no secret in an error or `Debug`, and
//! what is written reads back the same.
//!
//! `cargo test` tries a short run; `scripts/fuzz.sh` sets `FUZZ_CASES` for the long one.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::net::{Ipv4Addr, Ipv6Addr};
use std::path::Path;
use std::sync::OnceLock;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use berth_secrets::Secret;
use berth_tests::fuzz::{assert_hidden, config, mutated, secret};
use proptest::prelude::*;
use serde_json::{Value, json};

use crate::certificate::Certificate;
use crate::challenge::dns01::TsigKey;
use crate::domain::{DomainName, DomainSet};
use crate::store::AcmeJson;
use crate::store::records::{CertState, RevokedCert, StoredAccount};
use crate::store::state::StateDoc;

// ---- domain names and IP identifiers ----

fn label() -> impl Strategy<Value = String> {
    "[a-zA-Z0-9]([a-zA-Z0-9-]{0,20}[a-zA-Z0-9])?"
}

/// A valid DNS name in any case, maybe a wildcard, maybe with the root's trailing dot.
fn dns_name() -> impl Strategy<Value = String> {
    (
        any::<bool>(),
        prop::collection::vec(label(), 1..5),
        "[a-zA-Z]{2,10}",
        any::<bool>(),
    )
        .prop_map(|(wild, labels, tld, dot)| {
            let mut name = if wild { "*.".to_owned() } else { String::new() };
            name.push_str(&labels.join("."));
            name.push('.');
            name.push_str(&tld);
            if dot {
                name.push('.');
            }
            name
        })
}

/// An IP identifier as users write it: v4, v6, v6 in brackets.
fn ip_name() -> impl Strategy<Value = String> {
    prop_oneof![
        any::<Ipv4Addr>().prop_map(|ip| ip.to_string()),
        any::<Ipv6Addr>().prop_map(|ip| ip.to_string()),
        any::<Ipv6Addr>().prop_map(|ip| format!("[{ip}]")),
    ]
}

fn any_name() -> impl Strategy<Value = String> {
    prop_oneof![
        4 => dns_name(),
        2 => ip_name(),
        2 => mutated(prop_oneof![dns_name(), ip_name()].prop_map(String::into_bytes))
            .prop_map(|b| String::from_utf8_lossy(&b).into_owned()),
        1 => "\\PC{0,80}",
        1 => ".{0,300}",
    ]
}

/// A parsed name is canonical: parsing its text again gives the same name, and it
/// matches itself as a server name.
fn check_name(input: &str) -> Result<(), TestCaseError> {
    let Ok(name) = DomainName::parse(input) else {
        return Ok(());
    };
    let again = DomainName::parse(name.as_str());
    prop_assert_eq!(again.as_ref(), Ok(&name), "{:?} is not canonical", input);
    prop_assert!(name.as_str().len() <= 253 || name.is_ip());
    prop_assert_eq!(name.as_str(), name.as_str().to_ascii_lowercase());
    if !name.is_wildcard() {
        prop_assert!(name.matches(name.as_str()));
    } else {
        let covered = format!("x.{}", name.base());
        prop_assert!(name.matches(&covered), "{name} does not cover {covered}");
        let deeper = format!("a.{covered}");
        prop_assert!(!name.matches(&deeper), "{name} covers {deeper}");
    }
    let _ = name.tls_alpn_server_name();
    Ok(())
}

proptest! {
    #![proptest_config(config(2000))]

    #[test]
    fn domain_names_parse_to_canonical_names_and_never_panic(input in any_name()) {
        check_name(&input)?;
    }

    #[test]
    fn valid_names_are_accepted(input in prop_oneof![dns_name(), ip_name()]) {
        let name = DomainName::parse(&input);
        prop_assert!(name.is_ok(), "{input:?}: {name:?}");
    }

    #[test]
    fn domain_sets_never_panic_and_keys_are_stable(
        names in prop::collection::vec(any_name(), 0..110)
    ) {
        if let Ok(set) = DomainSet::parse(&names) {
            let again = DomainSet::parse(set.names().iter().map(DomainName::as_str)).unwrap();
            prop_assert_eq!(again.key(), set.key());
            prop_assert!(again.same_names(&set));
        }
    }
}

// ---- acme.json ----

/// The fields of an `acme.json` the generator plants the secret in.
const ACME_JSON_SECRETS: &[&str] = &["key", "privatekey", "certificate"];

/// A real certificate and key, made once: parsing them is what a store read does.
fn real_cert() -> &'static Certificate {
    static CERT: OnceLock<Certificate> = OnceLock::new();
    CERT.get_or_init(|| {
        let key = rcgen::KeyPair::generate().unwrap();
        let params = rcgen::CertificateParams::new(vec!["fuzz.example.com".to_owned()]).unwrap();
        let pem = params.self_signed(&key).unwrap().pem();
        Certificate::from_pem(&pem, Secret::new(key.serialize_pem())).unwrap()
    })
}

/// A `certificate` or `key` field: the real one, or hostile text holding `secret`.
fn pem_field(real: String, secret: String) -> impl Strategy<Value = Value> {
    let pem = format!("-----BEGIN PRIVATE KEY-----\n{secret}\n-----END PRIVATE KEY-----\n");
    prop_oneof![
        3 => Just(Value::String(STANDARD.encode(real))),
        1 => Just(Value::String(STANDARD.encode(&pem))),
        1 => Just(Value::String(secret.clone())),
        1 => Just(Value::String(format!("{}{secret}", STANDARD.encode(&pem)))),
        1 => Just(Value::Null),
    ]
}

/// One certificate entry, in v2/v3 spelling (`domain.main`) or v1's (`Domain.Main`).
fn cert_entry(secret: String) -> impl Strategy<Value = Value> {
    let chain = real_cert().chain_pem();
    let key = real_cert().key_pem().expose().to_owned();
    (
        any::<bool>(),
        prop_oneof![Just("fuzz.example.com".to_owned()), any_name()],
        prop::collection::vec(any_name(), 0..3),
        pem_field(chain, secret.clone()),
        pem_field(key, secret),
    )
        .prop_map(|(v1, main, sans, certificate, key)| {
            if v1 {
                json!({"Domain": {"Main": main, "SANs": sans}, "Certificate": certificate, "Key": key})
            } else {
                json!({"domain": {"main": main, "sans": sans}, "certificate": certificate,
                       "key": key, "Store": "default"})
            }
        })
}

fn account(secret: String) -> Value {
    json!({
        "Email": "ops@example.com",
        "Registration": {"body": {"status": "valid"}, "uri": "https://ca.example/acct/1"},
        "PrivateKey": STANDARD.encode(&secret),
        "KeyType": "4096"
    })
}

/// A whole file: resolver sections (v2/v3), or v1's single unnamed section.
fn acme_json(secret: String) -> impl Strategy<Value = Value> {
    let certs = prop::collection::vec(cert_entry(secret.clone()), 0..4);
    (
        any::<bool>(),
        prop::collection::vec(("[a-zA-Z0-9_-]{1,12}", certs), 1..3),
    )
        .prop_map(move |(v1, sections)| {
            if v1 {
                let certs: Vec<Value> = sections.into_iter().flat_map(|(_, c)| c).collect();
                return json!({"Account": account(secret.clone()), "Certificates": certs,
                              "HTTPChallenge": {}, "TLSChallenge": {}});
            }
            let mut root = serde_json::Map::new();
            for (name, certs) in sections {
                root.insert(
                    name,
                    json!({"Account": account(secret.clone()), "Certificates": certs}),
                );
            }
            Value::Object(root)
        })
}

/// A file and the marker secret its keys hold, as bytes: pretty, compact, or mutated.
fn acme_json_bytes() -> impl Strategy<Value = (Vec<u8>, String)> {
    secret().prop_flat_map(|secret| {
        let valid = acme_json(secret.clone()).prop_map(|v| serde_json::to_vec(&v).unwrap());
        let bytes = prop_oneof![
            2 => acme_json(secret.clone()).prop_map(|v| serde_json::to_vec_pretty(&v).unwrap()),
            3 => mutated(valid),
        ];
        (bytes, Just(secret))
    })
}

/// What berth does with a file it reads: every section's certificates for display, and
/// the file store's split of its own section into keyed entries and the rest.
fn read_everything(doc: &mut AcmeJson, secret: &str) -> Result<(), TestCaseError> {
    let (certs, unreadable) = doc.all_certificates();
    let resolvers = doc.resolvers();
    for cert in &certs {
        prop_assert!(resolvers.contains(&cert.resolver));
    }
    assert_hidden(&format!("{unreadable:?} {doc:?}"), secret)?;
    for resolver in doc.resolvers() {
        let foreign = doc.foreign_entries(&resolver);
        let (keyed, unkeyed) = doc.take_section(&resolver);
        prop_assert!(foreign.iter().all(|(key, _)| !key.is_empty()));
        let entries = unkeyed.into_iter().chain(keyed.into_iter().map(|(_, e)| e));
        doc.put_section(&resolver, entries.collect());
    }
    Ok(())
}

proptest! {
    #![proptest_config(config(300))]

    #[test]
    fn acme_json_never_panics_nor_shows_a_key((bytes, secret) in acme_json_bytes()) {
        match AcmeJson::parse(&bytes) {
            Err(reason) => assert_hidden(&reason, &secret)?,
            Ok(_) if copied_elsewhere(&bytes, ACME_JSON_SECRETS, &secret) => {}
            Ok(mut doc) => read_everything(&mut doc, &secret)?,
        }
    }

    #[test]
    fn acme_json_round_trips(doc in secret().prop_flat_map(acme_json)) {
        let bytes = serde_json::to_vec(&doc).unwrap();
        let mut parsed = AcmeJson::parse(&bytes).unwrap();
        let path = Path::new("acme.json");
        let written = parsed.to_bytes(path).unwrap();
        prop_assert_eq!(serde_json::from_slice::<Value>(&written).unwrap(), doc);
        let reread = AcmeJson::parse(&written).unwrap();
        prop_assert_eq!(&*reread.to_bytes(path).unwrap(), &*written);
        // A certificate berth stores reads back with its names.
        let names = DomainSet::parse(["fuzz.example.com"]).unwrap();
        parsed.upsert("berth", &names, real_cert());
        let reread = AcmeJson::parse(&parsed.to_bytes(path).unwrap()).unwrap();
        let (certs, _) = reread.certificates("berth");
        prop_assert!(certs.iter().any(|c| c.domains.same_names(&names)));
    }
}

/// `berth import` reads a Traefik `acme.json` (v1 or v2/v3) with its own walk of the
/// file; the same files must not make it panic or show a key either.
fn check_import(bytes: &[u8], secret: &str) -> Result<(), TestCaseError> {
    thread_local! {
        static DIR: tempfile::TempDir = tempfile::tempdir().unwrap();
    }
    let path = DIR.with(|dir| dir.path().join("acme.json"));
    std::fs::write(&path, bytes).unwrap();
    if copied_elsewhere(bytes, ACME_JSON_SECRETS, secret) {
        let _ = crate::import::scan(&path);
        return Ok(());
    }
    match crate::import::scan(&path) {
        Ok(scan) => assert_hidden(&format!("{scan:?}"), secret),
        Err(e) => assert_hidden(&format!("{e} {e:?}"), secret),
    }
}

proptest! {
    #![proptest_config(config(300))]

    #[test]
    fn acme_json_import_never_panics_nor_shows_a_key((bytes, secret) in acme_json_bytes()) {
        check_import(&bytes, &secret)?;
    }
}

// ---- the state file ----

fn json_leaf(secret: String) -> impl Strategy<Value = Value> {
    prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::from),
        any::<f64>().prop_map(Value::from),
        ".{0,12}".prop_map(Value::String),
        Just(Value::String(secret)),
    ]
}

fn json_value(secret: String) -> impl Strategy<Value = Value> {
    json_leaf(secret).prop_recursive(3, 24, 4, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
            prop::collection::btree_map("[a-z_]{1,16}", inner, 0..4)
                .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

/// Records as berth writes them (an account holding `secret`, a ledger, a revocation),
/// and arbitrary values under the same keys.
fn state_record(secret: String) -> impl Strategy<Value = (String, Value)> {
    let at = json!({"secs_since_epoch": 1_700_000_000u64, "nanos_since_epoch": 0});
    let account = json!({"credentials": format!("{{\"key\":\"{secret}\"}}"),
                         "email": null, "created_at": at});
    let state = json!({"ledger": {"https://ca/dir": {"ca": "https://ca/dir", "domains": "a.example",
        "consecutive_failures": 2, "last_error_type": "x", "last_error": "refused",
        "last_failure_at": at, "next_attempt_at": at}},
        "order": {"ca": "https://ca/dir", "url": "https://ca/order/1", "key_pem": secret,
                  "key_type": "ecdsa-p256", "placed_at": at}});
    let revoked = json!([{"serial_hex": "01ab", "domains": "a.example", "at": at}]);
    prop_oneof![
        Just(("accounts/https://ca/dir".to_owned(), account)),
        Just(("state/a.example".to_owned(), state)),
        Just(("revoked".to_owned(), revoked)),
        (
            "(state|accounts|history)/[a-z./:]{0,12}",
            json_value(secret)
        ),
    ]
}

fn state_file(secret: String) -> impl Strategy<Value = Value> {
    let records = prop::collection::vec(state_record(secret), 0..5);
    (
        prop_oneof![Just(2u64), Just(1), Just(3), any::<u64>()],
        records,
    )
        .prop_map(|(version, records)| {
            let records: serde_json::Map<String, Value> = records.into_iter().collect();
            if version == 1 {
                json!({"version": 1, "accounts": {"https://ca/dir": records.values().next()},
                       "ledger": {}, "history": [], "revoked": []})
            } else {
                json!({"version": version, "records": records})
            }
        })
}

/// A state file and the marker secret it holds, as bytes: as written, or mutated.
fn state_bytes() -> impl Strategy<Value = (Vec<u8>, String)> {
    secret().prop_flat_map(|secret| {
        let bytes = |s: String| state_file(s).prop_map(|v| serde_json::to_vec_pretty(&v).unwrap());
        (
            prop_oneof![1 => bytes(secret.clone()), 3 => mutated(bytes(secret.clone()))],
            Just(secret),
        )
    })
}

/// Equal JSON, except that a float may differ in its last place: serde_json (without its
/// `float_roundtrip` feature) reads 17-digit numbers to the nearest-but-one value. berth
/// writes no floats; a foreign one in a record may change by one unit in the last place.
fn same_json(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) if x.is_f64() || y.is_f64() => {
            let (x, y) = (
                x.as_f64().unwrap_or(f64::NAN),
                y.as_f64().unwrap_or(f64::NAN),
            );
            // Subnormals hold fewer digits: compare them absolutely.
            x == y || ((x - y) / x).abs() < 1e-15 || (x - y).abs() < 1e-300
        }
        (Value::Array(x), Value::Array(y)) => {
            x.len() == y.len() && x.iter().zip(y).all(|(x, y)| same_json(x, y))
        }
        (Value::Object(x), Value::Object(y)) => {
            x.len() == y.len()
                && x.iter()
                    .zip(y)
                    .all(|((kx, x), (ky, y))| kx == ky && same_json(x, y))
        }
        _ => a == b,
    }
}

/// Whether a mutation copied a piece of `secret` out of the fields that hold secrets into
/// another one (a name, a map key), where showing it is right. Backslashes are ignored:
/// they escape characters in JSON strings and DNS names.
fn copied_elsewhere(bytes: &[u8], secret_fields: &[&str], secret: &str) -> bool {
    fn strip(value: &mut Value, fields: &[&str]) {
        match value {
            Value::Object(map) => {
                map.retain(|k, _| !fields.iter().any(|f| k.eq_ignore_ascii_case(f)));
                map.values_mut().for_each(|v| strip(v, fields));
            }
            Value::Array(list) => list.iter_mut().for_each(|v| strip(v, fields)),
            _ => {}
        }
    }
    let Ok(mut value) = serde_json::from_slice::<Value>(bytes) else {
        return false;
    };
    strip(&mut value, secret_fields);
    assert_hidden(&value.to_string().replace('\\', ""), secret).is_err()
}

/// Reads every record the way the store does; an error names a kind, never content.
fn read_records(doc: &StateDoc, secret: &str) -> Result<(), TestCaseError> {
    for (key, value) in &doc.records {
        let text = if key.starts_with("state/") {
            serde_json::from_value::<CertState>(value.clone()).map(|v| format!("{v:?}"))
        } else if key.starts_with("accounts/") {
            serde_json::from_value::<StoredAccount>(value.clone()).map(|v| format!("{v:?}"))
        } else {
            serde_json::from_value::<Vec<RevokedCert>>(value.clone()).map(|v| format!("{v:?}"))
        };
        if let Ok(debug) = text {
            assert_hidden(&debug, secret)?;
        }
    }
    Ok(())
}

proptest! {
    #![proptest_config(config(1000))]

    #[test]
    fn state_file_never_panics_nor_shows_a_secret(
        (bytes, secret) in state_bytes()
    ) {
        match StateDoc::parse(&bytes) {
            Ok(doc) => {
                if !copied_elsewhere(&bytes, &["credentials", "key_pem"], &secret) {
                    read_records(&doc, &secret)?;
                }
                let written = doc.to_bytes(Path::new("state")).unwrap();
                let again = StateDoc::parse(&written).unwrap();
                prop_assert!(
                    same_json(&Value::from_iter(again.records.clone()), &Value::from_iter(doc.records.clone())),
                    "{:?} != {:?}", again.records, doc.records
                );
            }
            Err(e) => {
                let e = e.into_error(Path::new("acme.json.berth-state"));
                assert_hidden(&format!("{e} {e:?}"), &secret)?;
            }
        }
    }
}

// ---- TSIG key files ----

fn tsig_secret() -> impl Strategy<Value = String> {
    prop::collection::vec(any::<u8>(), 16..64).prop_map(|b| STANDARD.encode(b))
}

/// A key file as `tsig-keygen` writes it, and the ways people break one: a missing name,
/// `;` or quote, other spacing, another order, a bare secret.
fn tsig_file(secret: String) -> impl Strategy<Value = String> {
    let name = prop_oneof![Just("ddns-key.example.".to_owned()), "[a-z0-9.-]{1,20}"];
    let algorithm = prop::sample::select(vec![
        "hmac-sha256",
        "hmac-sha512",
        "HMAC-SHA384.",
        "hmac-md5",
        "",
    ]);
    let separators = prop::collection::vec(prop::sample::select(vec![";", "", "\n", " ", "\""]), 6);
    (name, algorithm, separators, 0..5u8).prop_map(move |(name, alg, sep, shape)| match shape {
        0 => secret.clone(),
        1 => format!("key \"{name}\" {{\n\talgorithm {alg};\n\tsecret \"{secret}\";\n}};\n"),
        2 => format!("key {{ algorithm {alg}; secret \"{secret}\"; }};"),
        3 => format!("key \"{name}\" {{ secret \"{secret}\"; algorithm {alg}; }};"),
        _ => format!(
            "key{}\"{name}\" {{{}algorithm {alg}{}secret{}\"{secret}{}{}}};",
            sep[0], sep[1], sep[2], sep[3], sep[4], sep[5]
        ),
    })
}

fn check_tsig(file: &str, secret: &str, name: Option<&str>) -> Result<(), TestCaseError> {
    let parsed = TsigKey::parse(name, None, &Secret::new(file.to_owned()));
    // A mutation may copy part of the secret into the name, which is then the name.
    let head = file.split('{').next().unwrap_or_default().replace('\\', "");
    if assert_hidden(&head, secret).is_err() {
        return Ok(());
    }
    match parsed {
        Ok(key) => {
            assert_hidden(&format!("{key:?}"), secret)?;
            assert_hidden(&key.name(), secret)?;
        }
        Err(e) => assert_hidden(&format!("{e} {e:?}"), secret)?,
    }
    Ok(())
}

proptest! {
    #![proptest_config(config(2000))]

    #[test]
    fn tsig_key_files_never_panic_nor_show_the_secret(
        (file, secret, named) in tsig_secret().prop_flat_map(|s| {
            let file = prop_oneof![
                2 => tsig_file(s.clone()),
                3 => mutated(tsig_file(s.clone()).prop_map(String::into_bytes))
                    .prop_map(|b| String::from_utf8_lossy(&b).into_owned()),
            ];
            (file, Just(s), any::<bool>())
        })
    ) {
        check_tsig(&file, &secret, named.then_some("given.example."))?;
    }

    #[test]
    fn tsig_keygen_files_read_back(secret in tsig_secret(), name in "[a-z0-9]{1,10}\\.example\\.") {
        let file = format!("key \"{name}\" {{\n\talgorithm hmac-sha512;\n\tsecret \"{secret}\";\n}};\n");
        let key = TsigKey::parse(None, None, &Secret::new(file)).unwrap();
        prop_assert_eq!(key.name(), name);
        prop_assert_eq!(key.algorithm().as_str(), "hmac-sha512");
    }
}

// ---- a DNS exec hook's stderr ----

/// Lines a failing hook prints, with the token in the places scripts put it.
fn hook_stderr(secret: String) -> impl Strategy<Value = String> {
    let placed = prop::sample::select(vec![
        "token={}",
        "Authorization: Bearer {}",
        "api_key: {}",
        "error: token \"{}\" rejected",
        "{\"token\":\"{}\"}",
        "using key '{}'",
        "({})",
        "{},",
        "{}",
    ]);
    let noise = prop::collection::vec("[ -~]{0,30}", 0..4);
    let ws = prop::sample::select(vec![" ", "\n", "\t", "\r\n"]);
    (placed, noise, ws).prop_map(move |(placed, noise, ws)| {
        let mut text = noise.join(ws);
        text.push_str(ws);
        text.push_str(&placed.replace("{}", &secret));
        text.push_str(ws);
        text
    })
}

proptest! {
    #![proptest_config(config(2000))]

    #[test]
    fn hook_stderr_is_redacted_and_never_panics(
        (text, secret) in secret().prop_flat_map(|s| (hook_stderr(s.clone()), Just(s)))
    ) {
        let logged = crate::challenge::dns01::redact_hook_stderr(text.as_bytes());
        assert_hidden(&logged, &secret)?;
    }

    #[test]
    fn hook_stderr_of_any_bytes_never_panics_nor_keeps_a_token(
        bytes in prop::collection::vec(any::<u8>(), 0..5000)
    ) {
        let logged = crate::challenge::dns01::redact_hook_stderr(&bytes);
        let token = |c: char| c.is_ascii_alphanumeric() || "+/=_-.".contains(c);
        for word in logged.split_whitespace() {
            let core = word.trim_matches(|c: char| !token(c));
            prop_assert!(core.len() < 16 || !core.chars().all(token), "{word:?} kept");
        }
    }
}
