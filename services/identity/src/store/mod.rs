//! SQL for the identity tables; only this service touches them.

pub mod addresses;
pub mod api_keys;
pub mod keys;
pub mod orgs;
pub mod throttle;
pub mod tokens;
pub mod users;

use sha2::{Digest, Sha256};

/// Hex SHA-256 of a high-entropy secret (refresh, email tokens): what is stored and looked up.
pub fn token_hash(token: &str) -> String {
    hex::encode(Sha256::digest(token.as_bytes()))
}
