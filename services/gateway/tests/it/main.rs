//! Gateway integration tests: one binary, one module per area.

mod balance;
mod cache;
mod edge;
mod endpoints;
mod health;
mod in_process;
mod rate_limits;
mod remote;
mod routing;
mod support;
