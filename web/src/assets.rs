//! The bundle's static files, served under `/assets/`.

use std::sync::OnceLock;

use sha2::{Digest, Sha256};

/// One file of the bundle.
#[derive(Debug, Clone, Copy)]
pub struct Asset {
    /// Its bytes.
    pub body: &'static [u8],
    /// Its media type.
    pub content_type: &'static str,
    /// A strong validator of its bytes, quoted.
    pub etag: &'static str,
}

/// Path below `/assets/`, bytes and media type of every file.
const FILES: &[(&str, &[u8], &str)] = &[
    (
        "app.css",
        include_bytes!("../assets/app.css"),
        "text/css; charset=utf-8",
    ),
    (
        "app.js",
        include_bytes!("../assets/app.js"),
        "text/javascript; charset=utf-8",
    ),
    (
        "favicon.svg",
        include_bytes!("../assets/favicon.svg"),
        "image/svg+xml",
    ),
    // Pictures of the demo shop's products (`mercato up --demo`).
    (
        "demo/1.svg",
        include_bytes!("../assets/demo/1.svg"),
        "image/svg+xml",
    ),
    (
        "demo/2.svg",
        include_bytes!("../assets/demo/2.svg"),
        "image/svg+xml",
    ),
    (
        "demo/3.svg",
        include_bytes!("../assets/demo/3.svg"),
        "image/svg+xml",
    ),
    (
        "demo/4.svg",
        include_bytes!("../assets/demo/4.svg"),
        "image/svg+xml",
    ),
    (
        "demo/5.svg",
        include_bytes!("../assets/demo/5.svg"),
        "image/svg+xml",
    ),
    (
        "demo/6.svg",
        include_bytes!("../assets/demo/6.svg"),
        "image/svg+xml",
    ),
];

/// The file at `path` below `/assets/`, if the bundle has it.
pub fn asset(path: &str) -> Option<Asset> {
    // Hashed once per process: the bytes never change while it runs.
    static ETAGS: OnceLock<Vec<String>> = OnceLock::new();
    let etags = ETAGS.get_or_init(|| {
        FILES
            .iter()
            .map(|(_, body, _)| format!("\"{}\"", &hex::encode(Sha256::digest(body))[..20]))
            .collect()
    });
    let index = FILES.iter().position(|(name, _, _)| *name == path)?;
    let (_, body, content_type) = FILES[index];
    Some(Asset {
        body,
        content_type,
        etag: etags[index].as_str(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_file_has_a_distinct_etag_and_unknown_paths_are_none() {
        let css = asset("app.css").expect("the stylesheet is bundled");
        let icon = asset("favicon.svg").expect("the icon is bundled");
        assert!(css.content_type.starts_with("text/css"));
        assert_ne!(css.etag, icon.etag);
        assert!(css.etag.starts_with('"') && css.etag.ends_with('"'));
        assert!(asset("../Cargo.toml").is_none());
        assert!(asset("nope.css").is_none());
    }
}
