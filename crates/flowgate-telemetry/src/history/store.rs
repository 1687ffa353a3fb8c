//! The history's file: each series' points per resolution in redb, keyed by series and
//! time so that reading one series over a window is one range; pruned past each
//! resolution's retention.

use std::collections::HashMap;
use std::path::Path;
use std::sync::Mutex;

use redb::{Database, ReadableDatabase, ReadableTable, ReadableTableMetadata, TableDefinition};

use super::point::{Point, Resolution};

/// Series names and their ids.
const SERIES: TableDefinition<&str, u32> = TableDefinition::new("series");
const POINTS: [TableDefinition<&[u8], &[u8]>; 3] = [
    TableDefinition::new("points_10s"),
    TableDefinition::new("points_1m"),
    TableDefinition::new("points_1h"),
];
/// A stored point: value, min, max; or the value alone when all three are one (every 10 s
/// point).
const POINT_LEN: usize = 24;
const VALUE_LEN: usize = 8;

#[derive(Debug, thiserror::Error)]
#[error("metrics history {path}: {message}")]
pub struct StoreError {
    path: String,
    message: String,
}

pub struct Store {
    db: Database,
    path: String,
    /// Series ids, as known to the file.
    ids: Mutex<HashMap<String, u32>>,
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store")
            .field("path", &self.path)
            .finish_non_exhaustive()
    }
}

fn key(id: u32, t: u64) -> [u8; 12] {
    let mut k = [0u8; 12];
    k[..4].copy_from_slice(&id.to_be_bytes());
    k[4..].copy_from_slice(&t.to_be_bytes());
    k
}

fn encode(p: &Point, out: &mut Vec<u8>) {
    out.clear();
    out.extend_from_slice(&p.value.to_le_bytes());
    if p.min != p.value || p.max != p.value {
        out.extend_from_slice(&p.min.to_le_bytes());
        out.extend_from_slice(&p.max.to_le_bytes());
    }
}

fn decode(t: u64, b: &[u8]) -> Option<Point> {
    let f = |i: usize| {
        let mut w = [0u8; 8];
        w.copy_from_slice(&b[i..i + 8]);
        f64::from_le_bytes(w)
    };
    match b.len() {
        VALUE_LEN => Some(Point {
            t,
            value: f(0),
            min: f(0),
            max: f(0),
        }),
        POINT_LEN => Some(Point {
            t,
            value: f(0),
            min: f(8),
            max: f(16),
        }),
        _ => None,
    }
}

impl Store {
    /// The file at `path` (an unreadable one moved aside: returned, to be said), or memory.
    pub fn open(
        path: Option<&Path>,
        now: u64,
    ) -> Result<(Store, Option<flowgate_store::MovedAside>), StoreError> {
        let name = path.map_or_else(|| "(in memory)".to_string(), |p| p.display().to_string());
        let err = |m: &dyn std::fmt::Display| StoreError {
            path: name.clone(),
            message: m.to_string(),
        };
        let (db, moved) = match path {
            Some(p) => flowgate_store::open(p, now).map_err(|e| err(&e))?,
            None => (flowgate_store::in_memory().map_err(|e| err(&e))?, None),
        };
        let ids = (|| -> Result<HashMap<String, u32>, redb::Error> {
            let tx = db.begin_write()?;
            for t in POINTS {
                tx.open_table(t)?;
            }
            let mut ids = HashMap::new();
            {
                let s = tx.open_table(SERIES)?;
                for row in s.iter()? {
                    let (k, v) = row?;
                    ids.insert(k.value().to_string(), v.value());
                }
            }
            tx.commit()?;
            Ok(ids)
        })()
        .map_err(|e| err(&e))?;
        Ok((
            Store {
                db,
                path: name,
                ids: Mutex::new(ids),
            },
            moved,
        ))
    }

    fn error(&self, e: &dyn std::fmt::Display) -> StoreError {
        StoreError {
            path: self.path.clone(),
            message: e.to_string(),
        }
    }

    /// Writes `points` (series, resolution, point) in one transaction, then deletes, when
    /// `prune` gives cut-offs (Unix seconds, per resolution), the points older than them.
    pub fn write(
        &self,
        points: &[(String, Resolution, Point)],
        prune: Option<[u64; 3]>,
    ) -> Result<(), StoreError> {
        let Ok(mut ids) = self.ids.lock() else {
            return Err(self.error(&"poisoned"));
        };
        let r = (|| -> Result<(), redb::Error> {
            let tx = self.db.begin_write()?;
            {
                let mut series = tx.open_table(SERIES)?;
                let mut tables = [
                    tx.open_table(POINTS[0])?,
                    tx.open_table(POINTS[1])?,
                    tx.open_table(POINTS[2])?,
                ];
                let mut value = Vec::with_capacity(POINT_LEN);
                for (name, res, p) in points {
                    let id = match ids.get(name) {
                        Some(id) => *id,
                        None => {
                            let id = u32::try_from(ids.len()).unwrap_or(u32::MAX);
                            series.insert(name.as_str(), id)?;
                            ids.insert(name.clone(), id);
                            id
                        }
                    };
                    encode(p, &mut value);
                    tables[res.index()].insert(&key(id, p.t)[..], value.as_slice())?;
                }
                if let Some(cut) = prune {
                    for (table, cut) in tables.iter_mut().zip(cut) {
                        for id in ids.values() {
                            table.retain_in(&key(*id, 0)[..]..&key(*id, cut)[..], |_, _| false)?;
                        }
                    }
                }
            }
            tx.commit()?;
            Ok(())
        })();
        r.map_err(|e| self.error(&e))
    }

    /// The points of `series` at `res` from `from` (inclusive) to `to` (exclusive).
    pub fn read(
        &self,
        series: &str,
        res: Resolution,
        from: u64,
        to: u64,
    ) -> Result<Vec<Point>, StoreError> {
        let id = match self.ids.lock() {
            Ok(ids) => ids.get(series).copied(),
            Err(_) => None,
        };
        let Some(id) = id else {
            return Ok(Vec::new());
        };
        let r = (|| -> Result<Vec<Point>, redb::Error> {
            let tx = self.db.begin_read()?;
            let t = tx.open_table(POINTS[res.index()])?;
            let mut out = Vec::new();
            for row in t.range(&key(id, from)[..]..&key(id, to)[..])? {
                let (k, v) = row?;
                let k = k.value();
                let mut ts = [0u8; 8];
                ts.copy_from_slice(&k[4..12]);
                if let Some(p) = decode(u64::from_be_bytes(ts), v.value()) {
                    out.push(p);
                }
            }
            Ok(out)
        })();
        r.map_err(|e| self.error(&e))
    }

    /// Every series ever written, by name.
    pub fn series(&self) -> Vec<String> {
        let mut names: Vec<String> = match self.ids.lock() {
            Ok(ids) => ids.keys().cloned().collect(),
            Err(_) => Vec::new(),
        };
        names.sort();
        names
    }

    /// Points kept at each resolution.
    pub fn rows(&self) -> Result<[u64; 3], StoreError> {
        let r = (|| -> Result<[u64; 3], redb::Error> {
            let tx = self.db.begin_read()?;
            let mut out = [0; 3];
            for (o, t) in out.iter_mut().zip(POINTS) {
                *o = tx.open_table(t)?.len()?;
            }
            Ok(out)
        })();
        r.map_err(|e| self.error(&e))
    }

    /// The file's size, when it is one.
    pub fn file_bytes(&self) -> Option<u64> {
        std::fs::metadata(&self.path).ok().map(|m| m.len())
    }
}
