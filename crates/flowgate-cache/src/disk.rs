//! L3: an embedded store on local disk (redb), surviving restarts.
//!
//! redb is crash-safe by design (copy-on-write B-trees, checksummed commits): a gateway
//! killed mid-write reopens on the last committed state. Reads run on the caller's thread
//! (the gateway calls [`DiskTier::get`] through `spawn_blocking`); every write goes through
//! one writer thread that batches whatever is queued into one transaction, so a burst of
//! fills costs one `fsync`, and that also purges expired entries and holds the size bound,
//! evicting the entries nearest to expiry first.
//!
//! Tables: `entries` (storage key → encoded [`Record`]), `expiry` ((expires-at ms, storage
//! key) → ()) for purging in order, and `meta` (running totals, so that the size bound needs
//! no scan at start).

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc;
use std::thread::JoinHandle;
use std::time::Duration;

use flowgate_clock::SharedClock;
use redb::{Database, ReadableDatabase, ReadableTable, TableDefinition, WriteTransaction};

use crate::codec::{self, Record};
use crate::invalidate::Selector;

const ENTRIES: TableDefinition<&str, &[u8]> = TableDefinition::new("entries");
const EXPIRY: TableDefinition<(u64, &str), ()> = TableDefinition::new("expiry");
const META: TableDefinition<&str, u64> = TableDefinition::new("meta");
/// (tag, key) for every tag of every entry.
const TAGS: TableDefinition<(&str, &str), ()> = TableDefinition::new("tags");
const BYTES: &str = "bytes";
const COUNT: &str = "entries";

/// Most commands applied in one transaction.
const BATCH: usize = 512;
/// Most expired entries removed per purge pass (the next pass continues).
const PURGE_BATCH: usize = 10_000;

/// Where and how large.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DiskSettings {
    pub path: PathBuf,
    /// Bytes of encoded records kept (the file is somewhat larger: B-tree pages, free space).
    pub max_bytes: u64,
    /// How often expired entries are purged when nothing else is written.
    pub purge_interval: Duration,
    /// Bodies larger than this are stored zstd-compressed.
    pub compress_above: u64,
}

#[derive(Debug, thiserror::Error)]
pub enum DiskError {
    #[error("cannot open {path}: {source}")]
    Open {
        path: String,
        source: redb::DatabaseError,
    },
    #[error("disk cache: {0}")]
    Store(String),
}

fn store_err(e: impl std::fmt::Display) -> DiskError {
    DiskError::Store(e.to_string())
}

/// Sizes and counters the writer keeps up to date.
#[derive(Debug, Default)]
pub struct DiskStats {
    pub entries: AtomicU64,
    pub bytes: AtomicU64,
    /// Entries removed to hold the size bound.
    pub evictions: AtomicU64,
    /// Expired entries purged.
    pub purged: AtomicU64,
    /// Body bytes written before and after compression.
    pub body: codec::BodyBytes,
    pub write_errors: AtomicU64,
}

/// The disk tier's sizes and counters.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct DiskSnapshot {
    pub entries: u64,
    pub bytes: u64,
    /// Entries removed to hold the size bound.
    pub evictions: u64,
    /// Expired entries purged.
    pub purged: u64,
    /// Body bytes written before and after compression.
    pub body_raw: u64,
    pub body_stored: u64,
    pub write_errors: u64,
}

impl DiskSnapshot {
    /// Raw body bytes per stored byte (1 when nothing was compressed or written).
    pub fn compression_ratio(&self) -> f64 {
        codec::compression_ratio(self.body_raw, self.body_stored)
    }
}

impl DiskStats {
    pub fn snapshot(&self) -> DiskSnapshot {
        let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
        let (body_raw, body_stored) = self.body.get();
        DiskSnapshot {
            entries: get(&self.entries),
            bytes: get(&self.bytes),
            evictions: get(&self.evictions),
            purged: get(&self.purged),
            body_raw,
            body_stored,
            write_errors: get(&self.write_errors),
        }
    }
}

enum Command {
    Put(String, Record),
    /// Remove what the selector selects; answer how many.
    Remove(Selector, tokio::sync::oneshot::Sender<u64>),
    /// Answer once everything sent before is committed.
    Flush(tokio::sync::oneshot::Sender<()>),
}

/// The disk tier.
pub struct DiskTier {
    db: Arc<Database>,
    tx: Option<mpsc::Sender<Command>>,
    writer: Option<JoinHandle<()>>,
    stats: Arc<DiskStats>,
}

impl std::fmt::Debug for DiskTier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DiskTier")
            .field("stats", &self.stats)
            .finish()
    }
}

impl DiskTier {
    /// Opens (or creates) the store and starts its writer.
    pub fn open(settings: &DiskSettings, clock: SharedClock) -> Result<Self, DiskError> {
        if let Some(dir) = settings.path.parent()
            && !dir.as_os_str().is_empty()
        {
            std::fs::create_dir_all(dir)
                .map_err(|e| DiskError::Store(format!("cannot create {}: {e}", dir.display())))?;
        }
        let db = Database::create(&settings.path).map_err(|source| DiskError::Open {
            path: settings.path.display().to_string(),
            source,
        })?;
        let stats = Arc::new(DiskStats::default());
        {
            let w = db.begin_write().map_err(store_err)?;
            {
                w.open_table(ENTRIES).map_err(store_err)?;
                w.open_table(EXPIRY).map_err(store_err)?;
                w.open_table(TAGS).map_err(store_err)?;
                let meta = w.open_table(META).map_err(store_err)?;
                let read = |k| -> Result<u64, DiskError> {
                    Ok(meta.get(k).map_err(store_err)?.map_or(0, |v| v.value()))
                };
                stats.bytes.store(read(BYTES)?, Ordering::Relaxed);
                stats.entries.store(read(COUNT)?, Ordering::Relaxed);
            }
            w.commit().map_err(store_err)?;
        }
        let db = Arc::new(db);
        let (tx, rx) = mpsc::channel();
        let writer = Writer {
            db: db.clone(),
            stats: stats.clone(),
            clock,
            max_bytes: settings.max_bytes,
            compress_above: usize::try_from(settings.compress_above).unwrap_or(usize::MAX),
        };
        let interval = settings.purge_interval;
        let writer = std::thread::Builder::new()
            .name("flowgate-cache-disk".into())
            .spawn(move || writer.run(&rx, interval))
            .map_err(store_err)?;
        Ok(DiskTier {
            db,
            tx: Some(tx),
            writer: Some(writer),
            stats,
        })
    }

    /// A handle for reading from other threads.
    pub fn reader(&self) -> DiskReader {
        DiskReader {
            db: self.db.clone(),
        }
    }

    fn send(&self, c: Command) {
        if let Some(tx) = &self.tx {
            let _ = tx.send(c);
        }
    }

    /// Queues a record for storing.
    pub fn put(&self, key: String, record: Record) {
        self.send(Command::Put(key, record));
    }

    /// Removes the entries `sel` selects; how many (0 when the store failed).
    pub async fn remove(&self, sel: Selector) -> u64 {
        let (tx, rx) = tokio::sync::oneshot::channel();
        self.send(Command::Remove(sel, tx));
        rx.await.unwrap_or(0)
    }

    /// Waits until everything queued so far is committed.
    pub async fn flush(&self) {
        let (tx, rx) = tokio::sync::oneshot::channel();
        self.send(Command::Flush(tx));
        let _ = rx.await;
    }

    pub fn stats(&self) -> &DiskStats {
        &self.stats
    }
}

impl Drop for DiskTier {
    /// Commits what is queued and closes the store, so that it can be opened again at once.
    fn drop(&mut self) {
        self.tx = None;
        if let Some(w) = self.writer.take() {
            let _ = w.join();
        }
    }
}

/// Reads records; cheap to clone.
#[derive(Clone)]
pub struct DiskReader {
    db: Arc<Database>,
}

impl std::fmt::Debug for DiskReader {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("DiskReader")
    }
}

impl DiskReader {
    /// The record under `key`, if any (expired or not: the caller judges freshness). A
    /// record this gateway cannot read is reported as an error and treated as absent.
    pub fn get(&self, key: &str) -> Result<Option<Record>, DiskError> {
        let r = self.db.begin_read().map_err(store_err)?;
        let t = r.open_table(ENTRIES).map_err(store_err)?;
        let Some(v) = t.get(key).map_err(store_err)? else {
            return Ok(None);
        };
        codec::decode(v.value()).map(Some).map_err(store_err)
    }
}

struct Writer {
    db: Arc<Database>,
    stats: Arc<DiskStats>,
    clock: SharedClock,
    max_bytes: u64,
    compress_above: usize,
}

impl Writer {
    fn run(self, rx: &mpsc::Receiver<Command>, interval: Duration) {
        loop {
            let mut batch = Vec::new();
            match rx.recv_timeout(interval) {
                Ok(c) => batch.push(c),
                Err(mpsc::RecvTimeoutError::Timeout) => {}
                Err(mpsc::RecvTimeoutError::Disconnected) => return,
            }
            while batch.len() < BATCH {
                match rx.try_recv() {
                    Ok(c) => batch.push(c),
                    Err(_) => break,
                }
            }
            let mut replies = Replies::default();
            if let Err(e) = self.apply(batch, &mut replies) {
                self.stats.write_errors.fetch_add(1, Ordering::Relaxed);
                tracing::warn!(error = %e, "disk cache: a batch of writes was lost");
                replies.removed.iter_mut().for_each(|(_, n)| *n = 0);
            }
            // Answered once committed, so that what callers see next is the new state.
            for f in replies.flushes {
                let _ = f.send(());
            }
            for (r, n) in replies.removed {
                let _ = r.send(n);
            }
        }
    }

    fn apply(&self, batch: Vec<Command>, replies: &mut Replies) -> Result<(), DiskError> {
        let w = self.db.begin_write().map_err(store_err)?;
        let (mut bytes, mut count) = (
            self.stats.bytes.load(Ordering::Relaxed),
            self.stats.entries.load(Ordering::Relaxed),
        );
        {
            let mut t = Tables::open(&w)?;
            for c in batch {
                match c {
                    Command::Put(key, record) => {
                        t.remove(&key, &mut bytes, &mut count)?;
                        let e = codec::encode(&record, self.compress_above);
                        let expires = record.expires_at_ms();
                        t.entries
                            .insert(key.as_str(), e.bytes.as_slice())
                            .map_err(store_err)?;
                        t.expiry
                            .insert((expires, key.as_str()), ())
                            .map_err(store_err)?;
                        for tag in &record.labels.tags {
                            t.tags
                                .insert((tag.as_str(), key.as_str()), ())
                                .map_err(store_err)?;
                        }
                        bytes += e.bytes.len() as u64;
                        count += 1;
                        self.stats.body.add(&e);
                    }
                    Command::Remove(sel, reply) => {
                        let n = match &sel {
                            Selector::Key(k) => u64::from(t.remove(k, &mut bytes, &mut count)?),
                            Selector::All => {
                                let n = count;
                                t.entries.retain(|_, _| false).map_err(store_err)?;
                                t.expiry.retain(|_, _| false).map_err(store_err)?;
                                t.tags.retain(|_, _| false).map_err(store_err)?;
                                bytes = 0;
                                count = 0;
                                n
                            }
                            sel => {
                                let mut n = 0;
                                for k in t.selected(sel)? {
                                    n += u64::from(t.remove(&k, &mut bytes, &mut count)?);
                                }
                                n
                            }
                        };
                        replies.removed.push((reply, n));
                    }
                    Command::Flush(f) => replies.flushes.push(f),
                }
            }
            // Expired entries, oldest first.
            let now = self.clock.unix_millis();
            let purged = t.remove_first(
                PURGE_BATCH,
                |expires, _| expires <= now,
                &mut bytes,
                &mut count,
            )?;
            self.stats.purged.fetch_add(purged, Ordering::Relaxed);
            // The size bound: the entries nearest to expiry go first.
            let max = self.max_bytes;
            let evicted = t.remove_first(usize::MAX, |_, b| b > max, &mut bytes, &mut count)?;
            self.stats.evictions.fetch_add(evicted, Ordering::Relaxed);
            t.meta.insert(BYTES, bytes).map_err(store_err)?;
            t.meta.insert(COUNT, count).map_err(store_err)?;
        }
        w.commit().map_err(store_err)?;
        self.stats.bytes.store(bytes, Ordering::Relaxed);
        self.stats.entries.store(count, Ordering::Relaxed);
        Ok(())
    }
}

/// Answers owed once a batch is committed.
#[derive(Default)]
struct Replies {
    flushes: Vec<tokio::sync::oneshot::Sender<()>>,
    removed: Vec<(tokio::sync::oneshot::Sender<u64>, u64)>,
}

struct Tables<'w> {
    entries: redb::Table<'w, &'static str, &'static [u8]>,
    expiry: redb::Table<'w, (u64, &'static str), ()>,
    meta: redb::Table<'w, &'static str, u64>,
    tags: redb::Table<'w, (&'static str, &'static str), ()>,
}

impl<'w> Tables<'w> {
    fn open(w: &'w WriteTransaction) -> Result<Self, DiskError> {
        Ok(Tables {
            entries: w.open_table(ENTRIES).map_err(store_err)?,
            expiry: w.open_table(EXPIRY).map_err(store_err)?,
            meta: w.open_table(META).map_err(store_err)?,
            tags: w.open_table(TAGS).map_err(store_err)?,
        })
    }

    /// The keys a tag or a pattern selects: a tag from its index, a pattern by walking
    /// every key.
    fn selected(&self, sel: &Selector) -> Result<Vec<String>, DiskError> {
        let mut keys = Vec::new();
        if let Selector::Tag(tag) = sel {
            for item in self.tags.range((tag.as_str(), "")..).map_err(store_err)? {
                let (k, _) = item.map_err(store_err)?;
                let (of, key) = k.value();
                if of != tag {
                    break;
                }
                keys.push(key.to_string());
            }
        } else {
            for item in self.entries.iter().map_err(store_err)? {
                let (k, _) = item.map_err(store_err)?;
                if sel.matches(k.value(), &[]) {
                    keys.push(k.value().to_string());
                }
            }
        }
        Ok(keys)
    }

    /// Removes `key` and its expiry and tag index entries; whether it was there.
    fn remove(&mut self, key: &str, bytes: &mut u64, count: &mut u64) -> Result<bool, DiskError> {
        let old = self.entries.remove(key).map_err(store_err)?;
        let Some(old) = old else {
            return Ok(false);
        };
        let v = old.value();
        *bytes = bytes.saturating_sub(v.len() as u64);
        *count = count.saturating_sub(1);
        if let Some(expires) = codec::expires_at_ms(v) {
            self.expiry.remove((expires, key)).map_err(store_err)?;
        }
        for tag in codec::labels(v).map(|l| l.tags).unwrap_or_default() {
            self.tags.remove((tag.as_str(), key)).map_err(store_err)?;
        }
        Ok(true)
    }

    /// Removes entries in expiry order while `go(expires_at, bytes held)` says so, at most
    /// `limit`; how many it removed.
    fn remove_first(
        &mut self,
        limit: usize,
        go: impl Fn(u64, u64) -> bool,
        bytes: &mut u64,
        count: &mut u64,
    ) -> Result<u64, DiskError> {
        let mut removed = 0;
        while (removed as usize) < limit {
            let first = {
                let first = self.expiry.first().map_err(store_err)?;
                first.map(|(k, _)| {
                    let (expires, key) = k.value();
                    (expires, key.to_string())
                })
            };
            let Some((expires, key)) = first else { break };
            if !go(expires, *bytes) {
                break;
            }
            // The row goes first, in case the entry's own expiry reads otherwise.
            self.expiry
                .remove((expires, key.as_str()))
                .map_err(store_err)?;
            self.remove(&key, bytes, count)?;
            removed += 1;
        }
        Ok(removed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::entry::{CachedResponse, Labels, Lifetime, Usage};
    use bytes::Bytes;
    use flowgate_clock::{Clock, ManualClock};

    fn settings(dir: &std::path::Path, max_bytes: u64) -> DiskSettings {
        DiskSettings {
            path: dir.join("cache.redb"),
            max_bytes,
            purge_interval: Duration::from_secs(3600),
            compress_above: 256,
        }
    }

    fn record(clock: &ManualClock, ttl_s: u64, body: &str) -> Record {
        Record::new(
            CachedResponse {
                status: 200,
                headers: vec![],
                body: Bytes::from(body.to_string()),
                usage: Usage::default(),
            },
            clock.unix_millis(),
            Lifetime::fresh_for(Duration::from_secs(ttl_s)),
            Labels::default(),
        )
    }

    fn tempdir(name: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!("flowgate-disk-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        d
    }

    #[tokio::test]
    async fn records_survive_reopening() {
        let dir = tempdir("reopen");
        let clock = ManualClock::at_epoch_2026();
        {
            let d = DiskTier::open(&settings(&dir, 1 << 20), clock.shared()).unwrap();
            d.put("v1:ns:a".into(), record(&clock, 60, "{\"a\":1}"));
            d.put("v1:ns:b".into(), record(&clock, 60, &"b".repeat(4000)));
            d.flush().await;
            assert_eq!(d.stats().entries.load(Ordering::Relaxed), 2);
            assert!(d.stats().body.get().1 < 1000);
        }
        let d = DiskTier::open(&settings(&dir, 1 << 20), clock.shared()).unwrap();
        assert_eq!(d.stats().entries.load(Ordering::Relaxed), 2);
        let r = d.reader();
        assert_eq!(
            r.get("v1:ns:a").unwrap().unwrap().response.body,
            "{\"a\":1}"
        );
        assert_eq!(r.get("v1:ns:b").unwrap().unwrap().response.body.len(), 4000);
        assert!(r.get("v1:ns:c").unwrap().is_none());
        drop(d);
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[tokio::test]
    async fn expired_entries_are_purged_and_the_size_bound_holds() {
        let dir = tempdir("purge");
        let clock = ManualClock::at_epoch_2026();
        let d = DiskTier::open(&settings(&dir, 4096), clock.shared()).unwrap();
        d.put("short".into(), record(&clock, 10, "s"));
        d.put("long".into(), record(&clock, 1000, "l"));
        d.flush().await;
        clock.advance(Duration::from_secs(11));
        d.flush().await;
        let r = d.reader();
        assert!(r.get("short").unwrap().is_none());
        assert!(r.get("long").unwrap().is_some());
        assert_eq!(d.stats().purged.load(Ordering::Relaxed), 1);
        // Random letters (~650 B compressed): only a few fit in 4 KiB; the ones expiring
        // first are evicted first.
        for i in 0..10u64 {
            let mut x = i + 1;
            let body: String = (0..1000)
                .map(|_| {
                    x = x
                        .wrapping_mul(6_364_136_223_846_793_005)
                        .wrapping_add(1_442_695_040_888_963_407);
                    char::from(b'a' + (x >> 59) as u8 % 26)
                })
                .collect();
            let mut rec = record(&clock, 100 + i, &body);
            rec.response.body = Bytes::from(body);
            d.put(format!("k{i}"), rec);
        }
        d.flush().await;
        assert!(d.stats().bytes.load(Ordering::Relaxed) <= 4096);
        assert!(d.stats().evictions.load(Ordering::Relaxed) >= 3);
        assert!(
            r.get("k9").unwrap().is_some(),
            "the latest-expiring entry was evicted"
        );
        assert!(r.get("k0").unwrap().is_none());
        // Overwriting replaces, removing removes, clear empties.
        d.put("k9".into(), record(&clock, 5, "new"));
        assert_eq!(d.remove(Selector::Key("long".into())).await, 1);
        assert_eq!(r.get("k9").unwrap().unwrap().response.body, "new");
        assert!(r.get("long").unwrap().is_none());
        assert!(d.remove(Selector::Prefix("k".into())).await >= 1);
        assert_eq!(d.stats().entries.load(Ordering::Relaxed), 0);
        d.put("x".into(), record(&clock, 5, "x"));
        assert_eq!(d.remove(Selector::All).await, 1);
        assert_eq!(d.stats().entries.load(Ordering::Relaxed), 0);
        assert_eq!(d.stats().bytes.load(Ordering::Relaxed), 0);
        drop(d);
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[tokio::test]
    async fn tags_select_entries_through_their_index() {
        let dir = tempdir("tags");
        let clock = ManualClock::at_epoch_2026();
        let d = DiskTier::open(&settings(&dir, 1 << 20), clock.shared()).unwrap();
        let r = d.reader();
        let tagged = |ttl, tags: &[&str]| {
            let mut rec = record(&clock, ttl, "x");
            rec.labels.tags = tags.iter().map(|t| t.to_string()).collect();
            rec
        };
        d.put("a".into(), tagged(60, &["billing", "eu"]));
        d.put("b".into(), tagged(60, &["billing"]));
        d.put("c".into(), tagged(60, &["eu"]));
        // Overwritten without the tag: no longer billing.
        d.put("d".into(), tagged(60, &["billing"]));
        d.put("d".into(), tagged(60, &[]));
        // Expired and purged: its index rows go with it.
        d.put("e".into(), tagged(1, &["billing"]));
        d.flush().await;
        clock.advance(Duration::from_secs(2));
        d.put("f".into(), tagged(60, &[]));
        d.flush().await;
        assert!(r.get("e").unwrap().is_none());
        assert_eq!(d.remove(Selector::Tag("billing".into())).await, 2);
        assert!(r.get("a").unwrap().is_none() && r.get("b").unwrap().is_none());
        assert!(r.get("c").unwrap().is_some() && r.get("d").unwrap().is_some());
        // a's "eu" row went with it.
        assert_eq!(d.remove(Selector::Tag("eu".into())).await, 1);
        let rows = {
            let t = d.db.begin_read().unwrap().open_table(TAGS).unwrap();
            t.iter().unwrap().count()
        };
        assert_eq!(rows, 0);
        drop(d);
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn a_second_gateway_on_the_same_file_is_refused() {
        let dir = tempdir("lock");
        let clock = ManualClock::at_epoch_2026();
        let _d = DiskTier::open(&settings(&dir, 1 << 20), clock.shared()).unwrap();
        let e = DiskTier::open(&settings(&dir, 1 << 20), clock.shared()).unwrap_err();
        assert!(e.to_string().contains("cache.redb"), "{e}");
    }
}
