//! `GET /api/v1/monitoring/live`: server-sent events, one snapshot a second, read from the
//! metrics history's live ring: each route's requests a second and error ratio over the
//! last 10 s, requests in flight, the process's CPU and memory, and the alerts firing.
//! The stream lasts until the client leaves or the gateway stops.

use std::convert::Infallible;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use axum::extract::State;
use axum::http::header;
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use flowgate_insight::alerts::Status as AlertStatus;
use http_body::Frame;
use serde_json::{Map, Value, json};

use crate::gateway::Gateway;

/// The window the snapshot's rates and ratios cover.
const WINDOW_SECS: u64 = 10;

pub fn routes() -> OpenApiRouter<Arc<Gateway>> {
    OpenApiRouter::new().routes(routes!(live))
}

/// The events, as a response body fed by the task that makes them.
struct Events(tokio::sync::mpsc::Receiver<Bytes>);

impl http_body::Body for Events {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        self.0.poll_recv(cx).map(|b| b.map(|b| Ok(Frame::data(b))))
    }
}

/// One snapshot at `now`.
fn snapshot(gw: &Gateway, now: u64) -> Value {
    let Some(h) = gw.history() else {
        return json!({ "t": now });
    };
    let label = |r: &str| flowgate_telemetry::history::label("route", r);
    let mut rps = Map::new();
    let mut errors = Map::new();
    for r in &gw.runtime().config.routes {
        let l = label(&r.name);
        rps.insert(
            r.name.clone(),
            json!(h.live(&format!("requests_per_second{l}"), now, WINDOW_SECS)),
        );
        errors.insert(
            r.name.clone(),
            json!(h.live(&format!("error_ratio{l}"), now, WINDOW_SECS)),
        );
    }
    let firing: Vec<String> = gw
        .alerting()
        .with(|e| {
            e.alerts()
                .into_iter()
                .filter(|a| a.status == AlertStatus::Firing)
                .map(|a| a.rule)
                .collect()
        })
        .unwrap_or_default();
    json!({
        "t": now,
        "window_seconds": WINDOW_SECS,
        "requests_per_second": rps,
        "error_ratio": errors,
        "requests_in_flight": gw.telemetry().metrics().in_flight.get(),
        "process_cpu_cores": h.live("process_cpu_cores", now, WINDOW_SECS),
        "memory_ratio": h.live("memory_ratio", now, WINDOW_SECS),
        "alerts_firing": firing,
    })
}

#[utoipa::path(
    get,
    path = "/api/v1/monitoring/live",
    tag = "history",
    summary = "server-sent events: a snapshot a second (requests, errors, in flight, CPU, memory, alerts)",
    responses((status = 200, description = "an event stream", body = String, content_type = "text/event-stream"), (status = 409, description = "the metrics history is off ([history] enabled = false)", body = super::openapi::ApiError))
)]
async fn live(State(gw): State<Arc<Gateway>>) -> Response {
    if gw.history().is_none() {
        return super::reply::history_off();
    }
    let (tx, rx) = tokio::sync::mpsc::channel(4);
    let weak = Arc::downgrade(&gw);
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(Duration::from_secs(1));
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
        loop {
            tick.tick().await;
            let Some(gw) = weak.upgrade() else { break };
            if gw.is_draining() {
                break;
            }
            let now = gw.clock().unix_millis() / 1000;
            let event = format!("event: snapshot\ndata: {}\n\n", snapshot(&gw, now));
            drop(gw);
            // The client left: the stream ends.
            if tx.send(Bytes::from(event)).await.is_err() {
                break;
            }
        }
    });
    (
        [
            (header::CONTENT_TYPE, "text/event-stream"),
            (header::CACHE_CONTROL, "no-cache"),
        ],
        axum::body::Body::new(Events(rx)),
    )
        .into_response()
}
