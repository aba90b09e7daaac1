//! The DynamoDB Local that `make test` and `make dev` start (both through
//! scripts/dynamodb-local.sh) holds key hashes and messages: it must listen on
//! the loopback interface only.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// The local addresses of the sockets listening on TCP `port`, from the
/// kernel's tables (`/proc/net/tcp` and `/proc/net/tcp6`).
fn listening_on(port: u16) -> Vec<IpAddr> {
    const LISTEN: &str = "0A";
    let mut found = Vec::new();
    for (table, v6) in [("/proc/net/tcp", false), ("/proc/net/tcp6", true)] {
        let Ok(text) = std::fs::read_to_string(table) else { continue };
        for line in text.lines().skip(1) {
            let fields: Vec<&str> = line.split_whitespace().collect();
            let (Some(local), Some(state)) = (fields.get(1), fields.get(3)) else { continue };
            let Some((addr, hex_port)) = local.split_once(':') else { continue };
            if *state != LISTEN || u16::from_str_radix(hex_port, 16).ok() != Some(port) {
                continue;
            }
            found.push(if v6 { ipv6_from_proc(addr) } else { IpAddr::V4(ipv4_from_proc(addr)) });
        }
    }
    found
}

/// `/proc/net/tcp` writes an IPv4 address as one 32-bit word in host order.
fn ipv4_from_proc(hex: &str) -> Ipv4Addr {
    Ipv4Addr::from(u32::from_str_radix(hex, 16).expect("a hex address").to_ne_bytes())
}

/// `/proc/net/tcp6` writes an IPv6 address as four 32-bit words, each in host order.
fn ipv6_from_proc(hex: &str) -> IpAddr {
    let mut bytes = [0u8; 16];
    for (i, chunk) in bytes.chunks_mut(4).enumerate() {
        let word = u32::from_str_radix(&hex[i * 8..i * 8 + 8], 16).expect("a hex address");
        chunk.copy_from_slice(&word.to_ne_bytes());
    }
    IpAddr::V6(Ipv6Addr::from(bytes))
}

fn is_loopback(addr: IpAddr) -> bool {
    match addr {
        IpAddr::V4(v4) => v4.is_loopback(),
        // A dual-stack socket bound to 127.0.0.1 shows as ::ffff:127.0.0.1.
        IpAddr::V6(v6) => v6.is_loopback() || v6.to_ipv4_mapped().is_some_and(|v4| v4.is_loopback()),
    }
}

#[test]
fn dynamodb_local_listens_on_loopback_only() {
    let endpoint = llmchat::testing::dynamodb_endpoint();
    let port: u16 = endpoint.rsplit(':').next().and_then(|p| p.trim_end_matches('/').parse().ok()).expect("a port in the endpoint");
    let addrs = listening_on(port);
    assert!(!addrs.is_empty(), "nothing listens on port {port} (is {endpoint} on this machine?)");
    let open: Vec<_> = addrs.into_iter().filter(|a| !is_loopback(*a)).collect();
    assert!(open.is_empty(), "DynamoDB Local at {endpoint} also listens on {open:?}");
}

#[test]
fn proc_addresses_decode() {
    // As the kernel writes them on a little-endian machine.
    if cfg!(target_endian = "little") {
        assert_eq!(ipv4_from_proc("0100007F"), Ipv4Addr::LOCALHOST);
        assert_eq!(ipv4_from_proc("00000000"), Ipv4Addr::UNSPECIFIED);
        assert_eq!(ipv6_from_proc("0000000000000000FFFF00000100007F"), "::ffff:127.0.0.1".parse::<IpAddr>().unwrap());
        assert_eq!(ipv6_from_proc("00000000000000000000000001000000"), IpAddr::V6(Ipv6Addr::LOCALHOST));
    }
    assert!(is_loopback("::ffff:127.0.0.1".parse().unwrap()));
    assert!(!is_loopback("::".parse().unwrap()));
    assert!(!is_loopback("0.0.0.0".parse().unwrap()));
}
