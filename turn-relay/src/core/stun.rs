//! STUN message codec (RFC 8489 §5, §14–15) that borrows instead of allocating.
//!
//! [`Message::parse`] validates the header and walks the attributes once; attribute
//! values are slices of the input. [`Writer`] builds a message into the caller's buffer
//! and appends MESSAGE-INTEGRITY(-SHA256) and FINGERPRINT in place. ChannelData
//! (RFC 8656 §12.4) is four bytes of header and is framed here too.
//!
//! Why not the `stun` crate: its `Message::decode` copies every attribute into a fresh
//! `Vec`, its errors `format!` a `String` for every malformed datagram (both on the path a
//! spoofed flood takes), it has no MESSAGE-INTEGRITY-SHA256, and it pulls tokio and
//! webrtc-util into a crate whose core must be IO-free. The whole codec is this file.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use hmac::{Hmac, Mac};
use sha1::Sha1;
use sha2::Sha256;

use super::error::StunError;

/// RFC 8489 §5.
pub const MAGIC_COOKIE: u32 = 0x2112_A442;
pub const HEADER_LEN: usize = 20;
const ATTR_HEADER_LEN: usize = 4;
/// RFC 8489 §14.7: CRC-32 of the message XOR this.
const FINGERPRINT_XOR: u32 = 0x5354_554e;

/// Attribute types used here (RFC 8489 §18.3, RFC 8656 §18).
pub mod attr {
    pub const USERNAME: u16 = 0x0006;
    pub const MESSAGE_INTEGRITY: u16 = 0x0008;
    pub const ERROR_CODE: u16 = 0x0009;
    pub const UNKNOWN_ATTRIBUTES: u16 = 0x000A;
    pub const CHANNEL_NUMBER: u16 = 0x000C;
    pub const LIFETIME: u16 = 0x000D;
    pub const XOR_PEER_ADDRESS: u16 = 0x0012;
    pub const DATA: u16 = 0x0013;
    pub const REALM: u16 = 0x0014;
    pub const NONCE: u16 = 0x0015;
    pub const XOR_RELAYED_ADDRESS: u16 = 0x0016;
    pub const REQUESTED_ADDRESS_FAMILY: u16 = 0x0017;
    pub const EVEN_PORT: u16 = 0x0018;
    pub const REQUESTED_TRANSPORT: u16 = 0x0019;
    pub const DONT_FRAGMENT: u16 = 0x001A;
    pub const MESSAGE_INTEGRITY_SHA256: u16 = 0x001C;
    pub const XOR_MAPPED_ADDRESS: u16 = 0x0020;
    pub const RESERVATION_TOKEN: u16 = 0x0022;
    pub const PRIORITY: u16 = 0x0024;
    pub const USE_CANDIDATE: u16 = 0x0025;
    pub const SOFTWARE: u16 = 0x8022;
    pub const FINGERPRINT: u16 = 0x8028;
    pub const ICE_CONTROLLED: u16 = 0x8029;
    pub const ICE_CONTROLLING: u16 = 0x802A;

    /// Comprehension-required attributes this server understands; any other type below
    /// 0x8000 in a request is answered with 420 (RFC 8489 §7.3.1).
    pub fn understood(t: u16) -> bool {
        t >= 0x8000
            || matches!(
                t,
                USERNAME
                    | MESSAGE_INTEGRITY
                    | ERROR_CODE
                    | UNKNOWN_ATTRIBUTES
                    | CHANNEL_NUMBER
                    | LIFETIME
                    | XOR_PEER_ADDRESS
                    | DATA
                    | REALM
                    | NONCE
                    | XOR_RELAYED_ADDRESS
                    | REQUESTED_ADDRESS_FAMILY
                    | EVEN_PORT
                    | REQUESTED_TRANSPORT
                    | DONT_FRAGMENT
                    | MESSAGE_INTEGRITY_SHA256
                    | XOR_MAPPED_ADDRESS
                    | RESERVATION_TOKEN
                    | PRIORITY
                    | USE_CANDIDATE
            )
    }
}

/// Methods (RFC 8489 §18.2, RFC 8656 §17).
pub mod method {
    pub const BINDING: u16 = 0x001;
    pub const ALLOCATE: u16 = 0x003;
    pub const REFRESH: u16 = 0x004;
    pub const SEND: u16 = 0x006;
    pub const DATA: u16 = 0x007;
    pub const CREATE_PERMISSION: u16 = 0x008;
    pub const CHANNEL_BIND: u16 = 0x009;
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Class {
    Request,
    Indication,
    Success,
    Error,
}

impl Class {
    fn bits(self) -> u16 {
        match self {
            Class::Request => 0x000,
            Class::Indication => 0x010,
            Class::Success => 0x100,
            Class::Error => 0x110,
        }
    }
}

fn message_type(class: Class, method: u16) -> u16 {
    // RFC 8489 §5: M11..M7 C1 M6..M4 C0 M3..M0.
    (method & 0x000F) | ((method & 0x0070) << 1) | ((method & 0x0F80) << 2) | class.bits()
}

fn split_type(t: u16) -> (Class, u16) {
    let class = match t & 0x0110 {
        0x000 => Class::Request,
        0x010 => Class::Indication,
        0x100 => Class::Success,
        _ => Class::Error,
    };
    let method = (t & 0x000F) | ((t & 0x00E0) >> 1) | ((t & 0x3E00) >> 2);
    (class, method)
}

/// Where a message-integrity attribute sits, for checking it later.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Integrity {
    Sha1 { offset: usize },
    Sha256 { offset: usize },
}

/// A parsed STUN message borrowing the datagram it came from.
#[derive(Debug, Clone, Copy)]
pub struct Message<'a> {
    pub class: Class,
    pub method: u16,
    pub transaction_id: [u8; 12],
    raw: &'a [u8],
    /// The first MESSAGE-INTEGRITY(-SHA256); attributes after it are ignored (RFC 8489
    /// §14.5) except FINGERPRINT.
    pub integrity: Option<Integrity>,
    pub has_fingerprint: bool,
    /// The first comprehension-required attribute this server does not know.
    pub unknown: Option<u16>,
}

/// True if `b` could be a STUN message (RFC 7983 first-byte demultiplexing plus cookie).
pub fn looks_like_stun(b: &[u8]) -> bool {
    b.len() >= HEADER_LEN && b[0] < 4 && b[4..8] == MAGIC_COOKIE.to_be_bytes()
}

impl<'a> Message<'a> {
    /// Parses and validates a whole message: header, length, attribute framing and
    /// FINGERPRINT (if present). Trailing bytes beyond the header's length are refused.
    pub fn parse(b: &'a [u8]) -> Result<Self, StunError> {
        if b.len() < HEADER_LEN {
            return Err(StunError::Truncated);
        }
        if b[0] & 0xC0 != 0 || b[4..8] != MAGIC_COOKIE.to_be_bytes() {
            return Err(StunError::NotStun);
        }
        let len = u16::from_be_bytes([b[2], b[3]]) as usize;
        if len % 4 != 0 {
            return Err(StunError::BadLength);
        }
        if HEADER_LEN + len != b.len() {
            return Err(if HEADER_LEN + len > b.len() {
                StunError::Truncated
            } else {
                StunError::BadLength
            });
        }
        let (class, method) = split_type(u16::from_be_bytes([b[0], b[1]]));
        let mut transaction_id = [0; 12];
        transaction_id.copy_from_slice(&b[8..20]);
        let mut message = Message {
            class,
            method,
            transaction_id,
            raw: b,
            integrity: None,
            has_fingerprint: false,
            unknown: None,
        };
        message.scan()?;
        Ok(message)
    }

    fn scan(&mut self) -> Result<(), StunError> {
        let mut offset = HEADER_LEN;
        while offset < self.raw.len() {
            let (t, value) = read_attr(self.raw, offset)?;
            if self.has_fingerprint {
                return Err(StunError::AfterFingerprint);
            }
            match t {
                attr::FINGERPRINT => {
                    self.check_fingerprint(offset, value)?;
                    self.has_fingerprint = true;
                }
                _ if self.integrity.is_some() => {}
                attr::MESSAGE_INTEGRITY if value.len() == 20 => {
                    self.integrity = Some(Integrity::Sha1 { offset });
                }
                attr::MESSAGE_INTEGRITY_SHA256 if (16..=32).contains(&value.len()) => {
                    self.integrity = Some(Integrity::Sha256 { offset });
                }
                attr::MESSAGE_INTEGRITY | attr::MESSAGE_INTEGRITY_SHA256 => {
                    return Err(StunError::BadAttribute(t));
                }
                _ if !attr::understood(t) && self.unknown.is_none() => self.unknown = Some(t),
                _ => {}
            }
            offset += ATTR_HEADER_LEN + padded(value.len());
        }
        Ok(())
    }

    fn check_fingerprint(&self, offset: usize, value: &[u8]) -> Result<(), StunError> {
        let expected = crc32(&self.raw[..offset]) ^ FINGERPRINT_XOR;
        if value.len() != 4 || value != expected.to_be_bytes() {
            return Err(StunError::BadFingerprint);
        }
        Ok(())
    }

    /// The value of the first attribute of type `t` before any integrity attribute.
    pub fn get(&self, t: u16) -> Option<&'a [u8]> {
        self.attributes().find(|(at, _)| *at == t).map(|(_, v)| v)
    }

    /// Every attribute before any integrity attribute, in order.
    pub fn attributes(&self) -> impl Iterator<Item = (u16, &'a [u8])> + 'a {
        let raw = self.raw;
        let end = match self.integrity {
            Some(Integrity::Sha1 { offset } | Integrity::Sha256 { offset }) => offset,
            None => raw.len(),
        };
        let mut offset = HEADER_LEN;
        std::iter::from_fn(move || {
            if offset >= end {
                return None;
            }
            // Framing was validated by `parse`.
            let (t, value) = read_attr(raw, offset).ok()?;
            offset += ATTR_HEADER_LEN + padded(value.len());
            Some((t, value))
        })
    }

    /// `get` as UTF-8 text (USERNAME, REALM, NONCE).
    pub fn text(&self, t: u16) -> Result<Option<&'a str>, StunError> {
        match self.get(t) {
            None => Ok(None),
            Some(v) => std::str::from_utf8(v)
                .map(Some)
                .map_err(|_| StunError::BadAttribute(t)),
        }
    }

    pub fn u32(&self, t: u16) -> Result<Option<u32>, StunError> {
        match self.get(t) {
            None => Ok(None),
            Some(v) if v.len() == 4 => Ok(Some(u32::from_be_bytes([v[0], v[1], v[2], v[3]]))),
            Some(_) => Err(StunError::BadAttribute(t)),
        }
    }

    /// An XOR-*-ADDRESS attribute, IPv4-mapped IPv6 normalised to IPv4.
    pub fn xor_address(&self, t: u16) -> Result<Option<SocketAddr>, StunError> {
        self.get(t)
            .map(|v| decode_xor_address(v, &self.transaction_id).ok_or(StunError::BadAttribute(t)))
            .transpose()
    }

    /// Whether the integrity attribute matches `key` (the long-term key).
    pub fn verify_integrity(&self, key: &[u8]) -> bool {
        match self.integrity {
            None => false,
            Some(Integrity::Sha1 { offset }) => {
                let mac = hmac_over::<Hmac<Sha1>>(key, self.raw, offset, 20);
                let got = &self.raw[offset + ATTR_HEADER_LEN..offset + ATTR_HEADER_LEN + 20];
                constant_time_eq(&mac[..20], got)
            }
            Some(Integrity::Sha256 { offset }) => {
                let len = u16::from_be_bytes([self.raw[offset + 2], self.raw[offset + 3]]);
                let mac = hmac_over::<Hmac<Sha256>>(key, self.raw, offset, padded(len as usize));
                let got = &self.raw[offset + ATTR_HEADER_LEN..][..len as usize];
                constant_time_eq(&mac[..len as usize], got)
            }
        }
    }

    /// The raw bytes, for tests and logging by length.
    pub fn len(&self) -> usize {
        self.raw.len()
    }

    pub fn is_empty(&self) -> bool {
        self.raw.is_empty()
    }
}

/// Reads the attribute at `offset`: its type and unpadded value.
fn read_attr(raw: &[u8], offset: usize) -> Result<(u16, &[u8]), StunError> {
    let header = raw
        .get(offset..offset + ATTR_HEADER_LEN)
        .ok_or(StunError::Truncated)?;
    let t = u16::from_be_bytes([header[0], header[1]]);
    let len = u16::from_be_bytes([header[2], header[3]]) as usize;
    let start = offset + ATTR_HEADER_LEN;
    if raw.len() < start + padded(len) {
        return Err(StunError::Truncated);
    }
    Ok((t, &raw[start..start + len]))
}

pub fn padded(len: usize) -> usize {
    (len + 3) & !3
}

/// HMAC over the message up to the integrity attribute at `offset`, with the header's
/// length field set as if the message ended right after that attribute (RFC 8489 §14.5).
fn hmac_over<M: Mac + hmac::digest::KeyInit>(
    key: &[u8],
    raw: &[u8],
    offset: usize,
    mac_len: usize,
) -> [u8; 32] {
    let mut mac =
        <M as hmac::digest::KeyInit>::new_from_slice(key).expect("HMAC accepts keys of any length");
    let adjusted = (offset - HEADER_LEN + ATTR_HEADER_LEN + mac_len) as u16;
    mac.update(&raw[..2]);
    mac.update(&adjusted.to_be_bytes());
    mac.update(&raw[4..offset]);
    let digest = mac.finalize().into_bytes();
    let mut out = [0; 32];
    let n = digest.len().min(32);
    out[..n].copy_from_slice(&digest[..n]);
    out
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

fn xor_mask(transaction_id: &[u8; 12]) -> [u8; 16] {
    let mut mask = [0; 16];
    mask[..4].copy_from_slice(&MAGIC_COOKIE.to_be_bytes());
    mask[4..].copy_from_slice(transaction_id);
    mask
}

pub fn decode_xor_address(v: &[u8], transaction_id: &[u8; 12]) -> Option<SocketAddr> {
    if v.len() < 4 {
        return None;
    }
    let port = u16::from_be_bytes([v[2], v[3]]) ^ (MAGIC_COOKIE >> 16) as u16;
    let mask = xor_mask(transaction_id);
    let ip = match (v[1], v.len()) {
        (0x01, 8) => {
            let mut o = [0; 4];
            for i in 0..4 {
                o[i] = v[4 + i] ^ mask[i];
            }
            IpAddr::V4(Ipv4Addr::from(o))
        }
        (0x02, 20) => {
            let mut o = [0; 16];
            for i in 0..16 {
                o[i] = v[4 + i] ^ mask[i];
            }
            normalise(IpAddr::V6(Ipv6Addr::from(o)))
        }
        _ => return None,
    };
    Some(SocketAddr::new(ip, port))
}

/// IPv4-mapped IPv6 (`::ffff:a.b.c.d`) as the IPv4 address it is, so policy checks see
/// the real family.
pub fn normalise(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(IpAddr::V6(v6), IpAddr::V4),
        v4 => v4,
    }
}

/// Builds a message into a caller-provided buffer. Every `put_*` is bounds-checked and
/// marks the writer as overflowed instead of panicking; `finish` then returns `None`.
pub struct Writer<'b> {
    buf: &'b mut [u8],
    len: usize,
    transaction_id: [u8; 12],
    overflow: bool,
}

impl<'b> Writer<'b> {
    pub fn new(buf: &'b mut [u8], class: Class, method: u16, transaction_id: [u8; 12]) -> Self {
        let mut w = Writer {
            buf,
            len: 0,
            transaction_id,
            overflow: false,
        };
        w.put(&message_type(class, method).to_be_bytes());
        w.put(&[0, 0]);
        w.put(&MAGIC_COOKIE.to_be_bytes());
        w.put(&transaction_id);
        w
    }

    fn put(&mut self, bytes: &[u8]) {
        match self.buf.get_mut(self.len..self.len + bytes.len()) {
            Some(dst) => {
                dst.copy_from_slice(bytes);
                self.len += bytes.len();
            }
            None => self.overflow = true,
        }
    }

    fn set_length(&mut self) {
        if self.len >= HEADER_LEN {
            let l = ((self.len - HEADER_LEN) as u16).to_be_bytes();
            self.buf[2..4].copy_from_slice(&l);
        }
    }

    pub fn attr(&mut self, t: u16, value: &[u8]) -> &mut Self {
        self.put(&t.to_be_bytes());
        self.put(&(value.len() as u16).to_be_bytes());
        self.put(value);
        let pad = padded(value.len()) - value.len();
        self.put(&[0; 3][..pad]);
        self
    }

    pub fn u32(&mut self, t: u16, v: u32) -> &mut Self {
        self.attr(t, &v.to_be_bytes())
    }

    pub fn xor_address(&mut self, t: u16, addr: SocketAddr) -> &mut Self {
        let mask = xor_mask(&self.transaction_id);
        let port = addr.port() ^ (MAGIC_COOKIE >> 16) as u16;
        let mut v = [0u8; 20];
        v[2..4].copy_from_slice(&port.to_be_bytes());
        let len = match normalise(addr.ip()) {
            IpAddr::V4(ip) => {
                v[1] = 0x01;
                for (i, o) in ip.octets().iter().enumerate() {
                    v[4 + i] = o ^ mask[i];
                }
                8
            }
            IpAddr::V6(ip) => {
                v[1] = 0x02;
                for (i, o) in ip.octets().iter().enumerate() {
                    v[4 + i] = o ^ mask[i];
                }
                20
            }
        };
        self.attr(t, &v[..len])
    }

    /// ERROR-CODE (RFC 8489 §14.8): class, number, UTF-8 reason.
    pub fn error_code(&mut self, code: u16, reason: &str) -> &mut Self {
        let header = [0, 0, (code / 100) as u8, (code % 100) as u8];
        self.put(&attr::ERROR_CODE.to_be_bytes());
        self.put(&((4 + reason.len()) as u16).to_be_bytes());
        self.put(&header);
        self.put(reason.as_bytes());
        let pad = padded(reason.len()) - reason.len();
        self.put(&[0; 3][..pad]);
        self
    }

    /// MESSAGE-INTEGRITY (HMAC-SHA1) or, if `sha256`, MESSAGE-INTEGRITY-SHA256.
    pub fn integrity(&mut self, key: &[u8], sha256: bool) -> &mut Self {
        let (t, mac_len) = if sha256 {
            (attr::MESSAGE_INTEGRITY_SHA256, 32)
        } else {
            (attr::MESSAGE_INTEGRITY, 20)
        };
        let offset = self.len;
        self.put(&t.to_be_bytes());
        self.put(&(mac_len as u16).to_be_bytes());
        self.put(&[0; 32][..mac_len]);
        if self.overflow {
            return self;
        }
        let mac = if sha256 {
            hmac_over::<Hmac<Sha256>>(key, self.buf, offset, mac_len)
        } else {
            hmac_over::<Hmac<Sha1>>(key, self.buf, offset, mac_len)
        };
        let start = offset + ATTR_HEADER_LEN;
        self.buf[start..start + mac_len].copy_from_slice(&mac[..mac_len]);
        self
    }

    pub fn fingerprint(&mut self) -> &mut Self {
        let offset = self.len;
        self.put(&attr::FINGERPRINT.to_be_bytes());
        self.put(&4u16.to_be_bytes());
        self.put(&[0; 4]);
        if self.overflow {
            return self;
        }
        self.set_length();
        let crc = crc32(&self.buf[..offset]) ^ FINGERPRINT_XOR;
        self.buf[offset + 4..offset + 8].copy_from_slice(&crc.to_be_bytes());
        self
    }

    /// The message length, or `None` if the buffer was too small.
    pub fn finish(&mut self) -> Option<usize> {
        if self.overflow {
            return None;
        }
        self.set_length();
        Some(self.len)
    }
}

impl Writer<'_> {
    /// Writes the header length so far; `integrity` and `fingerprint` need it current.
    pub fn sync(&mut self) -> &mut Self {
        self.set_length();
        self
    }
}

/// ChannelData (RFC 8656 §12.4): channel number, length, payload.
pub mod channel_data {
    /// Channel numbers a client may bind: RFC 8656 §12 narrowed them to 0x4000–0x4FFF,
    /// but RFC 5766 clients (coturn's own among them) still pick up to 0x7FFF, and the
    /// first two bits `01` tell ChannelData from STUN either way (RFC 7983).
    pub const MIN_CHANNEL: u16 = 0x4000;
    pub const MAX_CHANNEL: u16 = 0x7FFF;
    pub const HEADER_LEN: usize = 4;

    /// First two bits `01` (RFC 7983): ChannelData rather than STUN.
    pub fn looks_like(b: &[u8]) -> bool {
        b.first().is_some_and(|&b0| (0x40..=0x7F).contains(&b0))
    }

    /// `(channel, payload)`; the datagram may carry padding beyond the length.
    pub fn parse(b: &[u8]) -> Option<(u16, &[u8])> {
        if b.len() < HEADER_LEN {
            return None;
        }
        let channel = u16::from_be_bytes([b[0], b[1]]);
        let len = u16::from_be_bytes([b[2], b[3]]) as usize;
        let payload = b.get(HEADER_LEN..HEADER_LEN + len)?;
        Some((channel, payload))
    }

    /// Frames `payload` into `out`; `pad` rounds up to four bytes (required over TCP,
    /// RFC 8656 §12.5). Returns the framed length, or `None` if `out` is too small.
    pub fn write(out: &mut [u8], channel: u16, payload: &[u8], pad: bool) -> Option<usize> {
        let len = HEADER_LEN + payload.len();
        let total = if pad { super::padded(len) } else { len };
        let dst = out.get_mut(..total)?;
        dst[..2].copy_from_slice(&channel.to_be_bytes());
        dst[2..4].copy_from_slice(&(payload.len() as u16).to_be_bytes());
        dst[HEADER_LEN..len].copy_from_slice(payload);
        dst[len..].fill(0);
        Some(total)
    }
}

/// The length of the next STUN or ChannelData frame at the start of a TCP stream
/// buffer, padding included (RFC 8656 §12.5), or `None` if more bytes are needed to tell.
pub fn stream_frame_len(b: &[u8]) -> Option<usize> {
    if b.len() < 4 {
        return None;
    }
    let len = u16::from_be_bytes([b[2], b[3]]) as usize;
    if channel_data::looks_like(b) {
        Some(padded(channel_data::HEADER_LEN + len))
    } else {
        Some(HEADER_LEN + len)
    }
}

const CRC_TABLE: [u32; 256] = crc_table();

const fn crc_table() -> [u32; 256] {
    let mut table = [0u32; 256];
    let mut i = 0;
    while i < 256 {
        let mut c = i as u32;
        let mut k = 0;
        while k < 8 {
            c = if c & 1 != 0 {
                0xEDB8_8320 ^ (c >> 1)
            } else {
                c >> 1
            };
            k += 1;
        }
        table[i] = c;
        i += 1;
    }
    table
}

/// CRC-32 (ISO-HDLC, as zlib), which FINGERPRINT uses.
pub fn crc32(b: &[u8]) -> u32 {
    !b.iter().fold(!0u32, |c, &x| {
        CRC_TABLE[((c ^ x as u32) & 0xFF) as usize] ^ (c >> 8)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const TXID: [u8; 12] = [1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12];

    #[test]
    fn crc32_matches_the_reference_value() {
        assert_eq!(crc32(b"123456789"), 0xCBF4_3926);
    }

    #[test]
    fn message_type_round_trips() {
        for class in [
            Class::Request,
            Class::Indication,
            Class::Success,
            Class::Error,
        ] {
            for m in [
                method::BINDING,
                method::ALLOCATE,
                method::CHANNEL_BIND,
                0xFFF,
            ] {
                assert_eq!(split_type(message_type(class, m)), (class, m));
            }
        }
        assert_eq!(message_type(Class::Success, method::BINDING), 0x0101);
        assert_eq!(message_type(Class::Error, method::ALLOCATE), 0x0113);
    }

    /// RFC 5769 §2.1: the sample request (short-term credentials, so the key is the password).
    #[test]
    fn rfc5769_sample_request_verifies() {
        let hex = "000100582112a442b7e7a701bc34d686fa87dfae\
                   802200105354554e207465737420636c69656e74\
                   002400046e0001ff80290008932ff9b151263b36\
                   000600096576746a3a68367659202020\
                   000800149aeaa70cbfd8cb56781ef2b5b2d3f249c1b571a2\
                   80280004e57a3bcf";
        let hex: String = hex.chars().filter(|c| !c.is_whitespace()).collect();
        let bytes: Vec<u8> = (0..hex.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&hex[i..i + 2], 16).unwrap())
            .collect();
        let m = Message::parse(&bytes).expect("parses");
        assert_eq!(m.class, Class::Request);
        assert_eq!(m.method, method::BINDING);
        assert!(m.has_fingerprint);
        assert_eq!(m.text(attr::USERNAME).unwrap(), Some("evtj:h6vY"));
        assert!(m.verify_integrity(b"VOkJxbRl1RmTxUk/WvJxBt"));
        assert!(!m.verify_integrity(b"wrong"));
    }

    #[test]
    fn writer_output_parses_and_verifies() {
        let mut buf = [0u8; 512];
        let peer: SocketAddr = "192.0.2.1:32853".parse().unwrap();
        let peer6: SocketAddr = "[2001:db8::1]:4000".parse().unwrap();
        for sha256 in [false, true] {
            let mut w = Writer::new(&mut buf, Class::Success, method::ALLOCATE, TXID);
            w.xor_address(attr::XOR_PEER_ADDRESS, peer)
                .xor_address(attr::XOR_RELAYED_ADDRESS, peer6)
                .u32(attr::LIFETIME, 600)
                .attr(attr::USERNAME, b"odd")
                .error_code(438, "Stale Nonce")
                .sync()
                .integrity(b"key", sha256)
                .fingerprint();
            let len = w.finish().unwrap();
            let m = Message::parse(&buf[..len]).unwrap();
            assert_eq!(m.xor_address(attr::XOR_PEER_ADDRESS).unwrap(), Some(peer));
            assert_eq!(
                m.xor_address(attr::XOR_RELAYED_ADDRESS).unwrap(),
                Some(peer6)
            );
            assert_eq!(m.u32(attr::LIFETIME).unwrap(), Some(600));
            assert_eq!(m.get(attr::USERNAME), Some(&b"odd"[..]));
            assert!(m.verify_integrity(b"key"));
            assert!(!m.verify_integrity(b"other"));
        }
    }

    #[test]
    fn mapped_ipv6_peer_is_normalised() {
        let mut buf = [0u8; 128];
        let mapped: SocketAddr = "[::ffff:10.0.0.1]:5000".parse().unwrap();
        let mut w = Writer::new(&mut buf, Class::Request, method::SEND, TXID);
        // Encode the mapped address by hand as IPv6 (the writer would normalise it).
        let mask = xor_mask(&TXID);
        let mut v = [0u8; 20];
        v[1] = 2;
        v[2..4].copy_from_slice(&(5000u16 ^ 0x2112).to_be_bytes());
        if let IpAddr::V6(ip) = mapped.ip() {
            for (i, o) in ip.octets().iter().enumerate() {
                v[4 + i] = o ^ mask[i];
            }
        }
        w.attr(attr::XOR_PEER_ADDRESS, &v);
        let len = w.finish().unwrap();
        let m = Message::parse(&buf[..len]).unwrap();
        assert_eq!(
            m.xor_address(attr::XOR_PEER_ADDRESS).unwrap(),
            Some("10.0.0.1:5000".parse().unwrap())
        );
    }

    #[test]
    fn malformed_messages_are_errors() {
        let mut buf = [0u8; 64];
        let len = Writer::new(&mut buf, Class::Request, method::BINDING, TXID)
            .attr(attr::SOFTWARE, b"x")
            .fingerprint()
            .finish()
            .unwrap();
        let good = buf[..len].to_vec();
        assert!(Message::parse(&good).is_ok());
        for cut in 0..good.len() {
            assert!(Message::parse(&good[..cut]).is_err(), "cut {cut}");
        }
        let mut bad_fp = good.clone();
        *bad_fp.last_mut().unwrap() ^= 1;
        assert_eq!(
            Message::parse(&bad_fp).unwrap_err(),
            StunError::BadFingerprint
        );
        let mut bad_attr_len = good.clone();
        bad_attr_len[22..24].copy_from_slice(&200u16.to_be_bytes());
        assert!(Message::parse(&bad_attr_len).is_err());
        let mut extra = good.clone();
        extra.extend_from_slice(&[0; 4]);
        assert!(Message::parse(&extra).is_err());
    }

    #[test]
    fn writer_overflow_is_none_not_a_panic() {
        let mut buf = [0u8; 24];
        let mut w = Writer::new(&mut buf, Class::Request, method::BINDING, TXID);
        w.attr(attr::SOFTWARE, b"too long for the buffer")
            .integrity(b"k", false)
            .fingerprint();
        assert_eq!(w.finish(), None);
    }

    #[test]
    fn channel_data_frames() {
        let mut out = [0u8; 16];
        let n = channel_data::write(&mut out, 0x4001, b"hello", true).unwrap();
        assert_eq!(n, 12);
        assert_eq!(
            channel_data::parse(&out[..n]),
            Some((0x4001, &b"hello"[..]))
        );
        assert_eq!(stream_frame_len(&out[..4]), Some(12));
        assert_eq!(channel_data::parse(&out[..6]), None);
        assert_eq!(channel_data::write(&mut out, 0x4001, &[0; 20], false), None);
    }
}
