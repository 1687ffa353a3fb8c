//! Stage 2c, shedding: a route whose `shed` is set (in the file, or by an automation
//! rule's `shed` action) refuses requests of that priority and below with 503 and a
//! `Retry-After`, before their body is read, so that the capacity left goes to the
//! requests that matter most. Critical requests are never shed.

use std::time::Duration;

use flowgate_config::{KeyConfig, RouteConfig};
use http::HeaderMap;

use crate::error::ProxyError;

/// How long a shed client is asked to wait.
const RETRY_AFTER: Duration = Duration::from_secs(30);

/// Refuses the request when `route` sheds its priority.
pub(crate) fn check(
    route: &RouteConfig,
    headers: &HeaderMap,
    key: Option<&KeyConfig>,
) -> Result<(), ProxyError> {
    let Some(floor) = route.shed else {
        return Ok(());
    };
    let priority = crate::queues::priority(headers, key, route.priority_header)?;
    if priority >= floor {
        return Err(ProxyError::Shed {
            route: route.name.clone(),
            priority: floor,
            retry_after: RETRY_AFTER,
        });
    }
    Ok(())
}
