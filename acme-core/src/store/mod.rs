//! Persistence: Traefik-compatible `acme.json`, berth's state file, PEM export.

mod error;

pub use error::StoreError;
