//! Stampede protection: concurrent reads of one cache key share one lookup. The first caller
//! (the *leader*) reads the cache and, on a miss, the database, writes the cache, then
//! publishes the encoded result; callers arriving meanwhile (*followers*) wait for it instead
//! of querying the database themselves. A caller arriving after the leader finished finds the
//! entry in the cache. If the leader is cancelled or fails, followers do their own read.
//!
//! A write that invalidates a key also ends its flight ([`Flights::forget`]): a read starting
//! after the write then leads a new flight instead of taking the outcome of a read that may
//! have loaded the row before the write.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use tokio::sync::watch;

/// What a finished read found, shared with the followers.
#[derive(Debug, Clone)]
pub(crate) enum Outcome {
    /// The encoded row.
    Found(Arc<[u8]>),
    /// No such row.
    Absent,
}

type Slot = Option<Outcome>;

/// In-flight reads by cache key.
#[derive(Debug, Default)]
pub(crate) struct Flights {
    map: Mutex<HashMap<String, watch::Receiver<Slot>>>,
}

/// The caller's part in a read of one key.
pub(crate) enum Role<'a> {
    /// Do the read, then [`Leader::finish`].
    Leader(Leader<'a>),
    /// Wait for the leader's outcome.
    Follower(watch::Receiver<Slot>),
}

/// The one caller doing the read of a key; dropping it ends the flight.
pub(crate) struct Leader<'a> {
    flights: &'a Flights,
    key: String,
    tx: watch::Sender<Slot>,
}

impl Flights {
    fn map(&self) -> std::sync::MutexGuard<'_, HashMap<String, watch::Receiver<Slot>>> {
        self.map.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Joins the read of `key` in flight, or starts one.
    pub(crate) fn join(&self, key: &str) -> Role<'_> {
        let mut map = self.map();
        if let Some(rx) = map.get(key) {
            return Role::Follower(rx.clone());
        }
        let (tx, rx) = watch::channel(None);
        map.insert(key.to_owned(), rx);
        Role::Leader(Leader { flights: self, key: key.to_owned(), tx })
    }

    /// Ends the flight of `key` for callers arriving from now on (its leader and followers
    /// finish as they were).
    pub(crate) fn forget(&self, key: &str) {
        self.map().remove(key);
    }

    /// Reads in flight.
    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.map().len()
    }
}

impl Leader<'_> {
    /// Publishes the outcome to the followers (the flight ends when the leader is dropped).
    pub(crate) fn finish(&self, outcome: Outcome) {
        self.tx.send_replace(Some(outcome));
    }
}

impl Drop for Leader<'_> {
    fn drop(&mut self) {
        let mut map = self.flights.map();
        // Only this leader's flight: a write may have ended it and a new one started.
        if map.get(&self.key).is_some_and(|rx| rx.same_channel(&self.tx.subscribe())) {
            map.remove(&self.key);
        }
    }
}

/// Waits for the leader's outcome; `None` when the leader gave up without one.
pub(crate) async fn follow(mut rx: watch::Receiver<Slot>) -> Option<Outcome> {
    match rx.wait_for(Option::is_some).await {
        Ok(slot) => slot.clone(),
        Err(_) => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn followers_get_the_leaders_outcome() {
        let flights = Flights::default();
        let Role::Leader(leader) = flights.join("k") else { panic!("first caller leads") };
        let Role::Follower(rx) = flights.join("k") else { panic!("second caller follows") };
        leader.finish(Outcome::Absent);
        drop(leader);
        assert!(matches!(follow(rx).await, Some(Outcome::Absent)));
        assert_eq!(flights.len(), 0);
        assert!(matches!(flights.join("k"), Role::Leader(_)));
    }

    #[tokio::test]
    async fn a_forgotten_flight_is_not_joined_and_its_leader_leaves_the_new_one() {
        let flights = Flights::default();
        let Role::Leader(old) = flights.join("k") else { panic!("first caller leads") };
        flights.forget("k");
        let Role::Leader(new) = flights.join("k") else { panic!("a read after the write leads") };
        drop(old);
        assert!(matches!(flights.join("k"), Role::Follower(_)), "the new flight is still there");
        drop(new);
        assert_eq!(flights.len(), 0);
    }

    #[tokio::test]
    async fn a_dropped_leader_releases_followers() {
        let flights = Flights::default();
        let leader = flights.join("k");
        let Role::Follower(rx) = flights.join("k") else { panic!("second caller follows") };
        drop(leader);
        assert!(follow(rx).await.is_none());
    }
}
