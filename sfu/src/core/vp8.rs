//! VP8 payload-descriptor work for one subscription: temporal-layer dropping (Janus
//! `temporal`) and the PictureID/TL0PICIDX rewrite that makes a simulcast switch look like one
//! encoder to the receiver's frame-reference tracking.
//!
//! str0m parses the descriptor ([`Vp8Descriptor`]) and applies the rewrite while it serialises
//! the packet ([`RtpWrite::vp8_patch`](str0m::rtp::RtpWrite::vp8_patch)), so the shared payload
//! is never copied. Its stable API does not expose the temporal-layer index or the PictureID
//! width, so those two fields (RFC 7741 §4.2) are read here.

use str0m::rtp::{Vp8Descriptor, Vp8Patch};

/// 15-bit PictureIDs wrap at this value, 7-bit ones at 128.
const PICTURE_ID_WRAP_15: u16 = 0x8000;
const PICTURE_ID_WRAP_7: u16 = 0x80;

/// What the fan-out needs of one VP8 packet, parsed once per received packet.
#[derive(Debug, Clone, Copy)]
pub struct Vp8Info {
    descriptor: Vp8Descriptor,
    /// The descriptor uses a 15-bit PictureID (the M bit).
    long_picture_id: bool,
    /// Temporal layer index (TID), when the descriptor carries one.
    pub tid: Option<u8>,
    /// First packet of a frame (S bit set, partition 0): temporal decisions change only here,
    /// so a frame is forwarded whole or not at all.
    pub starts_frame: bool,
}

impl Vp8Info {
    /// Parses the payload descriptor; `None` for a payload str0m rejects (forwarded untouched).
    pub fn parse(payload: &[u8]) -> Option<Self> {
        let descriptor = Vp8Descriptor::parse(payload).ok()?;
        let required = payload[0];
        let starts_frame = required & 0x10 != 0 && required & 0x07 == 0;
        let mut info = Self {
            descriptor,
            long_picture_id: false,
            tid: None,
            starts_frame,
        };
        if required & 0x80 == 0 {
            return Some(info);
        }
        // The extension octet says which optional fields follow, in order: PictureID (1 or 2
        // octets), TL0PICIDX, then TID/Y/KEYIDX. str0m validated that they are all present.
        let extension = *payload.get(1)?;
        let mut offset = 2;
        if extension & 0x80 != 0 {
            info.long_picture_id = payload.get(offset)? & 0x80 != 0;
            offset += if info.long_picture_id { 2 } else { 1 };
        }
        if extension & 0x40 != 0 {
            offset += 1;
        }
        if extension & 0x20 != 0 {
            info.tid = Some(payload.get(offset)? >> 6);
        }
        Some(info)
    }

    fn picture_id_wrap(&self) -> u16 {
        if self.long_picture_id {
            PICTURE_ID_WRAP_15
        } else {
            PICTURE_ID_WRAP_7
        }
    }
}

/// Per-subscription VP8 state: which temporal layers pass, and the offsets that continue the
/// PictureID and TL0PICIDX sequences across a source change.
#[derive(Debug, Default)]
pub struct Vp8Rewrite {
    /// Temporal layer limit in force for the current frame.
    temporal: Option<u8>,
    /// The current frame is above the limit: drop its remaining packets too.
    dropping_frame: bool,
    picture_id_delta: u16,
    tl0_delta: u8,
    /// Last PictureID and TL0PICIDX sent, to continue from at the next source change.
    last_picture_id: Option<u16>,
    last_tl0: Option<u8>,
}

impl Vp8Rewrite {
    /// Whether this packet is dropped because its temporal layer is above `max_temporal`.
    /// A new limit takes effect at the next frame start: lowering it drops whole frames, and
    /// raising it is safe at any frame because the frames of lower layers, which the higher
    /// ones reference, have all been forwarded.
    pub fn drops(&mut self, info: &Vp8Info, max_temporal: u8) -> bool {
        if info.starts_frame || self.temporal.is_none() {
            self.temporal = Some(max_temporal);
            self.dropping_frame = info.tid.is_some_and(|tid| tid > max_temporal);
        }
        self.dropping_frame
    }

    /// The descriptor patch for a forwarded packet. `switched` marks the first packet of a new
    /// source (a keyframe after a simulcast switch, or another feed): its PictureID and
    /// TL0PICIDX continue from the last ones sent, as if one encoder had produced both.
    pub fn patch(&mut self, info: &Vp8Info, switched: bool) -> Option<Vp8Patch> {
        let picture_id = info.descriptor.picture_id();
        let tl0 = info.descriptor.tl0_pic_idx();
        let wrap = info.picture_id_wrap();
        if switched {
            if let (Some(last), Some(now)) = (self.last_picture_id, picture_id) {
                let next = (last + 1) % wrap;
                self.picture_id_delta = (next + wrap - now) % wrap;
            }
            if let (Some(last), Some(now)) = (self.last_tl0, tl0) {
                self.tl0_delta = last.wrapping_add(1).wrapping_sub(now);
            }
        }
        let out_picture_id = picture_id.map(|p| (p + self.picture_id_delta) % wrap);
        let out_tl0 = tl0.map(|t| t.wrapping_add(self.tl0_delta));
        self.last_picture_id = out_picture_id.or(self.last_picture_id);
        self.last_tl0 = out_tl0.or(self.last_tl0);
        if self.picture_id_delta == 0 && self.tl0_delta == 0 {
            return None;
        }
        let mut builder = info.descriptor.patch();
        if let Some(p) = out_picture_id {
            builder = builder.picture_id(p);
        }
        if let Some(t) = out_tl0 {
            builder = builder.tl0_pic_idx(t);
        }
        builder.build().ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A descriptor with a 15-bit PictureID, TL0PICIDX and TID, then a VP8 header byte.
    fn payload(picture_id: u16, tl0: u8, tid: u8, keyframe: bool) -> Vec<u8> {
        vec![
            0x90,
            0xe0,
            0x80 | (picture_id >> 8) as u8,
            picture_id as u8,
            tl0,
            tid << 6,
            if keyframe { 0x00 } else { 0x01 },
            0,
        ]
    }

    #[test]
    fn parses_temporal_index_and_frame_start() {
        let info = Vp8Info::parse(&payload(300, 7, 2, false)).unwrap();
        assert_eq!(info.tid, Some(2));
        assert!(info.starts_frame);
        assert!(info.long_picture_id);
        // Continuation packet of a frame (S bit clear), no extension: no TID.
        let info = Vp8Info::parse(&[0x00, 0x01, 0x02]).unwrap();
        assert_eq!(info.tid, None);
        assert!(!info.starts_frame);
        // Truncated descriptor: str0m refuses it, we forward it untouched.
        assert!(Vp8Info::parse(&[0x90, 0xe0, 0x81]).is_none());
        assert!(Vp8Info::parse(&[]).is_none());
    }

    #[test]
    fn one_source_passes_unpatched() {
        let mut r = Vp8Rewrite::default();
        for (i, tid) in [0u8, 2, 1, 2].into_iter().enumerate() {
            let p = payload(100 + i as u16, 5, tid, i == 0);
            let info = Vp8Info::parse(&p).unwrap();
            assert!(!r.drops(&info, 2));
            assert!(
                r.patch(&info, i == 0).is_none(),
                "first source keeps its ids"
            );
            assert_eq!(
                (r.last_picture_id, r.last_tl0),
                (Some(100 + i as u16), Some(5))
            );
        }
    }

    #[test]
    fn switch_continues_picture_id_and_tl0() {
        let mut r = Vp8Rewrite::default();
        for i in 0..3u16 {
            let info = Vp8Info::parse(&payload(0x7ffe + i, 250, 0, i == 0)).unwrap();
            r.patch(&info, i == 0);
        }
        // Last sent: PictureID 0x0000 (wrapped), TL0 250. The new layer starts elsewhere.
        let info = Vp8Info::parse(&payload(9000, 17, 0, true)).unwrap();
        assert!(r.patch(&info, true).is_some());
        assert_eq!(r.last_picture_id, Some(1));
        assert_eq!(r.last_tl0, Some(251));
        let info = Vp8Info::parse(&payload(9001, 18, 0, false)).unwrap();
        assert!(r.patch(&info, false).is_some());
        assert_eq!(r.last_picture_id, Some(2));
        assert_eq!(r.last_tl0, Some(252));
    }

    #[test]
    fn temporal_limit_drops_whole_frames_and_changes_at_frame_starts() {
        let mut r = Vp8Rewrite::default();
        let start = |tid| Vp8Info::parse(&payload(1, 1, tid, false)).unwrap();
        // A continuation packet: S bit clear, extension with TID.
        let cont = |tid: u8| Vp8Info::parse(&[0x80, 0x20, tid << 6, 0x01, 0]).unwrap();
        assert!(r.drops(&start(2), 0));
        assert!(r.drops(&cont(2), 0), "rest of the dropped frame");
        assert!(!r.drops(&start(0), 0));
        // The limit rises mid-frame: the frame in progress is unaffected.
        assert!(!r.drops(&cont(0), 2));
        assert!(!r.drops(&start(2), 2));
        // It falls mid-frame: the tid-2 frame in progress is finished, the next is dropped.
        assert!(!r.drops(&cont(2), 0));
        assert!(r.drops(&start(2), 0));
    }
}
