//! The price in the head, for a client that asks (`x-flowgate-cost: 1`): a whole JSON
//! answer is read before its head goes, priced from its usage at its model's price, and
//! sent with `x-flowgate-cost-usd` (an exact decimal; `0` for an answer from flowgate's
//! cache, which then also says `x-flowgate-saved-usd`). A streamed answer's price is not
//! known before its head: it has no such field (its record and the access log have it).

use flowgate_cost::ModelPrice;
use http::Response;
use http::header::{self, HeaderMap, HeaderName, HeaderValue};

use crate::body::ProxyBody;

/// The request field that asks for the price.
pub(crate) static ASK: HeaderName = HeaderName::from_static("x-flowgate-cost");
static COST: HeaderName = HeaderName::from_static("x-flowgate-cost-usd");
static SAVED: HeaderName = HeaderName::from_static("x-flowgate-saved-usd");

/// Whether the request asks for its price in the head.
pub(crate) fn asked(h: &HeaderMap) -> bool {
    h.get(&ASK)
        .is_some_and(|v| matches!(v.as_bytes(), b"1" | b"true" | b"yes"))
}

/// `resp` with its price in the head when it is a whole JSON answer that reports its
/// usage; as it was otherwise. An answer that breaks while it is read becomes the
/// gateway's 502.
pub(crate) async fn add(
    resp: Response<ProxyBody>,
    price: Option<&ModelPrice>,
    cached: bool,
) -> Response<ProxyBody> {
    let json = resp
        .headers()
        .get(header::CONTENT_TYPE)
        .is_some_and(|v| v.as_bytes().starts_with(b"application/json"));
    if !resp.status().is_success() || !json {
        return resp;
    }
    let (mut parts, mut body) = resp.into_parts();
    let bytes = match crate::dialect::read_all(&mut body, crate::dialect::MAX_WHOLE).await {
        Ok(b) => b.freeze(),
        Err(why) => {
            let e = crate::error::ProxyError::UpstreamClosed {
                endpoint: "-".into(),
                reason: format!("its answer broke while it was read: {why}"),
            };
            return e.into_response();
        }
    };
    if let (Some(usage), Some(p)) = (flowgate_cost::usage_of(&bytes), price) {
        let usd = flowgate_cost::cost(&usage, p);
        let (spent, saved) = if cached {
            ("0".to_string(), Some(usd))
        } else {
            (usd.to_string(), None)
        };
        if let Ok(v) = HeaderValue::from_str(&spent) {
            parts.headers.insert(COST.clone(), v);
        }
        if let Some(v) = saved.and_then(|s| HeaderValue::from_str(&s.to_string()).ok()) {
            parts.headers.insert(SAVED.clone(), v);
        }
    }
    parts
        .headers
        .insert(header::CONTENT_LENGTH, HeaderValue::from(bytes.len()));
    Response::from_parts(parts, ProxyBody::from(bytes))
}
