//! The gateway's own requests for the cache: background refreshes of entries
//! (stale-while-revalidate and refresh-ahead) and warming ([`crate::warming`]).
//!
//! A hit that the cache marks for refresh has already been answered from the cache; its
//! request is then sent upstream once more, by a task of its own, as a client's would be
//! (same route and pool, a connect failure retried once on another endpoint, the pool's
//! timeouts), and a complete, cacheable answer fills the cache through the same tee as a
//! miss. A refresh that fails stores nothing: its leader is dropped, the stale entry keeps
//! being served until its window ends, and the next hit tries again.

use std::sync::Arc;

use bytes::Bytes;
use flowgate_clock::SharedClock;
use http::HeaderMap;
use http_body_util::BodyExt;

use crate::body::ReqBody;
use crate::caching::{Fill, Tee};
use crate::forward::Forwarder;
use crate::headers::{self, RequestIds};
use crate::outcome::Outcome;
use crate::router::RouteEntry;
use crate::watch::Watched;
use flowgate_http::pool::ResponseBody;
use flowgate_http::server::Peer;

/// Sends the request of `parts` and `body` upstream on `route` in the background and fills
/// the cache with its answer.
pub fn spawn(
    clock: SharedClock,
    ids: Arc<RequestIds>,
    config: Arc<flowgate_config::Config>,
    route: RouteEntry,
    parts: &http::request::Parts,
    body: Bytes,
    fill: Fill,
) {
    let req = own_request(parts);
    tokio::spawn(async move {
        if let Err(e) = fetch(&clock, &ids, &config.models, &route, &req, body, fill).await {
            tracing::debug!(route = %route.name, error = %e, "cache refresh failed");
        }
    });
}

/// The gateway's copy of a client's request head: hop-by-hop fields and the client's
/// request id removed, and a HEAD turned into the GET whose answer fills the entry.
pub fn own_request(parts: &http::request::Parts) -> http::request::Parts {
    let (mut req, ()) = http::Request::new(()).into_parts();
    req.method = if parts.method == http::Method::HEAD {
        http::Method::GET
    } else {
        parts.method.clone()
    };
    req.uri = parts.uri.clone();
    req.version = parts.version;
    req.headers = parts.headers.clone();
    headers::strip_hop_by_hop(&mut req.headers);
    req.headers.remove(&headers::REQUEST_ID);
    req
}

/// Sends `req` and `body` upstream on `route` and reads the answer to its end, filling the
/// cache when it may be stored: the answer's status, and whether it could be stored (not
/// an error status, another content type, or refused by its origin) and arrived whole.
/// `Err`: the exchange failed or the answer was cut.
pub async fn fetch(
    clock: &SharedClock,
    ids: &RequestIds,
    models: &flowgate_config::ModelCatalog,
    route: &RouteEntry,
    req: &http::request::Parts,
    body: Bytes,
    fill: Fill,
) -> Result<(http::StatusCode, bool), String> {
    // The gateway's own request gets an id of its own.
    let request_id = ids.take_or_make(&HeaderMap::new());
    let peer = Peer::new(std::net::SocketAddr::from(([127, 0, 0, 1], 0)));
    let mut out = Outcome::default();
    let (head, lease, _) = Forwarder::new(clock, &[], models)
        .forward(
            route,
            req,
            ReqBody::full(body),
            &peer,
            &request_id,
            &mut out,
        )
        .await
        .map_err(|e| e.to_string())?;
    if head.body.is_done() {
        // No body: nothing to store (the lease goes back with the empty body).
        drop(ResponseBody::new(
            lease,
            head.body,
            route.upstream.cfg.read_timeout,
        ));
        return Ok((head.status, false));
    }
    // As for a client's request: a response that cannot be stored gets no tee and is read
    // to its end, keeping the connection.
    let status = head.status;
    let tee = Tee::start(fill, status, &head.headers);
    let storable = tee.is_some();
    let read_timeout = route.upstream.cfg.read_timeout;
    let mut body = Watched::new(ResponseBody::new(lease, head.body, read_timeout), tee);
    while let Some(frame) = body.frame().await {
        frame.map_err(|e| format!("the answer was cut: {e}"))?;
    }
    Ok((status, storable))
}
