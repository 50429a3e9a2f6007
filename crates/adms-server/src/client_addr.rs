//! The client's address behind a reverse proxy or load balancer.
//!
//! Device trust (`[devices] networks`, registrations per address), the login throttle and the
//! stored device IP all read the client's address. Behind HAProxy or nginx the TCP peer is the
//! proxy: every terminal and every failed login would share its address. When the peer is one
//! of `[http] trusted_proxies`, the address is taken from `X-Forwarded-For` instead: walking it
//! from the right (the hop the trusted proxy added last), past the trusted proxies, the first
//! address that is not one of them is the client. A peer that is not trusted is the client
//! whatever its headers say, so nobody can claim another address by sending the header.

use std::net::{IpAddr, SocketAddr};

use axum::http::HeaderMap;
use ipnet::IpNet;

/// The proxies whose `X-Forwarded-For` is believed.
#[derive(Debug, Clone, Default)]
pub struct TrustedProxies(Vec<IpNet>);

impl TrustedProxies {
    pub fn new(networks: Vec<IpNet>) -> TrustedProxies {
        TrustedProxies(networks)
    }

    fn trusts(&self, ip: IpAddr) -> bool {
        self.0.iter().any(|net| net.contains(&ip))
    }

    /// The client's address of a request from `peer` with `headers` (the port is the peer's:
    /// the client's own is not known).
    pub fn client(&self, peer: SocketAddr, headers: &HeaderMap) -> SocketAddr {
        if !self.trusts(peer.ip()) {
            return peer;
        }
        let mut client = peer.ip();
        // Several headers are one list, in order.
        let hops = headers
            .get_all("x-forwarded-for")
            .iter()
            .filter_map(|value| value.to_str().ok())
            .flat_map(|value| value.split(','))
            .collect::<Vec<_>>();
        for hop in hops.iter().rev() {
            match parse_hop(hop) {
                Some(ip) => {
                    client = ip;
                    if !self.trusts(ip) {
                        break;
                    }
                }
                // Garbage in the chain: nothing left of it can be believed.
                None => break,
            }
        }
        SocketAddr::new(client, peer.port())
    }
}

/// One `X-Forwarded-For` entry: an address, possibly `[v6]` or with a port (nginx and HAProxy
/// send bare addresses; others add ports).
fn parse_hop(hop: &str) -> Option<IpAddr> {
    let hop = hop.trim();
    hop.parse::<IpAddr>()
        .ok()
        .or_else(|| hop.parse::<SocketAddr>().ok().map(|a| a.ip()))
        .or_else(|| hop.strip_prefix('[').and_then(|rest| rest.strip_suffix(']')).and_then(|v6| v6.parse().ok()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(values: &[&str]) -> HeaderMap {
        let mut headers = HeaderMap::new();
        for value in values {
            headers.append("x-forwarded-for", value.parse().unwrap());
        }
        headers
    }

    fn proxies(list: &[&str]) -> TrustedProxies {
        TrustedProxies::new(list.iter().map(|n| n.parse().unwrap()).collect())
    }

    #[test]
    fn a_trusted_proxy_names_the_client_and_an_untrusted_peer_is_the_client() {
        let peer: SocketAddr = "10.0.0.2:5000".parse().unwrap();
        let proxy = proxies(&["10.0.0.0/24"]);
        let client = |values: &[&str]| proxy.client(peer, &headers(values)).ip().to_string();
        assert_eq!(client(&["192.168.1.50"]), "192.168.1.50");
        // A forged entry left of the real client is not believed.
        assert_eq!(client(&["1.2.3.4, 192.168.1.50"]), "192.168.1.50");
        // Two trusted hops (a balancer in front of the proxy), across two headers.
        assert_eq!(client(&["192.168.1.50, 10.0.0.7", "10.0.0.9"]), "192.168.1.50");
        assert_eq!(client(&["[2001:db8::1]:4711"]), "2001:db8::1");
        assert_eq!(client(&["192.168.1.50:4711"]), "192.168.1.50");
        // No header, or nothing usable: the proxy itself.
        assert_eq!(client(&[]), "10.0.0.2");
        assert_eq!(client(&["unknown"]), "10.0.0.2");
        // The peer is not a trusted proxy: its header is ignored.
        let stranger: SocketAddr = "203.0.113.9:6000".parse().unwrap();
        assert_eq!(proxy.client(stranger, &headers(&["192.168.1.50"])), stranger);
        // Nothing trusted (the default): the peer, always.
        assert_eq!(TrustedProxies::default().client(peer, &headers(&["192.168.1.50"])), peer);
    }
}
