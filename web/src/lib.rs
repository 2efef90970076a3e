//! The storefront and admin of Mercato in the browser: templates and static assets compiled
//! into the binary, so `mercato up` serves a shop with no build step.

pub mod assets;
