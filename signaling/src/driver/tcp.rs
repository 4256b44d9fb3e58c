//! XMPP over TCP (RFC 6120) on `--xmpp-addr`: one XML stream per connection, upgraded to
//! TLS in place on STARTTLS.

use std::cell::RefCell;
use std::future::Future;
use std::io::{self, IoSlice};
use std::sync::Arc;
use std::time::Instant;

use tokio::io::{AsyncReadExt, AsyncWrite, AsyncWriteExt, BufWriter, ReadHalf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio_rustls::server::TlsStream;

use crate::core::context::XmppContext;
use crate::core::framing::{FramingError, StreamEvent, TcpFramer};
use crate::core::resume::{takeover, Detached, ResumeTable, Takeover};
use crate::core::router::Outbound;
use crate::core::session::{Flow, Session};
use crate::core::stanza::Framing;

/// Idle connections dominate memory (the target is < 10 KiB per idle connection), so a
/// plain TCP connection owns no buffers: it waits until its socket is readable, then reads
/// into its worker thread's scratch buffer and parses there (`SCRATCH`), and writes queued
/// stanzas straight from their shared bytes with one vectored write. TLS connections, rare
/// and large anyway, keep a read buffer and a write buffer of their own.
const SCRATCH: usize = 16 * 1024;
const TLS_READ_BUFFER: usize = 2048;
const TLS_WRITE_BUFFER: usize = 2048;
/// Stanzas gathered into one vectored write (arbitrary; below Linux's IOV_MAX of 1024).
const WRITE_BATCH: usize = 32;
/// Vectored writes per wake before yielding, so one busy reader cannot starve others.
const WRITES_PER_WAKE: usize = 2;

thread_local! {
    /// Where plain TCP reads land; parsed before the next await, so one per thread does.
    static SCRATCH_BUFFER: RefCell<Box<[u8]>> = RefCell::new(vec![0; SCRATCH].into_boxed_slice());
}

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

    let (reader, mut writer) = stream.into_split();
    let (mut end, reader) = pump(
        &mut session,
        &mut framer,
        &mut rx,
        ReaderSlot(Some(reader)),
        &mut writer,
    )
    .await;
    if let (End::StartTls, Some(tls)) = (&end, ctx.config.tls.clone()) {
        end = End::Closed;
        if let Ok(stream) = reader.reunite(writer) {
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
            let mut writer = BufWriter::with_capacity(TLS_WRITE_BUFFER, writer);
            let reader = TlsReader {
                inner: reader,
                buf: vec![0; TLS_READ_BUFFER],
            };
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

/// What one read produced: nothing more (the peer closed), or stream events and whether
/// the bytes parsed.
type Read = Option<Result<(), FramingError>>;

/// How the pump reads: bytes in, stream events out.
trait EventSource {
    async fn read_events(
        &mut self,
        framer: &mut TcpFramer,
        events: &mut Vec<StreamEvent>,
    ) -> io::Result<Read>;
}

/// The plain TCP read half, kept reachable after the pump for reuniting before STARTTLS.
struct ReaderSlot(Option<tokio::net::tcp::OwnedReadHalf>);

impl ReaderSlot {
    fn reunite(mut self, writer: tokio::net::tcp::OwnedWriteHalf) -> Result<TcpStream, ()> {
        self.0.take().ok_or(())?.reunite(writer).map_err(|_| ())
    }
}

impl EventSource for ReaderSlot {
    async fn read_events(
        &mut self,
        framer: &mut TcpFramer,
        events: &mut Vec<StreamEvent>,
    ) -> io::Result<Read> {
        let Some(reader) = self.0.as_mut() else {
            return Ok(None);
        };
        loop {
            reader.readable().await?;
            let read = SCRATCH_BUFFER.with_borrow_mut(|buf| match reader.try_read(buf) {
                Ok(0) => Ok(None),
                Ok(n) => Ok(Some(framer.feed(&buf[..n], events))),
                Err(e) => Err(e),
            });
            match read {
                // Readiness was spurious: wait again.
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => continue,
                other => return other,
            }
        }
    }
}

/// The read half of a TLS stream, with its own buffer (TLS decrypts into it).
struct TlsReader {
    inner: ReadHalf<TlsStream<TcpStream>>,
    buf: Vec<u8>,
}

impl EventSource for TlsReader {
    async fn read_events(
        &mut self,
        framer: &mut TcpFramer,
        events: &mut Vec<StreamEvent>,
    ) -> io::Result<Read> {
        match self.inner.read(&mut self.buf).await? {
            0 => Ok(None),
            n => Ok(Some(framer.feed(&self.buf[..n], events))),
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
    writer: &mut W,
) -> (End, R)
where
    R: EventSource,
    W: AsyncWrite + Unpin,
{
    let mut events: Vec<StreamEvent> = Vec::new();
    loop {
        tokio::select! {
            read = reader.read_events(framer, &mut events) => {
                let fed = match read {
                    Ok(Some(fed)) => fed,
                    Ok(None) | Err(_) => return (End::Dropped, reader),
                };
                let now = Instant::now();
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
                if write_queued(session, rx, writer, out).await.is_err() {
                    return (End::Dropped, reader);
                }
            }
        }
    }
}

/// Writes `first` and what else is queued (up to [`WRITES_PER_WAKE`] vectored writes).
async fn write_queued<W: AsyncWrite + Unpin>(
    session: &mut Session,
    rx: &mut mpsc::Receiver<Outbound>,
    writer: &mut W,
    first: Outbound,
) -> io::Result<()> {
    let mut batch: [Option<Outbound>; WRITE_BATCH] = Default::default();
    batch[0] = Some(first);
    let mut len = 1;
    for _ in 0..WRITES_PER_WAKE {
        while len < WRITE_BATCH {
            let Ok(more) = rx.try_recv() else { break };
            batch[len] = Some(more);
            len += 1;
        }
        write_all_vectored(writer, &batch[..len]).await?;
        for out in batch[..len].iter_mut().filter_map(Option::take) {
            session.on_sent(&out);
        }
        len = 0;
        if rx.is_empty() {
            break;
        }
    }
    writer.flush().await
}

/// Writes every stanza of `items` (all `Some`), in order, with as few syscalls as the
/// socket allows.
async fn write_all_vectored<W: AsyncWrite + Unpin>(
    writer: &mut W,
    items: &[Option<Outbound>],
) -> io::Result<()> {
    let bytes = |i: usize| items[i].as_deref().unwrap_or_default().as_bytes();
    let (mut index, mut offset) = (0, 0);
    while index < items.len() {
        let mut slices = [IoSlice::new(&[]); WRITE_BATCH];
        let count = items.len() - index;
        slices[0] = IoSlice::new(&bytes(index)[offset..]);
        for (k, slice) in slices.iter_mut().enumerate().take(count).skip(1) {
            *slice = IoSlice::new(bytes(index + k));
        }
        let mut written = writer.write_vectored(&slices[..count]).await?;
        if written == 0 {
            return Err(io::ErrorKind::WriteZero.into());
        }
        while written > 0 && index < items.len() {
            let left = bytes(index).len() - offset;
            if written >= left {
                written -= left;
                index += 1;
                offset = 0;
            } else {
                offset += written;
                written = 0;
            }
        }
        // Skip empty stanzas (none are queued, but a zero-length slice must not stall).
        while index < items.len() && bytes(index).len() == offset {
            index += 1;
            offset = 0;
        }
    }
    Ok(())
}

/// Takes over the parked session `previd` if it is this user's; writes `<resumed/>` and the
/// unacknowledged stanzas. False when the connection failed while writing.
async fn resume<W: AsyncWrite + Unpin>(
    session: &mut Session,
    rx: &mut mpsc::Receiver<Outbound>,
    writer: &mut W,
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

async fn flush<W: AsyncWrite + Unpin>(writer: &mut W, rx: &mut mpsc::Receiver<Outbound>) {
    while let Ok(out) = rx.try_recv() {
        if writer.write_all(out.as_bytes()).await.is_err() {
            return;
        }
    }
    let _ = writer.flush().await;
}
