//! Secret values for containers: [`Secret`] and [`SecretBytes`] are zeroized on drop and
//! print as `[redacted]`.
//!
//! ```
//! use berth_secrets::Secret;
//!
//! let password = Secret::new("hunter2".to_owned());
//! assert_eq!(format!("{password:?}"), "[redacted]");
//! assert_eq!(password.expose(), "hunter2");
//! ```

mod secret;

pub use secret::{REDACTED, Secret, SecretBytes};
