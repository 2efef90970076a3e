//! A circuit breaker per upstream service: after `GATEWAY_BREAKER_FAILURES` failed requests
//! in a row (5xx, no connection, timeout) it opens and the gateway answers 503 at once for
//! `GATEWAY_BREAKER_COOLDOWN_MS`, sparing a struggling service; then one request is let
//! through (half-open): its success closes the breaker, its failure opens it again.

use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Closed {
        failures: u32,
    },
    Open {
        until: Instant,
    },
    /// A probe is out since then.
    HalfOpen {
        since: Instant,
    },
}

/// One upstream's breaker.
#[derive(Debug)]
pub(crate) struct Breaker {
    state: Mutex<State>,
    /// Whether `state` is closed with no failure counted: then a request is admitted, and a
    /// success recorded, without taking the lock (every request of a healthy upstream).
    clear: AtomicBool,
    threshold: AtomicU32,
    cooldown_ms: AtomicU64,
}

impl Default for Breaker {
    fn default() -> Self {
        Self {
            state: Mutex::new(State::Closed { failures: 0 }),
            clear: AtomicBool::new(true),
            threshold: AtomicU32::new(5),
            cooldown_ms: AtomicU64::new(5_000),
        }
    }
}

impl Breaker {
    /// Sets the failures that open it (0: never) and how long it stays open.
    pub(crate) fn configure(&self, threshold: u32, cooldown: Duration) {
        self.threshold.store(threshold, Ordering::Relaxed);
        self.cooldown_ms.store(
            u64::try_from(cooldown.as_millis()).unwrap_or(u64::MAX),
            Ordering::Relaxed,
        );
    }

    fn cooldown(&self) -> Duration {
        Duration::from_millis(self.cooldown_ms.load(Ordering::Relaxed))
    }

    /// Whether a request may go upstream now; `Err` with how long until it may.
    pub(crate) fn admit(&self) -> Result<(), Duration> {
        if self.clear.load(Ordering::Relaxed) {
            return Ok(());
        }
        let mut state = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        match *state {
            State::Closed { .. } => Ok(()),
            State::Open { until } => {
                let now = Instant::now();
                if now >= until {
                    // This request is the probe; the others wait for its outcome.
                    *state = State::HalfOpen { since: now };
                    Ok(())
                } else {
                    Err(until - now)
                }
            }
            // A probe whose caller went away never reports: after a cooldown, send another.
            State::HalfOpen { since } if since.elapsed() >= self.cooldown() => {
                *state = State::HalfOpen {
                    since: Instant::now(),
                };
                Ok(())
            }
            State::HalfOpen { .. } => Err(self.cooldown()),
        }
    }

    /// Counts the outcome of an admitted request.
    pub(crate) fn record(&self, failed: bool) {
        if !failed && self.clear.load(Ordering::Relaxed) {
            return;
        }
        let threshold = self.threshold.load(Ordering::Relaxed);
        if threshold == 0 {
            return;
        }
        let mut state = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        let open = || State::Open {
            until: Instant::now() + self.cooldown(),
        };
        *state = match (*state, failed) {
            (State::Closed { failures }, true) if failures + 1 >= threshold => {
                tracing::warn!(failures = failures + 1, "circuit opened");
                open()
            }
            (State::Closed { failures }, true) => State::Closed {
                failures: failures + 1,
            },
            (State::HalfOpen { .. }, true) => open(),
            (State::HalfOpen { .. } | State::Closed { .. }, false) => State::Closed { failures: 0 },
            (State::Open { until }, _) => State::Open { until },
        };
        // Written under the lock, so it follows the state's order of changes.
        self.clear
            .store(*state == State::Closed { failures: 0 }, Ordering::Relaxed);
    }

    /// `closed`, `open` or `half_open`, for `/metrics`.
    pub(crate) fn state_name(&self) -> &'static str {
        match *self.state.lock().unwrap_or_else(PoisonError::into_inner) {
            State::Closed { .. } => "closed",
            State::Open { until } if Instant::now() >= until => "half_open",
            State::Open { .. } => "open",
            State::HalfOpen { .. } => "half_open",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn opens_after_failures_then_half_opens_and_closes_on_success() {
        let breaker = Breaker::default();
        breaker.configure(3, Duration::from_millis(30));
        for _ in 0..2 {
            assert!(breaker.admit().is_ok());
            breaker.record(true);
        }
        breaker.record(false);
        assert_eq!(breaker.state_name(), "closed", "a success resets the count");
        for _ in 0..3 {
            breaker.record(true);
        }
        assert_eq!(breaker.state_name(), "open");
        assert!(breaker.admit().is_err());
        std::thread::sleep(Duration::from_millis(40));
        assert!(breaker.admit().is_ok(), "the probe goes through");
        assert!(breaker.admit().is_err(), "only one probe at a time");
        breaker.record(true);
        assert_eq!(
            breaker.state_name(),
            "open",
            "a failed probe opens it again"
        );
        std::thread::sleep(Duration::from_millis(40));
        assert!(breaker.admit().is_ok());
        breaker.record(false);
        assert_eq!(breaker.state_name(), "closed");
    }
}
