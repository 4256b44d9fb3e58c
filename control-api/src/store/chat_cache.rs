//! Dialogs kept in memory beside the database, so routing a chat message does not read
//! its dialog (two queries) and un-hide it (a write) every time.
//!
//! Every chat write of this process goes through the same [`SqlStore`](super::SqlStore),
//! which updates or drops the entries it touches, so what this process reads is what it
//! wrote. Another process sharing the database (a second node on PostgreSQL) is seen within
//! [`TTL`] (plus up to half of it): entries older than that are read again.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use dashmap::DashMap;

use crate::domain::chat::model::{ChatMessage, Dialog};
use crate::domain::model::{AppId, UserId};

/// How stale a dialog changed by another process may be seen (occupants, deletion):
/// arbitrary, short next to how often occupants change, long next to a message burst.
pub(super) const TTL: Duration = Duration::from_secs(10);
/// Entries held at most (arbitrary: a few hundred bytes each, so tens of MiB at worst);
/// when full the cache starts over rather than tracking recency per read.
const CAPACITY: usize = 100_000;

struct Entry {
    dialog: Dialog,
    /// Occupants who deleted this private dialog for themselves.
    hidden: Vec<UserId>,
    /// Read again after this: [`TTL`] plus a random part of half of it, so dialogs loaded
    /// together (a burst of first messages) do not all expire together and stall routing
    /// behind a burst of reloads.
    expires: Instant,
}

impl Entry {
    fn fresh(&self, app: AppId) -> bool {
        self.dialog.app_id == app && Instant::now() < self.expires
    }
}

fn expiry() -> Instant {
    Instant::now() + TTL + TTL.mul_f64(rand::random::<f64>() / 2.0)
}

/// Read-mostly and sharded (dashmap), so concurrent routing does not contend on one lock.
#[derive(Default)]
pub(super) struct DialogCache {
    /// By dialog id (the table's primary key: unique across applications).
    dialogs: DashMap<String, Entry>,
    /// `low:high` user pair of a private dialog → its id.
    pairs: DashMap<(AppId, String), String>,
    /// Bumped by every invalidation: a read that began before one must not fill the cache
    /// with what it read (it may predate the write).
    epoch: AtomicU64,
}

impl DialogCache {
    /// Taken before reading the database; hand it to [`DialogCache::fill`].
    pub fn epoch(&self) -> u64 {
        self.epoch.load(Ordering::Acquire)
    }

    pub fn get(&self, app: AppId, id: &str) -> Option<Dialog> {
        let entry = self.dialogs.get(id)?;
        (entry.fresh(app)).then(|| entry.dialog.clone())
    }

    /// `pair` is `(app, "low:high")`.
    pub fn get_pair(&self, pair: &(AppId, String)) -> Option<Dialog> {
        let id = self.pairs.get(pair)?;
        self.get(pair.0, &id)
    }

    /// `Some(hidden)` when the occupant's flag is known.
    pub fn is_hidden(&self, app: AppId, id: &str, user: UserId) -> Option<bool> {
        let entry = self.dialogs.get(id)?;
        (entry.fresh(app) && entry.dialog.is_occupant(user)).then(|| entry.hidden.contains(&user))
    }

    /// Whether some occupant may have the dialog hidden (unknown counts as maybe).
    pub fn any_hidden(&self, app: AppId, id: &str) -> bool {
        self.dialogs
            .get(id)
            .is_none_or(|e| !e.hidden.is_empty() || !e.fresh(app))
    }

    /// Remembers a dialog read from the database when no write intervened since `epoch`.
    pub fn fill(&self, epoch: u64, dialog: &Dialog, hidden: Vec<UserId>, pair: Option<String>) {
        if self.dialogs.len() >= CAPACITY {
            self.clear();
            return;
        }
        if self.epoch() != epoch {
            return;
        }
        if let Some(pair) = pair {
            self.pairs.insert((dialog.app_id, pair), dialog.id.clone());
        }
        self.dialogs.insert(
            dialog.id.clone(),
            Entry {
                dialog: dialog.clone(),
                hidden,
                expires: expiry(),
            },
        );
    }

    pub fn set_hidden(&self, app: AppId, id: &str, user: UserId, hidden: bool) {
        if let Some(mut entry) = self.dialogs.get_mut(id).filter(|e| e.dialog.app_id == app) {
            entry.hidden.retain(|u| *u != user);
            if hidden {
                entry.hidden.push(user);
            }
        }
    }

    /// A message was committed: it is the dialog's last, and nobody hides the dialog now.
    pub fn on_message(&self, app: AppId, m: &ChatMessage) {
        if let Some(mut entry) = self
            .dialogs
            .get_mut(&m.dialog_id)
            .filter(|e| e.dialog.app_id == app)
        {
            let d = &mut entry.dialog;
            d.last_message = Some(m.body.clone());
            d.last_message_date_sent = Some(m.date_sent);
            d.last_message_user_id = Some(m.sender_id);
            d.last_message_id = Some(m.id.clone());
            d.updated_at = m.created_at;
            entry.hidden.clear();
        }
    }

    pub fn remove(&self, app: AppId, id: &str) {
        self.epoch.fetch_add(1, Ordering::AcqRel);
        self.dialogs.remove_if(id, |_, e| e.dialog.app_id == app);
    }

    /// Forgets everything (writes whose dialogs are not known up front).
    pub fn clear(&self) {
        self.epoch.fetch_add(1, Ordering::AcqRel);
        self.dialogs.clear();
        self.pairs.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::chat::model::DialogType;

    fn dialog(id: &str) -> Dialog {
        let now = time::OffsetDateTime::UNIX_EPOCH;
        Dialog {
            id: id.into(),
            app_id: AppId(1),
            kind: DialogType::Private,
            name: None,
            photo: None,
            user_id: UserId(1),
            occupants: vec![UserId(1), UserId(2)],
            data: None,
            is_join_required: None,
            created_at: now,
            updated_at: now,
            last_message: None,
            last_message_date_sent: None,
            last_message_user_id: None,
            last_message_id: None,
        }
    }

    #[test]
    fn a_read_that_raced_an_invalidation_is_not_cached() {
        let cache = DialogCache::default();
        let before = cache.epoch();
        cache.remove(AppId(1), "d");
        cache.fill(before, &dialog("d"), Vec::new(), Some("1:2".into()));
        assert!(cache.get(AppId(1), "d").is_none());
        assert!(cache.get_pair(&(AppId(1), "1:2".into())).is_none());

        cache.fill(
            cache.epoch(),
            &dialog("d"),
            vec![UserId(2)],
            Some("1:2".into()),
        );
        assert_eq!(cache.get_pair(&(AppId(1), "1:2".into())).unwrap().id, "d");
        assert_eq!(cache.is_hidden(AppId(1), "d", UserId(2)), Some(true));
        assert_eq!(cache.is_hidden(AppId(1), "d", UserId(1)), Some(false));
        assert_eq!(cache.is_hidden(AppId(1), "d", UserId(3)), None);
        assert!(cache.any_hidden(AppId(1), "d"));
        assert!(cache.any_hidden(AppId(1), "unknown"));
    }

    #[test]
    fn a_committed_message_becomes_the_last_and_unhides() {
        let cache = DialogCache::default();
        cache.fill(cache.epoch(), &dialog("d"), vec![UserId(2)], None);
        let m = ChatMessage {
            id: "m".into(),
            dialog_id: "d".into(),
            sender_id: UserId(1),
            recipient_id: Some(UserId(2)),
            body: "hi".into(),
            attachments: Vec::new(),
            custom: Default::default(),
            markable: false,
            date_sent: 7,
            read_ids: Vec::new(),
            delivered_ids: Vec::new(),
            created_at: time::OffsetDateTime::UNIX_EPOCH,
            updated_at: time::OffsetDateTime::UNIX_EPOCH,
        };
        cache.on_message(AppId(1), &m);
        let d = cache.get(AppId(1), "d").unwrap();
        assert_eq!(d.last_message.as_deref(), Some("hi"));
        assert_eq!(d.last_message_id.as_deref(), Some("m"));
        assert!(!cache.any_hidden(AppId(1), "d"));
    }
}
