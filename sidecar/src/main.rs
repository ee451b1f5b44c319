//! The `berth` binary: everything lives in the library target (`src/lib.rs`), so tests
//! can inspect the command-line definition.

fn main() -> std::process::ExitCode {
    berth::main()
}
