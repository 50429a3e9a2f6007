//! What both sides of the server do the same way, whoever asks: the API's routes, the device
//! routes and the background loops call these, never the store directly, for:
//!
//! - [`access`]: access levels, memberships and door control planned for and queued on access
//!   controllers through [`commands`];
//! - [`commands`]: queueing commands for devices (the store's enqueue, the default expiry, and
//!   the wake-up that makes a device's next poll read its queue);
//! - [`roster`]: roster changes planned for terminals and queued through [`commands`];
//! - [`devices`]: an operator's device settings (approval, alias, area), from the API or the console;
//! - [`webhooks`]: pausing and resuming a webhook endpoint.

pub mod access;
pub mod commands;
pub mod devices;
pub mod roster;
pub mod webhooks;
