//! Which network addresses an upstream may have: cloud-metadata and link-local targets never,
//! private and loopback ranges only unless the operator refuses them too. Pure classification of
//! IP addresses and base URLs; resolving names and connecting happen in the gateway.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// The operator's choice about upstream addresses (`[gateway] block_private_upstreams`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct EgressPolicy {
    /// Also refuse private (RFC 1918, unique-local, CGNAT) and loopback addresses. Off by default:
    /// Ollama or vLLM on the same host or network are ordinary upstreams.
    pub block_private: bool,
}

/// Host names that reach a cloud's instance metadata service, refused like its address.
const METADATA_HOSTS: [&str; 2] = ["metadata.google.internal", "metadata.goog"];

impl EgressPolicy {
    /// Why `ip` may not be an upstream's address, or `None` when it may.
    pub fn refusal(self, ip: IpAddr) -> Option<&'static str> {
        match ip {
            IpAddr::V4(v4) => self.refusal_v4(v4),
            IpAddr::V6(v6) => match embedded_v4(v6) {
                Some(v4) => self.refusal_v4(v4),
                None => self.refusal_v6(v6),
            },
        }
    }

    fn refusal_v4(self, ip: Ipv4Addr) -> Option<&'static str> {
        let [a, b, ..] = ip.octets();
        if ip.is_link_local() || ip == Ipv4Addr::new(100, 100, 100, 200) {
            return Some("a link-local or cloud-metadata address");
        }
        if a == 0 || ip.is_broadcast() || ip.is_multicast() {
            return Some("not a unicast host address");
        }
        let private = ip.is_private() || ip.is_loopback() || (a == 100 && (64..128).contains(&b));
        (self.block_private && private).then_some("a private or loopback address, refused by block_private_upstreams")
    }

    fn refusal_v6(self, ip: Ipv6Addr) -> Option<&'static str> {
        let first = ip.segments()[0];
        if (first & 0xffc0) == 0xfe80 || ip == Ipv6Addr::new(0xfd00, 0x0ec2, 0, 0, 0, 0, 0, 0x0254) {
            return Some("a link-local or cloud-metadata address");
        }
        if ip.is_unspecified() || ip.is_multicast() {
            return Some("not a unicast host address");
        }
        let private = ip.is_loopback() || (first & 0xfe00) == 0xfc00 || (first & 0xffc0) == 0xfec0;
        (self.block_private && private).then_some("a private or loopback address, refused by block_private_upstreams")
    }

    /// Checks a base URL as written (management API or config file): an http(s) URL with a host
    /// that is not a refused address (IP literals in any spelling the URL standard accepts, e.g.
    /// `http://2852039166/`) nor a metadata name, nor `localhost` when private addresses are
    /// refused. Names are checked again, by address, every time they are resolved.
    pub fn check_base_url(self, text: &str) -> Result<(), String> {
        let url = url::Url::parse(text.trim()).map_err(|_| "must be an http(s) URL".to_owned())?;
        if !matches!(url.scheme(), "http" | "https") {
            return Err("must be an http(s) URL".into());
        }
        let refused = |why: &str| Err(format!("must not point at {why}"));
        match url.host() {
            None => Err("must be an http(s) URL with a host".into()),
            Some(url::Host::Ipv4(ip)) => self.refusal(IpAddr::V4(ip)).map_or(Ok(()), refused),
            Some(url::Host::Ipv6(ip)) => self.refusal(IpAddr::V6(ip)).map_or(Ok(()), refused),
            Some(url::Host::Domain(name)) => {
                let name = name.trim_end_matches('.').to_ascii_lowercase();
                if METADATA_HOSTS.contains(&name.as_str()) {
                    refused("a link-local or cloud-metadata address")
                } else if self.block_private && (name == "localhost" || name.ends_with(".localhost")) {
                    refused("a private or loopback address, refused by block_private_upstreams")
                } else {
                    Ok(())
                }
            }
        }
    }
}

/// The IPv4 address an IPv6 address carries (IPv4-mapped, IPv4-compatible, NAT64 `64:ff9b::/96`,
/// 6to4 `2002::/16`): it reaches that IPv4 host, so it is judged as that address.
fn embedded_v4(ip: Ipv6Addr) -> Option<Ipv4Addr> {
    if let Some(v4) = ip.to_ipv4_mapped() {
        return Some(v4);
    }
    let s = ip.segments();
    let low = |hi: u16, lo: u16| Ipv4Addr::from((u32::from(hi) << 16) | u32::from(lo));
    match s {
        [0, 0, 0, 0, 0, 0, hi, lo] if !(hi == 0 && lo <= 1) => Some(low(hi, lo)),
        [0x64, 0xff9b, 0, 0, 0, 0, hi, lo] | [0x2002, hi, lo, ..] => Some(low(hi, lo)),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const OPEN: EgressPolicy = EgressPolicy { block_private: false };
    const CLOSED: EgressPolicy = EgressPolicy { block_private: true };

    fn ip(text: &str) -> IpAddr {
        text.parse().unwrap_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED))
    }

    #[test]
    fn metadata_and_link_local_addresses_are_always_refused() {
        for text in [
            "169.254.169.254",
            "169.254.170.2",
            "169.254.0.1",
            "100.100.100.200",
            "0.0.0.0",
            "0.1.2.3",
            "255.255.255.255",
            "224.0.0.1",
            "fe80::1",
            "febf::1",
            "fd00:ec2::254",
            "::",
            "::ffff:169.254.169.254",
            "::169.254.169.254",
            "64:ff9b::a9fe:a9fe",
            "2002:a9fe:a9fe::1",
            "::ffff:100.100.100.200",
            "ff02::1",
        ] {
            assert!(OPEN.refusal(ip(text)).is_some(), "{text} must always be refused");
            assert!(CLOSED.refusal(ip(text)).is_some(), "{text} must always be refused");
        }
    }

    #[test]
    fn private_and_loopback_addresses_are_refused_only_when_the_operator_says_so() {
        for text in [
            "127.0.0.1",
            "127.8.9.10",
            "10.0.0.1",
            "172.16.0.1",
            "172.31.255.255",
            "192.168.1.1",
            "100.64.0.1",
            "100.127.255.254",
            "::1",
            "fc00::1",
            "fd12:3456::1",
            "fec0::1",
            "::ffff:127.0.0.1",
            "::ffff:10.1.2.3",
        ] {
            assert_eq!(OPEN.refusal(ip(text)), None, "{text} is allowed by default");
            assert!(CLOSED.refusal(ip(text)).is_some(), "{text} is refused with block_private");
        }
    }

    #[test]
    fn public_addresses_are_allowed() {
        for text in ["8.8.8.8", "172.32.0.1", "100.128.0.1", "169.255.0.1", "2606:4700::1111", "::ffff:1.1.1.1", "64:ff9b::808:808"] {
            assert_eq!(CLOSED.refusal(ip(text)), None, "{text} is public");
        }
    }

    #[test]
    fn base_urls_are_judged_by_the_host_they_name() {
        for url in [
            "http://169.254.169.254/v1",
            "http://[fd00:ec2::254]/v1",
            "http://[::ffff:a9fe:a9fe]/v1",
            "http://2852039166/v1",
            "http://0xa9.0xfe.0xa9.0xfe/v1",
            "http://user:pw@169.254.169.254:8080/v1",
            "http://metadata.google.internal/computeMetadata/v1",
            "http://METADATA.GOOGLE.INTERNAL./v1",
            "http://100.100.100.200/latest",
            "ftp://example.com/v1",
            "http://",
            "not a url",
        ] {
            assert!(OPEN.check_base_url(url).is_err(), "{url} must be refused");
        }
        for url in ["https://api.openai.com/v1", "http://localhost:11434/v1", "http://127.0.0.1:8000/v1", "http://10.0.0.5/v1"] {
            assert_eq!(OPEN.check_base_url(url), Ok(()), "{url} is allowed by default");
        }
        for url in
            ["http://localhost:11434/v1", "http://api.localhost/v1", "http://127.0.0.1:8000/v1", "http://[::1]/v1", "http://10.0.0.5/v1"]
        {
            assert!(CLOSED.check_base_url(url).is_err(), "{url} is refused with block_private");
        }
        assert_eq!(CLOSED.check_base_url("https://api.anthropic.com/v1"), Ok(()));
    }
}
