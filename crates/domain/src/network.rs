//! Who a request comes from: the client's address, which every limit counts under. Behind a
//! load balancer the socket's peer is the balancer; only a peer the merchant trusts may say
//! whom it forwards (`X-Forwarded-For`, `Forwarded: for=`), or anybody could name any address
//! and escape every limit.

use std::fmt;
use std::net::IpAddr;
use std::str::FromStr;

use serde::Deserialize;

/// The address a request is counted under, as [`client_address`] decided it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ClientAddress(pub IpAddr);

impl ClientAddress {
    /// What limits count this client under: its address, or for IPv6 its /64 network, which
    /// one subscriber holds whole (counting each of its addresses apart would let one client
    /// be billions).
    pub fn counted_as(self) -> String {
        match self.0.to_canonical() {
            IpAddr::V6(v6) => format!("{}/64", std::net::Ipv6Addr::from(u128::from(v6) & (u128::MAX << 64))),
            v4 => v4.to_string(),
        }
    }
}

/// A block of addresses: `10.0.0.0/8`, `2001:db8::/32`, or one address alone.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cidr {
    network: IpAddr,
    prefix: u8,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0:?} is not an address or a block of addresses such as 10.0.0.0/8")]
pub struct BadCidr(String);

impl FromStr for Cidr {
    type Err = BadCidr;

    fn from_str(text: &str) -> Result<Cidr, BadCidr> {
        let bad = || BadCidr(text.to_owned());
        let (address, prefix) = text
            .trim()
            .split_once('/')
            .map_or((text.trim(), None), |(a, p)| (a, Some(p)));
        let network = IpAddr::from_str(address).map_err(|_| bad())?.to_canonical();
        let bits = if network.is_ipv4() { 32 } else { 128 };
        let prefix = match prefix {
            None => bits,
            Some(p) => p.parse().ok().filter(|p| *p <= bits).ok_or_else(bad)?,
        };
        Ok(Cidr { network, prefix })
    }
}

impl fmt::Display for Cidr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.network, self.prefix)
    }
}

impl Cidr {
    pub fn contains(&self, address: IpAddr) -> bool {
        match (self.network, address.to_canonical()) {
            (IpAddr::V4(network), IpAddr::V4(address)) => {
                let mask = u32::MAX.checked_shl(32 - u32::from(self.prefix)).unwrap_or(0);
                u32::from(network) & mask == u32::from(address) & mask
            }
            (IpAddr::V6(network), IpAddr::V6(address)) => {
                let mask = u128::MAX.checked_shl(128 - u32::from(self.prefix)).unwrap_or(0);
                u128::from(network) & mask == u128::from(address) & mask
            }
            _ => false,
        }
    }
}

/// The proxies whose word on the client's address is taken; none by default.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(try_from = "ProxyList")]
pub struct TrustedProxies(Vec<Cidr>);

/// A list as written in a configuration file: `"10.0.0.0/8, ::1"` or `["10.0.0.0/8", "::1"]`.
#[derive(Deserialize)]
#[serde(untagged)]
enum ProxyList {
    Text(String),
    List(Vec<String>),
}

impl TryFrom<ProxyList> for TrustedProxies {
    type Error = BadCidr;

    fn try_from(list: ProxyList) -> Result<TrustedProxies, BadCidr> {
        match list {
            ProxyList::Text(text) => text.parse(),
            ProxyList::List(items) => items
                .iter()
                .map(|item| item.parse())
                .collect::<Result<_, _>>()
                .map(TrustedProxies),
        }
    }
}

impl FromStr for TrustedProxies {
    type Err = BadCidr;

    /// Comma-separated blocks: `10.0.0.0/8,127.0.0.1`.
    fn from_str(text: &str) -> Result<TrustedProxies, BadCidr> {
        text.split(',')
            .filter(|item| !item.trim().is_empty())
            .map(str::parse)
            .collect::<Result<_, _>>()
            .map(TrustedProxies)
    }
}

impl TrustedProxies {
    pub fn trusts(&self, address: IpAddr) -> bool {
        self.0.iter().any(|cidr| cidr.contains(address))
    }
}

/// The client a request comes from. The socket's `peer` unless it is a trusted proxy; then
/// the chain it forwards is read from the right (each proxy appends whom it heard from) and
/// the first address that is not itself a trusted proxy is the client. `X-Forwarded-For` (what
/// nearly every proxy writes) is read, or `Forwarded: for=` when there is none. An entry that
/// is no address (`unknown`, an obfuscated name) ends the walk at the proxy that wrote it.
pub fn client_address(peer: IpAddr, forwarded_for: &[&str], forwarded: &[&str], trusted: &TrustedProxies) -> IpAddr {
    let mut client = peer.to_canonical();
    if !trusted.trusts(client) {
        return client;
    }
    let chain: Vec<&str> = if forwarded_for.is_empty() {
        forwarded
            .iter()
            .flat_map(|line| line.split(','))
            .filter_map(forwarded_for_parameter)
            .collect()
    } else {
        forwarded_for.iter().flat_map(|line| line.split(',')).collect()
    };
    for entry in chain.iter().rev() {
        let Some(address) = parse_node(entry) else {
            return client;
        };
        client = address;
        if !trusted.trusts(address) {
            return client;
        }
    }
    client
}

/// The `for=` of one element of a `Forwarded` header (`for=192.0.2.60;proto=http`).
fn forwarded_for_parameter(element: &str) -> Option<&str> {
    element.split(';').find_map(|pair| {
        let (name, value) = pair.split_once('=')?;
        name.trim().eq_ignore_ascii_case("for").then_some(value)
    })
}

/// An address as proxies write it: `192.0.2.60`, `192.0.2.60:4711`, `"[2001:db8::1]:4711"`,
/// `2001:db8::1`.
fn parse_node(text: &str) -> Option<IpAddr> {
    let text = text.trim().trim_matches('"');
    let address = if let Some(rest) = text.strip_prefix('[') {
        rest.split(']').next()?
    } else if text.matches(':').count() == 1 {
        text.split(':').next()?
    } else {
        text
    };
    IpAddr::from_str(address).ok().map(|a| a.to_canonical())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(text: &str) -> IpAddr {
        text.parse().unwrap()
    }

    fn proxies(text: &str) -> TrustedProxies {
        text.parse().unwrap()
    }

    #[test]
    fn ipv6_clients_are_counted_by_their_network() {
        let one = ClientAddress(ip("2001:db8:1:2:aaaa::1")).counted_as();
        assert_eq!(one, "2001:db8:1:2::/64");
        assert_eq!(ClientAddress(ip("2001:db8:1:2:bbbb::9")).counted_as(), one);
        assert_ne!(ClientAddress(ip("2001:db8:1:3::1")).counted_as(), one);
        assert_eq!(ClientAddress(ip("::ffff:192.0.2.1")).counted_as(), "192.0.2.1");
    }

    #[test]
    fn blocks_are_read_and_matched() {
        let private: Cidr = "10.0.0.0/8".parse().unwrap();
        assert!(private.contains(ip("10.200.1.2")));
        assert!(!private.contains(ip("11.0.0.1")));
        assert!(
            private.contains(ip("::ffff:10.0.0.1")),
            "an IPv4 peer of an IPv6 socket"
        );
        let one: Cidr = "2001:db8::1".parse().unwrap();
        assert!(one.contains(ip("2001:db8::1")) && !one.contains(ip("2001:db8::2")));
        assert!("0.0.0.0/0".parse::<Cidr>().unwrap().contains(ip("8.8.8.8")));
        for bad in ["10.0.0.0/33", "ten", "10.0.0.0/x", ""] {
            assert!(bad.parse::<Cidr>().is_err(), "{bad}");
        }
        assert_eq!(proxies(" 10.0.0.0/8, ::1 ").0.len(), 2);
        assert_eq!(proxies("").0.len(), 0);
    }

    #[test]
    fn an_untrusted_peer_is_the_client_whatever_it_claims() {
        let trusted = proxies("10.0.0.0/8");
        assert_eq!(
            client_address(ip("203.0.113.9"), &["1.2.3.4"], &[], &trusted),
            ip("203.0.113.9")
        );
        let none = TrustedProxies::default();
        assert_eq!(client_address(ip("10.0.0.1"), &["1.2.3.4"], &[], &none), ip("10.0.0.1"));
    }

    #[test]
    fn behind_trusted_proxies_the_rightmost_untrusted_address_is_the_client() {
        let trusted = proxies("10.0.0.0/8");
        // The client wrote a false first entry; the proxies appended the truth.
        let chain = ["6.6.6.6, 198.51.100.7", "10.0.0.5"];
        assert_eq!(
            client_address(ip("10.0.0.2"), &chain, &[], &trusted),
            ip("198.51.100.7")
        );
        assert_eq!(client_address(ip("10.0.0.2"), &[], &[], &trusted), ip("10.0.0.2"));
        assert_eq!(
            client_address(ip("10.0.0.2"), &["10.0.0.9"], &[], &trusted),
            ip("10.0.0.9")
        );
        assert_eq!(
            client_address(ip("10.0.0.2"), &["unknown"], &[], &trusted),
            ip("10.0.0.2")
        );
        assert_eq!(
            client_address(ip("10.0.0.2"), &["198.51.100.7:5050"], &[], &trusted),
            ip("198.51.100.7")
        );
    }

    #[test]
    fn the_forwarded_header_is_read_when_there_is_no_x_forwarded_for() {
        let trusted = proxies("10.0.0.0/8");
        let forwarded = [r#"for=192.0.2.60;proto=https, For="[2001:db8:cafe::17]:4711""#];
        assert_eq!(
            client_address(ip("10.0.0.2"), &[], &forwarded, &trusted),
            ip("2001:db8:cafe::17")
        );
        assert_eq!(
            client_address(ip("10.0.0.2"), &["198.51.100.7"], &forwarded, &trusted),
            ip("198.51.100.7")
        );
        assert_eq!(
            client_address(ip("10.0.0.2"), &[], &["for=_hidden"], &trusted),
            ip("10.0.0.2")
        );
    }
}
