//! XMPP over TCP (RFC 6120) on `--xmpp-addr`: one XML stream per connection, upgraded to
//! TLS in place on STARTTLS.

use std::future::Future;
use std::sync::Arc;
use std::time::Instant;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, BufWriter};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;

use crate::core::context::XmppContext;
use crate::core::framing::{FramingError, StreamEvent, TcpFramer};
use crate::core::resume::{takeover, Detached, ResumeTable, Takeover};
use crate::core::router::Outbound;
use crate::core::session::{Flow, Session};
use crate::core::stanza::Framing;

/// Read and write buffers per connection: small, because idle connections dominate memory
/// (the target is < 10 KiB per idle connection) and a typical stanza is a few hundred bytes;
/// larger writes bypass the buffer.
const READ_BUFFER: usize = 2048;
const WRITE_BUFFER: usize = 2048;
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

/// How a pass over one transport ended.
enum End {
    /// The stream ended (the client closed it, or we did after an error).
    Closed,
    /// The connection dropped under a live stream: a resumable session waits.
    Dropped,
    /// Another connection resumed this session: hand it over.
    TakenOver(Takeover),
    StartTls,
}

async fn connection(ctx: Arc<XmppContext>, stream: TcpStream) {
    let gauge = ctx.metrics.connection("tcp");
    gauge.inc();
    let (tx, mut rx) = mpsc::channel(ctx.config.outbound_queue);
    let mut session = Session::new(ctx.clone(), Framing::Tcp, tx, false);
    let mut framer = TcpFramer::new(ctx.config.max_stanza_bytes);

    let (reader, writer) = stream.into_split();
    let mut writer = BufWriter::with_capacity(WRITE_BUFFER, writer);
    let (mut end, reader) = pump(
        &mut session,
        &mut framer,
        &mut rx,
        reader_ref(reader),
        &mut writer,
    )
    .await;
    if let (End::StartTls, Some(tls)) = (&end, ctx.config.tls.clone()) {
        end = End::Closed;
        if let Ok(stream) = reader.reunite(writer.into_inner()) {
            // Boxed: the TLS states are large and most connections never reach them.
            end = Box::pin(secure(tls, stream, &mut session, &mut framer, &mut rx)).await;
        }
    }
    gauge.dec();
    match (end, session.resumption_id()) {
        (End::TakenOver(reply), _) => {
            // The resuming connection finishes the session if this send fails.
            let _ = reply.send(Detached { session, rx });
        }
        (End::Dropped, Some(id)) => ResumeTable::park(&ctx, id, session, rx),
        _ => session.finish(),
    }
}

/// STARTTLS: the handshake on the same socket, then the rest of the stream over TLS.
async fn secure(
    tls: Arc<rustls::ServerConfig>,
    stream: TcpStream,
    session: &mut Session,
    framer: &mut TcpFramer,
    rx: &mut mpsc::Receiver<Outbound>,
) -> End {
    match tokio_rustls::TlsAcceptor::from(tls).accept(stream).await {
        Ok(tls_stream) => {
            session.secured();
            framer.reset();
            let (reader, writer) = tokio::io::split(tls_stream);
            let mut writer = BufWriter::with_capacity(WRITE_BUFFER, writer);
            let end = pump(session, framer, rx, reader, &mut writer).await.0;
            let _ = writer.shutdown().await;
            end
        }
        Err(e) => {
            tracing::debug!(error = %e, "STARTTLS handshake failed");
            End::Closed
        }
    }
}

/// Keeps the read half reachable after the pump, for reuniting before STARTTLS.
fn reader_ref(reader: tokio::net::tcp::OwnedReadHalf) -> ReaderSlot {
    ReaderSlot(Some(reader))
}

struct ReaderSlot(Option<tokio::net::tcp::OwnedReadHalf>);

impl ReaderSlot {
    fn reunite(mut self, writer: tokio::net::tcp::OwnedWriteHalf) -> Result<TcpStream, ()> {
        self.0.take().ok_or(())?.reunite(writer).map_err(|_| ())
    }
}

impl AsyncRead for ReaderSlot {
    fn poll_read(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &mut tokio::io::ReadBuf<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        match self.0.as_mut() {
            Some(reader) => std::pin::Pin::new(reader).poll_read(cx, buf),
            None => std::task::Poll::Ready(Ok(())),
        }
    }
}

/// Moves bytes both ways until the stream closes or asks for TLS; returns the reader so a
/// STARTTLS upgrade can take the socket back.
async fn pump<R, W>(
    session: &mut Session,
    framer: &mut TcpFramer,
    rx: &mut mpsc::Receiver<Outbound>,
    mut reader: R,
    writer: &mut BufWriter<W>,
) -> (End, R)
where
    R: AsyncRead + Unpin,
    W: AsyncWrite + Unpin,
{
    let mut buf = vec![0u8; READ_BUFFER];
    let mut events: Vec<StreamEvent> = Vec::new();
    loop {
        tokio::select! {
            read = reader.read(&mut buf) => {
                let n = match read {
                    Ok(0) | Err(_) => return (End::Dropped, reader),
                    Ok(n) => n,
                };
                let now = Instant::now();
                events.clear();
                let fed = framer.feed(&buf[..n], &mut events);
                for event in events.drain(..) {
                    // Boxed: handling awaits the store, and that future is large; inline it
                    // would sit in every idle connection's task.
                    match Box::pin(session.handle(event, now)).await {
                        Flow::Continue => {}
                        Flow::Restart => framer.reset(),
                        Flow::StartTls => {
                            flush(writer, rx).await;
                            return (End::StartTls, reader);
                        }
                        Flow::Close => {
                            flush(writer, rx).await;
                            return (End::Closed, reader);
                        }
                        Flow::Resume { previd, h } => {
                            if !resume(session, rx, writer, &previd, h).await {
                                return (End::Dropped, reader);
                            }
                        }
                    }
                }
                if let Err(e) = fed {
                    match e {
                        FramingError::TooLarge { .. } => session.fail("policy-violation", "stanza too large"),
                        other => session.fail("not-well-formed", &other.to_string()),
                    };
                    flush(writer, rx).await;
                    return (End::Closed, reader);
                }
            }
            reply = takeover(&mut session.takeover) => {
                let _ = writer.flush().await;
                return (End::TakenOver(reply), reader);
            }
            Some(out) = rx.recv() => {
                if writer.write_all(out.as_bytes()).await.is_err() {
                    return (End::Dropped, reader);
                }
                session.on_sent(&out);
                for _ in 0..WRITE_BATCH {
                    let Ok(more) = rx.try_recv() else { break };
                    if writer.write_all(more.as_bytes()).await.is_err() {
                        return (End::Dropped, reader);
                    }
                    session.on_sent(&more);
                }
                if writer.flush().await.is_err() {
                    return (End::Dropped, reader);
                }
            }
        }
    }
}

/// Takes over the parked session `previd` if it is this user's; writes `<resumed/>` and the
/// unacknowledged stanzas. False when the connection failed while writing.
async fn resume<W: AsyncWrite + Unpin>(
    session: &mut Session,
    rx: &mut mpsc::Receiver<Outbound>,
    writer: &mut BufWriter<W>,
    previd: &str,
    h: u32,
) -> bool {
    let parked = match session.user {
        Some(user) => session.ctx.resume.take(previd, user).await,
        None => None,
    };
    let Some(parked) = parked else {
        session.resume_failed();
        return true;
    };
    // The fresh session is authenticated but unbound: dropping it releases nothing.
    let secure = session.is_secure();
    *session = parked.session;
    *rx = parked.rx;
    for out in session.resumed(previd, h, Framing::Tcp, secure) {
        if writer.write_all(out.as_bytes()).await.is_err() {
            return false;
        }
        session.on_sent(&out);
    }
    writer.flush().await.is_ok()
}

async fn flush<W: AsyncWrite + Unpin>(
    writer: &mut BufWriter<W>,
    rx: &mut mpsc::Receiver<Outbound>,
) {
    while let Ok(out) = rx.try_recv() {
        if writer.write_all(out.as_bytes()).await.is_err() {
            return;
        }
    }
    let _ = writer.flush().await;
}
