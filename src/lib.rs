//! leakwatch finds chat groups where stolen food-delivery customer data is sold, preserves what
//! is offered there as evidence a court can check, and drives the takedown.
//!
//! The parts, in the order data flows through them (see ARCHITECTURE.md for the full map):
//!
//! - [`config`]: the TOML configuration every command reads.
//! - [`ledger`]: the append-only evidence log — segment files with group commit, an RFC 6962
//!   Merkle tree, signed C2SP checkpoints. The source of truth.
//! - [`blobs`]: content-addressed, encrypted storage for raw captured bytes.
//! - [`state`]: sled views (cases, groups, captures) rebuilt from the ledger on demand.
//! - [`evidence`]: opens the three above together from a data root.
//! - [`adapters`]: the way into groups — QQ through OneBot v11, Telegram as a Bot API bot.
//! - [`staffbot`]: a Telegram bot for staff: submit groups, review cards, alerts.
//! - [`bundle`]: evidence bundles for police and courts (export), and their offline verifier.
//! - [`bench`]: the measurements behind `leakwatch bench`.

pub mod adapters;
pub mod api;
pub mod bench;
pub mod blobs;
pub mod bundle;
pub mod capture;
pub mod config;
pub mod durable;
pub mod evidence;
pub mod extract;
pub mod filing;
pub mod intake;
pub mod ledger;
pub mod matching;
pub mod packets;
pub mod review;
pub mod sample_check;
pub mod service;
pub mod simulator;
pub mod staffbot;
pub mod state;
pub mod timestamp;
pub mod tracking;
pub mod ui;

/// This build's version, recorded in every capture record.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");
