//! Writes that span several tables: each runs in one transaction with its outbox event.

pub mod categories;
pub mod products;
