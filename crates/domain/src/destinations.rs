//! Where the hub may send requests of its own (webhook deliveries, providers' APIs, SMTP
//! servers): public addresses only, unless the operator allows private ones (local
//! development). A URL given to the hub must not make it call its own machine, its network or
//! a cloud's metadata service with secrets attached, nor serve as a port scanner.
//!
//! The rule is checked twice: when a URL is registered (its host as written, in every form
//! the system's resolver reads as an address) and when connecting (every address the name
//! resolved to), so that a name resolving elsewhere later (DNS rebinding) gains nothing.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use url::{Host, Url};

use crate::validation::Check;

/// Which destinations the server may call.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Destinations {
    /// Public internet addresses only.
    #[default]
    PublicOnly,
    /// Loopback and private networks too: for development, where the receivers run locally.
    PrivateAllowed,
}

/// The code of the field error for a destination the server will not call.
pub const PRIVATE_DESTINATION: &str = "private_destination";

impl Destinations {
    pub fn allows(self, address: IpAddr) -> bool {
        self == Destinations::PrivateAllowed || is_public(address)
    }

    /// Whether a URL's host may be called as far as can be told without resolving it: an
    /// address in any form, or a name that always means this machine (`localhost`). Other
    /// names are checked when connecting.
    pub fn allows_host(self, host: &Host<&str>) -> bool {
        if self == Destinations::PrivateAllowed {
            return true;
        }
        match host {
            Host::Ipv4(address) => is_public(IpAddr::V4(*address)),
            Host::Ipv6(address) => is_public(IpAddr::V6(*address)),
            Host::Domain(name) => match host_address(name) {
                Some(address) => is_public(address),
                None => !is_local_name(name),
            },
        }
    }

    /// Adds a `private_destination` error on `field` when `url` names a host the server
    /// will not call.
    pub fn check(self, check: &mut Check, field: &str, url: &Url) {
        if url.host().is_some_and(|host| !self.allows_host(&host)) {
            check.fail(
                field,
                PRIVATE_DESTINATION,
                "must be a public address: loopback, private, link-local and reserved networks are not called",
            );
        }
    }
}

/// `localhost` and its subdomains always resolve to this machine (RFC 6761).
pub fn is_local_name(name: &str) -> bool {
    let name = name.trim_end_matches('.').to_ascii_lowercase();
    name == "localhost" || name.ends_with(".localhost")
}

/// The address a host written as one stands for, in every form the system's resolver takes
/// as an address rather than a name: IPv6 (with or without brackets) and IPv4 as `inet_aton`
/// reads it — one to four parts, each decimal, octal (`0177`) or hexadecimal (`0x7f`), the
/// last filling the remaining bytes (`127.1`, `2130706433`, `0x7f.1`).
pub fn host_address(host: &str) -> Option<IpAddr> {
    let bare = host.strip_prefix('[').and_then(|h| h.strip_suffix(']')).unwrap_or(host);
    if let Ok(v6) = bare.parse::<Ipv6Addr>() {
        return Some(IpAddr::V6(v6));
    }
    loose_ipv4(bare.strip_suffix('.').unwrap_or(bare)).map(IpAddr::V4)
}

fn loose_ipv4(text: &str) -> Option<Ipv4Addr> {
    let parts: Vec<u64> = text.split('.').map(number).collect::<Option<_>>()?;
    let (last, leading) = parts.split_last()?;
    if leading.len() > 3 || leading.iter().any(|p| *p > 255) {
        return None;
    }
    let room = 8 * (4 - leading.len() as u32);
    if room < 64 && *last >= 1 << room {
        return None;
    }
    let high = leading.iter().fold(0_u64, |sum, p| (sum << 8) | p) << room;
    u32::try_from(high | last).ok().map(Ipv4Addr::from)
}

fn number(part: &str) -> Option<u64> {
    let (digits, radix) = if let Some(hex) = part.strip_prefix("0x").or_else(|| part.strip_prefix("0X")) {
        (hex, 16)
    } else if part.len() > 1 && part.starts_with('0') {
        (&part[1..], 8)
    } else {
        (part, 10)
    };
    if digits.is_empty() {
        // `0x` alone is zero to inet_aton; an empty part is no number.
        return (radix == 16).then_some(0);
    }
    if !digits.chars().all(|c| c.is_digit(radix)) {
        return None;
    }
    u64::from_str_radix(digits, radix)
        .ok()
        .filter(|n| *n <= u64::from(u32::MAX))
}

/// Whether `address` is on the public internet: not this machine, not a private, shared
/// (carrier-grade NAT), link-local, multicast, broadcast, documentation or otherwise
/// reserved network, in IPv4 or IPv6, nor an IPv6 form that carries such an IPv4 address
/// (mapped, NAT64, 6to4).
pub fn is_public(address: IpAddr) -> bool {
    match address {
        IpAddr::V4(v4) => is_public_v4(v4),
        IpAddr::V6(v6) => is_public_v6(v6),
    }
}

fn is_public_v4(address: Ipv4Addr) -> bool {
    let [a, b, c, _] = address.octets();
    let reserved = a == 0                                 // "this network", 0.0.0.0
        || a == 10                                        // private
        || (a == 100 && (64..128).contains(&b))           // shared: carrier-grade NAT
        || a == 127                                       // loopback
        || (a == 169 && b == 254)                         // link-local, cloud metadata
        || (a == 172 && (16..32).contains(&b))            // private
        || (a == 192 && b == 0 && (c == 0 || c == 2))     // protocol assignments, TEST-NET-1
        || (a == 192 && b == 88 && c == 99)               // 6to4 relays
        || (a == 192 && b == 168)                         // private
        || (a == 198 && (b == 18 || b == 19))             // benchmarking
        || (a == 198 && b == 51 && c == 100)              // TEST-NET-2
        || (a == 203 && b == 0 && c == 113)               // TEST-NET-3
        || a >= 224; // multicast, reserved, broadcast
    !reserved
}

fn is_public_v6(address: Ipv6Addr) -> bool {
    let segments = address.segments();
    let embedded_v4 = |high: u16, low: u16| Ipv4Addr::from((u32::from(high) << 16) | u32::from(low));
    // IPv4-mapped (::ffff:a.b.c.d) and NAT64 (64:ff9b::a.b.c.d) reach the IPv4 address.
    if let Some(v4) = address.to_ipv4_mapped() {
        return is_public_v4(v4);
    }
    if segments[..6] == [0x64, 0xff9b, 0, 0, 0, 0] {
        return is_public_v4(embedded_v4(segments[6], segments[7]));
    }
    // 6to4 (2002:a.b.c.d::/48) tunnels to the IPv4 address.
    if segments[0] == 0x2002 {
        return is_public_v4(embedded_v4(segments[1], segments[2]));
    }
    // Only 2000::/3 is global unicast; within it, IETF protocol assignments (Teredo among
    // them), documentation and the newer documentation block are not destinations.
    let global_unicast = segments[0] & 0xe000 == 0x2000;
    let protocol_assignments = segments[0] == 0x2001 && segments[1] < 0x0200;
    let documentation = (segments[0] == 0x2001 && segments[1] == 0x0db8) || segments[0] & 0xfff0 == 0x3ff0;
    global_unicast && !protocol_assignments && !documentation
}

#[cfg(test)]
mod tests {
    use super::*;

    fn public(text: &str) -> bool {
        is_public(text.parse().unwrap())
    }

    #[test]
    fn private_reserved_and_special_ipv4_networks_are_not_public() {
        for private in [
            "0.0.0.0",
            "10.1.2.3",
            "100.64.0.1",
            "100.127.255.255",
            "127.0.0.1",
            "127.255.255.254",
            "169.254.169.254",
            "172.16.0.1",
            "172.31.255.255",
            "192.0.0.8",
            "192.0.2.1",
            "192.88.99.1",
            "192.168.1.1",
            "198.18.0.1",
            "198.51.100.7",
            "203.0.113.9",
            "224.0.0.1",
            "239.255.255.250",
            "240.0.0.1",
            "255.255.255.255",
        ] {
            assert!(!public(private), "{private}");
        }
        for open in [
            "1.1.1.1",
            "8.8.8.8",
            "100.63.255.255",
            "100.128.0.1",
            "172.32.0.1",
            "93.184.216.34",
        ] {
            assert!(public(open), "{open}");
        }
    }

    #[test]
    fn ipv6_is_public_only_in_global_unicast_and_never_carrying_a_private_ipv4() {
        for private in [
            "::",
            "::1",
            "::ffff:127.0.0.1",
            "::ffff:169.254.169.254",
            "64:ff9b::a9fe:a9fe",
            "2002:7f00:1::1",
            "2002:c0a8:101::1",
            "fc00::1",
            "fd12:3456::1",
            "fe80::1",
            "fec0::1",
            "ff02::1",
            "2001:db8::1",
            "2001::1",
            "3fff::1",
            "100::1",
            "::127.0.0.1",
        ] {
            assert!(!public(private), "{private}");
        }
        for open in [
            "2606:4700:4700::1111",
            "2a00:1450:4001:80b::200e",
            "::ffff:8.8.8.8",
            "2002:808:808::1",
        ] {
            assert!(public(open), "{open}");
        }
    }

    #[test]
    fn hosts_are_read_as_addresses_in_every_form_the_resolver_takes() {
        let loopback = Some(IpAddr::V4(Ipv4Addr::LOCALHOST));
        for form in [
            "127.0.0.1",
            "127.1",
            "127.0.1",
            "2130706433",
            "0x7f.1",
            "0x7f000001",
            "0177.0.0.1",
            "127.0.0.1.",
        ] {
            assert_eq!(host_address(form), loopback, "{form}");
        }
        assert_eq!(host_address("[::1]"), Some(IpAddr::V6(Ipv6Addr::LOCALHOST)));
        assert_eq!(host_address("0"), Some(IpAddr::V4(Ipv4Addr::UNSPECIFIED)));
        assert_eq!(
            host_address("0x"),
            Some(IpAddr::V4(Ipv4Addr::UNSPECIFIED)),
            "as inet_aton reads it"
        );
        for name in [
            "example.com",
            "1.2.3.4.5",
            "256.1.1.1",
            "08.1.1.1",
            "1..2",
            "",
            "4294967296",
            "1.16777216",
        ] {
            assert_eq!(host_address(name), None, "{name}");
        }
    }

    #[test]
    fn urls_naming_private_hosts_are_refused_unless_allowed() {
        let refused = |url: &str| {
            let url = Url::parse(url).unwrap();
            let mut check = Check::new();
            Destinations::PublicOnly.check(&mut check, "url", &url);
            let private = check.done().is_err();
            let mut check = Check::new();
            Destinations::PrivateAllowed.check(&mut check, "url", &url);
            assert!(check.done().is_ok(), "allowed: {url}");
            private
        };
        for url in [
            "http://127.0.0.1:8080/x",
            "http://127.1/",
            "http://2130706433/",
            "http://0x7f.1/",
            "http://[::ffff:127.0.0.1]/",
            "http://[::1]:9000/",
            "http://[fd00::1]/",
            "http://0.0.0.0/",
            "http://169.254.169.254/latest/meta-data/",
            "http://localhost:3000/",
            "http://api.localhost./",
            "smtp://127.1:25",
            "smtp://2130706433:25",
            "smtps://[::1]:465",
            "smtp://LOCALHOST:587",
        ] {
            assert!(refused(url), "{url}");
        }
        for url in [
            "https://hooks.example.com/in",
            "smtp://smtp.example.com:587",
            "http://8.8.8.8/",
        ] {
            assert!(!refused(url), "{url}");
        }
    }
}
