//! The `keystead` server: configuration, enclave supervision, and the HTTP API.

pub mod admin;
pub mod auth;
pub mod config;
pub mod http;
pub mod metrics;
pub mod serve;
pub mod supervisor;
