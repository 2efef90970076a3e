//! Links inside messages: the open pixel, click redirects and unsubscribe links. Clicks and
//! unsubscribes are signed with the service's link key, so nobody can make the service
//! redirect to a site of theirs, or unsubscribe someone else.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use hmac::{KeyInit, Mac};

type HmacSha256 = hmac::Hmac<sha2::Sha256>;

/// Builds and checks the links of messages.
#[derive(Clone)]
pub struct Links {
    base: String,
    mac: HmacSha256,
}

impl std::fmt::Debug for Links {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Links")
            .field("base", &self.base)
            .finish_non_exhaustive()
    }
}

fn encode(text: &str) -> String {
    url::form_urlencoded::byte_serialize(text.as_bytes()).collect()
}

impl Links {
    /// Links under `base` (the platform's public URL) signed with `key`.
    pub fn new(base: &str, key: &[u8]) -> anyhow::Result<Self> {
        Ok(Self {
            base: base.trim_end_matches('/').to_owned(),
            mac: HmacSha256::new_from_slice(key)
                .map_err(|e| anyhow::anyhow!("unusable link key: {e}"))?,
        })
    }

    fn mac_of(&self, parts: &[&str]) -> HmacSha256 {
        let mut mac = self.mac.clone();
        for part in parts {
            mac.update(part.as_bytes());
            mac.update(b"\n");
        }
        mac
    }

    fn sign(&self, parts: &[&str]) -> String {
        hex::encode(self.mac_of(parts).finalize().into_bytes())
    }

    fn verify(&self, parts: &[&str], signature: &str) -> bool {
        hex::decode(signature).is_ok_and(|given| self.mac_of(parts).verify_slice(&given).is_ok())
    }

    /// The 1×1 image that records an email's first open.
    pub fn open_pixel(&self, id: &str) -> String {
        format!("{}/api/v1/notifications/{id}/open.gif", self.base)
    }

    /// A link that records the click, then redirects to `url`.
    pub fn click(&self, id: &str, url: &str) -> String {
        format!(
            "{}/api/v1/notifications/{id}/click?url={}&sig={}",
            self.base,
            encode(url),
            self.sign(&["click", id, url])
        )
    }

    /// Whether `sig` is the signature of a click link of notification `id` to `url`.
    pub fn verify_click(&self, id: &str, url: &str, sig: &str) -> bool {
        self.verify(&["click", id, url], sig)
    }

    /// A link that turns `category` off for `user_id`.
    pub fn unsubscribe(&self, user_id: &str, category: &str) -> String {
        let payload = URL_SAFE_NO_PAD.encode(format!("{user_id}\n{category}"));
        let sig = self.sign(&["unsubscribe", user_id, category]);
        format!(
            "{}/api/v1/notifications/unsubscribe?token={payload}.{sig}",
            self.base
        )
    }

    /// The user and category of a valid unsubscribe token.
    pub fn read_unsubscribe(&self, token: &str) -> Option<(String, String)> {
        let (payload, sig) = token.split_once('.')?;
        let decoded = String::from_utf8(URL_SAFE_NO_PAD.decode(payload).ok()?).ok()?;
        let (user, category) = decoded.split_once('\n')?;
        self.verify(&["unsubscribe", user, category], sig)
            .then(|| (user.to_owned(), category.to_owned()))
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn click_and_unsubscribe_links_verify_only_untampered() {
        let links = Links::new("https://shop.example.com/", b"key").unwrap();
        let url = links.click("ntf_1", "https://shop.example.com/sale?x=1&y=2");
        assert!(url.starts_with(
            "https://shop.example.com/api/v1/notifications/ntf_1/click?url=https%3A%2F%2F"
        ));
        let sig = url.rsplit_once("sig=").unwrap().1;
        assert!(links.verify_click("ntf_1", "https://shop.example.com/sale?x=1&y=2", sig));
        assert!(!links.verify_click("ntf_1", "https://evil.example.com", sig));
        assert!(!links.verify_click("ntf_2", "https://shop.example.com/sale?x=1&y=2", sig));
        let unsubscribe = links.unsubscribe("usr_ada", "marketing");
        let token = unsubscribe.rsplit_once("token=").unwrap().1;
        assert_eq!(
            links.read_unsubscribe(token),
            Some(("usr_ada".into(), "marketing".into()))
        );
        let other = Links::new("https://shop.example.com", b"other").unwrap();
        assert_eq!(other.read_unsubscribe(token), None);
        assert_eq!(links.read_unsubscribe("garbage"), None);
    }
}
