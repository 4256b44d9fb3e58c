//! XMPP over WebSocket (RFC 7395) at `/ws`, subprotocol `xmpp`: one element per text frame.

use std::sync::Arc;

use axum::extract::ws::{Message, WebSocket, WebSocketUpgrade};
use axum::extract::State;
use axum::response::Response;
use axum::routing::get;
use axum::Router;
use tokio::sync::mpsc;

use crate::core::context::XmppContext;
use crate::core::framing::{parse_ws_frame, FramingError};
use crate::core::resume::{takeover, Detached, ResumeTable};
use crate::core::router::Outbound;
use crate::core::session::{Flow, Session};
use crate::core::stanza::Framing;

/// The `/ws` route, to be served on the HTTP and HTTPS listeners.
pub fn routes(ctx: Arc<XmppContext>) -> Router {
    Router::new().route("/ws", get(upgrade)).with_state(ctx)
}

async fn upgrade(State(ctx): State<Arc<XmppContext>>, ws: WebSocketUpgrade) -> Response {
    let max = ctx.config.max_stanza_bytes;
    ws.protocols(["xmpp"])
        .max_message_size(max + 1024)
        .on_upgrade(move |socket| run(ctx, socket))
}

async fn run(ctx: Arc<XmppContext>, mut socket: WebSocket) {
    let gauge = ctx.metrics.connection("websocket");
    gauge.inc();
    let (tx, mut rx) = mpsc::channel(ctx.config.outbound_queue);
    // WebSocket runs on the HTTP(S) listeners; their TLS is the listener's business.
    let mut session = Session::new(ctx.clone(), Framing::WebSocket, tx, true);
    // Whether the connection dropped under a live stream (a resumable session may wait).
    let mut dropped = true;
    let mut handed_over = None;
    loop {
        let flow = tokio::select! {
            incoming = socket.recv() => match incoming {
                Some(Ok(Message::Text(text))) => match parse_ws_frame(text.as_str(), ctx.config.max_stanza_bytes) {
                    Ok(event) => Box::pin(session.handle(event, std::time::Instant::now())).await,
                    Err(FramingError::TooLarge { .. }) => session.fail("policy-violation", "stanza too large"),
                    Err(e) => session.fail("not-well-formed", &e.to_string()),
                },
                Some(Ok(Message::Binary(_))) => session.fail("unsupported-encoding", "XMPP frames are text"),
                Some(Ok(Message::Ping(_) | Message::Pong(_))) => Flow::Continue,
                Some(Ok(Message::Close(_))) | Some(Err(_)) | None => break,
            },
            reply = takeover(&mut session.takeover) => {
                handed_over = Some(reply);
                break;
            }
            Some(out) = rx.recv() => {
                if send(&mut socket, &mut session, &out).await.is_err() {
                    break;
                }
                Flow::Continue
            }
        };
        match flow {
            Flow::Continue | Flow::Restart => {}
            Flow::Resume { previd, h } => {
                if resume(&mut session, &mut rx, &mut socket, &previd, h)
                    .await
                    .is_err()
                {
                    break;
                }
            }
            Flow::Close | Flow::StartTls => {
                dropped = false;
                while let Ok(out) = rx.try_recv() {
                    if send(&mut socket, &mut session, &out).await.is_err() {
                        break;
                    }
                }
                let _ = socket.send(Message::Close(None)).await;
                break;
            }
        }
    }
    gauge.dec();
    if let Some(reply) = handed_over {
        let _ = reply.send(Detached { session, rx });
        return;
    }
    match (dropped, session.resumption_id()) {
        (true, Some(id)) => ResumeTable::park(&ctx, id, session, rx),
        _ => session.finish(),
    }
}

async fn send(
    socket: &mut WebSocket,
    session: &mut Session,
    out: &Outbound,
) -> Result<(), axum::Error> {
    socket.send(Message::Text(out.as_ref().into())).await?;
    session.on_sent(out);
    Ok(())
}

/// Takes over the parked session `previd` if it is this user's and replays what it had
/// not had acknowledged.
async fn resume(
    session: &mut Session,
    rx: &mut mpsc::Receiver<Outbound>,
    socket: &mut WebSocket,
    previd: &str,
    h: u32,
) -> Result<(), axum::Error> {
    let parked = match session.user {
        Some(user) => session.ctx.resume.take(previd, user).await,
        None => None,
    };
    let Some(parked) = parked else {
        session.resume_failed();
        return Ok(());
    };
    *session = parked.session;
    *rx = parked.rx;
    for out in session.resumed(previd, h, Framing::WebSocket, true) {
        send(socket, session, &out).await?;
    }
    Ok(())
}
