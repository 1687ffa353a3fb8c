//! The alerts' durable part, in `alerts.redb` under `[server] data_dir` (in memory
//! without one): the rules made through the admin API, as written, and the events, kept
//! for `retention` and at most [`MAX_EVENTS`], so that both outlive a restart. A file that
//! does not read as a database is moved aside and a fresh one kept (`flowgate_store`).

use std::path::Path;
use std::time::Duration;

use flowgate_config::RawAlertRule;
use flowgate_store::Journal;
use redb::{Database, ReadableDatabase, ReadableTable, TableDefinition};

use super::Event;

const RULES: TableDefinition<&str, &[u8]> = TableDefinition::new("rules");
/// The events' journal: (at, sequence) → the event as JSON.
const EVENTS: &str = "events";

/// The most events kept, whatever their age.
pub const MAX_EVENTS: u64 = 100_000;

/// See the module's documentation.
pub struct AlertStore {
    db: Database,
    events: Journal,
    retention: Duration,
}

impl std::fmt::Debug for AlertStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AlertStore")
            .field("retention", &self.retention)
            .finish()
    }
}

fn err(e: impl std::fmt::Display) -> String {
    e.to_string()
}

impl AlertStore {
    /// The store at `path` (in memory when `None`), opened at `now` (Unix seconds); a file
    /// moved aside is said in the second part.
    pub fn open(
        path: Option<&Path>,
        now: u64,
        retention: Duration,
    ) -> Result<(AlertStore, Option<flowgate_store::MovedAside>), String> {
        let (db, moved) = match path {
            Some(p) => flowgate_store::open(p, now)?,
            None => (flowgate_store::in_memory()?, None),
        };
        let tx = db.begin_write().map_err(err)?;
        tx.open_table(RULES).map_err(err)?;
        tx.commit().map_err(err)?;
        let events = Journal::open(&db, EVENTS, retention.as_secs(), MAX_EVENTS)?;
        Ok((
            AlertStore {
                db,
                events,
                retention,
            },
            moved,
        ))
    }

    /// The rules made through the API, by name.
    pub fn rules(&self) -> Result<Vec<RawAlertRule>, String> {
        let tx = self.db.begin_read().map_err(err)?;
        let t = tx.open_table(RULES).map_err(err)?;
        let mut out = Vec::new();
        for row in t.iter().map_err(err)? {
            let (_, v) = row.map_err(err)?;
            out.push(serde_json::from_slice(v.value()).map_err(err)?);
        }
        Ok(out)
    }

    /// Keeps `raw` (named) as written, in place of a rule of its name.
    pub fn put_rule(&self, name: &str, raw: &RawAlertRule) -> Result<(), String> {
        let bytes = serde_json::to_vec(raw).map_err(err)?;
        let tx = self.db.begin_write().map_err(err)?;
        tx.open_table(RULES)
            .map_err(err)?
            .insert(name, bytes.as_slice())
            .map_err(err)?;
        tx.commit().map_err(err)
    }

    /// Forgets rule `name`; whether there was one.
    pub fn delete_rule(&self, name: &str) -> Result<bool, String> {
        let tx = self.db.begin_write().map_err(err)?;
        let had = tx
            .open_table(RULES)
            .map_err(err)?
            .remove(name)
            .map_err(err)?
            .is_some();
        tx.commit().map_err(err)?;
        Ok(had)
    }

    /// Keeps `events`; events older than the retention at `now`, and the oldest past
    /// [`MAX_EVENTS`], go.
    pub fn record(&self, events: &[Event], now: u64) -> Result<(), String> {
        let rows = events
            .iter()
            .map(|e| Ok((e.at, serde_json::to_vec(e).map_err(err)?)))
            .collect::<Result<Vec<_>, String>>()?;
        self.events.record(
            &self.db,
            rows.iter().map(|(at, b)| (*at, b.as_slice())),
            now,
        )
    }

    /// The events from `from` to `to` (Unix seconds, inclusive) of `rule` (any when
    /// `None`), oldest first, at most the last `limit` of them.
    pub fn events(
        &self,
        from: u64,
        to: u64,
        rule: Option<&str>,
        limit: usize,
    ) -> Result<Vec<Event>, String> {
        self.events.read(&self.db, from, to, limit, |bytes| {
            let e: Event = serde_json::from_slice(bytes).map_err(err)?;
            Ok(rule.is_none_or(|r| r == e.rule).then_some(e))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::alerts::EventKind;
    use flowgate_config::Severity;

    fn event(at: u64, rule: &str, kind: EventKind) -> Event {
        Event {
            at,
            kind,
            rule: rule.into(),
            severity: Severity::Warning,
            group: rule.into(),
            labels: Default::default(),
            value: Some(1.5),
            summary: format!("{rule} at {at}"),
            description: String::new(),
            fired_at: Some(at),
            silenced: false,
            inhibited: false,
        }
    }

    fn dir(tag: &str) -> std::path::PathBuf {
        let d = std::env::temp_dir().join(format!("flowgate-alerts-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        d
    }

    #[test]
    fn rules_and_events_outlive_a_restart() {
        let d = dir("restart");
        let path = d.join("alerts.redb");
        let day = Duration::from_secs(86_400);
        {
            let (s, moved) = AlertStore::open(Some(&path), 1_000, day).unwrap();
            assert!(moved.is_none());
            let raw = RawAlertRule {
                name: Some("api-rule".into()),
                series: Some("spend_usd_per_hour".into()),
                value: Some(5.0),
                ..RawAlertRule::default()
            };
            s.put_rule("api-rule", &raw).unwrap();
            s.record(
                &[
                    event(1_000, "a", EventKind::Firing),
                    event(1_000, "b", EventKind::Firing),
                ],
                1_000,
            )
            .unwrap();
            s.record(&[event(1_060, "a", EventKind::Resolved)], 1_060)
                .unwrap();
        }
        let (s, _) = AlertStore::open(Some(&path), 2_000, day).unwrap();
        let rules = s.rules().unwrap();
        assert_eq!(rules.len(), 1);
        assert_eq!(rules[0].value, Some(5.0));
        let all = s.events(0, u64::MAX, None, 100).unwrap();
        let seen: Vec<(u64, &str, EventKind)> = all
            .iter()
            .map(|e| (e.at, e.rule.as_str(), e.kind))
            .collect();
        assert_eq!(
            seen,
            [
                (1_000, "a", EventKind::Firing),
                (1_000, "b", EventKind::Firing),
                (1_060, "a", EventKind::Resolved)
            ]
        );
        assert_eq!(s.events(0, u64::MAX, Some("a"), 100).unwrap().len(), 2);
        assert_eq!(s.events(1_030, 2_000, None, 100).unwrap().len(), 1);
        let last = s.events(0, u64::MAX, None, 1).unwrap();
        assert_eq!(last[0].kind, EventKind::Resolved, "the last of them");
        // Events after a restart keep their order behind the old ones.
        s.record(&[event(1_060, "c", EventKind::Firing)], 2_000)
            .unwrap();
        let all = s.events(1_060, 1_060, None, 100).unwrap();
        assert_eq!(
            all.iter().map(|e| e.rule.as_str()).collect::<Vec<_>>(),
            ["a", "c"]
        );
        assert!(s.delete_rule("api-rule").unwrap());
        assert!(!s.delete_rule("api-rule").unwrap());
        assert!(s.rules().unwrap().is_empty());
        let _ = std::fs::remove_dir_all(d);
    }

    #[test]
    fn old_events_go_after_the_retention() {
        let (s, _) = AlertStore::open(None, 0, Duration::from_secs(100)).unwrap();
        s.record(&[event(10, "old", EventKind::Firing)], 10)
            .unwrap();
        s.record(&[event(50, "mid", EventKind::Firing)], 50)
            .unwrap();
        s.record(&[event(150, "new", EventKind::Firing)], 150)
            .unwrap();
        let left: Vec<String> = s
            .events(0, u64::MAX, None, 10)
            .unwrap()
            .into_iter()
            .map(|e| e.rule)
            .collect();
        assert_eq!(left, ["mid", "new"]);
    }

    #[test]
    fn past_the_most_kept_the_oldest_go() {
        let (mut s, _) = AlertStore::open(None, 0, Duration::from_secs(86_400)).unwrap();
        s.events = Journal::open(&s.db, EVENTS, 86_400, 2).unwrap();
        for (i, r) in ["a", "b", "c"].iter().enumerate() {
            s.record(&[event(10 + i as u64, r, EventKind::Firing)], 20)
                .unwrap();
        }
        let left: Vec<String> = s
            .events(0, u64::MAX, None, 10)
            .unwrap()
            .into_iter()
            .map(|e| e.rule)
            .collect();
        assert_eq!(left, ["b", "c"]);
    }

    #[test]
    fn a_corrupt_file_is_moved_aside() {
        let d = dir("corrupt");
        std::fs::create_dir_all(&d).unwrap();
        let path = d.join("alerts.redb");
        std::fs::write(&path, b"not a database at all, just some bytes").unwrap();
        let (s, moved) = AlertStore::open(Some(&path), 7, Duration::from_secs(60)).unwrap();
        let moved = moved.expect("moved aside");
        assert!(
            moved
                .to
                .to_string_lossy()
                .ends_with("alerts.redb.corrupt-7")
        );
        assert!(moved.to.exists());
        assert!(s.rules().unwrap().is_empty());
        let _ = std::fs::remove_dir_all(d);
    }
}
