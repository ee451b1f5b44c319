//! Text forms of config-file values for the `[dns]` flags' serde derive. berth-config
//! reads the config file now (its `DnsSettings` is the `[dns]` table); this keeps
//! `cli::DnsArgs`' attributes compiling until they are removed there.

pub(crate) use berth_config::serde_text::{duration_option, option};
