//! Background refreshes of cache entries (stale-while-revalidate and refresh-ahead).
//!
//! A hit that the cache marks for refresh has already been answered from the cache; its
//! request is then sent upstream once more, by a task of its own, as a client's would be
//! (same route and pool, a connect failure retried once on another endpoint, the pool's
//! timeouts), and a complete, cacheable answer fills the cache through the same tee as a
//! miss. A refresh that fails stores nothing: its leader is dropped, the stale entry keeps
//! being served until its window ends, and the next hit tries again.

use std::sync::Arc;

use bytes::Bytes;
use http::HeaderMap;
use http_body_util::BodyExt;

use crate::body::{ProxyBody, ReqBody};
use crate::caching::{Fill, Tee};
use crate::gateway::{Gateway, Outcome};
use crate::headers::{self, Peer};
use crate::router::RouteEntry;

/// Sends the request of `parts` and `body` upstream on `route` in the background and fills
/// the cache with its answer.
pub fn spawn(
    gw: Arc<Gateway>,
    route: RouteEntry,
    parts: &http::request::Parts,
    body: Bytes,
    fill: Fill,
) {
    let (mut req, ()) = http::Request::new(()).into_parts();
    // A stale entry a HEAD request hit is refreshed with the GET that fills it.
    req.method = if parts.method == http::Method::HEAD {
        http::Method::GET
    } else {
        parts.method.clone()
    };
    req.uri = parts.uri.clone();
    req.version = parts.version;
    req.headers = parts.headers.clone();
    headers::strip_hop_by_hop(&mut req.headers);
    // The refresh is the gateway's own request: it gets an id of its own.
    req.headers.remove(&headers::REQUEST_ID);
    tokio::spawn(async move {
        let request_id = gw.request_ids().take_or_make(&HeaderMap::new());
        let peer = Peer::new(std::net::SocketAddr::from(([127, 0, 0, 1], 0)));
        let mut out = Outcome::default();
        let exchange = gw.exchange(
            &route,
            &req,
            ReqBody::full(body),
            &peer,
            &request_id,
            &mut out,
        );
        let (head, lease) = match exchange.await {
            Ok(r) => r,
            Err(e) => {
                tracing::debug!(route = %route.name, error = %e, "cache refresh failed");
                return;
            }
        };
        if head.decoder.is_done() {
            // No body: nothing to store.
            lease.release(head.keep_alive);
            return;
        }
        // As for a client's request: a response that cannot be stored (an error status,
        // another content type) gets no tee and is read to its end, keeping the connection.
        let tee = Tee::start(fill, head.status, &head.headers);
        let read_timeout = route.upstream.cfg.read_timeout;
        let mut body =
            ProxyBody::upstream(lease, head.decoder, head.keep_alive, read_timeout).with_tee(tee);
        while let Some(frame) = body.frame().await {
            if frame.is_err() {
                return;
            }
        }
    });
}
