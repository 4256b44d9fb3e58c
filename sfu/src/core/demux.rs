//! Finding the peer a datagram belongs to in O(1): by source address once learned, and before
//! that by the ICE ufrag in the STUN USERNAME, which names the room and peer slot.

/// `{room:x}g{peer:x}g{generation:x}`: ICE characters only (RFC 8445 §5.3 `ice-char`), at
/// least 4 of them, and `g` never appears in hex.
pub fn make_ufrag(room: usize, peer: usize, generation: u32) -> String {
    format!("{room:x}g{peer:x}g{generation:x}")
}

/// The (room slot, peer slot, generation) a ufrag of ours names.
pub fn parse_ufrag(ufrag: &str) -> Option<(usize, usize, u32)> {
    let mut parts = ufrag.split('g');
    let room = usize::from_str_radix(parts.next()?, 16).ok()?;
    let peer = usize::from_str_radix(parts.next()?, 16).ok()?;
    let generation = u32::from_str_radix(parts.next()?, 16).ok()?;
    if parts.next().is_some() {
        return None;
    }
    Some((room, peer, generation))
}

/// STUN magic cookie (RFC 8489 §5).
const MAGIC_COOKIE: [u8; 4] = [0x21, 0x12, 0xA4, 0x42];
/// USERNAME attribute type (RFC 8489 §14.3).
const ATTR_USERNAME: u16 = 0x0006;

/// Is this datagram STUN? (RFC 7983 first-byte ranges: 0..=3 is STUN.)
pub fn is_stun(datagram: &[u8]) -> bool {
    datagram.len() >= 20 && datagram[0] < 4 && datagram[4..8] == MAGIC_COOKIE
}

/// The local part of a STUN request's USERNAME (`ours:theirs`), without validating anything
/// else: the owning `Rtc` checks the MESSAGE-INTEGRITY.
pub fn stun_local_ufrag(datagram: &[u8]) -> Option<&str> {
    if !is_stun(datagram) {
        return None;
    }
    let len = u16::from_be_bytes([datagram[2], datagram[3]]) as usize;
    let body = datagram.get(20..20 + len)?;
    let mut at = 0;
    while at + 4 <= body.len() {
        let kind = u16::from_be_bytes([body[at], body[at + 1]]);
        let vlen = u16::from_be_bytes([body[at + 2], body[at + 3]]) as usize;
        let value = body.get(at + 4..at + 4 + vlen)?;
        if kind == ATTR_USERNAME {
            let username = std::str::from_utf8(value).ok()?;
            return username.split(':').next();
        }
        at += 4 + vlen.div_ceil(4) * 4;
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stun_with_username(username: &str) -> Vec<u8> {
        let mut attr = Vec::new();
        attr.extend_from_slice(&ATTR_USERNAME.to_be_bytes());
        attr.extend_from_slice(&(username.len() as u16).to_be_bytes());
        attr.extend_from_slice(username.as_bytes());
        while attr.len() % 4 != 0 {
            attr.push(0);
        }
        let mut m = vec![0x00, 0x01];
        m.extend_from_slice(&(attr.len() as u16).to_be_bytes());
        m.extend_from_slice(&MAGIC_COOKIE);
        m.extend_from_slice(&[7; 12]);
        m.extend_from_slice(&attr);
        m
    }

    #[test]
    fn ufrag_round_trip() {
        let u = make_ufrag(3, 17, 2);
        assert!(u.len() >= 4);
        assert_eq!(parse_ufrag(&u), Some((3, 17, 2)));
        assert_eq!(parse_ufrag("zz"), None);
        assert_eq!(parse_ufrag("1g2g3g4"), None);
    }

    #[test]
    fn username_is_found() {
        let m = stun_with_username("ag1g1:remote");
        assert_eq!(stun_local_ufrag(&m), Some("ag1g1"));
    }

    #[test]
    fn garbage_is_not_stun() {
        assert_eq!(stun_local_ufrag(&[]), None);
        assert_eq!(stun_local_ufrag(&[0; 19]), None);
        assert_eq!(stun_local_ufrag(&[0x80; 100]), None);
        // A STUN header whose length runs past the datagram.
        let mut m = stun_with_username("x:y");
        m[3] = 200;
        assert_eq!(stun_local_ufrag(&m), None);
        // An attribute whose length runs past the body.
        let mut m = stun_with_username("x:y");
        m[23] = 0xff;
        assert_eq!(stun_local_ufrag(&m), None);
    }
}
