//! TURN over TCP (RFC 8656 §3.1): STUN messages and ChannelData framed back to back on
//! the stream (ChannelData padded to four bytes). The allocation lives as long as the
//! connection. TLS connections run the same loop over a TLS stream.

use std::rc::Rc;
use std::time::Instant;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

use super::coalesce;
use super::shard::{Shard, StreamOut};
use crate::core::allocation::{FiveTuple, Transport};
use crate::core::stun::stream_frame_len;

/// Read buffer: the largest frame (a 64 kB ChannelData) plus one read's worth.
const READ_BUF: usize = 2 * 65_600;

pub(crate) async fn accept_loop(shard: Rc<Shard>, listener: std::net::TcpListener) {
    let listener = match tokio::net::TcpListener::from_std(listener) {
        Ok(l) => l,
        Err(e) => {
            tracing::error!(error = %e, "TURN TCP listener failed");
            return;
        }
    };
    loop {
        let (stream, client) = match listener.accept().await {
            Ok(accepted) => accepted,
            Err(e) => {
                tracing::debug!(error = %e, "TURN TCP accept failed");
                continue;
            }
        };
        let _ = stream.set_nodelay(true);
        let local = stream.local_addr().unwrap_or(shard.listen);
        let tuple = FiveTuple {
            client,
            server: local,
            transport: Transport::Tcp,
        };
        tokio::task::spawn_local(serve_stream(shard.clone(), stream, tuple));
    }
}

/// Reads frames into the core and writes what it (and the relayed sockets) queue back.
pub(crate) async fn serve_stream<S>(shard: Rc<Shard>, stream: S, tuple: FiveTuple)
where
    S: AsyncRead + AsyncWrite + 'static,
{
    let out = Rc::new(StreamOut::default());
    shard.streams.borrow_mut().insert(tuple.client, out.clone());
    let (mut reader, mut writer) = tokio::io::split(stream);
    let writing = tokio::task::spawn_local({
        let out = out.clone();
        async move {
            let mut batch = Vec::new();
            loop {
                out.ready.notified().await;
                loop {
                    std::mem::swap(&mut batch, &mut *out.queue.borrow_mut());
                    if batch.is_empty() {
                        break;
                    }
                    if writer.write_all(&batch).await.is_err() {
                        return;
                    }
                    batch.clear();
                }
            }
        }
    });
    let mut buf = vec![0u8; READ_BUF];
    let mut filled = 0;
    loop {
        let n = match reader.read(&mut buf[filled..]).await {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        filled += n;
        let now = Instant::now();
        let mut start = 0;
        let mut frames = 0;
        while let Some(len) = stream_frame_len(&buf[start..filled]) {
            if filled - start < len {
                break;
            }
            shard.on_client_datagram(now, tuple, &buf[start..start + len]);
            start += len;
            frames += 1;
        }
        coalesce::handled(frames);
        shard.flush();
        shard.server.borrow_mut().flush_stats();
        buf.copy_within(start..filled, 0);
        filled -= start;
    }
    writing.abort();
    shard.close_client(&tuple);
    tracing::debug!(transport = tuple.transport.label(), "TURN stream closed");
}
