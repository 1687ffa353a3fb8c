//! Rate limits shared by every gateway replica through Redis: the GCRA of [`crate::gcra`]
//! run by one versioned Lua script (`gcra.lua`), atomically, on the server's clock.
//!
//! Each call touches one key, `<prefix>:rl1:<limit>:<value>`, so the script works on a
//! Redis Cluster as on one server (a script's keys must share a slot; one key always does).
//! Keys live until their value is back to its full burst (a TTL), so Redis holds only the
//! values active within one burst's worth of time. Calls go through a
//! [`flowgate_redis::Link`]: a small deadline and a breaker; when it gives no answer the
//! caller limits locally ([`crate::LocalLimiter`]) and tries Redis again on the next request
//! the breaker lets through.

use std::time::Duration;

use flowgate_redis::{Link, Op};

use crate::gcra::{Decision, Quota};

/// The script; its digest is what `EVALSHA` sends (the text only when the server lacks it).
const SCRIPT: &str = include_str!("gcra.lua");
/// Part of every key: a change to the script's state format gets new keys.
const VERSION: &str = "rl1";

/// GCRA state in Redis.
#[derive(Debug)]
pub struct SharedLimiter {
    link: Link,
    prefix: String,
    script: redis::Script,
}

impl SharedLimiter {
    pub fn new(link: Link, prefix: &str) -> Self {
        SharedLimiter {
            link,
            prefix: prefix.to_string(),
            script: redis::Script::new(SCRIPT),
        }
    }

    /// The key of `limit`'s count of `value` (bytes as they are: Redis keys are binary).
    fn key(&self, limit: &str, value: &[u8]) -> Vec<u8> {
        let mut k = Vec::with_capacity(self.prefix.len() + limit.len() + value.len() + 6);
        for part in [self.prefix.as_bytes(), VERSION.as_bytes(), limit.as_bytes()] {
            k.extend_from_slice(part);
            k.push(b':');
        }
        k.extend_from_slice(value);
        k
    }

    /// Admits or refuses a request of `value` costing `cost` units under `quota`, counted
    /// by every replica; `None` when Redis did not answer in time.
    pub async fn check(
        &self,
        limit: &str,
        value: &[u8],
        quota: &Quota,
        cost: u64,
    ) -> Option<Decision> {
        let mut call = self.script.key(self.key(limit, value));
        call.arg("check")
            .arg(micros(quota.interval()))
            .arg(quota.burst())
            .arg(cost);
        let (admitted, remaining, reset, retry): (i64, i64, i64, i64) =
            self.link.run(Op::Script(&call)).await?;
        let us = |n: i64| Duration::from_micros(u64::try_from(n).unwrap_or(0));
        let remaining = u64::try_from(remaining).unwrap_or(0);
        Some(if admitted == 1 {
            Decision::Admit {
                tat: 0,
                remaining,
                reset: us(reset),
            }
        } else {
            Decision::Deny {
                retry_after: (retry >= 0).then(|| us(retry)),
                remaining,
                reset: us(reset),
            }
        })
    }

    /// Corrects a reservation of `reserved` units to the `actual` units used; whether
    /// Redis took it.
    pub async fn settle(
        &self,
        limit: &str,
        value: &[u8],
        quota: &Quota,
        reserved: u64,
        actual: u64,
    ) -> bool {
        let mut call = self.script.key(self.key(limit, value));
        call.arg("settle")
            .arg(micros(quota.interval()))
            .arg(quota.burst())
            .arg(reserved)
            .arg(actual);
        self.link.run::<i64>(Op::Script(&call)).await.is_some()
    }
}

/// `d` in microseconds, with its fraction (`%.17g` keeps every digit Redis needs).
fn micros(d: Duration) -> String {
    format!("{:.3}", d.as_secs_f64() * 1e6)
}
