//! What every crate's property/fuzz tests share: how many inputs to try, hostile
//! mutations of valid inputs, and marker secrets that must never come back out.
//!
//! A normal `cargo test` tries each property's short count; `scripts/fuzz.sh` sets
//! [`CASES_VAR`] to run the long mode (a million inputs or more per parser).

use proptest::prelude::*;
use proptest::test_runner::Config;

/// The variable `scripts/fuzz.sh` sets to the number of inputs each property tries.
pub const CASES_VAR: &str = "FUZZ_CASES";

/// A proptest configuration trying `short` inputs, or [`CASES_VAR`]'s number when set.
/// Failures are not persisted to files in the source tree; a finding becomes a named
/// regression test instead.
pub fn config(short: u32) -> Config {
    let cases = std::env::var(CASES_VAR)
        .ok()
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(short);
    Config {
        cases,
        failure_persistence: None,
        // Shrinking a rare failure out of a million inputs must not take hours.
        max_shrink_iters: 4096,
        ..Config::default()
    }
}

/// A value that cannot appear in a message by accident: a fixed prefix and 16–40
/// characters of the base64/token alphabet, like an HMAC, a TSIG secret or an API token.
pub fn secret() -> impl Strategy<Value = String> {
    "[A-Za-z0-9+/_-]{16,40}".prop_map(|s| format!("Zq{s}"))
}

/// Fails the property when `text` (an error's Display or Debug) contains `secret`, or
/// any 12-character piece of it (a message that quotes part of a value leaks too).
pub fn assert_hidden(text: &str, secret: &str) -> Result<(), TestCaseError> {
    let chars: Vec<char> = secret.chars().collect();
    for piece in chars.windows(12.min(chars.len())) {
        let piece: String = piece.iter().collect();
        prop_assert!(!text.contains(&piece), "leaked {piece:?} in {text:?}");
    }
    Ok(())
}

/// Bytes a parser finds interesting: delimiters of JSON, TOML and BIND files, quotes,
/// escapes, line ends, a NUL, invalid UTF-8 and the start of a multi-byte character.
const SPECIAL: &[u8] = b"{}[]\",:=;'\\\n\r\t #/.*@-0\x00\xff\xc3\xe2";

/// One edit of [`mutated`].
#[derive(Debug, Clone)]
enum Edit {
    Replace(prop::sample::Index, u8),
    Insert(prop::sample::Index, u8),
    Remove(prop::sample::Index),
    Truncate(prop::sample::Index),
    /// Copies a slice of the input to another place (repeats a field, a bracket, ...).
    Splice(
        prop::sample::Index,
        prop::sample::Index,
        prop::sample::Index,
    ),
}

fn byte() -> impl Strategy<Value = u8> {
    prop_oneof![any::<u8>(), prop::sample::select(SPECIAL)]
}

fn edit() -> impl Strategy<Value = Edit> {
    let index = any::<prop::sample::Index>;
    prop_oneof![
        3 => (index(), byte()).prop_map(|(i, b)| Edit::Replace(i, b)),
        3 => (index(), byte()).prop_map(|(i, b)| Edit::Insert(i, b)),
        2 => index().prop_map(Edit::Remove),
        1 => index().prop_map(Edit::Truncate),
        1 => (index(), index(), index()).prop_map(|(a, b, c)| Edit::Splice(a, b, c)),
    ]
}

/// Valid inputs from `valid` with one to eight random edits: replaced, inserted and
/// removed bytes (often delimiters), a truncation, a repeated slice.
pub fn mutated(valid: impl Strategy<Value = Vec<u8>>) -> impl Strategy<Value = Vec<u8>> {
    (valid, prop::collection::vec(edit(), 1..8)).prop_map(|(mut bytes, edits)| {
        for edit in edits {
            apply(&mut bytes, edit);
        }
        bytes
    })
}

fn apply(bytes: &mut Vec<u8>, edit: Edit) {
    let len = bytes.len();
    match edit {
        Edit::Insert(at, b) => bytes.insert(at.index(len + 1), b),
        _ if len == 0 => {}
        Edit::Replace(at, b) => bytes[at.index(len)] = b,
        Edit::Remove(at) => {
            bytes.remove(at.index(len));
        }
        Edit::Truncate(at) => bytes.truncate(at.index(len)),
        Edit::Splice(from, size, to) => {
            let start = from.index(len);
            let end = start + size.index((len - start).min(64) + 1);
            let piece = bytes[start..end].to_vec();
            let to = to.index(len + 1);
            bytes.splice(to..to, piece);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    proptest! {
        #![proptest_config(config(64))]

        #[test]
        fn mutations_change_valid_inputs_without_panicking(
            bytes in mutated(Just(b"{\"a\": [1, 2]}".to_vec()))
        ) {
            prop_assert!(bytes.len() < 1024);
        }
    }

    #[test]
    fn a_quoted_piece_of_a_secret_counts_as_a_leak() {
        let secret = "Zqabcdefghijklmnopqrst";
        assert!(assert_hidden("token \"cdefghijklmnop\" refused", secret).is_err());
        assert!(assert_hidden("token refused", secret).is_ok());
    }
}
