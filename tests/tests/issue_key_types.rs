//! Every `--key-type` gets a certificate from a real Pebble whose leaf carries a key of
//! that type.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod issue_support;

use berth_acme_core::KeyType;
use berth_tests::Pebble;
use issue_support::*;
use x509_parser::prelude::{FromDer, X509Certificate};
use x509_parser::public_key::PublicKey;

/// Issues with `key_type` and returns (leaf key algorithm, key size in bits).
async fn issue_with(key_type: KeyType, name: &str) -> (String, usize) {
    let pebble = Pebble::start().await;
    let account = pebble_account(&pebble).await;
    let (issuer, _responder, _listener) = http01_issuer(&pebble, account).await;
    let mut request = order(&[name]);
    request.key_type = key_type;

    let cert = issuer.issue(&request).await.unwrap();

    handshake(&cert, &pebble.issuing_root_pem().await, name)
        .await
        .unwrap();
    let leaf = &cert.certified_key().cert[0];
    let (_, parsed) = X509Certificate::from_der(leaf).unwrap();
    let spki = parsed.public_key();
    match spki.parsed().unwrap() {
        PublicKey::RSA(rsa) => ("rsa".to_owned(), rsa.key_size()),
        PublicKey::EC(ec) => ("ec".to_owned(), ec.key_size()),
        other => panic!("unexpected key {other:?}"),
    }
}

#[tokio::test]
async fn ec256_certificate_has_a_p256_key() {
    assert_eq!(
        bounded(issue_with(KeyType::Ec256, "ec256.example.com")).await,
        ("ec".into(), 256)
    );
}

#[tokio::test]
async fn ec384_certificate_has_a_p384_key() {
    assert_eq!(
        bounded(issue_with(KeyType::Ec384, "ec384.example.com")).await,
        ("ec".into(), 384)
    );
}

#[tokio::test]
async fn rsa2048_certificate_has_a_2048_bit_key() {
    assert_eq!(
        bounded(issue_with(KeyType::Rsa2048, "rsa2048.example.com")).await,
        ("rsa".into(), 2048)
    );
}

#[tokio::test]
async fn rsa4096_certificate_has_a_4096_bit_key() {
    assert_eq!(
        bounded(issue_with(KeyType::Rsa4096, "rsa4096.example.com")).await,
        ("rsa".into(), 4096)
    );
}
