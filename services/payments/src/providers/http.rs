//! What the HTTP provider adapters share: how their client is built and how a call that got
//! no answer is classified.

use std::time::Duration;

use super::ProviderError;

/// A provider client could not be built from its configuration.
#[derive(Debug, thiserror::Error)]
#[error("cannot set up the {provider} client: {message}")]
pub struct SetupError {
    provider: &'static str,
    message: String,
}

/// A client for `provider`'s API at `base_url`, and the base URL without a trailing `/`.
/// Each call gives up after `timeout`; the connect phase is bounded on its own so that a
/// connection that cannot be made is reported as one ([`ProviderError::Unreachable`], safe
/// to try another provider) rather than as a lost answer.
pub fn client(
    provider: &'static str,
    base_url: &str,
    timeout: Duration,
) -> Result<(reqwest::Client, String), SetupError> {
    let setup = |message: String| SetupError { provider, message };
    let base_url = base_url.trim_end_matches('/');
    reqwest::Url::parse(base_url)
        .map_err(|e| setup(format!("invalid base url `{base_url}`: {e}")))?;
    let client = reqwest::Client::builder()
        .timeout(timeout)
        .connect_timeout(timeout)
        // A redirect would turn a POST into a GET and lose the body: a misconfigured URL
        // should fail loudly instead.
        .redirect(reqwest::redirect::Policy::none())
        .user_agent(concat!("mercato-payments/", env!("CARGO_PKG_VERSION")))
        .build()
        .map_err(|e| setup(format!("building the http client failed: {e}")))?;
    Ok((client, base_url.to_owned()))
}

/// A call that got no answer. A failed connect (refused, DNS, TLS handshake, connect
/// timeout) happens before a byte of the request is sent, so nothing was charged:
/// `Unreachable`. Anything later (a timeout waiting for the answer, a reset) may have reached
/// the provider: `Unavailable`, and a retry with the same idempotency key must find out.
pub fn network_error(provider: &str, what: &str, error: &reqwest::Error) -> ProviderError {
    let mut message = format!("{what}: {error}");
    let mut source = std::error::Error::source(error);
    while let Some(cause) = source {
        message.push_str(": ");
        message.push_str(&cause.to_string());
        source = cause.source();
    }
    if error.is_connect() {
        ProviderError::Unreachable(format!("could not connect to {provider}: {message}"))
    } else if error.is_timeout() {
        ProviderError::Unavailable(format!("{what}: {provider} did not answer in time"))
    } else {
        ProviderError::Unavailable(format!("{provider}: {message}"))
    }
}
