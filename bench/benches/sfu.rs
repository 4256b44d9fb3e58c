//! SFU hot paths: the per-subscriber forward decision of `sfu::core::forward` (simulcast layer
//! gate, sequence-number/timestamp rewrite, RTP header patch into a reused buffer), a layer
//! switch, the publisher's rate meter, the bandwidth split, and SRTP protect per packet with
//! the cipher implementations str0m's SRTP context calls (its context itself is crate-private
//! and reachable only through a DTLS-connected `Rtc`; see bench/NOTES.md).

use std::hint::black_box;
use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use sfu::core::forward::{allocate, Demand, LayerSwitch, RateMeter, Rewriter, Verdict};
use str0m::crypto::{AeadAes128Gcm, AeadAes256Gcm, Aes128CmSha1_80};

/// A VP8 simulcast packet as Chrome sends the high layer: 12 B header + 1188 B payload.
const PACKET_LEN: usize = 1200;
const RTP_HEADER: usize = 12;
const VIDEO_CLOCK: u32 = 90_000;
/// 30 fps video: one frame per 33 ms, ~8 packets per frame at 2.5 Mbit/s.
const FRAME: Duration = Duration::from_millis(33);

/// One subscriber's state for one publisher video track, as the room keeps it.
struct Subscriber {
    layer: LayerSwitch,
    rewriter: Rewriter,
    out: [u8; PACKET_LEN],
}

impl Subscriber {
    fn on_layer(layer: u8) -> Self {
        let mut s = Self {
            layer: LayerSwitch::default(),
            rewriter: Rewriter::default(),
            out: [0; PACKET_LEN],
        };
        s.layer.set_target(Some(layer));
        // The first keyframe of the target layer starts forwarding.
        assert_eq!(s.layer.on_packet(layer, true), Verdict::SwitchTo(layer));
        s
    }

    /// The forward decision and the rewritten packet in this subscriber's reused buffer.
    /// Returns whether a packet goes out.
    fn forward(
        &mut self,
        pkt: &[u8],
        layer: u8,
        keyframe: bool,
        seq: u64,
        ts: u32,
        now: Instant,
    ) -> bool {
        let switched = match self.layer.on_packet(layer, keyframe) {
            Verdict::Drop => return false,
            Verdict::Forward => false,
            Verdict::SwitchTo(_) => true,
        };
        let Some(out) = self.rewriter.rewrite(switched, seq, ts, now, VIDEO_CLOCK) else {
            return false;
        };
        self.out[..pkt.len()].copy_from_slice(pkt);
        self.out[2..4].copy_from_slice(&(out.seq as u16).to_be_bytes());
        self.out[4..8].copy_from_slice(&out.ts.to_be_bytes());
        true
    }
}

fn packet() -> Vec<u8> {
    let mut p = vec![0x5Au8; PACKET_LEN];
    p[0] = 0x80;
    p[1] = 96;
    p
}

/// One publisher packet fanned out to N subscribers on the same layer (steady state).
fn fan_out(c: &mut Criterion) {
    let pkt = packet();
    let mut g = c.benchmark_group("sfu/forward_fan_out");
    for n in [1usize, 11] {
        g.throughput(Throughput::Elements(n as u64));
        g.bench_with_input(BenchmarkId::from_parameter(n), &n, |b, &n| {
            let mut subs: Vec<Subscriber> = (0..n).map(|_| Subscriber::on_layer(2)).collect();
            let start = Instant::now();
            let mut seq = 1u64;
            b.iter(|| {
                seq += 1;
                let now = start + FRAME * (seq / 8) as u32;
                let ts = (seq / 8) as u32 * 3000;
                let mut sent = 0;
                for s in &mut subs {
                    sent += usize::from(s.forward(black_box(&pkt), 2, false, seq, ts, now));
                }
                assert_eq!(sent, n);
            })
        });
    }
    g.finish();
}

/// Three simulcast layers arrive interleaved; the subscriber's target moves between layers
/// 0 and 2 every 30 frames (about a second) and switches at the next keyframe of the target.
/// Per incoming packet: gate (mostly Drop), rewrite with offset recomputation on a switch.
fn layer_switch(c: &mut Criterion) {
    let pkt = packet();
    let mut g = c.benchmark_group("sfu/simulcast");
    g.throughput(Throughput::Elements(1));
    g.bench_function("gate_and_rewrite_3_layers_switching", |b| {
        let mut sub = Subscriber::on_layer(0);
        let start = Instant::now();
        let mut i = 0u64;
        let mut switches = 0u64;
        b.iter(|| {
            i += 1;
            let layer = (i % 3) as u8;
            let frame = i / 24;
            // Each layer has its own sequence space and timestamp base.
            let seq = 10_000 * u64::from(layer) + i / 3;
            let ts = (frame as u32) * 3000 + u32::from(layer) * 77;
            // Keyframes every 30 frames on every layer (first packet of the frame).
            let keyframe = frame % 30 == 0 && i % 24 < 3;
            if i % (24 * 30) == 0 {
                let target = if sub.layer.target() == Some(2) { 0 } else { 2 };
                sub.layer.set_target(Some(target));
                switches += 1;
            }
            let now = start + FRAME * frame as u32;
            black_box(sub.forward(&pkt, layer, keyframe, seq, ts, now))
        });
        black_box(switches);
    });
    g.bench_function("rate_meter_on_packet", |b| {
        let mut meter = RateMeter::default();
        let start = Instant::now();
        let mut i = 0u32;
        b.iter(|| {
            i = i.wrapping_add(1);
            meter.on_packet(
                start + Duration::from_micros(u64::from(i) * 500),
                black_box(PACKET_LEN),
            );
        })
    });
    // Per reallocation (on each estimate update, not per packet): 11 publishers' video.
    let demands: Vec<Demand> = (0..11)
        .map(|i| Demand {
            layers: [Some(150_000), Some(500_000), Some(1_500_000 + i * 10_000)],
            max_layer: 2,
            paused: false,
            current: Some(1),
        })
        .collect();
    g.bench_function("allocate_budget_11_tracks", |b| {
        b.iter(|| allocate(black_box(6_000_000), black_box(&demands)))
    });
    g.finish();
}

/// SRTP protect of one packet as str0m's `SrtpContext::protect_rtp` does it, with the same
/// provider calls, into a reused buffer (str0m allocates a fresh `Vec` per packet).
fn srtp_protect(c: &mut Criterion) {
    sfu::init_crypto();
    let provider = str0m::crypto::from_feature_flags();
    let srtp = provider.srtp_provider;
    let hmac = provider.sha1_hmac_provider;
    let pkt = packet();
    let ssrc = 0x1234_5678u32;
    let mut out = vec![0u8; PACKET_LEN + 32];
    let mut g = c.benchmark_group("sfu/srtp_protect");
    g.throughput(Throughput::Bytes(PACKET_LEN as u64));

    let mut gcm = srtp.aead_aes_128_gcm().create_cipher([7; 16], true);
    let gcm_salt = [3u8; 12];
    let mut seq = 0u16;
    g.bench_function("aead_aes_128_gcm_1200B", |b| {
        b.iter(|| {
            seq = seq.wrapping_add(1);
            let iv = AeadAes128Gcm::rtp_iv(gcm_salt, ssrc, 0, seq);
            let (aad, input) = pkt.split_at(RTP_HEADER);
            let end = PACKET_LEN + AeadAes128Gcm::TAG_LEN;
            gcm.encrypt(&iv, aad, input, &mut out[RTP_HEADER..end])
                .unwrap();
            out[..RTP_HEADER].copy_from_slice(aad);
            black_box(&out[..end]);
        })
    });

    let mut gcm256 = srtp.aead_aes_256_gcm().create_cipher([7; 32], true);
    // str0m prefers AEAD_AES_256_GCM (its `SrtpProfile::ALL` order), which Chrome offers.
    g.bench_function("aead_aes_256_gcm_1200B", |b| {
        b.iter(|| {
            seq = seq.wrapping_add(1);
            let iv = AeadAes256Gcm::rtp_iv(gcm_salt, ssrc, 0, seq);
            let (aad, input) = pkt.split_at(RTP_HEADER);
            let end = PACKET_LEN + AeadAes256Gcm::TAG_LEN;
            gcm256
                .encrypt(&iv, aad, input, &mut out[RTP_HEADER..end])
                .unwrap();
            out[..RTP_HEADER].copy_from_slice(aad);
            black_box(&out[..end]);
        })
    });

    let mut cm = srtp.aes_128_cm_sha1_80().create_cipher([7; 16], true);
    let cm_salt = [3u8; 14];
    let auth_key = [9u8; Aes128CmSha1_80::HMAC_KEY_LEN];
    let mut index = 0u64;
    g.bench_function("aes_128_cm_hmac_sha1_80_1200B", |b| {
        b.iter(|| {
            index += 1;
            let iv = Aes128CmSha1_80::rtp_iv(cm_salt, ssrc, index);
            // The cipher may use up to 15 bytes of CTR scratch past the body (see str0m).
            cm.encrypt(
                &iv,
                &pkt[RTP_HEADER..],
                &mut out[RTP_HEADER..PACKET_LEN + 15],
            )
            .unwrap();
            out[..RTP_HEADER].copy_from_slice(&pkt[..RTP_HEADER]);
            let tag = |k: &[u8], p: &[&[u8]]| hmac.sha1_hmac(k, p);
            Aes128CmSha1_80::rtp_hmac(tag, &auth_key, &mut out, index, PACKET_LEN);
            black_box(&out[..PACKET_LEN + Aes128CmSha1_80::HMAC_TAG_LEN]);
        })
    });
    // The two halves of AES_CM_128_HMAC_SHA1_80, to see which one costs.
    g.bench_function("aes_128_cm_encrypt_only_1200B", |b| {
        b.iter(|| {
            index += 1;
            let iv = Aes128CmSha1_80::rtp_iv(cm_salt, ssrc, index);
            cm.encrypt(
                &iv,
                &pkt[RTP_HEADER..],
                &mut out[RTP_HEADER..PACKET_LEN + 15],
            )
            .unwrap();
            black_box(&out[..PACKET_LEN]);
        })
    });
    g.bench_function("hmac_sha1_80_only_1200B", |b| {
        b.iter(|| {
            index += 1;
            let tag = |k: &[u8], p: &[&[u8]]| hmac.sha1_hmac(k, p);
            Aes128CmSha1_80::rtp_hmac(tag, &auth_key, &mut out, index, PACKET_LEN);
            black_box(&out[PACKET_LEN..PACKET_LEN + Aes128CmSha1_80::HMAC_TAG_LEN]);
        })
    });
    g.finish();
}

/// What `Room::forward_to` does with the payload today: `pkt.payload.clone()` per
/// subscriber (one heap allocation and copy per forwarded packet), beside a copy into a
/// reused buffer.
fn payload_copy(c: &mut Criterion) {
    let payload = vec![0x5Au8; PACKET_LEN - RTP_HEADER];
    let mut reused = vec![0u8; PACKET_LEN];
    let mut g = c.benchmark_group("sfu/payload");
    g.throughput(Throughput::Elements(1));
    g.bench_function("vec_clone_1188B", |b| {
        b.iter(|| black_box(&payload).clone())
    });
    g.bench_function("copy_into_reused_1188B", |b| {
        b.iter(|| reused[..payload.len()].copy_from_slice(black_box(&payload)))
    });
    g.finish();
}

criterion_group!(benches, fan_out, layer_switch, srtp_protect, payload_copy);
criterion_main!(benches);
