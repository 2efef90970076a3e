//! Notifications' rules without HTTP or SQL: channels, delivery states, categories, quiet
//! hours, recipients and retry pauses.

use serde::{Deserialize, Serialize};

/// The category nobody can opt out of: receipts, password resets, security notices.
pub const TRANSACTIONAL: &str = "transactional";

/// How a notification travels.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Channel {
    /// SMTP or an email API.
    Email,
    /// Text message.
    Sms,
    /// Mobile push.
    Push,
    /// The user's inbox in the storefront.
    InApp,
    /// A signed HTTP POST to a URL.
    Webhook,
    /// A Slack or Teams incoming webhook.
    Chat,
}

impl Channel {
    /// Every channel.
    pub const ALL: [Channel; 6] = [
        Self::Email,
        Self::Sms,
        Self::Push,
        Self::InApp,
        Self::Webhook,
        Self::Chat,
    ];

    /// The stored name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Email => "email",
            Self::Sms => "sms",
            Self::Push => "push",
            Self::InApp => "in_app",
            Self::Webhook => "webhook",
            Self::Chat => "chat",
        }
    }

    /// The channel of this name.
    pub fn parse(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|c| c.as_str() == name)
    }
}

/// Where a notification is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
#[schema(as = NotificationStatus)]
pub enum Status {
    /// Waiting for its turn (or for quiet hours to end, or a retry).
    Queued,
    /// A provider is being asked.
    Sending,
    /// A provider accepted it.
    Sent,
    /// The provider confirmed delivery (in-app: stored in the inbox).
    Delivered,
    /// No provider took it, for good.
    Failed,
    /// The provider reported the address dead.
    Bounced,
    /// The recipient opted out of its category on its channel.
    Suppressed,
}

impl Status {
    /// Every status.
    pub const ALL: [Status; 7] = [
        Self::Queued,
        Self::Sending,
        Self::Sent,
        Self::Delivered,
        Self::Failed,
        Self::Bounced,
        Self::Suppressed,
    ];

    /// The stored name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Queued => "queued",
            Self::Sending => "sending",
            Self::Sent => "sent",
            Self::Delivered => "delivered",
            Self::Failed => "failed",
            Self::Bounced => "bounced",
            Self::Suppressed => "suppressed",
        }
    }

    /// The status of this name.
    pub fn parse(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|s| s.as_str() == name)
    }
}

/// 1 to 40 lower-case letters, digits and `_`.
pub fn is_category(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 40
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
}

/// E.164: `+`, then 8 to 15 digits, the first not 0.
pub fn is_phone(phone: &str) -> bool {
    phone.strip_prefix('+').is_some_and(|digits| {
        (8..=15).contains(&digits.len())
            && digits.bytes().all(|b| b.is_ascii_digit())
            && !digits.starts_with('0')
    })
}

/// An `http(s)` URL of at most 2,000 characters.
pub fn is_url(url: &str) -> bool {
    url.len() <= 2000 && url::Url::parse(url).is_ok_and(|u| matches!(u.scheme(), "http" | "https"))
}

/// Whether `to` is an address of `channel`: an email, a phone, a device token, a user id or a
/// URL.
pub fn is_recipient(channel: Channel, to: &str) -> bool {
    match channel {
        Channel::Email => mercato_kernel::email::Email::parse(to, "to").is_ok(),
        Channel::Sms => is_phone(to),
        Channel::Push => (16..=4096).contains(&to.len()) && to.is_ascii(),
        Channel::InApp => (1..=64).contains(&to.len()),
        Channel::Webhook | Channel::Chat => is_url(to),
    }
}

/// A user's quiet hours: from `start` to `end` minutes after local midnight, local time being
/// UTC + `offset_minutes`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct QuietHours {
    /// Minutes after local midnight, 0..1440.
    pub start: i64,
    /// Minutes after local midnight, 0..1440; before `start` when the hours span midnight.
    pub end: i64,
    /// Local time minus UTC, in minutes.
    pub offset_minutes: i64,
}

const MINUTES_PER_DAY: i64 = 24 * 60;
const MICROS_PER_MINUTE: i64 = 60_000_000;

impl QuietHours {
    /// When a non-urgent message due at `now` (epoch µs) may go: `now` outside quiet hours,
    /// else the end of the quiet period.
    pub fn release_at(&self, now: i64) -> i64 {
        let local_minute =
            (now / MICROS_PER_MINUTE + self.offset_minutes).rem_euclid(MINUTES_PER_DAY);
        let quiet = if self.start <= self.end {
            local_minute >= self.start && local_minute < self.end
        } else {
            local_minute >= self.start || local_minute < self.end
        };
        if !quiet || self.start == self.end {
            return now;
        }
        let wait = (self.end - local_minute).rem_euclid(MINUTES_PER_DAY);
        // To the start of the minute quiet hours end, so releases line up.
        (now / MICROS_PER_MINUTE + wait) * MICROS_PER_MINUTE
    }
}

/// Pause before retry `attempt` (1-based): `base × 2^(attempt−1)`, capped, with up to 25 %
/// random jitter from `jitter` (0.0..1.0) so retries of many messages spread out.
pub fn backoff_micros(base_ms: u64, attempt: u32, jitter: f64) -> i64 {
    let exp = base_ms.saturating_mul(1 << attempt.saturating_sub(1).min(20));
    let capped = exp.min(3_600_000);
    let jittered = capped as f64 * (1.0 + 0.25 * jitter.clamp(0.0, 1.0));
    (jittered as i64).saturating_mul(1000)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(hour: i64, minute: i64) -> i64 {
        // 2026-11-22 00:00 UTC plus the time.
        1_795_305_600_000_000 + (hour * 60 + minute) * MICROS_PER_MINUTE
    }

    #[test]
    fn quiet_hours_spanning_midnight_hold_until_they_end() {
        let q = QuietHours {
            start: 22 * 60,
            end: 7 * 60,
            offset_minutes: 0,
        };
        assert_eq!(q.release_at(at(21, 59)), at(21, 59));
        assert_eq!(q.release_at(at(23, 30)), at(31, 0), "next morning 07:00");
        assert_eq!(q.release_at(at(3, 0)), at(7, 0));
        assert_eq!(q.release_at(at(7, 0)), at(7, 0));
    }

    #[test]
    fn quiet_hours_follow_the_users_offset() {
        // 22:00–07:00 in UTC+2: 21:00 UTC is 23:00 local.
        let q = QuietHours {
            start: 22 * 60,
            end: 7 * 60,
            offset_minutes: 120,
        };
        assert_eq!(
            q.release_at(at(21, 0)),
            at(29, 0),
            "07:00 local is 05:00 UTC"
        );
        assert_eq!(q.release_at(at(12, 0)), at(12, 0));
    }

    #[test]
    fn recipients_are_checked_per_channel() {
        assert!(is_recipient(Channel::Email, "a@b.co"));
        assert!(!is_recipient(Channel::Email, "a@b"));
        assert!(is_recipient(Channel::Sms, "+4915112345678"));
        assert!(!is_recipient(Channel::Sms, "015112345678"));
        assert!(is_recipient(
            Channel::Webhook,
            "https://hooks.example.com/x"
        ));
        assert!(!is_recipient(Channel::Chat, "ftp://example.com"));
        assert!(is_category("product_updates") && !is_category("Marketing"));
    }

    #[test]
    fn backoff_doubles_with_bounded_jitter() {
        assert_eq!(backoff_micros(100, 1, 0.0), 100_000);
        assert_eq!(backoff_micros(100, 3, 0.0), 400_000);
        assert_eq!(backoff_micros(100, 3, 1.0), 500_000);
        assert_eq!(
            backoff_micros(1000, 40, 0.0),
            3_600_000_000,
            "capped at an hour"
        );
        for s in Status::ALL {
            assert_eq!(Status::parse(s.as_str()), Some(s));
        }
        for c in Channel::ALL {
            assert_eq!(Channel::parse(c.as_str()), Some(c));
        }
    }
}
