//! The admin API's error answers: JSON in the OpenAI error shape, as the data plane's.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};

use crate::api_made::Refused;
use crate::error::error_body;

/// A listing's `?from=&to=` (Unix seconds; 0 and the end of time by default) and
/// `&limit=` (`limit` by default): each a whole number, `from` not after `to`; or what
/// is wrong, for a 400 `invalid_parameter`.
pub(super) fn range(
    p: &std::collections::HashMap<String, String>,
    limit: u64,
) -> Result<(u64, u64, u64), String> {
    let number = |k: &str| -> Result<Option<u64>, String> {
        match p.get(k) {
            None => Ok(None),
            Some(v) => v
                .parse::<u64>()
                .map(Some)
                .map_err(|_| format!("{k}: {v:?} is not a whole number")),
        }
    };
    let from = number("from")?.unwrap_or(0);
    let to = number("to")?.unwrap_or(u64::MAX);
    let limit = number("limit")?.unwrap_or(limit);
    if from > to {
        return Err("from is after to".into());
    }
    Ok((from, to, limit))
}

/// A listing's range as [`range`] reads it, its limit at most `max`; or the 400 to answer.
pub(super) fn listing(
    p: &std::collections::HashMap<String, String>,
    limit: u64,
    max: usize,
) -> Result<(u64, u64, usize), Box<Response>> {
    match range(p, limit) {
        Ok((from, to, limit)) => Ok((from, to, usize::try_from(limit).unwrap_or(max).min(max))),
        Err(m) => Err(Box::new(client_error(
            StatusCode::BAD_REQUEST,
            &m,
            "invalid_parameter",
        ))),
    }
}

/// The answer to a call that reads the metrics history when it is off: 409
/// `history_off`.
pub(super) fn history_off() -> Response {
    client_error(
        StatusCode::CONFLICT,
        "the metrics history is off ([history] enabled = false): there is nothing to read",
        "history_off",
    )
}

/// 404 `unknown_series` when the history keeps no series `name`.
pub(super) fn unknown_series(
    h: &flowgate_telemetry::history::History,
    name: &str,
) -> Option<Response> {
    (!h.series().iter().any(|s| s == name)).then(|| {
        client_error(
            StatusCode::NOT_FOUND,
            &format!("no series named {name:?} (GET /api/v1/metrics/series lists them)"),
            "unknown_series",
        )
    })
}

/// The longest window a report reads: the minutes' retention by default.
pub(super) const MAX_WINDOW: u64 = 35 * 86_400;

/// A report's `?window=` (`24h`, `7d`): from an hour to [`MAX_WINDOW`], `default` seconds
/// when not given; or what is wrong, for a 400 `invalid_parameter`.
pub(super) fn window(
    p: &std::collections::HashMap<String, String>,
    default: u64,
) -> Result<u64, String> {
    match p.get("window") {
        None => Ok(default),
        Some(w) => match flowgate_config::parse_window(w) {
            Some(s) if (3600..=MAX_WINDOW).contains(&s) => Ok(s),
            _ => Err(format!(
                "window: {w:?} is not a span from 1h to 35d (\"24h\", \"7d\")"
            )),
        },
    }
}

/// Problems by key, as one message: `key: what; key: what`.
pub(super) fn problems(list: &[(String, String)]) -> String {
    let why: Vec<String> = list
        .iter()
        .map(|(k, m)| {
            if k.is_empty() {
                m.clone()
            } else {
                format!("{k}: {m}")
            }
        })
        .collect();
    why.join("; ")
}

/// What the admin API makes beside the config: its name in messages and in codes
/// (`budget`: `budget_in_config`, `invalid_budget`, `budget_not_found`).
#[derive(Debug, Clone, Copy)]
pub(super) struct Made {
    pub noun: &'static str,
    pub code: &'static str,
}

impl Made {
    /// The answer to a refused change of `name`.
    pub(super) fn refused(self, name: &str, r: Refused) -> Response {
        let Made { noun, code } = self;
        match r {
            Refused::InConfig => client_error(
                StatusCode::CONFLICT,
                &format!("{noun} {name:?} is set in the config: change it there (and reload)"),
                &format!("{code}_in_config"),
            ),
            Refused::Invalid(list) => client_error(
                StatusCode::BAD_REQUEST,
                &problems(&list),
                &format!("invalid_{code}"),
            ),
            Refused::NotFound => client_error(
                StatusCode::NOT_FOUND,
                &format!("no {noun} named {name:?}"),
                &format!("{code}_not_found"),
            ),
            Refused::Store(e) => server_error(&format!("the {noun} could not be kept: {e}")),
        }
    }

    /// The body of `PUT …/{name}`: JSON of a `T` whose own name (`named`), if it gives
    /// one, is `name`.
    pub(super) fn body<T: serde::de::DeserializeOwned>(
        self,
        name: &str,
        body: &[u8],
        named: impl Fn(&T) -> Option<&str>,
    ) -> Result<T, Box<Response>> {
        let invalid = format!("invalid_{}", self.code);
        let t: T = serde_json::from_slice(body).map_err(|e| {
            Box::new(client_error(
                StatusCode::BAD_REQUEST,
                &format!("the body is not a {}: {e}", self.noun),
                &invalid,
            ))
        })?;
        if let Some(other) = named(&t).filter(|n| *n != name) {
            return Err(Box::new(client_error(
                StatusCode::BAD_REQUEST,
                &format!("the body names {} {other:?}, the path {name:?}", self.noun),
                &invalid,
            )));
        }
        Ok(t)
    }
}

/// The content type of Prometheus metrics.
pub(super) static OPENMETRICS: HeaderValue =
    HeaderValue::from_static("application/openmetrics-text; version=1.0.0; charset=utf-8");

pub(super) fn client_error(status: StatusCode, message: &str, code: &str) -> Response {
    (
        status,
        [(header::CONTENT_TYPE, "application/json")],
        error_body(message, "invalid_request_error", code),
    )
        .into_response()
}

/// The gateway failed to read what was asked (a store that cannot be read).
pub(super) fn server_error(message: &str) -> Response {
    (
        StatusCode::INTERNAL_SERVER_ERROR,
        [(header::CONTENT_TYPE, "application/json")],
        error_body(message, "server_error", "internal_error"),
    )
        .into_response()
}

pub(super) async fn not_found() -> Response {
    let body = error_body(
        "no such admin endpoint (GET /api/v1/openapi.json lists them)",
        "invalid_request_error",
        "unknown_endpoint",
    );
    (
        StatusCode::NOT_FOUND,
        [(header::CONTENT_TYPE, "application/json")],
        body,
    )
        .into_response()
}

/// `{"apply": bool, "revert": bool}`, both false by default, not both.
fn asked(body: &[u8]) -> Result<(bool, bool), String> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok((false, false));
    }
    let v: serde_json::Value =
        serde_json::from_slice(body).map_err(|e| format!("the body is not JSON: {e}"))?;
    let obj = v.as_object().ok_or("the body must be a JSON object")?;
    if let Some(k) = obj.keys().find(|k| *k != "apply" && *k != "revert") {
        return Err(format!("unknown field {k:?}: expected apply or revert"));
    }
    let flag = |k: &str| match obj.get(k) {
        None => Ok(false),
        Some(serde_json::Value::Bool(b)) => Ok(*b),
        Some(other) => Err(format!("{k}: {other} is not true or false")),
    };
    let (apply, revert) = (flag("apply")?, flag("revert")?);
    if apply && revert {
        return Err("apply or revert, not both".into());
    }
    Ok((apply, revert))
}

/// What an `.../optimize` call asks (its body as [`asked`] reads it): `Ok(true)` to apply
/// its proposals, `Ok(false)` to propose only; a revert (every change in force whose owner
/// starts with `owner` taken away) and bad bodies are answered here.
pub(super) fn optimize_asked(
    gw: &crate::gateway::Gateway,
    body: &[u8],
    owner: &str,
) -> Result<bool, Box<Response>> {
    let (apply, revert) = asked(body).map_err(|why| {
        Box::new(client_error(
            StatusCode::BAD_REQUEST,
            &why,
            "invalid_request",
        ))
    })?;
    if !revert {
        return Ok(apply);
    }
    let gone = gw.overrides().remove_prefixed(owner);
    if let Err(e) = gw.rebuild() {
        return Err(Box::new(server_error(&format!(
            "the config could not be rebuilt: {e}"
        ))));
    }
    let reverted: Vec<String> = gone.iter().map(|(_, c)| c.describe()).collect();
    Err(Box::new(
        axum::Json(serde_json::json!({ "reverted": reverted })).into_response(),
    ))
}

/// Applies an optimize proposal's `change` under `owner` through the running config's
/// overlay, marking `proposal` with `applied` and `was` (or the `error`); whether it was.
pub(super) fn apply_proposal(
    gw: &crate::gateway::Gateway,
    owner: &str,
    change: flowgate_config::ConfigChange,
    proposal: &mut serde_json::Value,
) -> bool {
    let described = change.describe();
    let rt = gw.runtime();
    match gw
        .overrides()
        .put(&rt.config, owner, change, || gw.rebuild())
    {
        Ok(was) => {
            proposal["applied"] = serde_json::json!(true);
            proposal["was"] = serde_json::json!(was);
            tracing::info!(%owner, change = %described, %was, "optimize: applied");
            true
        }
        Err(e) => {
            proposal["applied"] = serde_json::json!(false);
            proposal["error"] = serde_json::json!(e);
            false
        }
    }
}
