//! berth's configuration: the `--config` file, layers of settings stacked flag > file >
//! default, the effective [`RunSettings`], the certificate [`Plan`] built from them and
//! the [`lint`] checks `berth config check` prints.
//!
//! Each setting has one name and one default. The name is the key in the file, the flag
//! with `-` for `_` and the `BERTH_*` variable; the defaults are in [`defaults`] and,
//! for the proxy limits, [`berth_proxy::Limits::DEFAULT`]. The binary turns its flags
//! into a [`Layer`] holding only what the user set, stacks it over the file's and
//! resolves:
//!
//! ```
//! use std::time::Duration;
//! use berth_config::{Layer, LimitsLayer, Plan};
//!
//! let file = Layer::from_toml(
//!     r#"
//!     domains = ["app.example.com"]
//!     upstream = "http://app:3000"
//!     [limits]
//!     drain_timeout = "3s"
//!     max_connections = 500
//! "#,
//! )?;
//! let flags = Layer {
//!     limits: LimitsLayer {
//!         drain_timeout: Some(Duration::from_secs(5)),
//!         ..LimitsLayer::default()
//!     },
//!     ..Layer::default()
//! };
//! let settings = flags.or(file).resolve()?;
//! assert_eq!(settings.limits.drain_timeout, Duration::from_secs(5)); // the flag
//! assert_eq!(settings.limits.max_connections, 500); // the file
//! assert_eq!(settings.limits.idle_timeout, Duration::from_secs(90)); // the default
//! let plan = Plan::build(&settings)?;
//! assert_eq!(plan.managed[0].domains.main().as_str(), "app.example.com");
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

mod dns;
mod error;
mod layer;
mod limits;
pub mod lint;
mod plan;
mod reload;
pub mod serde_text;
mod settings;

pub use dns::DnsSettings;
pub use error::{Error, FileError};
pub use layer::{CertificateSettings, Layer};
pub use limits::LimitsLayer;
pub use plan::{Plan, profile};
pub use reload::RestartOnly;
pub use serde_text::parse_duration;
pub use settings::{RunSettings, defaults};
