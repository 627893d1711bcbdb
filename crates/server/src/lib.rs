//! The `keystead` server: configuration, enclave supervision, and the HTTP API.

pub mod admin;
pub mod auth;
pub mod cache;
pub mod config;
pub mod dev;
pub mod http;
pub mod locks;
pub mod metrics;
pub mod serve;
pub mod supervisor;
pub mod tracker;
pub mod transfer;
pub mod wallet;
