//! Examples of embedding berth's crates; see `src/bin/embedded.rs` and `README.md` in
//! this directory. The library target is empty on purpose: the examples are binaries and
//! deployment files.
