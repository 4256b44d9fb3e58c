//! Transports: they move bytes between sockets and [`Session`](crate::core::session::Session).

pub mod tcp;
pub mod websocket;

/// Ends timed-out calls once a second until the XMPP context is gone.
pub async fn sweep_calls(ctx: std::sync::Weak<crate::XmppContext>) {
    let mut ticks = tokio::time::interval(std::time::Duration::from_secs(1));
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        ticks.tick().await;
        let Some(ctx) = ctx.upgrade() else {
            return;
        };
        crate::core::calls::sweep(&ctx).await;
    }
}
