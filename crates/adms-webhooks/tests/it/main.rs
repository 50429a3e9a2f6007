//! One integration-test binary per crate: every file here is a module, so the suite links once.

mod delivery;
mod dispatcher;
mod standardwebhooks_compat;
