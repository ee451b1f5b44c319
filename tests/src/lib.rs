//! berth's end-to-end test harness: real Pebble, pebble-challtestsrv and BIND
//! started on free loopback ports, stopped on drop.
//!
//! Every ACME test in the workspace goes through [`Pebble`]; nothing here mocks a CA.
//! A tool that is missing makes the test fail with the package to install — never a
//! silent skip.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod bind;
mod daemon;
mod etcd;
mod forward;
pub mod fuzz;
mod http;
mod mount;
mod pebble;
mod profiles;
mod redis;
mod store;
mod tools;

pub use bind::{Bind, BindZone};
pub use etcd::Etcd;
pub use forward::RoundRobin;
pub use http::{HttpsResponse, https_get, tls_client_config};
pub use mount::BindMount;
pub use pebble::{Pebble, PebbleOptions};
pub use profiles::ProfilesFront;
pub use redis::Redis;
pub use store::{file_store, read_state};
pub use tools::{free_port, require_tool, wait_for_port};
