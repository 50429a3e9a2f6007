//! Keeping webhook requests away from addresses they must not reach.
//!
//! Endpoint URLs are typed in by tenants, so without a guard a webhook is a way to make the bridge
//! send requests into its own network: the cloud metadata service, the admin port on localhost, the
//! database next door. Every address a request could connect to is vetted here: IP-literal hosts by
//! [`check_url`], names by [`GuardedResolver`], which drops refused addresses from the DNS answer
//! before the connector sees them. The connection then goes to a vetted address, so a name that
//! resolves differently on a second lookup (DNS rebinding) cannot slip past.
//!
//! Embedded IPv4 addresses (IPv4-mapped and -compatible IPv6, 6to4, NAT64) are judged as the IPv4
//! address they reach, so `::ffff:127.0.0.1` is loopback.
//!
//! The bridge's own listening socket is refused whatever the lists say: a webhook to itself would
//! let a token holder make the bridge call its own API and read the answer in the attempt log.
//! That rule depends on the port, which a reqwest resolver never sees, so the
//! [`DeliveryClient`](crate::client::DeliveryClient) sends URLs at a listening port through a
//! resolver made for that port ([`GuardedResolver::for_port`]).

use std::fmt;
use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::Arc;

use ipnet::IpNet;
use reqwest::Url;
use reqwest::dns::{Addrs, Name, Resolve, Resolving};

/// Which special-purpose addresses webhook requests may reach.
///
/// The default refuses every address that is not globally routable. `allow_private` opens the
/// private networks an on-site ERP lives on (RFC 1918, CGNAT, IPv6 unique-local); it does not open
/// loopback, link-local or metadata addresses: services on the bridge's own host are not an ERP's
/// place, and their answers would be readable through the attempt log. `allow_list` opens exactly
/// the networks listed, whatever they contain, including the ones `allow_private` keeps closed;
/// it is the only way to open loopback. `own_listeners` are refused whatever the lists say.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AddressPolicy {
    /// Allow RFC 1918, CGNAT and IPv6 unique-local addresses.
    pub allow_private: bool,
    /// Networks allowed regardless of what they are.
    pub allow_list: Vec<IpNet>,
    /// The bridge's own listening sockets, refused even when allow-listed. An unspecified address
    /// (`0.0.0.0`, `::`) stands for every address of this host at that port.
    pub own_listeners: Vec<SocketAddr>,
}

/// An address the policy refuses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("address {ip} is not allowed for webhooks: {reason}")]
pub struct BlockedAddress {
    /// The address as given (before unwrapping an embedded IPv4 address).
    pub ip: IpAddr,
    /// What kind of address it is.
    pub reason: BlockReason,
}

/// The kinds of special-purpose address a webhook may not reach.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum BlockReason {
    /// `0.0.0.0/8`, `::`. Connecting to 0.0.0.0 reaches the local host on Linux.
    Unspecified,
    /// `127.0.0.0/8`, `::1`.
    Loopback,
    /// RFC 1918 (`10/8`, `172.16/12`, `192.168/16`) and the local-use NAT64 prefix `64:ff9b:1::/48`.
    Private,
    /// `100.64.0.0/10`, carrier-grade NAT: private to the provider's network.
    SharedAddressSpace,
    /// `fc00::/7` unique-local and the deprecated site-local `fec0::/10`.
    UniqueLocal,
    /// `169.254.0.0/16`, `fe80::/10`. Refused even with `allow_private`: IPv4 link-local is where
    /// cloud metadata and container credential services answer, and no ERP is reached there.
    LinkLocal,
    /// Cloud instance metadata services (AWS, GCP, Azure, Alibaba; ECS/EKS credential endpoints).
    Metadata,
    /// `224.0.0.0/4`, `ff00::/8`.
    Multicast,
    /// `255.255.255.255`.
    Broadcast,
    /// `192.0.2/24`, `198.51.100/24`, `203.0.113/24`, `2001:db8::/32`, `3fff::/20`.
    Documentation,
    /// `198.18.0.0/15`, `2001:2::/48`.
    Benchmarking,
    /// Everything else that is not globally routable: class E `240/4`, IETF protocol assignments
    /// (`192.0.0/24`, `2001::/23` including Teredo), the old 6to4 relay anycast, IPv6 discard-only
    /// `100::/64`, and any IPv6 address outside global unicast `2000::/3`.
    Reserved,
    /// The bridge's own listening socket (see [`AddressPolicy::own_listeners`]).
    OwnListener,
}

impl BlockReason {
    /// Whether `allow_private` opens this kind of address. Not loopback: a service on the
    /// bridge's host opens only through the allow list.
    pub fn is_private_network(self) -> bool {
        matches!(self, Self::Private | Self::SharedAddressSpace | Self::UniqueLocal)
    }
}

impl fmt::Display for BlockReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Unspecified => "unspecified address",
            Self::Loopback => "loopback address",
            Self::Private => "private network address",
            Self::SharedAddressSpace => "carrier-grade NAT address",
            Self::UniqueLocal => "IPv6 unique-local address",
            Self::LinkLocal => "link-local address",
            Self::Metadata => "cloud metadata service address",
            Self::Multicast => "multicast address",
            Self::Broadcast => "broadcast address",
            Self::Documentation => "documentation address",
            Self::Benchmarking => "benchmarking address",
            Self::Reserved => "reserved address",
            Self::OwnListener => "the bridge's own listening address",
        })
    }
}

impl AddressPolicy {
    /// Whether a request may connect to `ip`.
    pub fn check(&self, ip: IpAddr) -> Result<(), BlockedAddress> {
        let canonical = canonical_ip(ip);
        if self.allow_list.iter().any(|net| net.contains(&ip) || net.contains(&canonical)) {
            return Ok(());
        }
        match special_purpose(canonical) {
            None => Ok(()),
            Some(reason) if self.allow_private && reason.is_private_network() => Ok(()),
            Some(reason) => Err(BlockedAddress { ip, reason }),
        }
    }

    /// Whether a request may connect to `addr`: [`check`](Self::check) of its address, and never
    /// one of the bridge's own listening sockets.
    pub fn check_socket(&self, addr: SocketAddr) -> Result<(), BlockedAddress> {
        if self.is_own_listener(addr) {
            return Err(BlockedAddress { ip: addr.ip(), reason: BlockReason::OwnListener });
        }
        self.check(addr.ip())
    }

    /// Whether a connection to `addr` would reach one of `own_listeners`.
    fn is_own_listener(&self, addr: SocketAddr) -> bool {
        let target = canonical_ip(addr.ip());
        self.own_listeners.iter().filter(|own| own.port() == addr.port()).any(|own| {
            let own_ip = canonical_ip(own.ip());
            if own_ip.is_unspecified() { is_local_address(target) } else { own_ip == target }
        })
    }

    /// The addresses of a DNS answer the policy allows, in their original order; an error if none.
    /// Each address is checked with its port ([`check_socket`](Self::check_socket)).
    pub fn vet_resolved(
        &self,
        host: &str,
        resolved: impl IntoIterator<Item = SocketAddr>,
    ) -> Result<Vec<SocketAddr>, ResolveError> {
        let mut allowed = Vec::new();
        let mut blocked = Vec::new();
        for addr in resolved {
            match self.check_socket(addr) {
                Ok(()) => allowed.push(addr),
                Err(refused) => blocked.push(refused),
            }
        }
        match (allowed.is_empty(), blocked.is_empty()) {
            (false, _) => Ok(allowed),
            (true, true) => Err(ResolveError::NoAddresses { host: host.to_owned() }),
            (true, false) => Err(ResolveError::Blocked { host: host.to_owned(), blocked }),
        }
    }
}

/// Whether `ip` belongs to this host, where a listener on the unspecified address answers:
/// loopback, or an address a socket can be bound to (binding succeeds only on the host's own
/// addresses, so no interface list is needed). Should the host allow binding non-local addresses
/// (`ip_nonlocal_bind`), more addresses count as local, which only refuses more.
fn is_local_address(ip: IpAddr) -> bool {
    ip.is_loopback() || std::net::UdpSocket::bind(SocketAddr::new(ip, 0)).is_ok()
}

/// The address a connection to `ip` really reaches: the embedded IPv4 address of IPv4-mapped
/// (`::ffff:a.b.c.d`), IPv4-compatible (`::a.b.c.d`, except `::` and `::1`), 6to4
/// (`2002:aabb:ccdd::/48`) and well-known NAT64 (`64:ff9b::a.b.c.d`) addresses; `ip` otherwise.
pub fn canonical_ip(ip: IpAddr) -> IpAddr {
    let IpAddr::V6(v6) = ip else { return ip };
    let bits = u128::from(v6);
    let low32 = Ipv4Addr::from(bits as u32);
    if bits >> 32 == 0xffff || (bits >> 32 == 0 && bits > 1) || bits >> 32 == 0x0064_ff9b_0000_0000_0000_0000 {
        return IpAddr::V4(low32);
    }
    if bits >> 112 == 0x2002 {
        return IpAddr::V4(Ipv4Addr::from((bits >> 80) as u32));
    }
    ip
}

/// What kind of special-purpose address `ip` is, or `None` for a globally routable one. `ip` must
/// already be canonical (see [`canonical_ip`]).
fn special_purpose(ip: IpAddr) -> Option<BlockReason> {
    match ip {
        IpAddr::V4(v4) => special_purpose_v4(v4),
        IpAddr::V6(v6) => special_purpose_v6(v6),
    }
}

/// Metadata services live at single addresses inside ranges that are otherwise link-local or
/// CGNAT, so they are matched first.
const METADATA_V4: [Ipv4Addr; 4] = [
    // AWS, GCP, Azure, Oracle, DigitalOcean, OpenStack instance metadata.
    Ipv4Addr::new(169, 254, 169, 254),
    // AWS ECS task metadata and credentials.
    Ipv4Addr::new(169, 254, 170, 2),
    // AWS EKS pod identity agent.
    Ipv4Addr::new(169, 254, 170, 23),
    // Alibaba Cloud instance metadata, inside CGNAT space that `allow_private` would open.
    Ipv4Addr::new(100, 100, 100, 200),
];
const METADATA_V6: [Ipv6Addr; 2] = [
    // AWS instance metadata over IPv6, inside unique-local space that `allow_private` would open.
    Ipv6Addr::new(0xfd00, 0x0ec2, 0, 0, 0, 0, 0, 0x0254),
    // AWS EKS pod identity agent over IPv6.
    Ipv6Addr::new(0xfd00, 0x0ec2, 0, 0, 0, 0, 0, 0x0023),
];

fn special_purpose_v4(ip: Ipv4Addr) -> Option<BlockReason> {
    if METADATA_V4.contains(&ip) {
        return Some(BlockReason::Metadata);
    }
    let [a, b, c, _] = ip.octets();
    let reason = match (a, b, c) {
        (0, _, _) => BlockReason::Unspecified,
        (10, _, _) | (172, 16..=31, _) | (192, 168, _) => BlockReason::Private,
        (100, 64..=127, _) => BlockReason::SharedAddressSpace,
        (127, _, _) => BlockReason::Loopback,
        (169, 254, _) => BlockReason::LinkLocal,
        (192, 0, 2) | (198, 51, 100) | (203, 0, 113) => BlockReason::Documentation,
        (192, 0, 0) | (192, 88, 99) => BlockReason::Reserved,
        (198, 18..=19, _) => BlockReason::Benchmarking,
        (224..=239, _, _) => BlockReason::Multicast,
        _ if ip == Ipv4Addr::BROADCAST => BlockReason::Broadcast,
        (240..=255, _, _) => BlockReason::Reserved,
        _ => return None,
    };
    Some(reason)
}

fn special_purpose_v6(ip: Ipv6Addr) -> Option<BlockReason> {
    if METADATA_V6.contains(&ip) {
        return Some(BlockReason::Metadata);
    }
    let segments = ip.segments();
    let in_net = |prefix: u128, len: u32| u128::from(ip) >> (128 - len) == prefix >> (128 - len);
    let reason = if ip.is_unspecified() {
        BlockReason::Unspecified
    } else if ip.is_loopback() {
        BlockReason::Loopback
    } else if segments[0] & 0xff00 == 0xff00 {
        BlockReason::Multicast
    } else if segments[0] & 0xffc0 == 0xfe80 {
        BlockReason::LinkLocal
    } else if segments[0] & 0xfe00 == 0xfc00 || segments[0] & 0xffc0 == 0xfec0 {
        BlockReason::UniqueLocal
    } else if in_net(0x0064_ff9b_0001 << 80, 48) {
        BlockReason::Private
    } else if in_net(0x2001_0db8 << 96, 32) || in_net(0x3fff << 112, 20) {
        BlockReason::Documentation
    } else if in_net(0x2001_0002 << 96, 48) {
        BlockReason::Benchmarking
    } else if in_net(0x2001 << 112, 23) || segments[0] & 0xe000 != 0x2000 {
        // Outside 2000::/3 there is no global unicast, which also covers 100::/64 discard-only.
        BlockReason::Reserved
    } else {
        return None;
    };
    Some(reason)
}

/// Why an endpoint URL cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum UrlError {
    /// Only `http` and `https` are sent to.
    #[error("unsupported URL scheme `{0}`; webhooks use http or https")]
    UnsupportedScheme(String),
    /// The URL has no host to connect to.
    #[error("URL has no host")]
    MissingHost,
    /// The host is an IP address the policy refuses.
    #[error(transparent)]
    Blocked(#[from] BlockedAddress),
}

/// What `localhost` and `*.localhost` stand for (RFC 6761: always the loopback interface).
const LOCALHOST: [IpAddr; 2] = [IpAddr::V4(Ipv4Addr::LOCALHOST), IpAddr::V6(Ipv6Addr::LOCALHOST)];

/// Checks what can be checked without DNS: the scheme, and the address and port when the host is
/// an IP literal (the resolver never sees those) or a `localhost` name (loopback by definition,
/// so refused when neither loopback address is open). Other names are vetted by
/// [`GuardedResolver`] at connect time.
pub fn check_url(url: &Url, policy: &AddressPolicy) -> Result<(), UrlError> {
    if !matches!(url.scheme(), "http" | "https") {
        return Err(UrlError::UnsupportedScheme(url.scheme().to_owned()));
    }
    let host = url.host_str().filter(|host| !host.is_empty()).ok_or(UrlError::MissingHost)?;
    // Both schemes have a default port, so this is the port the connection would use.
    let port = url.port_or_known_default().unwrap_or(0);
    // The URL parser normalises every IPv4 spelling (`0x7f.1`, `2130706433`) to dotted decimal and
    // brackets IPv6, so a literal is recognised here whatever form the tenant typed.
    let literal = host.strip_prefix('[').and_then(|inner| inner.strip_suffix(']')).unwrap_or(host);
    if let Ok(ip) = literal.parse::<IpAddr>() {
        policy.check_socket(SocketAddr::new(ip, port))?;
    } else if is_localhost_name(host) {
        // Allowed when either loopback address is: the resolver then keeps only that one.
        if let [Err(refused), Err(_)] = LOCALHOST.map(|ip| policy.check_socket(SocketAddr::new(ip, port))) {
            return Err(refused.into());
        }
    }
    Ok(())
}

/// `localhost`, `*.localhost`, with or without the root's trailing dot (the URL parser lowercases).
fn is_localhost_name(host: &str) -> bool {
    let host = host.strip_suffix('.').unwrap_or(host);
    host == "localhost" || host.ends_with(".localhost")
}

/// Why a host name gave no address to connect to.
#[derive(Debug, thiserror::Error)]
pub enum ResolveError {
    /// The lookup itself failed (no such name, resolver unreachable).
    #[error("cannot resolve {host}: {source}")]
    Lookup {
        /// The name looked up.
        host: String,
        /// The resolver's error.
        #[source]
        source: io::Error,
    },
    /// The lookup succeeded with an empty answer.
    #[error("{host} resolves to no address")]
    NoAddresses {
        /// The name looked up.
        host: String,
    },
    /// Every address in the answer is refused by the policy.
    #[error("{host} resolves only to addresses not allowed for webhooks ({})", list_blocked(.blocked))]
    Blocked {
        /// The name looked up.
        host: String,
        /// Each refused address with its reason; never empty.
        blocked: Vec<BlockedAddress>,
    },
}

fn list_blocked(blocked: &[BlockedAddress]) -> String {
    let entries: Vec<String> = blocked.iter().map(|refused| format!("{}: {}", refused.ip, refused.reason)).collect();
    entries.join(", ")
}

/// A DNS resolver for reqwest that resolves with the system resolver (`getaddrinfo` on tokio's
/// blocking pool) and returns only the addresses the policy allows.
///
/// reqwest hands a resolver the host name only, never the port, so the own-listener rule needs a
/// resolver that knows which port its connections go to: [`for_port`](Self::for_port).
#[derive(Debug, Clone)]
pub struct GuardedResolver {
    policy: Arc<AddressPolicy>,
    /// The port every connection through this resolver goes to, when known.
    port: Option<u16>,
}

impl GuardedResolver {
    /// A resolver enforcing `policy` on addresses. It does not know the port, so it cannot tell
    /// the bridge's own listener: use it only for connections to a port where the bridge does
    /// not listen.
    pub fn new(policy: Arc<AddressPolicy>) -> Self {
        Self { policy, port: None }
    }

    /// A resolver for connections to `port` only, refusing the bridge's own listener there too.
    pub fn for_port(policy: Arc<AddressPolicy>, port: u16) -> Self {
        Self { policy, port: Some(port) }
    }

    /// The allowed addresses of `host`, with port 0 (the connector fills in the URL's port).
    pub async fn resolve_host(&self, host: &str) -> Result<Vec<SocketAddr>, ResolveError> {
        let resolved = tokio::net::lookup_host((host, self.port.unwrap_or(0)))
            .await
            .map_err(|source| ResolveError::Lookup { host: host.to_owned(), source })?;
        let vetted = self.policy.vet_resolved(host, resolved)?;
        Ok(vetted.into_iter().map(|addr| SocketAddr::new(addr.ip(), 0)).collect())
    }
}

impl Resolve for GuardedResolver {
    fn resolve(&self, name: Name) -> Resolving {
        let resolver = self.clone();
        Box::pin(async move {
            let addrs = resolver.resolve_host(name.as_str()).await?;
            Ok(Box::new(addrs.into_iter()) as Addrs)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use BlockReason::*;

    fn ip(text: &str) -> IpAddr {
        text.parse().unwrap_or_else(|_| panic!("bad test address {text}"))
    }

    fn net(text: &str) -> IpNet {
        text.parse().unwrap_or_else(|_| panic!("bad test network {text}"))
    }

    fn strict() -> AddressPolicy {
        AddressPolicy::default()
    }

    fn on_site() -> AddressPolicy {
        AddressPolicy { allow_private: true, ..AddressPolicy::default() }
    }

    /// Loopback opened through the allow list, the only way to open it.
    fn loopback_listed(own_listeners: &[&str]) -> AddressPolicy {
        AddressPolicy {
            allow_private: true,
            allow_list: vec![net("127.0.0.0/8"), net("::1/128")],
            own_listeners: own_listeners.iter().map(|text| sock(text)).collect(),
        }
    }

    fn sock(text: &str) -> SocketAddr {
        text.parse().unwrap_or_else(|_| panic!("bad test socket address {text}"))
    }

    /// Every address with what it is; `None` for globally routable ones.
    #[rustfmt::skip]
    const CLASSIFIED: &[(&str, Option<BlockReason>)] = &[
        // IPv4 global.
        ("8.8.8.8", None), ("1.1.1.1", None), ("93.184.216.34", None), ("9.255.255.255", None),
        ("11.0.0.0", None), ("100.63.255.255", None), ("100.128.0.0", None), ("126.255.255.255", None),
        ("128.0.0.0", None), ("169.253.255.255", None), ("169.255.0.0", None), ("172.15.255.255", None),
        ("172.32.0.0", None), ("191.255.255.255", None), ("192.0.1.255", None), ("192.0.3.0", None),
        ("192.88.98.255", None), ("192.88.100.0", None), ("192.167.255.255", None), ("192.169.0.0", None),
        ("198.17.255.255", None), ("198.20.0.0", None), ("198.51.99.255", None), ("198.51.101.0", None),
        ("203.0.112.255", None), ("203.0.114.0", None), ("223.255.255.255", None),
        // IPv4 special.
        ("0.0.0.0", Some(Unspecified)), ("0.1.2.3", Some(Unspecified)), ("0.255.255.255", Some(Unspecified)),
        ("10.0.0.0", Some(Private)), ("10.255.255.255", Some(Private)),
        ("172.16.0.1", Some(Private)), ("172.31.255.255", Some(Private)),
        ("192.168.0.1", Some(Private)), ("192.168.255.255", Some(Private)),
        ("100.64.0.0", Some(SharedAddressSpace)), ("100.127.255.255", Some(SharedAddressSpace)),
        ("127.0.0.1", Some(Loopback)), ("127.255.255.254", Some(Loopback)),
        ("169.254.0.1", Some(LinkLocal)), ("169.254.255.255", Some(LinkLocal)),
        ("169.254.169.254", Some(Metadata)), ("169.254.170.2", Some(Metadata)), ("169.254.170.23", Some(Metadata)),
        ("100.100.100.200", Some(Metadata)),
        ("192.0.0.0", Some(Reserved)), ("192.0.0.170", Some(Reserved)), ("192.88.99.1", Some(Reserved)),
        ("192.0.2.1", Some(Documentation)), ("198.51.100.7", Some(Documentation)), ("203.0.113.255", Some(Documentation)),
        ("198.18.0.0", Some(Benchmarking)), ("198.19.255.255", Some(Benchmarking)),
        ("224.0.0.1", Some(Multicast)), ("239.255.255.250", Some(Multicast)),
        ("240.0.0.1", Some(Reserved)), ("254.255.255.255", Some(Reserved)), ("255.255.255.254", Some(Reserved)),
        ("255.255.255.255", Some(Broadcast)),
        // IPv6 global.
        ("2606:4700:4700::1111", None), ("2a00:1450:4001::200e", None), ("2001:200::1", None),
        ("2001:db7:ffff::1", None), ("2001:db9::1", None), ("2001:3::1", Some(Reserved)), ("2001:1ff::1", Some(Reserved)),
        ("2001:2:1::1", Some(Reserved)), ("3ffe:ffff::1", None), ("3fff:1000::1", None), ("2002::1", Some(Unspecified)),
        // IPv6 special.
        ("::", Some(Unspecified)), ("::1", Some(Loopback)),
        ("ff02::1", Some(Multicast)), ("ff0e::1", Some(Multicast)),
        ("fe80::1", Some(LinkLocal)), ("febf:ffff::1", Some(LinkLocal)),
        ("fc00::1", Some(UniqueLocal)), ("fdff:ffff::1", Some(UniqueLocal)), ("fec0::1", Some(UniqueLocal)),
        ("fd00:ec2::254", Some(Metadata)), ("fd00:ec2::23", Some(Metadata)), ("fd00:ec2::255", Some(UniqueLocal)),
        ("64:ff9b:1::a00:1", Some(Private)),
        ("2001:db8::1", Some(Documentation)), ("3fff::1", Some(Documentation)), ("3fff:fff::1", Some(Documentation)),
        ("2001:2::1", Some(Benchmarking)),
        ("2001::1", Some(Reserved)), ("2001:0:4136:e378:8000:63bf:3fff:fdd2", Some(Reserved)),
        ("100::1", Some(Reserved)), ("5f00::1", Some(Reserved)), ("4000::1", Some(Reserved)),
        ("1::1", Some(Reserved)), ("e000::1", Some(Reserved)), ("::ffff:0:a00:1", Some(Reserved)),
        // Embedded IPv4: judged as the address they reach.
        ("::ffff:8.8.8.8", None), ("::ffff:127.0.0.1", Some(Loopback)), ("::ffff:10.1.2.3", Some(Private)),
        ("::ffff:169.254.169.254", Some(Metadata)), ("::ffff:0.0.0.0", Some(Unspecified)),
        ("::8.8.8.8", None), ("::127.0.0.1", Some(Loopback)), ("::0.0.0.2", Some(Unspecified)),
        ("::192.168.1.1", Some(Private)),
        ("64:ff9b::8.8.8.8", None), ("64:ff9b::127.0.0.1", Some(Loopback)), ("64:ff9b::a9fe:a9fe", Some(Metadata)),
        ("64:ff9b::100.64.0.1", Some(SharedAddressSpace)),
        ("2002:0808:0808::1", None), ("2002:7f00:0001::", Some(Loopback)), ("2002:a9fe:a9fe:1::2", Some(Metadata)),
        ("2002:c0a8:0101::1", Some(Private)), ("2002:e000:0001::", Some(Multicast)),
    ];

    #[test]
    fn strict_policy_table() {
        let policy = strict();
        for (text, expected) in CLASSIFIED {
            let expected = expected.map(|reason| BlockedAddress { ip: ip(text), reason });
            assert_eq!(policy.check(ip(text)).err(), expected, "{text}");
        }
    }

    #[test]
    fn allow_private_opens_private_networks_only() {
        let policy = on_site();
        for (text, reason) in CLASSIFIED {
            let allowed = reason.is_none_or(BlockReason::is_private_network);
            assert_eq!(policy.check(ip(text)).is_ok(), allowed, "{text} ({reason:?})");
        }
        // Loopback, in every spelling, is not a private network: only the allow list opens it.
        #[rustfmt::skip]
        let still_refused = [
            "169.254.169.254", "fd00:ec2::254", "100.100.100.200", "169.254.1.1", "fe80::1",
            "127.0.0.1", "127.1.2.3", "::1", "::ffff:127.0.0.1", "::127.0.0.1", "64:ff9b::127.0.0.1",
            "2002:7f00:0001::",
        ];
        for still_refused in still_refused {
            assert!(policy.check(ip(still_refused)).is_err(), "{still_refused}");
        }
        for opened in ["10.0.0.5", "172.20.1.1", "192.168.1.10", "100.64.1.1", "fd12::1"] {
            assert_eq!(policy.check(ip(opened)), Ok(()), "{opened}");
        }
    }

    #[test]
    fn allow_list_opens_exactly_its_networks() {
        let policy = AddressPolicy {
            allow_private: false,
            allow_list: vec![net("10.1.0.0/16"), net("169.254.169.254/32"), net("fd00:1234::/32"), net("2002::/16")],
            own_listeners: Vec::new(),
        };
        #[rustfmt::skip]
        let cases = [
            ("10.1.2.3", true), ("10.1.255.255", true), ("10.2.0.1", false), ("::ffff:10.1.2.3", true),
            ("64:ff9b::10.1.0.9", true), ("169.254.169.254", true), ("169.254.169.253", false),
            ("fd00:1234::1", true), ("fd00:1235::1", false), ("2002:7f00:1::", true), ("127.0.0.1", false),
            ("8.8.8.8", true),
        ];
        for (text, allowed) in cases {
            assert_eq!(policy.check(ip(text)).is_ok(), allowed, "{text}");
        }
    }

    #[test]
    fn canonical_ip_unwraps_embedded_ipv4() {
        #[rustfmt::skip]
        let cases = [
            ("::ffff:1.2.3.4", "1.2.3.4"), ("::1.2.3.4", "1.2.3.4"), ("64:ff9b::1.2.3.4", "1.2.3.4"),
            ("2002:0102:0304:5::6", "1.2.3.4"), ("::", "::"), ("::1", "::1"), ("::2", "0.0.0.2"),
            ("64:ff9b:1::1.2.3.4", "64:ff9b:1::1.2.3.4"), ("2001:db8::1", "2001:db8::1"), ("1.2.3.4", "1.2.3.4"),
        ];
        for (given, expected) in cases {
            assert_eq!(canonical_ip(ip(given)), ip(expected), "{given}");
        }
    }

    #[test]
    fn url_table() {
        let strict = strict();
        let url = |text: &str| Url::parse(text).unwrap_or_else(|_| panic!("bad test URL {text}"));
        let blocked = |text: &str, reason| Err(UrlError::Blocked(BlockedAddress { ip: ip(text), reason }));
        #[rustfmt::skip]
        let cases: Vec<(&str, Result<(), UrlError>)> = vec![
            ("https://erp.example.com/hooks", Ok(())),
            ("http://erp.example.com:8080/hooks?x=1", Ok(())),
            // Loopback by definition (RFC 6761), so judged here rather than left to the resolver.
            ("http://localhost/", blocked("127.0.0.1", Loopback)),
            ("http://api.localhost./", blocked("127.0.0.1", Loopback)),
            ("https://8.8.8.8/", Ok(())),
            ("https://[2606:4700::1111]:8443/", Ok(())),
            ("http://127.0.0.1:9000/", blocked("127.0.0.1", Loopback)),
            ("http://2130706433/", blocked("127.0.0.1", Loopback)),
            ("http://0x7f.1/", blocked("127.0.0.1", Loopback)),
            ("http://0/", blocked("0.0.0.0", Unspecified)),
            ("http://169.254.169.254/latest/meta-data/", blocked("169.254.169.254", Metadata)),
            ("http://[::1]/", blocked("::1", Loopback)),
            ("http://[::ffff:127.0.0.1]/", blocked("::ffff:127.0.0.1", Loopback)),
            ("http://[fd00:ec2::254]/", blocked("fd00:ec2::254", Metadata)),
            ("http://10.0.0.1/", blocked("10.0.0.1", Private)),
            ("ftp://erp.example.com/", Err(UrlError::UnsupportedScheme("ftp".into()))),
            ("file:///etc/passwd", Err(UrlError::UnsupportedScheme("file".into()))),
            ("gopher://127.0.0.1/", Err(UrlError::UnsupportedScheme("gopher".into()))),
            ("HTTPS://ERP.example.com/", Ok(())),
        ];
        for (text, expected) in cases {
            assert_eq!(check_url(&url(text), &strict), expected, "{text}");
        }
        assert_eq!(check_url(&url("http://10.0.0.1/"), &on_site()), Ok(()));
        assert!(check_url(&url("http://169.254.169.254/"), &on_site()).is_err());
    }

    #[test]
    fn vetting_drops_refused_addresses_and_keeps_order() {
        let sock = |text: &str| SocketAddr::new(ip(text), 0);
        let policy = strict();
        let mixed = [sock("127.0.0.1"), sock("8.8.4.4"), sock("10.0.0.1"), sock("2606:4700::1")];
        let vetted = policy.vet_resolved("rebind.example", mixed).expect("public addresses remain");
        assert_eq!(vetted, vec![sock("8.8.4.4"), sock("2606:4700::1")]);

        let only_private = [sock("127.0.0.1"), sock("169.254.169.254")];
        match policy.vet_resolved("evil.example", only_private) {
            Err(ResolveError::Blocked { host, blocked }) => {
                assert_eq!(host, "evil.example");
                let reasons: Vec<BlockReason> = blocked.iter().map(|refused| refused.reason).collect();
                assert_eq!(reasons, vec![Loopback, Metadata]);
            }
            other => panic!("expected Blocked, got {other:?}"),
        }
        assert!(matches!(policy.vet_resolved("empty.example", []), Err(ResolveError::NoAddresses { .. })));
    }

    #[tokio::test]
    async fn guarded_resolver_refuses_localhost_unless_listed() {
        for policy in [strict(), on_site()] {
            let resolver = GuardedResolver::new(Arc::new(policy));
            match resolver.resolve_host("localhost").await {
                Err(ResolveError::Blocked { blocked, .. }) => {
                    assert!(blocked.iter().all(|refused| refused.reason == Loopback), "{blocked:?}");
                }
                other => panic!("expected Blocked, got {other:?}"),
            }
        }
        let listed = GuardedResolver::new(Arc::new(loopback_listed(&[])));
        let addrs = listed.resolve_host("localhost").await.expect("localhost allowed when listed");
        assert!(!addrs.is_empty() && addrs.iter().all(|addr| addr.ip().is_loopback() && addr.port() == 0));
        let strict = GuardedResolver::new(Arc::new(strict()));
        let literal = strict.resolve_host("10.9.8.7").await;
        assert!(matches!(literal, Err(ResolveError::Blocked { .. })), "{literal:?}");
    }

    #[test]
    fn own_listener_is_refused_even_when_listed() {
        let policy = loopback_listed(&["127.0.0.1:8081"]);
        let refused = |text: &str| Err(BlockedAddress { ip: sock(text).ip(), reason: OwnListener });
        assert_eq!(policy.check_socket(sock("127.0.0.1:8081")), refused("127.0.0.1:8081"));
        assert_eq!(policy.check_socket(sock("[::ffff:127.0.0.1]:8081")), refused("[::ffff:127.0.0.1]:8081"));
        assert_eq!(policy.check_socket(sock("[64:ff9b::127.0.0.1]:8081")), refused("[64:ff9b::127.0.0.1]:8081"));
        // Another port, or another address than the one listened on, is another service.
        assert_eq!(policy.check_socket(sock("127.0.0.1:8082")), Ok(()));
        assert_eq!(policy.check_socket(sock("127.0.0.2:8081")), Ok(()));
        assert_eq!(policy.check_socket(sock("[::1]:8081")), Ok(()));
        // Not listed: still refused as what it is.
        assert_eq!(
            strict().check_socket(sock("10.0.0.1:80")),
            Err(BlockedAddress { ip: ip("10.0.0.1"), reason: Private })
        );

        // Listening on every address: each of this host's addresses at that port is the bridge.
        for everywhere in ["0.0.0.0:8081", "[::]:8081"] {
            let policy = loopback_listed(&[everywhere]);
            for local in ["127.0.0.1:8081", "127.9.9.9:8081", "[::1]:8081", "[::ffff:127.0.0.1]:8081"] {
                assert_eq!(policy.check_socket(sock(local)), refused(local), "{everywhere} {local}");
            }
            assert_eq!(policy.check_socket(sock("127.0.0.1:8080")), Ok(()), "{everywhere}");
            // Not an address of this host (documentation range, opened for the test).
            let mut remote = policy.clone();
            remote.allow_list.push(net("192.0.2.0/24"));
            assert_eq!(remote.check_socket(sock("192.0.2.7:8081")), Ok(()), "{everywhere}");
        }
    }

    #[test]
    fn urls_at_the_own_listener_are_refused() {
        let policy = loopback_listed(&["0.0.0.0:8081", "127.0.0.1:80"]);
        let url = |text: &str| Url::parse(text).unwrap_or_else(|_| panic!("bad test URL {text}"));
        let own = |text: &str| Err(UrlError::Blocked(BlockedAddress { ip: ip(text), reason: OwnListener }));
        assert_eq!(check_url(&url("http://127.0.0.1:8081/api"), &policy), own("127.0.0.1"));
        assert_eq!(check_url(&url("http://[::ffff:7f00:1]:8081/"), &policy), own("::ffff:127.0.0.1"));
        // The scheme's default port counts.
        assert_eq!(check_url(&url("http://127.0.0.1/"), &policy), own("127.0.0.1"));
        assert_eq!(check_url(&url("https://127.0.0.1/"), &policy), Ok(()));
        // `localhost` is both loopback addresses, both the bridge's here.
        assert_eq!(check_url(&url("http://localhost:8081/"), &policy), own("127.0.0.1"));
        assert_eq!(check_url(&url("http://localhost:9000/"), &policy), Ok(()));
        assert_eq!(check_url(&url("http://127.0.0.1:9000/"), &policy), Ok(()));
        // A name the resolver decides.
        assert_eq!(check_url(&url("http://erp.example.com:8081/"), &policy), Ok(()));
    }

    #[tokio::test]
    async fn port_aware_resolver_refuses_the_own_listener() {
        let policy = Arc::new(loopback_listed(&["[::]:4000"]));
        match GuardedResolver::for_port(Arc::clone(&policy), 4000).resolve_host("localhost").await {
            Err(ResolveError::Blocked { blocked, .. }) => {
                assert!(blocked.iter().all(|refused| refused.reason == OwnListener), "{blocked:?}");
            }
            other => panic!("expected Blocked, got {other:?}"),
        }
        let other_port = GuardedResolver::for_port(Arc::clone(&policy), 4001).resolve_host("localhost").await;
        let addrs = other_port.expect("another port is another service");
        assert!(!addrs.is_empty() && addrs.iter().all(|addr| addr.ip().is_loopback() && addr.port() == 0));
    }

    #[tokio::test]
    async fn guarded_resolver_reports_lookup_failures() {
        // `.invalid` never resolves (RFC 6761), with or without a network.
        let resolver = GuardedResolver::new(Arc::new(strict()));
        let result = resolver.resolve_host("no-such-host.invalid").await;
        assert!(matches!(result, Err(ResolveError::Lookup { .. })), "{result:?}");
    }
}
