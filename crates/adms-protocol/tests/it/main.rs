//! One integration-test binary per crate: every file here is a module, so the suite links once.

mod no_panic;
mod round_trip;
