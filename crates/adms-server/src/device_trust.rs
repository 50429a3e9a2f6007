//! Which devices are trusted: the trust model's rules, applied before a serial number is
//! registered and on every device request.
//!
//! A serial number is not an identity (it is printed on the terminal and sent in clear), so a
//! new one starts `pending` unless the operator chose `auto` or configured trust rules that it
//! meets: its SN matches a pattern, its address is in a range, it presents a registration key.
//! Every rule that is set must hold. `device_networks`, when set, refuses device requests from
//! any other address before anything is stored. New registrations are limited per address, so
//! a stranger cannot fill the terminal list.

use secrecy::ExposeSecret;
use std::net::IpAddr;

use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};
use ipnet::IpNet;
use wildmatch::WildMatch;

use adms_store::Approval;

use crate::config::{Config, ConfigError, UnknownDevicePolicy, comma_list, networks};

/// The device trust rules of one server.
#[derive(Debug)]
pub struct DeviceTrust {
    policy: UnknownDevicePolicy,
    sn_patterns: Vec<WildMatch>,
    trusted_networks: Vec<IpNet>,
    /// SHA-256 of each registration key: compared digest to digest, so the comparison's timing
    /// tells nothing about the key.
    key_digests: Vec<[u8; 32]>,
    device_networks: Vec<IpNet>,
    registrations: DefaultKeyedRateLimiter<IpAddr>,
}

fn digest(key: &str) -> [u8; 32] {
    adms_store::sha256(key.as_bytes()).try_into().unwrap_or([0; 32])
}

impl DeviceTrust {
    pub fn from_config(config: &Config) -> Result<DeviceTrust, ConfigError> {
        let per_minute = config.registrations_per_minute()?;
        Ok(DeviceTrust {
            policy: config.devices.unknown,
            sn_patterns: comma_list(&config.devices.trust_sns).map(WildMatch::new).collect(),
            trusted_networks: networks("device_trust_networks", &config.devices.trust_networks)?,
            key_digests: comma_list(config.devices.trust_keys.as_ref().map_or("", ExposeSecret::expose_secret))
                .map(digest)
                .collect(),
            device_networks: networks("device_networks", &config.devices.networks)?,
            registrations: RateLimiter::keyed(Quota::per_minute(per_minute)),
        })
    }

    /// Whether device requests from `ip` are served at all.
    pub fn address_allowed(&self, ip: Option<IpAddr>) -> bool {
        self.device_networks.is_empty() || ip.is_some_and(|ip| self.device_networks.iter().any(|n| n.contains(&ip)))
    }

    /// Whether `ip` may register one more new serial number now.
    pub fn admit_registration(&self, ip: Option<IpAddr>) -> bool {
        // A request without a peer address (never over TCP) shares one budget. An IPv6 host
        // owns a whole /64, so the budget is per /64.
        let key = match ip {
            Some(IpAddr::V6(v6)) => {
                let mut octets = v6.octets();
                octets[8..].fill(0);
                IpAddr::from(octets)
            }
            Some(v4) => v4,
            None => IpAddr::from([0, 0, 0, 0]),
        };
        // Forget addresses whose budget is full again, so many addresses cannot grow the table.
        if self.registrations.len() > 10_000 {
            self.registrations.retain_recent();
        }
        self.registrations.check_key(&key).is_ok()
    }

    /// The approval a new serial number starts with.
    pub fn approval_for_new(&self, sn: &str, ip: Option<IpAddr>, query: &str) -> Approval {
        if self.policy == UnknownDevicePolicy::Auto {
            return Approval::Approved;
        }
        if self.sn_patterns.is_empty() && self.trusted_networks.is_empty() && self.key_digests.is_empty() {
            return Approval::Pending;
        }
        let sn_ok = self.sn_patterns.is_empty() || self.sn_patterns.iter().any(|p| p.matches(sn));
        let network_ok = self.trusted_networks.is_empty()
            || ip.is_some_and(|ip| self.trusted_networks.iter().any(|n| n.contains(&ip)));
        let key_ok = self.key_digests.is_empty() || {
            let presented = form_urlencoded::parse(query.as_bytes())
                .filter(|(name, _)| name.eq_ignore_ascii_case("pushcommkey") || name.eq_ignore_ascii_case("key"))
                .map(|(_, value)| digest(value.trim()))
                .collect::<Vec<_>>();
            presented.iter().any(|p| self.key_digests.contains(p))
        };
        if sn_ok && network_ok && key_ok { Approval::Approved } else { Approval::Pending }
    }

    /// Says at start what the rules let in, loudly when it is everyone.
    pub fn log_policy(&self) {
        match self.policy {
            UnknownDevicePolicy::Auto => tracing::warn!(
                "unknown_devices = \"auto\": every new serial number is approved on first contact; anyone who can \
                 reach this port can pose as a terminal. Use \"pending\" (the default) with trust rules instead."
            ),
            UnknownDevicePolicy::Pending => tracing::info!(
                sn_patterns = self.sn_patterns.len(),
                trusted_networks = self.trusted_networks.len(),
                registration_keys = self.key_digests.len(),
                "new devices wait for approval unless they meet every configured trust rule"
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn trust(f: impl FnOnce(&mut Config)) -> DeviceTrust {
        let mut config = Config::default();
        f(&mut config);
        DeviceTrust::from_config(&config).expect("valid rules")
    }

    fn ip(text: &str) -> Option<IpAddr> {
        Some(text.parse().expect("address"))
    }

    #[test]
    fn without_rules_new_devices_wait_and_auto_approves_all() {
        assert_eq!(trust(|_| {}).approval_for_new("X1", ip("10.0.0.1"), ""), Approval::Pending);
        let auto = trust(|c| c.devices.unknown = UnknownDevicePolicy::Auto);
        assert_eq!(auto.approval_for_new("X1", ip("10.0.0.1"), ""), Approval::Approved);
    }

    #[test]
    fn every_configured_rule_must_hold() {
        let rules = trust(|c| {
            c.devices.trust_sns = "CKJF*, A8N5??".into();
            c.devices.trust_networks = "10.0.5.0/24".into();
        });
        assert_eq!(rules.approval_for_new("CKJF0001", ip("10.0.5.7"), ""), Approval::Approved);
        assert_eq!(rules.approval_for_new("A8N512", ip("10.0.5.7"), ""), Approval::Approved);
        assert_eq!(rules.approval_for_new("A8N5123", ip("10.0.5.7"), ""), Approval::Pending, "? is one character");
        assert_eq!(rules.approval_for_new("CKJF0001", ip("10.0.6.7"), ""), Approval::Pending, "outside the range");
        assert_eq!(rules.approval_for_new("ROGUE", ip("10.0.5.7"), ""), Approval::Pending, "SN not listed");
        assert_eq!(rules.approval_for_new("CKJF0001", None, ""), Approval::Pending, "no address");
    }

    #[test]
    fn a_registration_key_must_be_presented_exactly() {
        let rules = trust(|c| c.devices.trust_keys = Some("s3cret-pairing, other".into()));
        assert_eq!(rules.approval_for_new("X", ip("1.2.3.4"), "SN=X&key=s3cret-pairing"), Approval::Approved);
        assert_eq!(rules.approval_for_new("X", ip("1.2.3.4"), "SN=X&pushcommkey=other"), Approval::Approved);
        assert_eq!(rules.approval_for_new("X", ip("1.2.3.4"), "SN=X&key=s3cret"), Approval::Pending);
        assert_eq!(rules.approval_for_new("X", ip("1.2.3.4"), "SN=X"), Approval::Pending);
    }

    #[test]
    fn device_networks_refuse_other_addresses() {
        let open = trust(|_| {});
        assert!(open.address_allowed(ip("203.0.113.9")));
        let closed = trust(|c| c.devices.networks = "192.168.10.0/24, 127.0.0.2".into());
        assert!(closed.address_allowed(ip("192.168.10.77")));
        assert!(closed.address_allowed(ip("127.0.0.2")));
        assert!(!closed.address_allowed(ip("127.0.0.1")));
        assert!(!closed.address_allowed(None));
    }

    #[test]
    fn registrations_are_limited_per_address() {
        let rules = trust(|c| c.devices.registrations_per_minute = 2);
        assert!(rules.admit_registration(ip("10.0.0.1")));
        assert!(rules.admit_registration(ip("10.0.0.1")));
        assert!(!rules.admit_registration(ip("10.0.0.1")), "third in the same minute");
        assert!(rules.admit_registration(ip("10.0.0.2")), "another address has its own budget");
        assert!(rules.admit_registration(ip("2001:db8::1")));
        assert!(rules.admit_registration(ip("2001:db8::2")));
        assert!(!rules.admit_registration(ip("2001:db8::3")), "one budget per /64");
        assert!(rules.admit_registration(ip("2001:db8:0:1::1")));
    }

    #[test]
    fn bad_rules_fail_the_configuration() {
        let mut config = Config::default();
        config.devices.networks = "not-a-net".into();
        assert!(DeviceTrust::from_config(&config).is_err());
        config.devices.networks = String::new();
        config.devices.registrations_per_minute = 0;
        assert!(DeviceTrust::from_config(&config).is_err());
    }
}
