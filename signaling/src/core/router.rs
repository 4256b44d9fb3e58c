//! Who is online where: user resources and room occupants, shared by every connection.
//!
//! Stanzas are serialised once and handed to each recipient connection's bounded queue;
//! a connection that stops reading has its queue fill up and loses stanzas (counted)
//! rather than growing memory without bound.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;

use control_api::domain::model::UserId;
use dashmap::DashMap;
use tokio::sync::mpsc;

use super::address::{RoomAddr, UserAddr};

/// A serialised stanza on its way to a connection.
pub type Outbound = Arc<str>;

pub type ConnId = u64;

#[derive(Clone, Debug)]
pub struct Resource {
    pub conn: ConnId,
    pub name: String,
    pub tx: mpsc::Sender<Outbound>,
    /// XEP-0280: this resource wants copies of what its user's other resources send.
    pub carbons: Arc<AtomicBool>,
}

impl Resource {
    pub fn wants_carbons(&self) -> bool {
        self.carbons.load(Ordering::Relaxed)
    }
}

#[derive(Default)]
pub struct Router {
    users: DashMap<UserAddr, Vec<Resource>>,
    rooms: DashMap<RoomAddr, HashMap<UserId, Vec<Resource>>>,
    next_conn: AtomicU64,
    dropped: AtomicU64,
}

impl Router {
    pub fn new() -> Arc<Self> {
        Arc::new(Self::default())
    }

    pub fn next_conn_id(&self) -> ConnId {
        self.next_conn.fetch_add(1, Ordering::Relaxed) + 1
    }

    /// Registers a bound resource; a taken name gets a suffix so both stay reachable.
    pub fn bind(
        &self,
        user: UserAddr,
        conn: ConnId,
        wanted: &str,
        tx: mpsc::Sender<Outbound>,
        carbons: Arc<AtomicBool>,
    ) -> String {
        let mut resources = self.users.entry(user).or_default();
        let mut name = wanted.to_string();
        let mut n = 1;
        while resources.iter().any(|r| r.name == name) {
            n += 1;
            name = format!("{wanted}-{n}");
        }
        resources.push(Resource {
            conn,
            name: name.clone(),
            tx,
            carbons,
        });
        name
    }

    pub fn unbind(&self, user: UserAddr, conn: ConnId) {
        if let Some(mut resources) = self.users.get_mut(&user) {
            resources.retain(|r| r.conn != conn);
        }
        self.users
            .remove_if(&user, |_, resources| resources.is_empty());
    }

    pub fn is_online(&self, user: UserAddr) -> bool {
        self.users.get(&user).is_some_and(|r| !r.is_empty())
    }

    /// Delivers to every resource of `user` (or only `resource`); returns how many got it.
    pub fn send_to_user(&self, user: UserAddr, resource: Option<&str>, stanza: &Outbound) -> usize {
        let Some(resources) = self.users.get(&user) else {
            return 0;
        };
        resources
            .iter()
            .filter(|r| resource.is_none_or(|name| r.name == name))
            .filter(|r| self.offer(&r.tx, stanza))
            .count()
    }

    /// Resources of `user` other than `except` that enabled carbons (XEP-0280). Checked
    /// before cloning: for the usual single resource this allocates nothing.
    pub fn carbon_resources(&self, user: UserAddr, except: ConnId) -> Vec<Resource> {
        self.users
            .get(&user)
            .map(|r| {
                r.iter()
                    .filter(|r| r.conn != except && r.wants_carbons())
                    .cloned()
                    .collect()
            })
            .unwrap_or_default()
    }

    /// Resources of `user` other than `except`.
    pub fn other_resources(&self, user: UserAddr, except: ConnId) -> Vec<Resource> {
        self.users
            .get(&user)
            .map(|r| r.iter().filter(|r| r.conn != except).cloned().collect())
            .unwrap_or_default()
    }

    pub fn offer(&self, tx: &mpsc::Sender<Outbound>, stanza: &Outbound) -> bool {
        match tx.try_send(stanza.clone()) {
            Ok(()) => true,
            Err(mpsc::error::TrySendError::Full(_)) => {
                self.dropped.fetch_add(1, Ordering::Relaxed);
                tracing::warn!("outbound queue full: stanza dropped for a slow connection");
                false
            }
            Err(mpsc::error::TrySendError::Closed(_)) => false,
        }
    }

    /// Adds an occupant connection; returns the occupants present before (for presence).
    pub fn join_room(&self, room: &RoomAddr, user: UserId, resource: Resource) -> Vec<UserId> {
        let mut occupants = self.rooms.entry(room.clone()).or_default();
        let before: Vec<UserId> = occupants.keys().copied().filter(|u| *u != user).collect();
        let entry = occupants.entry(user).or_default();
        entry.retain(|r| r.conn != resource.conn);
        entry.push(resource);
        before
    }

    /// Removes one connection of an occupant; true when the user left the room entirely.
    pub fn leave_room(&self, room: &RoomAddr, user: UserId, conn: ConnId) -> bool {
        let mut gone = false;
        if let Some(mut occupants) = self.rooms.get_mut(room) {
            if let Some(resources) = occupants.get_mut(&user) {
                resources.retain(|r| r.conn != conn);
                if resources.is_empty() {
                    occupants.remove(&user);
                    gone = true;
                }
            }
        }
        self.rooms
            .remove_if(room, |_, occupants| occupants.is_empty());
        gone
    }

    pub fn room_occupants(&self, room: &RoomAddr) -> Vec<UserId> {
        self.rooms
            .get(room)
            .map(|o| o.keys().copied().collect())
            .unwrap_or_default()
    }

    pub fn is_in_room(&self, room: &RoomAddr, user: UserId) -> bool {
        self.rooms.get(room).is_some_and(|o| o.contains_key(&user))
    }

    /// Sends a stanza built per recipient (the `to` differs) to every joined connection,
    /// except those of `except`.
    pub fn broadcast_room(
        &self,
        room: &RoomAddr,
        except: Option<UserId>,
        mut build: impl FnMut(UserId, &str) -> Outbound,
    ) -> usize {
        let Some(occupants) = self.rooms.get(room) else {
            return 0;
        };
        let mut sent = 0;
        for (user, resources) in occupants.iter().filter(|(u, _)| Some(**u) != except) {
            for resource in resources {
                let stanza = build(*user, &resource.name);
                if self.offer(&resource.tx, &stanza) {
                    sent += 1;
                }
            }
        }
        sent
    }

    pub fn online_users(&self) -> usize {
        self.users.len()
    }

    pub fn dropped_stanzas(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed)
    }
}
