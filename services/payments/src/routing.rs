//! Which providers serve a payment, in which order, and which of them are healthy.
//!
//! `PAYMENTS_ROUTES` is a list of rules separated by `;`, each `condition:provider,provider…`.
//! A condition is `*`, a currency (`JPY`), `amount>=N` (minor units) or both joined by `&`
//! (`USD&amount>=100000`). The first rule that matches gives the candidates, tried in order;
//! with no rule matching, the default provider alone serves.
//!
//! Each provider has a circuit breaker: after `PAYMENTS_BREAKER_FAILURES` failures in a row
//! (unreachable, 5xx, timeouts) it opens and the provider is skipped for
//! `PAYMENTS_BREAKER_COOLDOWN_MS`; then one trial call is let through (half-open), and its
//! outcome closes or re-opens the circuit.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// One rule of the route table.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Rule {
    currency: Option<String>,
    min_amount: Option<i64>,
    providers: Vec<String>,
}

/// The parsed route table.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Routes(Vec<Rule>);

impl Routes {
    /// Parses `PAYMENTS_ROUTES`; `known` lists the configured providers, and a rule naming
    /// another one is an error rather than a silently dead route.
    pub fn parse(text: &str, known: &[&str]) -> Result<Self, String> {
        let mut rules = Vec::new();
        for raw in text.split(';').map(str::trim).filter(|r| !r.is_empty()) {
            let (condition, providers) = raw
                .split_once(':')
                .ok_or_else(|| format!("route `{raw}` has no `:`"))?;
            let mut rule = Rule {
                currency: None,
                min_amount: None,
                providers: Vec::new(),
            };
            for part in condition.split('&').map(str::trim) {
                if part == "*" {
                } else if let Some(n) = part.strip_prefix("amount>=") {
                    let n = n
                        .trim()
                        .parse()
                        .map_err(|_| format!("route `{raw}`: `{n}` is not an amount"))?;
                    rule.min_amount = Some(n);
                } else if part.len() == 3 && part.chars().all(|c| c.is_ascii_uppercase()) {
                    rule.currency = Some(part.to_owned());
                } else {
                    return Err(format!("route `{raw}`: unknown condition `{part}`"));
                }
            }
            for name in providers
                .split(',')
                .map(str::trim)
                .filter(|p| !p.is_empty())
            {
                if !known.contains(&name) {
                    return Err(format!(
                        "route `{raw}`: provider `{name}` is not configured"
                    ));
                }
                rule.providers.push(name.to_owned());
            }
            if rule.providers.is_empty() {
                return Err(format!("route `{raw}` names no provider"));
            }
            rules.push(rule);
        }
        Ok(Self(rules))
    }

    /// The providers for a payment, in the order to try them.
    pub fn candidates(&self, currency: &str, amount: i64, default: &str) -> Vec<String> {
        self.0
            .iter()
            .find(|r| {
                r.currency.as_deref().is_none_or(|c| c == currency)
                    && r.min_amount.is_none_or(|min| amount >= min)
            })
            .map_or_else(|| vec![default.to_owned()], |r| r.providers.clone())
    }
}

#[derive(Debug, Clone, Copy)]
enum Circuit {
    Closed { failures: u32 },
    Open { until: Instant },
    HalfOpen,
}

/// Circuit breakers, one per provider.
#[derive(Debug)]
pub struct Breakers {
    threshold: u32,
    cooldown: Duration,
    circuits: Mutex<HashMap<String, Circuit>>,
}

impl Breakers {
    /// Opens after `threshold` failures in a row, for `cooldown`.
    pub fn new(threshold: u32, cooldown: Duration) -> Self {
        Self {
            threshold: threshold.max(1),
            cooldown,
            circuits: Mutex::new(HashMap::new()),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Circuit>> {
        self.circuits
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Whether a call to `provider` may go out now. An open circuit past its cooldown lets
    /// exactly one trial call through.
    pub fn allow(&self, provider: &str) -> bool {
        let mut circuits = self.lock();
        let circuit = circuits
            .entry(provider.to_owned())
            .or_insert(Circuit::Closed { failures: 0 });
        match *circuit {
            Circuit::Closed { .. } => true,
            Circuit::Open { until } if Instant::now() >= until => {
                *circuit = Circuit::HalfOpen;
                true
            }
            Circuit::Open { .. } | Circuit::HalfOpen => false,
        }
    }

    /// The provider answered (a decline is an answer).
    pub fn success(&self, provider: &str) {
        self.lock()
            .insert(provider.to_owned(), Circuit::Closed { failures: 0 });
    }

    /// The provider failed to answer.
    pub fn failure(&self, provider: &str) {
        let mut circuits = self.lock();
        let circuit = circuits
            .entry(provider.to_owned())
            .or_insert(Circuit::Closed { failures: 0 });
        let open = Circuit::Open {
            until: Instant::now() + self.cooldown,
        };
        *circuit = match *circuit {
            Circuit::Closed { failures } if failures + 1 < self.threshold => Circuit::Closed {
                failures: failures + 1,
            },
            _ => open,
        };
    }

    /// `closed`, `open` or `half_open`, for health reports.
    pub fn state(&self, provider: &str) -> &'static str {
        match self.lock().get(provider) {
            None | Some(Circuit::Closed { .. }) => "closed",
            Some(Circuit::Open { .. }) => "open",
            Some(Circuit::HalfOpen) => "half_open",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_first_matching_rule_gives_the_order() {
        let routes = Routes::parse(
            "JPY:paypal,stripe; USD&amount>=100000:braintree; *:stripe,test",
            &["paypal", "stripe", "braintree", "test"],
        )
        .unwrap();
        assert_eq!(routes.candidates("JPY", 1, "test"), ["paypal", "stripe"]);
        assert_eq!(routes.candidates("USD", 100_000, "test"), ["braintree"]);
        assert_eq!(routes.candidates("USD", 99_999, "test"), ["stripe", "test"]);
        assert_eq!(Routes::default().candidates("EUR", 1, "test"), ["test"]);
    }

    #[test]
    fn bad_routes_are_refused() {
        let known = ["stripe"];
        assert!(Routes::parse("EUR:acme", &known).is_err());
        assert!(Routes::parse("EUR", &known).is_err());
        assert!(Routes::parse("eur:stripe", &known).is_err());
        assert!(Routes::parse("amount>=x:stripe", &known).is_err());
        assert!(Routes::parse("EUR:", &known).is_err());
    }

    #[test]
    fn a_circuit_opens_after_failures_and_half_opens_after_cooldown() {
        let b = Breakers::new(2, Duration::from_millis(30));
        assert!(b.allow("p"));
        b.failure("p");
        assert!(b.allow("p"), "one failure is not enough");
        b.failure("p");
        assert_eq!(b.state("p"), "open");
        assert!(!b.allow("p"));
        std::thread::sleep(Duration::from_millis(40));
        assert!(b.allow("p"), "one trial after the cooldown");
        assert!(!b.allow("p"), "only one");
        b.success("p");
        assert_eq!(b.state("p"), "closed");
        b.failure("p");
        b.failure("p");
        std::thread::sleep(Duration::from_millis(40));
        assert!(b.allow("p"));
        b.failure("p");
        assert_eq!(b.state("p"), "open", "a failed trial re-opens");
    }
}
