//! Every loading rule with real files: the `file_env` contract, the trim policy, the
//! read cap, and one clear error per failure, naming the path and never the content.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::HashMap;
use std::io::Write;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use berth_secrets::{DEFAULT_SECRETS_DIR, Error, Loader, Source, TrimMode};

/// A loader that sees only `vars`, with Docker secrets looked for in `secrets_dir`.
fn loader(vars: &[(&str, &str)], secrets_dir: &Path) -> Loader {
    let vars: HashMap<String, String> = vars
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect();
    Loader::new()
        .with_env(move |k| vars.get(k).cloned())
        .with_secrets_dir(secrets_dir)
}

fn write_private(path: &Path, bytes: &[u8]) {
    std::fs::write(path, bytes).unwrap();
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600)).unwrap();
}

#[test]
fn both_variable_and_file_set_is_an_error_naming_both() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("pw");
    write_private(&file, b"from-file");
    let file_arg = file.display().to_string();
    let err = loader(
        &[
            ("DB_PASSWORD", "plain-value"),
            ("DB_PASSWORD_FILE", &file_arg),
        ],
        dir.path(),
    )
    .from_env("DB_PASSWORD")
    .unwrap_err();
    assert!(matches!(err, Error::BothSet { .. }));
    let text = err.to_string();
    assert!(text.contains("DB_PASSWORD and DB_PASSWORD_FILE"), "{text}");
    assert!(
        !text.contains("plain-value") && !text.contains("from-file"),
        "{text}"
    );
}

#[test]
fn an_empty_value_counts_as_unset() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("pw");
    write_private(&file, b"from-file\n");
    let file_arg = file.display().to_string();
    let loaded = loader(&[("PW", ""), ("PW_FILE", &file_arg)], dir.path())
        .require_env("PW")
        .unwrap();
    assert_eq!(loaded.secret.expose(), "from-file");
    let loaded = loader(&[("PW", "direct"), ("PW_FILE", "")], dir.path())
        .require_env("PW")
        .unwrap();
    assert_eq!(loaded.secret.expose(), "direct");
    assert_eq!(loaded.source, Source::Env { var: "PW".into() });
}

#[test]
fn the_file_variable_is_read_and_reported_as_the_source() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("token");
    write_private(&file, b"abc123\n");
    let file_arg = file.display().to_string();
    let loaded = loader(&[("TOKEN_FILE", &file_arg)], dir.path())
        .from_env("TOKEN")
        .unwrap()
        .unwrap();
    assert_eq!(loaded.secret.expose(), "abc123");
    assert_eq!(
        loaded.source,
        Source::File {
            var: "TOKEN_FILE".into(),
            path: file.clone()
        }
    );
}

#[test]
fn docker_secrets_are_found_lowercased_in_the_builder_dir_and_no_variable_moves_it() {
    let dir = tempfile::tempdir().unwrap();
    write_private(&dir.path().join("db_password"), b"from-docker\n");
    let loaded = loader(&[], dir.path()).require_env("DB_PASSWORD").unwrap();
    assert_eq!(loaded.secret.expose(), "from-docker");
    assert_eq!(
        loaded.source,
        Source::DockerSecret {
            path: dir.path().join("db_password")
        }
    );

    // The directory is the application's choice, made through the builder: the
    // `berth` binary's BERTH_SECRETS_DIR is not read by the library.
    let dir_arg = dir.path().display().to_string();
    let vars: HashMap<String, String> = [("BERTH_SECRETS_DIR".to_owned(), dir_arg)].into();
    let via_env = Loader::new().with_env(move |k| vars.get(k).cloned());
    assert_eq!(via_env.secrets_dir(), Path::new(DEFAULT_SECRETS_DIR));
}

#[test]
fn nothing_set_is_none_and_require_says_what_to_set() {
    let dir = tempfile::tempdir().unwrap();
    let l = loader(&[], dir.path());
    assert!(l.from_env("API_KEY").unwrap().is_none());
    let err = l.require_env("API_KEY").unwrap_err();
    let text = err.to_string();
    assert!(matches!(err, Error::Missing { .. }));
    assert!(text.contains("API_KEY_FILE"), "{text}");
    assert!(
        text.contains(&dir.path().join("api_key").display().to_string()),
        "{text}"
    );
}

#[test]
fn trim_removes_one_bom_and_trailing_newlines_only() {
    let dir = tempfile::tempdir().unwrap();
    let cases: [(&[u8], &str, bool, usize); 5] = [
        (b"secret\n", "secret", false, 1),
        (b"secret\r\n", "secret", false, 2),
        (b"\xEF\xBB\xBFsecret\r\n\r\n", "secret", true, 4),
        (b" pass word\t\n", " pass word\t", false, 1),
        (b"line1\nline2\n", "line1\nline2", false, 1),
    ];
    for (n, (bytes, want, bom, newlines)) in cases.into_iter().enumerate() {
        let file = dir.path().join(format!("case{n}"));
        write_private(&file, bytes);
        let file_arg = file.display().to_string();
        let loaded = loader(&[("S_FILE", &file_arg)], dir.path())
            .require_env("S")
            .unwrap();
        assert_eq!(loaded.secret.expose(), want, "case {n}");
        assert_eq!(loaded.trimmed.bom, bom, "case {n}");
        assert_eq!(loaded.trimmed.trailing_newline_bytes, newlines, "case {n}");
    }
}

#[test]
fn raw_mode_keeps_every_byte() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("key.bin");
    let bytes = b"\xEF\xBB\xBF\x00\xFFkey\r\n";
    write_private(&file, bytes);
    let key = Loader::new()
        .with_mode(TrimMode::Raw)
        .read_file_bytes(&file)
        .unwrap();
    assert_eq!(key.expose(), bytes);
}

#[test]
fn empty_after_trimming_is_an_error_unless_allowed() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("empty");
    write_private(&file, b"\r\n");
    let err = Loader::new().read_file(&file).unwrap_err();
    assert!(
        matches!(
            err,
            Error::Empty {
                after_trim: true,
                ..
            }
        ),
        "{err}"
    );
    assert!(err.to_string().contains("empty after trimming"), "{err}");
    let allowed = Loader::new().allow_empty(true).read_file(&file).unwrap();
    assert!(allowed.is_empty());
}

#[test]
fn directory_missing_and_dangling_symlink_each_name_the_path() {
    let dir = tempfile::tempdir().unwrap();
    let l = Loader::new();

    let err = l.read_file(dir.path()).unwrap_err();
    assert!(matches!(err, Error::IsDirectory { .. }), "{err}");
    assert!(err.to_string().contains(&dir.path().display().to_string()));

    let missing = dir.path().join("nope");
    let err = l.read_file(&missing).unwrap_err();
    assert!(
        matches!(
            err,
            Error::NotFound {
                dangling: false,
                ..
            }
        ),
        "{err}"
    );
    assert!(err.to_string().contains(&missing.display().to_string()));

    let link = dir.path().join("link");
    std::os::unix::fs::symlink(dir.path().join("gone"), &link).unwrap();
    let err = l.read_file(&link).unwrap_err();
    assert!(
        matches!(err, Error::NotFound { dangling: true, .. }),
        "{err}"
    );
    assert!(
        err.to_string().contains("symlink to a missing target"),
        "{err}"
    );
}

/// Set in the copy of a test that [`run_as_nobody`] starts.
const AS_NOBODY: &str = "BERTH_TEST_AS_NOBODY";

/// The user id (and group id) of `nobody` on Debian and most other systems; whether
/// it has a name does not matter to the kernel.
const NOBODY: u32 = 65534;

/// Runs the test `name` again, in a copy of this test binary, as uid and gid
/// [`NOBODY`] with no supplementary groups, and fails unless it ran and passed.
///
/// For the tests that need the OS to refuse a read: root (CAP_DAC_OVERRIDE) reads
/// any file, and CI runs as root. The binary is copied into a directory of nobody's
/// own because the build directory may sit where nobody cannot reach it (`/root`).
fn run_as_nobody(name: &str) {
    use std::os::unix::process::CommandExt;
    assert!(
        std::env::var_os(AS_NOBODY).is_none(),
        "running as uid {NOBODY}, a file with mode 000 is still readable"
    );
    let home = tempfile::tempdir().unwrap();
    std::os::unix::fs::chown(home.path(), Some(NOBODY), Some(NOBODY)).unwrap();
    let exe = home.path().join("test-binary");
    std::fs::copy(std::env::current_exe().unwrap(), &exe).unwrap();
    // Command::uid as root also drops the supplementary groups (setgroups(0)), as
    // `setpriv --clear-groups` would.
    let output = std::process::Command::new(&exe)
        .args([name, "--exact"])
        .env(AS_NOBODY, "1")
        .env("TMPDIR", home.path())
        .uid(NOBODY)
        .gid(NOBODY)
        .output()
        .unwrap_or_else(|e| panic!("cannot run {} as uid {NOBODY}: {e}", exe.display()));
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success() && stdout.contains("test result: ok. 1 passed"),
        "{name} as uid {NOBODY}: {}\n{stdout}\n{}",
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
}

#[test]
fn permission_denied_names_the_path_and_the_fix() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("locked");
    write_private(&file, b"value");
    std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o000)).unwrap();
    if std::fs::read(&file).is_ok() {
        // Root: the OS never refuses it, so the checks below run as a user it refuses.
        run_as_nobody("permission_denied_names_the_path_and_the_fix");
        return;
    }
    let err = Loader::new().read_file(&file).unwrap_err();
    assert!(matches!(err, Error::PermissionDenied { .. }), "{err}");
    assert!(err.to_string().contains(&file.display().to_string()));
    assert!(err.to_string().contains("chmod 600"));
}

#[test]
fn a_file_over_the_cap_is_refused_before_reading() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("big");
    write_private(&file, &vec![b'a'; 2 * 1024 * 1024]);
    let err = Loader::new().read_file(&file).unwrap_err();
    assert!(
        matches!(err, Error::TooLarge { cap: 1_048_576, .. }),
        "{err}"
    );
    assert!(err.to_string().contains(&file.display().to_string()));
    let small_cap = Loader::new().with_max_bytes(4);
    write_private(&file, b"12345");
    assert!(matches!(
        small_cap.read_file(&file),
        Err(Error::TooLarge { cap: 4, .. })
    ));
    write_private(&file, b"1234");
    assert_eq!(small_cap.read_file(&file).unwrap().expose(), "1234");
}

#[test]
fn a_device_with_no_length_stops_at_the_cap() {
    // /dev/zero reports length 0 and never ends: only the cap during the read stops it.
    let err = Loader::new()
        .with_max_bytes(64 * 1024)
        .read_file_bytes(Path::new("/dev/zero"))
        .unwrap_err();
    assert!(matches!(err, Error::TooLarge { .. }), "{err}");
}

#[test]
fn invalid_utf8_is_an_error_without_the_content() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("latin1");
    write_private(&file, b"caf\xE9-secret-part");
    let err = Loader::new().read_file(&file).unwrap_err();
    assert!(
        matches!(err, Error::NotUtf8 { valid_up_to: 3, .. }),
        "{err}"
    );
    let text = format!("{err} {err:?}");
    assert!(
        !text.contains("secret-part") && !text.contains("caf"),
        "{text}"
    );
    // The same bytes load as a binary secret.
    assert_eq!(
        Loader::new().read_file_bytes(&file).unwrap().expose(),
        b"caf\xE9-secret-part"
    );
}

#[test]
fn refuse_plain_env_names_the_file_variable() {
    let dir = tempfile::tempdir().unwrap();
    let err = loader(&[("TSIG_SECRET", "abc")], dir.path())
        .refuse_plain_env("TSIG_SECRET")
        .unwrap_err();
    assert!(err.to_string().contains("TSIG_SECRET_FILE"), "{err}");
    assert!(!err.to_string().contains("abc"));
    loader(&[("TSIG_SECRET", "")], dir.path())
        .refuse_plain_env("TSIG_SECRET")
        .unwrap();
}

/// Captures `tracing` output in memory.
#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[test]
fn a_file_others_can_read_warns_once() {
    let captured = Captured::default();
    let writer = captured.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_writer(move || writer.clone())
        .with_ansi(false)
        .finish();
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("shared");
    std::fs::write(&file, b"value-xyz").unwrap();
    std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o644)).unwrap();
    let private = dir.path().join("private");
    write_private(&private, b"other");
    tracing::subscriber::with_default(subscriber, || {
        let l = Loader::new();
        for _ in 0..3 {
            assert_eq!(l.read_file(&file).unwrap().expose(), "value-xyz");
        }
        l.read_file(&private).unwrap();
    });
    let log = String::from_utf8(captured.0.lock().unwrap().clone()).unwrap();
    assert_eq!(
        log.matches("readable by group or others").count(),
        1,
        "{log}"
    );
    assert!(log.contains("0644") && log.contains("chmod 600"), "{log}");
    assert!(!log.contains("value-xyz"), "{log}");
}

/// A FIFO with no writer given as `X_FILE` (or as the Docker secret): a plain open waits
/// for a writer forever, so berth would hang at start. It fails after the loader's FIFO
/// wait instead, naming the path, what it is and the fix.
#[test]
fn a_fifo_without_a_writer_fails_after_the_wait_instead_of_blocking() {
    let dir = tempfile::tempdir().unwrap();
    let fifo = dir.path().join("api_token");
    mkfifo(&fifo);
    let fifo_text = fifo.display().to_string();
    let (tx, rx) = std::sync::mpsc::channel();
    let secrets_dir = dir.path().to_path_buf();
    let wait = Duration::from_millis(300);
    std::thread::spawn(move || {
        let by_file = loader(&[("API_TOKEN_FILE", &fifo_text)], &secrets_dir)
            .with_fifo_wait(wait)
            .from_env("API_TOKEN")
            .map(|_| ());
        let as_docker_secret = loader(&[], &secrets_dir)
            .with_fifo_wait(wait)
            .from_env("API_TOKEN")
            .map(|_| ());
        let _ = tx.send((by_file, as_docker_secret));
    });
    let (by_file, as_docker_secret) = rx
        .recv_timeout(Duration::from_secs(10))
        .expect("reading a FIFO secret blocked");
    for err in [by_file.unwrap_err(), as_docker_secret.unwrap_err()] {
        assert!(matches!(err, Error::FifoTimeout { .. }), "{err}");
        let text = err.to_string();
        assert!(
            text.contains("FIFO") && text.contains("api_token") && text.contains("writer"),
            "{text}"
        );
    }
}

/// Process substitution (`--eab-hmac-file <(pass show acme/eab)`) hands over a pipe
/// whose writer writes the secret and closes it: it is read like a file, and trimmed.
#[test]
fn a_fifo_written_and_closed_by_its_writer_is_read_like_a_file() {
    let dir = tempfile::tempdir().unwrap();
    let fifo = dir.path().join("api_token");
    mkfifo(&fifo);
    let writer_path = fifo.clone();
    let writer = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(100));
        // Opening for writing waits for the reader, as a shell's writer does.
        std::fs::write(&writer_path, b"s3cret-from-pipe\n").unwrap();
    });
    let fifo_text = fifo.display().to_string();
    let loaded = loader(&[("API_TOKEN_FILE", &fifo_text)], dir.path())
        .require_env("API_TOKEN")
        .unwrap();
    writer.join().unwrap();
    assert_eq!(loaded.secret.expose(), "s3cret-from-pipe");
}

/// A FIFO that delivers more than the cap is refused like an oversized file.
#[test]
fn a_fifo_over_the_cap_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let fifo = dir.path().join("api_token");
    mkfifo(&fifo);
    let writer_path = fifo.clone();
    let writer = std::thread::spawn(move || {
        // The reader stops at the cap and closes its end; the writer then sees EPIPE.
        let _ = std::fs::write(&writer_path, vec![b'a'; 64 * 1024]);
    });
    let err = Loader::new()
        .with_max_bytes(1024)
        .read_file(&fifo)
        .unwrap_err();
    writer.join().unwrap();
    assert!(matches!(err, Error::TooLarge { .. }), "{err}");
}

fn mkfifo(path: &Path) {
    let made = std::process::Command::new("mkfifo")
        .arg(path)
        .status()
        .unwrap();
    assert!(made.success());
}
