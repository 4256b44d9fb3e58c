//! The sans-IO SFU: rooms of str0m `Rtc`s in RTP mode, forwarding, layer choice, keyframes and
//! speaker detection. No tokio, no sockets, no clock reads: every input carries its `now`.

pub mod api;
pub mod demux;
pub mod forward;
pub mod keyframe;
pub mod participant;
pub mod room;
pub mod shard;
pub mod speaker;
pub mod vp8;
