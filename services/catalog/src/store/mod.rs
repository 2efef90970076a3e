//! SQL of the catalog tables.

pub mod categories;
pub mod products;
pub mod promotions;
