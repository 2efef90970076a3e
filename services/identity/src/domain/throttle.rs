//! Login throttling: how many failures lock an account or an IP, and for how long.

use std::time::Duration;

/// Limits on failed logins; the failures are stored, so every replica sees them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ThrottlePolicy {
    /// Failures of one account within `window` that lock it.
    pub account_failures: i64,
    /// Failures from one IP within `window` that lock the IP.
    pub ip_failures: i64,
    /// Window over which failures are counted.
    pub window: Duration,
    /// How long a lockout lasts.
    pub lock: Duration,
}

impl Default for ThrottlePolicy {
    /// 5 failures per account or 20 per IP within 15 minutes lock for 15 minutes.
    fn default() -> Self {
        Self {
            account_failures: 5,
            ip_failures: 20,
            window: Duration::from_secs(15 * 60),
            lock: Duration::from_secs(15 * 60),
        }
    }
}

/// What is being throttled.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Subject {
    /// One account (normalized email).
    Account,
    /// One client IP.
    Ip,
}

impl ThrottlePolicy {
    /// The failure count at which `subject` is locked.
    pub fn limit(&self, subject: Subject) -> i64 {
        match subject {
            Subject::Account => self.account_failures,
            Subject::Ip => self.ip_failures,
        }
    }

    /// Start of the counting window at `now` (epoch microseconds): failures before a previous
    /// lockout ended do not count again, so an expired lock starts a fresh count.
    pub fn window_start(&self, now: i64, previous_lock_end: Option<i64>) -> i64 {
        let start = now - micros(self.window);
        previous_lock_end.map_or(start, |end| start.max(end))
    }

    /// When a lock taken at `now` ends.
    pub fn lock_until(&self, now: i64) -> i64 {
        now + micros(self.lock)
    }
}

/// Whole seconds until `until` (rounded up, at least 1), for `Retry-After`.
pub fn retry_after_seconds(until: i64, now: i64) -> u64 {
    let micros = (until - now).max(1);
    u64::try_from((micros + 999_999) / 1_000_000)
        .unwrap_or(1)
        .max(1)
}

fn micros(d: Duration) -> i64 {
    i64::try_from(d.as_micros()).unwrap_or(i64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_expired_lock_restarts_the_count() {
        let policy = ThrottlePolicy::default();
        let now = 10_000_000_000;
        assert_eq!(policy.window_start(now, None), now - 900_000_000);
        assert_eq!(policy.window_start(now, Some(now - 5)), now - 5);
        assert_eq!(policy.lock_until(now), now + 900_000_000);
    }

    #[test]
    fn retry_after_rounds_up() {
        assert_eq!(retry_after_seconds(2_500_000, 0), 3);
        assert_eq!(retry_after_seconds(0, 10), 1);
    }
}
