//! The scenarios. Each builds its clients, hands them to [`crate::run::drive`], and names
//! its unit of work.

pub mod api;
pub mod chat;
pub mod conference;
pub mod janus;
pub mod media;
pub mod peer;
pub mod qb;
pub mod turn;
pub mod xmpp;
