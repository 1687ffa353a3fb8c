//! Active health checks (a pool's `health_check`): every `interval` (plus up to `jitter`,
//! so that endpoints and replicas do not probe in step) each endpoint gets a `GET path`
//! with its credential; an answer with the expected status before `timeout` passes. Probes
//! in a row take an endpoint out or bring it back (see `flowgate_balance::probed`). The
//! probes of a pool stop when the pool is dropped (a reload that changed it).

use std::sync::{Arc, Weak};
use std::time::Duration;

use flowgate_config::HealthCheckConfig;
use http::header::{self, HeaderMap};
use http::{HeaderName, Method};

use super::Upstream;
use bytes::Bytes;
use flowgate_http::client::{ReqFraming, RequestHead, ResponseFraming};
use http_body_util::Empty;

static USER_AGENT: &[u8] = b"flowgate-health-check";

/// Starts the health checks of every endpoint of `pool`.
pub(crate) fn spawn(pool: &Arc<Upstream>, hc: &HealthCheckConfig) {
    for i in 0..pool.endpoints().len() {
        let (pool, hc) = (Arc::downgrade(pool), hc.clone());
        tokio::spawn(async move { run(pool, i, hc).await });
    }
}

/// A wait of `base` plus up to `jitter`, at random.
fn jittered(base: Duration, jitter: Duration) -> Duration {
    base + flowgate_balance::jitter(jitter)
}

async fn run(pool: Weak<Upstream>, i: usize, hc: HealthCheckConfig) {
    // The first probe comes at a random point of the first interval.
    tokio::time::sleep(jittered(Duration::ZERO, hc.interval)).await;
    loop {
        let Some(p) = pool.upgrade() else { return };
        let passed = probe(&p, i, &hc).await;
        let all = p.balancer().health();
        if let Some(down) = flowgate_balance::probed(all, i, passed, hc.healthy, hc.unhealthy) {
            let name = p.endpoints().get(i).map(|e| e.name.clone());
            if down {
                tracing::warn!(pool = %p.name, endpoint = ?name, path = %hc.path, "health checks failed: endpoint out");
            } else {
                tracing::info!(pool = %p.name, endpoint = ?name, "health checks pass again: endpoint back");
            }
        }
        drop(p);
        tokio::time::sleep(jittered(hc.interval, hc.jitter)).await;
    }
}

/// One health check of endpoint `i`: whether it answered the expected status in time.
async fn probe(pool: &Upstream, i: usize, hc: &HealthCheckConfig) -> bool {
    let Some(ep) = pool.endpoints().get(i) else {
        return false;
    };
    let check = async {
        let mut lease = ep.checkout().await.ok()?;
        let mut set: Vec<(&HeaderName, &[u8])> = vec![
            (&header::HOST, ep.host_header.as_bytes()),
            (&header::USER_AGENT, USER_AGENT),
        ];
        if let Some((name, value)) = &ep.credential {
            set.push((name, value.as_bytes()));
        }
        let target = format!("{}{}", ep.cfg.base_path, hc.path);
        let head = RequestHead {
            omit: &[],
            method: &Method::GET,
            target: &target,
            headers: &HeaderMap::new(),
            set: &set,
            framing: ReqFraming::None,
        };
        lease
            .write_request(&head, &mut Empty::<Bytes>::new())
            .await
            .ok()?;
        let resp = lease.read_head(false).await.ok()?;
        let passed = resp.status.as_u16() == hc.expect;
        // A body left unread: an HTTP/1.1 connection is not reused.
        if let ResponseFraming::H1 {
            decoder,
            keep_alive,
        } = &resp.body
            && decoder.is_done()
        {
            lease.release(*keep_alive);
        }
        Some(passed)
    };
    tokio::time::timeout(hc.timeout, check)
        .await
        .ok()
        .flatten()
        .unwrap_or(false)
}
