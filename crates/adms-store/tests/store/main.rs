//! One integration-test binary per crate: every file here is a module, so the suite links once.

mod access;
mod access_events;
mod auth;
mod commands;
mod common;
mod console;
mod cvsecurity;
mod device_events;
mod ele_levels;
mod maintenance;
mod migrate_data;
mod outbox;
mod portable;
mod roster;
mod sealed;
mod store;
mod webhook_queries;
