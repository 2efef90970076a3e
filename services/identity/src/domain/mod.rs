//! Identity rules: emails, names, passwords, roles, throttling. No HTTP, no SQL here.

pub mod bootstrap;
pub use mercato_kernel::email;
pub mod org;
pub mod password;
pub mod throttle;
pub mod user;

/// Characters that are invisible or reorder text and so have no place in an address or a
/// name: bidirectional overrides, embeddings and isolates, zero-width space, word joiner and
/// invisible operators, the byte-order mark, soft hyphen. Zero-width (non-)joiners stay
/// allowed in names: Persian, Indic scripts and emoji sequences need them.
pub fn is_deceptive(c: char) -> bool {
    matches!(
        c,
        '\u{00AD}'
            | '\u{200B}'
            | '\u{200E}'
            | '\u{200F}'
            | '\u{202A}'..='\u{202E}'
            | '\u{2060}'..='\u{2064}'
            | '\u{2066}'..='\u{2069}'
            | '\u{FEFF}'
    )
}
