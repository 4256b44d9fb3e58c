//! XMPP over TCP (RFC 6120) on `--xmpp-addr`: one XML stream per connection.

use std::future::Future;
use std::sync::Arc;

use tokio::io::{AsyncReadExt, AsyncWriteExt, BufWriter};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;

use crate::core::context::XmppContext;
use crate::core::framing::{FramingError, StreamEvent, TcpFramer};
use crate::core::session::{Flow, Session};
use crate::core::stanza::Framing;

/// Read buffer per connection; small, since idle connections dominate.
const READ_BUFFER: usize = 4096;
/// Stanzas written per wake before yielding, so one busy reader cannot starve others.
const WRITE_BATCH: usize = 64;

/// Accepts connections until `shutdown` resolves.
pub async fn serve(
    listener: TcpListener,
    ctx: Arc<XmppContext>,
    shutdown: impl Future<Output = ()>,
) {
    tokio::pin!(shutdown);
    loop {
        tokio::select! {
            () = &mut shutdown => break,
            accepted = listener.accept() => match accepted {
                Ok((stream, peer)) => {
                    let ctx = ctx.clone();
                    tokio::spawn(async move {
                        let _ = stream.set_nodelay(true);
                        tracing::debug!(%peer, "xmpp tcp connection");
                        connection(ctx, stream).await;
                    });
                }
                Err(e) => tracing::warn!(error = %e, "xmpp accept failed"),
            },
        }
    }
}

async fn connection(ctx: Arc<XmppContext>, stream: TcpStream) {
    let gauge = ctx.metrics.connection("tcp");
    gauge.inc();
    let (mut reader, writer) = stream.into_split();
    let mut writer = BufWriter::new(writer);
    let (tx, mut rx) = mpsc::channel(ctx.config.outbound_queue);
    let mut session = Session::new(ctx.clone(), Framing::Tcp, tx);
    let mut framer = TcpFramer::new(ctx.config.max_stanza_bytes);
    let mut buf = vec![0u8; READ_BUFFER];
    let mut events: Vec<StreamEvent> = Vec::new();
    'conn: loop {
        tokio::select! {
            read = reader.read(&mut buf) => {
                let n = match read {
                    Ok(0) | Err(_) => break,
                    Ok(n) => n,
                };
                events.clear();
                let fed = framer.feed(&buf[..n], &mut events);
                for event in events.drain(..) {
                    match session.handle(event).await {
                        Flow::Continue => {}
                        Flow::Restart => framer.reset(),
                        Flow::Close => {
                            flush(&mut writer, &mut rx).await;
                            break 'conn;
                        }
                    }
                }
                if let Err(e) = fed {
                    match e {
                        FramingError::TooLarge { .. } => session.fail("policy-violation", "stanza too large"),
                        other => session.fail("not-well-formed", &other.to_string()),
                    };
                    flush(&mut writer, &mut rx).await;
                    break;
                }
            }
            Some(out) = rx.recv() => {
                if writer.write_all(out.as_bytes()).await.is_err() {
                    break;
                }
                for _ in 0..WRITE_BATCH {
                    let Ok(more) = rx.try_recv() else { break };
                    if writer.write_all(more.as_bytes()).await.is_err() {
                        break 'conn;
                    }
                }
                if writer.flush().await.is_err() {
                    break;
                }
            }
        }
    }
    session.finish();
    let _ = writer.shutdown().await;
    gauge.dec();
}

async fn flush(
    writer: &mut BufWriter<tokio::net::tcp::OwnedWriteHalf>,
    rx: &mut mpsc::Receiver<crate::core::router::Outbound>,
) {
    while let Ok(out) = rx.try_recv() {
        if writer.write_all(out.as_bytes()).await.is_err() {
            return;
        }
    }
    let _ = writer.flush().await;
}
