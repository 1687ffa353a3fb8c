//! Blocks of IP addresses: `10.0.0.0/8`, `fd00::/8`, or one address.

use std::net::IpAddr;

/// An IP address with a prefix length: the addresses that share its first `bits` bits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IpBlock {
    net: IpAddr,
    bits: u8,
}

impl IpBlock {
    /// `ADDRESS` or `ADDRESS/BITS`.
    pub fn parse(s: &str) -> Option<Self> {
        let (addr, bits) = match s.trim().split_once('/') {
            Some((a, b)) => (a, Some(b.parse::<u8>().ok()?)),
            None => (s.trim(), None),
        };
        let net: IpAddr = addr
            .trim_start_matches('[')
            .trim_end_matches(']')
            .parse()
            .ok()?;
        let max = if net.is_ipv4() { 32 } else { 128 };
        let bits = bits.unwrap_or(max);
        (bits <= max).then_some(IpBlock { net, bits })
    }

    pub fn contains(&self, ip: IpAddr) -> bool {
        // An IPv4 peer may come as an IPv4-mapped IPv6 address.
        let ip = match ip {
            IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
            v4 => v4,
        };
        match (ip, self.net) {
            (IpAddr::V4(a), IpAddr::V4(b)) => {
                let mask = u32::MAX.checked_shl(32 - u32::from(self.bits)).unwrap_or(0);
                u32::from(a) & mask == u32::from(b) & mask
            }
            (IpAddr::V6(a), IpAddr::V6(b)) => {
                let mask = u128::MAX
                    .checked_shl(128 - u32::from(self.bits))
                    .unwrap_or(0);
                u128::from(a) & mask == u128::from(b) & mask
            }
            _ => false,
        }
    }
}

impl std::fmt::Display for IpBlock {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.net, self.bits)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blocks_hold_their_addresses() {
        let b = IpBlock::parse("10.0.0.0/8").unwrap();
        assert!(b.contains("10.200.1.2".parse().unwrap()));
        assert!(
            b.contains("::ffff:10.0.0.1".parse().unwrap()),
            "mapped IPv4"
        );
        assert!(!b.contains("11.0.0.1".parse().unwrap()));
        let one = IpBlock::parse("127.0.0.1").unwrap();
        assert!(one.contains("127.0.0.1".parse().unwrap()));
        assert!(!one.contains("127.0.0.2".parse().unwrap()));
        assert!(
            IpBlock::parse("::/0")
                .unwrap()
                .contains("fd00::1".parse().unwrap())
        );
        for bad in ["10.0.0.0/33", "host", "1.2.3.4/x", ""] {
            assert!(IpBlock::parse(bad).is_none(), "{bad}");
        }
    }
}
