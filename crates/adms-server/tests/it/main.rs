//! One integration-test binary per crate: every file here is a module, so the suite links once.

mod api_auth;
mod captures;
mod cli_ops;
mod commands;
mod common;
mod crash_recovery;
mod device_session;
mod device_trust;
mod fixture_sessions;
mod limits;
mod module_layers;
mod openapi;
mod personnel_api;
mod postgres_replicas;
mod secrets_at_rest;
mod users_scopes_audit;
mod webhook_api;
mod webhook_batches;
mod webhook_delivery;
mod webhook_events;
mod webhook_race;
mod webhook_secrets;
mod wire_snapshots;
