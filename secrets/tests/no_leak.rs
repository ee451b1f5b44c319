//! Property: no `Debug`, `Display` or error text ever contains a secret's bytes.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::os::unix::fs::PermissionsExt;

use berth_secrets::{Loader, Secret, SecretBytes};
use proptest::prelude::*;

/// Values that cannot occur by accident in paths or messages: a fixed marker plus
/// random printable text.
fn secret_text() -> impl Strategy<Value = String> {
    "[a-zA-Z0-9+/=_-]{8,48}".prop_map(|s| format!("Zq{s}"))
}

fn assert_hidden(text: &str, secret: &str) {
    assert!(!text.contains(secret), "leaked {secret:?} in {text:?}");
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn debug_and_display_never_show_the_value(value in secret_text()) {
        let secret = Secret::new(value.clone());
        assert_hidden(&format!("{secret:?} {secret}"), &value);
        let bytes = SecretBytes::new(value.clone().into_bytes());
        assert_hidden(&format!("{bytes:?} {bytes}"), &value);
        // Inside containers that derive Debug, too.
        assert_hidden(&format!("{:?}", Some(vec![secret])), &value);
    }

    #[test]
    fn loader_errors_never_show_the_value(value in secret_text()) {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("s");
        let file_arg = file.display().to_string();
        let write = |bytes: &[u8]| {
            std::fs::write(&file, bytes).unwrap();
            std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o600)).unwrap();
        };

        // Invalid UTF-8 right after the value.
        let mut bad = value.clone().into_bytes();
        bad.push(0xFF);
        write(&bad);
        let err = Loader::new().read_file(&file).unwrap_err();
        assert_hidden(&format!("{err} {err:?}"), &value);

        // Too large for the cap.
        write(value.as_bytes());
        let err = Loader::new().with_max_bytes(4).read_file(&file).unwrap_err();
        assert_hidden(&format!("{err} {err:?}"), &value);

        // Both the variable and the file set.
        let plain = value.clone();
        let file_var = file_arg.clone();
        let loader = Loader::new().with_env(move |k| match k {
            "X" => Some(plain.clone()),
            "X_FILE" => Some(file_var.clone()),
            _ => None,
        });
        let err = loader.from_env("X").unwrap_err();
        assert_hidden(&format!("{err} {err:?}"), &value);
        let err = loader.refuse_plain_env("X").unwrap_err();
        assert_hidden(&format!("{err} {err:?}"), &value);

        // A successful load's Debug (source, trim report) holds no value either.
        write(format!("{value}\n").as_bytes());
        let loaded = Loader::new()
            .with_env(move |k| (k == "Y_FILE").then(|| file_arg.clone()))
            .require_env("Y")
            .unwrap();
        prop_assert_eq!(loaded.secret.expose(), value.as_str());
        assert_hidden(&format!("{loaded:?}"), &value);
    }
}
