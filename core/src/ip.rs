//! IP addresses and CIDR blocks (`CLIENT_LIMIT_EXEMPT`). Primitives: nothing here imports
//! another module of the crate.

use std::net::IpAddr;

/// The mask keeping the first `prefix` bits of an IPv6 address.
pub fn prefix_mask_128(prefix: u32) -> u128 {
    u128::MAX
        .checked_shl(128u32.saturating_sub(prefix))
        .unwrap_or(0)
}

/// One entry of `CLIENT_LIMIT_EXEMPT`: an address or a CIDR block.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IpBlock {
    network: IpAddr,
    prefix: u8,
}

impl IpBlock {
    /// Parses `203.0.113.7`, `203.0.113.0/24`, `2001:db8::/32`.
    pub fn parse(text: &str) -> Result<IpBlock, String> {
        let text = text.trim();
        let (addr, prefix) = match text.split_once('/') {
            Some((a, p)) => (
                a,
                Some(
                    p.parse::<u8>()
                        .map_err(|_| format!("'{text}' has a malformed prefix length"))?,
                ),
            ),
            None => (text, None),
        };
        let network: IpAddr = addr
            .parse()
            .map_err(|_| format!("'{text}' is not an IP address or CIDR block"))?;
        let max = if network.is_ipv4() { 32 } else { 128 };
        let prefix = prefix.unwrap_or(max);
        if prefix > max {
            return Err(format!("'{text}' has a prefix longer than {max} bits"));
        }
        Ok(IpBlock { network, prefix })
    }

    /// Whether the address is inside the block.
    pub fn contains(&self, ip: IpAddr) -> bool {
        let ip = match ip {
            IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(IpAddr::V6(v6), IpAddr::V4),
            v4 => v4,
        };
        match (self.network, ip) {
            (IpAddr::V4(n), IpAddr::V4(a)) => {
                let mask = u32::MAX
                    .checked_shl(32u32.saturating_sub(u32::from(self.prefix)))
                    .unwrap_or(0);
                u32::from(n) & mask == u32::from(a) & mask
            }
            (IpAddr::V6(n), IpAddr::V6(a)) => {
                let mask = prefix_mask_128(u32::from(self.prefix));
                u128::from(n) & mask == u128::from(a) & mask
            }
            _ => false,
        }
    }
}
