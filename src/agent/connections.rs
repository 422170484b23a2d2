//! The HTTP endpoint's open connections, bounded: a client that opens
//! connections and never uses them (or never finishes its headers) must
//! not use up the agent's file descriptors, which the queue, Redis and a
//! reload's config read need, nor keep `/healthz` from answering.
//!
//! Invariants:
//! - at most `cap` connections are open; the one accepted beyond it makes
//!   room by closing the connection idle the longest (the least recently
//!   accepted or asked), so a new client is always served;
//! - a connection closed to make room finishes the response it is writing,
//!   if any (hyper's graceful shutdown), and closes at once when idle;
//! - every connection leaves the registry when its task ends (`Drop`).
//!
//! Timeouts are set where the connection is served (`http.rs`): the TLS
//! handshake, and the request headers (which hyper also applies while a
//! kept-alive connection waits for its next request: the idle timeout).

use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use tokio::sync::Notify;
use tokio::time::Instant;

/// Longest a TLS handshake may take.
pub(super) const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// Longest a client may take to send a request's headers, and to send its
/// next request on a kept-alive connection.
pub(super) const HEADER_TIMEOUT: Duration = Duration::from_secs(30);
/// Most open connections, whatever the file limit allows.
const MAX_CAP: usize = 256;
/// Fewest, however low the file limit: a scraper, a probe and a browser.
const MIN_CAP: usize = 4;

/// The connection cap for a process whose file limit is `nofile`: a
/// quarter of it, so that the endpoint never takes the descriptors the
/// rest of the agent needs.
pub(super) fn cap_for(nofile: u64) -> usize {
    usize::try_from(nofile / 4)
        .unwrap_or(MAX_CAP)
        .clamp(MIN_CAP, MAX_CAP)
}

/// This process's soft limit on open files.
pub(super) fn file_limit() -> u64 {
    #[cfg(unix)]
    {
        let mut limit = libc::rlimit {
            rlim_cur: 0,
            rlim_max: 0,
        };
        // SAFETY: getrlimit writes the struct it is given and nothing else.
        if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) } == 0 {
            return limit.rlim_cur;
        }
    }
    1024
}

struct Entry {
    id: u64,
    /// Accepted, or last asked something.
    active: Instant,
    close: Arc<Notify>,
}

#[derive(Default)]
struct Open {
    next_id: u64,
    entries: Vec<Entry>,
}

/// The registry of open connections.
pub(super) struct Connections {
    cap: usize,
    open: Mutex<Open>,
}

impl Connections {
    pub(super) fn new(cap: usize) -> Arc<Connections> {
        Arc::new(Connections {
            cap: cap.max(1),
            open: Mutex::new(Open::default()),
        })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Open> {
        self.open.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Registers a connection just accepted, closing the one idle the
    /// longest when the cap is reached.
    pub(super) fn admit(self: &Arc<Self>) -> Admitted {
        let close = Arc::new(Notify::new());
        let mut open = self.lock();
        if open.entries.len() >= self.cap {
            let actives: Vec<Instant> = open.entries.iter().map(|e| e.active).collect();
            if let Some(i) = idlest(&actives) {
                // A permit is stored if the task is not waiting yet.
                open.entries.swap_remove(i).close.notify_one();
            }
        }
        let id = open.next_id;
        open.next_id += 1;
        open.entries.push(Entry {
            id,
            active: Instant::now(),
            close: close.clone(),
        });
        Admitted {
            id,
            close,
            registry: self.clone(),
        }
    }

    /// How many connections are open.
    #[cfg(test)]
    pub(super) fn len(&self) -> usize {
        self.lock().entries.len()
    }
}

/// The index of the connection idle the longest (its last activity the
/// earliest); `None` when there is none.
fn idlest(actives: &[Instant]) -> Option<usize> {
    actives
        .iter()
        .enumerate()
        .min_by_key(|(_, active)| **active)
        .map(|(i, _)| i)
}

/// One admitted connection: told when to close, marked active per request,
/// removed from the registry when dropped.
pub(super) struct Admitted {
    id: u64,
    close: Arc<Notify>,
    registry: Arc<Connections>,
}

impl Admitted {
    /// Resolves when the connection must close to make room.
    pub(super) async fn closing(&self) {
        self.close.notified().await;
    }

    /// A handle the connection's service marks requests with.
    pub(super) fn activity(&self) -> Activity {
        Activity {
            id: self.id,
            registry: self.registry.clone(),
        }
    }
}

impl Drop for Admitted {
    fn drop(&mut self) {
        self.registry.lock().entries.retain(|e| e.id != self.id);
    }
}

/// Marks a connection active when it is asked something.
#[derive(Clone)]
pub(super) struct Activity {
    id: u64,
    registry: Arc<Connections>,
}

impl Activity {
    pub(super) fn touch(&self) {
        let now = Instant::now();
        if let Some(e) = self
            .registry
            .lock()
            .entries
            .iter_mut()
            .find(|e| e.id == self.id)
        {
            e.active = now;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_cap_follows_the_file_limit_within_bounds() {
        assert_eq!(cap_for(100), 25);
        assert_eq!(cap_for(8), MIN_CAP);
        assert_eq!(cap_for(1 << 20), MAX_CAP);
    }

    #[tokio::test(start_paused = true)]
    async fn the_connection_idle_the_longest_makes_room() {
        let connections = Connections::new(3);
        let a = connections.admit();
        tokio::time::advance(Duration::from_secs(1)).await;
        let b = connections.admit();
        tokio::time::advance(Duration::from_secs(1)).await;
        let c = connections.admit();
        tokio::time::advance(Duration::from_secs(1)).await;
        // `a` was asked something last: `b` is now the idlest.
        a.activity().touch();
        let d = connections.admit();
        assert_eq!(connections.len(), 3);
        tokio::time::timeout(Duration::from_millis(1), b.closing())
            .await
            .expect("b told to close");
        for kept in [&a, &c, &d] {
            assert!(
                tokio::time::timeout(Duration::from_millis(1), kept.closing())
                    .await
                    .is_err()
            );
        }
        drop(b);
        assert_eq!(connections.len(), 3, "b had already left the registry");
        drop(c);
        assert_eq!(connections.len(), 2);
    }
}
