//! What a replica does: `device` (the `/iclock/` protocol: uploads, polls, command results,
//! with the punch writer and the device registry's activity flush), `api` (the REST APIs, the
//! operator's routes), `worker` (the background duties: webhook deliveries, presence checks,
//! command expiry, roster reconcile, session and quota purges). `all` is the three, and the
//! default; a deployment that outgrows one process scales each side on its own, on one
//! PostgreSQL database. Every replica serves `/healthz`, `/readyz` and `/metrics`.
//!
//! Each duty is safe on any number of replicas at once: the store's conditional updates report
//! a presence transition once and expire a command once, and deliveries are leased.

use std::fmt;
use std::str::FromStr;

/// The roles of this process (`--role`, `ADMS_ROLE`, `role` in the file): `all`, or a
/// comma-separated set of `device`, `api`, `worker`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Roles {
    pub device: bool,
    pub api: bool,
    pub worker: bool,
}

impl Roles {
    pub const ALL: Roles = Roles { device: true, api: true, worker: true };

    pub fn is_all(self) -> bool {
        self == Roles::ALL
    }
}

impl Default for Roles {
    fn default() -> Self {
        Roles::ALL
    }
}

/// Why a role list was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("`{0}` is not a role list: use `all`, or one or more of `device`, `api`, `worker` separated by commas")]
pub struct RolesError(String);

impl FromStr for Roles {
    type Err = RolesError;

    fn from_str(text: &str) -> Result<Roles, RolesError> {
        let mut roles = Roles { device: false, api: false, worker: false };
        for name in text.split(',').map(str::trim) {
            match name.to_ascii_lowercase().as_str() {
                "all" => roles = Roles::ALL,
                "device" => roles.device = true,
                "api" => roles.api = true,
                "worker" => roles.worker = true,
                _ => return Err(RolesError(text.to_owned())),
            }
        }
        Ok(roles)
    }
}

impl TryFrom<String> for Roles {
    type Error = RolesError;

    fn try_from(text: String) -> Result<Roles, RolesError> {
        text.parse()
    }
}

impl From<Roles> for String {
    fn from(roles: Roles) -> String {
        roles.to_string()
    }
}

impl fmt::Display for Roles {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.is_all() {
            return f.write_str("all");
        }
        let names: Vec<&str> = [(self.device, "device"), (self.api, "api"), (self.worker, "worker")]
            .into_iter()
            .filter_map(|(on, name)| on.then_some(name))
            .collect();
        f.write_str(&names.join(","))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn role_lists_parse_print_and_refuse_unknown_names() {
        assert_eq!("all".parse::<Roles>().unwrap(), Roles::ALL);
        let two: Roles = "device, API".parse().unwrap();
        assert_eq!(two, Roles { device: true, api: true, worker: false });
        assert_eq!(two.to_string(), "device,api");
        assert_eq!("worker".parse::<Roles>().unwrap().to_string(), "worker");
        assert_eq!("device,api,worker".parse::<Roles>().unwrap().to_string(), "all");
        for bad in ["", "devices", "device,,api", "web"] {
            assert!(bad.parse::<Roles>().is_err(), "{bad:?}");
        }
    }
}
