//! XEP-0198 stream management: acks both ways, and resumption of a stream whose
//! connection dropped.
//!
//! A resumable session that loses its connection is parked here, still bound and still
//! receiving into its queue, for `resume_window`. A new connection that authenticates as
//! the same user and sends `<resume previd=…/>` takes it back; when the window passes,
//! the session ends and every message it never got acknowledged is stored for offline
//! delivery, so nothing routed to it is lost.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};

use tokio::sync::{mpsc, oneshot};

use super::address::UserAddr;
use super::context::XmppContext;
use super::framing::{parse_ws_frame, to_xml, StreamEvent, NS_CLIENT};
use super::router::Outbound;
use super::session::Session;
use super::stanza;

/// Per-stream XEP-0198 counters and the stanzas the client has not acknowledged yet.
#[derive(Debug, Default)]
pub struct StreamManagement {
    /// Set when the client asked for resumption.
    pub id: Option<String>,
    /// Stanzas handled from the client (the `h` we report).
    pub inbound: u32,
    /// Stanzas sent to the client.
    pub outbound: u32,
    pub unacked: VecDeque<(u32, Outbound)>,
}

impl StreamManagement {
    /// Records a stanza written to the client; nonzas (acks, stream headers) don't count.
    pub fn on_sent(&mut self, out: &Outbound, cap: usize) {
        if !is_stanza(out) {
            return;
        }
        self.outbound = self.outbound.wrapping_add(1);
        if is_headline(out) {
            // Counted (the client acks it like any stanza) but never sent again.
            return;
        }
        self.unacked.push_back((self.outbound, out.clone()));
        while self.unacked.len() > cap {
            self.unacked.pop_front();
        }
    }

    /// The client acknowledged everything up to `h`.
    pub fn on_ack(&mut self, h: u32) {
        while self
            .unacked
            .front()
            .is_some_and(|(n, _)| n.wrapping_sub(h) as i32 <= 0)
        {
            self.unacked.pop_front();
        }
    }
}

/// Stanzas are what we serialise from `<message/>`, `<presence/>` and `<iq/>` elements.
fn is_stanza(out: &str) -> bool {
    out.starts_with("<message") || out.starts_with("<presence") || out.starts_with("<iq")
}

/// Headlines (call signaling, system notifications) are live only: never replayed on
/// resumption, where a stale `call` would ring again.
fn is_headline(out: &str) -> bool {
    let open_tag = out.split('>').next().unwrap_or_default();
    out.starts_with("<message")
        && (open_tag.contains("type='headline'") || open_tag.contains("type=\"headline\""))
}

/// A resumable session whose connection is gone.
pub struct Detached {
    pub session: Session,
    pub rx: mpsc::Receiver<Outbound>,
}

/// How a new connection asks the driver still holding a session to hand it over.
pub type Takeover = oneshot::Sender<Detached>;

enum Slot {
    /// Still on its connection (which may be dead without the server knowing yet).
    Attached {
        user: UserAddr,
        kick: oneshot::Sender<Takeover>,
    },
    Parked(Box<Detached>),
}

#[derive(Default)]
pub struct ResumeTable {
    slots: Mutex<HashMap<String, Slot>>,
}

impl ResumeTable {
    /// Registers a resumable session; its driver listens on the returned receiver and hands
    /// the session over when another connection resumes it.
    pub fn attach(&self, id: &str, user: UserAddr) -> oneshot::Receiver<Takeover> {
        let (kick, listen) = oneshot::channel();
        self.slots
            .lock()
            .expect("resume table lock")
            .insert(id.to_string(), Slot::Attached { user, kick });
        listen
    }

    /// The session ended for good.
    pub fn forget(&self, id: &str) {
        self.slots.lock().expect("resume table lock").remove(id);
    }

    /// Parks `session` until it is resumed or `ctx.config.resume_window` passes.
    pub fn park(
        ctx: &Arc<XmppContext>,
        id: String,
        session: Session,
        rx: mpsc::Receiver<Outbound>,
    ) {
        ctx.resume
            .slots
            .lock()
            .expect("resume table lock")
            .insert(id.clone(), Slot::Parked(Box::new(Detached { session, rx })));
        let ctx = ctx.clone();
        tokio::spawn(async move {
            tokio::time::sleep(ctx.config.resume_window).await;
            let expired = {
                let mut slots = ctx.resume.slots.lock().expect("resume table lock");
                match slots.remove(&id) {
                    Some(Slot::Parked(detached)) => Some(*detached),
                    // Resumed and attached again since: not ours to end.
                    Some(other) => {
                        slots.insert(id, other);
                        None
                    }
                    None => None,
                }
            };
            if let Some(detached) = expired {
                expire(detached).await;
            }
        });
    }

    /// Takes the session `id` if it is `user`'s: a parked one at once, an attached one from
    /// its driver (whose connection the client has evidently left).
    pub async fn take(&self, id: &str, user: UserAddr) -> Option<Detached> {
        let slot = {
            let mut slots = self.slots.lock().expect("resume table lock");
            let owned = match slots.get(id) {
                Some(Slot::Attached { user: owner, .. }) => *owner == user,
                Some(Slot::Parked(d)) => d.session.user == Some(user),
                None => false,
            };
            if !owned {
                return None;
            }
            slots.remove(id)?
        };
        match slot {
            Slot::Parked(detached) => Some(*detached),
            Slot::Attached { kick, .. } => {
                let (reply, handed_over) = oneshot::channel();
                kick.send(reply).ok()?;
                handed_over.await.ok()
            }
        }
    }
}

/// Resolves when another connection resumes this session; never while `listen` is None.
pub async fn takeover(listen: &mut Option<oneshot::Receiver<Takeover>>) -> Takeover {
    if let Some(receiver) = listen.as_mut() {
        if let Ok(reply) = receiver.await {
            *listen = None;
            return reply;
        }
        *listen = None;
    }
    std::future::pending().await
}

/// The window passed: end the session and keep its undelivered chat for offline delivery.
async fn expire(mut detached: Detached) {
    let mut pending: Vec<Outbound> = detached
        .session
        .sm
        .take()
        .map(|sm| sm.unacked.into_iter().map(|(_, out)| out).collect())
        .unwrap_or_default();
    while let Ok(out) = detached.rx.try_recv() {
        pending.push(out);
    }
    let session = &mut detached.session;
    let Some(user) = session.user else {
        return;
    };
    session.finish();
    let ctx = session.ctx.clone();
    for out in pending {
        let Ok(StreamEvent::Element(mut message)) = parse_ws_frame(&out, usize::MAX) else {
            continue;
        };
        let is_chat = message.name() == "message"
            && message.attr("type") == Some("chat")
            && message.get_child("body", NS_CLIENT).is_some();
        if !is_chat || message.get_child("delay", stanza::NS_DELAY).is_some() {
            continue;
        }
        super::messages::add_delay(&ctx, &mut message);
        if let Err(e) = ctx
            .control
            .queue_offline(user.app, user.user, to_xml(&message))
            .await
        {
            tracing::warn!(error = %e, "keeping an unacknowledged message failed");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn acks_drop_what_the_client_confirmed_and_nonzas_are_not_counted() {
        let mut sm = StreamManagement::default();
        for xml in [
            "<message id='1'/>",
            "<a xmlns='urn:xmpp:sm:3' h='0'/>",
            "<presence/>",
            "<iq id='x'/>",
        ] {
            sm.on_sent(&Outbound::from(xml), 10);
        }
        assert_eq!(sm.outbound, 3);
        sm.on_ack(2);
        assert_eq!(sm.unacked.len(), 1);
        assert_eq!(&*sm.unacked[0].1, "<iq id='x'/>");
        sm.on_ack(3);
        assert!(sm.unacked.is_empty());
    }

    #[test]
    fn headlines_are_counted_but_never_replayed() {
        let mut sm = StreamManagement::default();
        sm.on_sent(
            &Outbound::from("<message type='headline' id='c'><extraParams/></message>"),
            10,
        );
        sm.on_sent(
            &Outbound::from("<message type='chat' id='m'><body>b</body></message>"),
            10,
        );
        assert_eq!(sm.outbound, 2);
        assert_eq!(sm.unacked.len(), 1);
        assert_eq!(sm.unacked[0].0, 2);
    }

    #[test]
    fn the_unacked_queue_is_capped() {
        let mut sm = StreamManagement::default();
        for _ in 0..10 {
            sm.on_sent(&Outbound::from("<message/>"), 4);
        }
        assert_eq!(sm.unacked.len(), 4);
        assert_eq!(sm.unacked[0].0, 7);
    }
}
