//! The database advisor's endpoints (`/api/v1/performance/database/...`) on the
//! `[[databases]]` ([`flowgate_advisor`], [`crate::databases`]): the databases and their
//! watch (`/api/v1/performance/databases`); a query's complexity and,
//! on a database, its plan and the indexes proven to help it (`analyze-query`); the slow
//! query shapes with the watch's view of them (`slow-queries`); the indexes to create and
//! drop (`index-recommendations`); the tables' health (`table-health`); the ordered plan
//! (`optimization-plan`); and one step of it taken (`optimize/{action}/{target}`), only on
//! a database configured as writable that allows the action, verified, logged and told to
//! the notifiers.
//!
//! `?database=NAME` names the database (the only one when one is configured). Every read
//! is on a fresh read-only session; analyses give up after [`ANALYSIS_TIMEOUT`].

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use axum::Json;
use axum::extract::{Path, Query, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use flowgate_advisor::report::{self, Settings};
use flowgate_advisor::{AdvisorError, Database, plan};
use flowgate_config::{DatabaseAction, DatabaseConfig, PickError, Severity};
use serde_json::{Value, json};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::reply::client_error;
use crate::gateway::Gateway;

/// How long an analysis may take.
const ANALYSIS_TIMEOUT: Duration = Duration::from_secs(120);

pub fn routes() -> OpenApiRouter<Arc<Gateway>> {
    OpenApiRouter::new()
        .routes(routes!(databases))
        .routes(routes!(analyze_query))
        .routes(routes!(slow_queries))
        .routes(routes!(index_recommendations))
        .routes(routes!(table_health))
        .routes(routes!(optimization_plan))
        .routes(routes!(optimize))
}

/// The database `?database=` names, or the only one; `Ok(None)` when none is configured
/// and none named (a query alone can still be analyzed).
fn pick(
    gw: &Gateway,
    q: &HashMap<String, String>,
) -> Result<Option<DatabaseConfig>, Box<Response>> {
    let rt = gw.runtime();
    match flowgate_config::pick_database(
        &rt.config.databases,
        q.get("database").map(String::as_str),
    ) {
        Ok(d) => Ok(d.cloned()),
        Err(PickError::Unknown { name, .. }) => Err(Box::new(client_error(
            StatusCode::NOT_FOUND,
            &format!("no database named {name:?} in [[databases]]"),
            "database_not_found",
        ))),
        Err(PickError::Several { names }) => Err(Box::new(client_error(
            StatusCode::BAD_REQUEST,
            &format!("several databases are configured: name one with ?database= ({names})"),
            "invalid_parameter",
        ))),
    }
}

/// The database named or the only one; 404 `no_database` when none is configured.
fn required(gw: &Gateway, q: &HashMap<String, String>) -> Result<DatabaseConfig, Box<Response>> {
    pick(gw, q)?.ok_or_else(|| {
        Box::new(client_error(
            StatusCode::NOT_FOUND,
            "no database is configured: add a [[databases]] entry (docs/advisor.md)",
            "no_database",
        ))
    })
}

/// The answer to what went wrong on the database.
fn failed(e: &AdvisorError) -> Response {
    let (status, code) = match e {
        AdvisorError::Connect(_) => (StatusCode::BAD_GATEWAY, "database_unreachable"),
        AdvisorError::Lost(_) => (StatusCode::BAD_GATEWAY, "database_lost"),
        AdvisorError::MissingExtension { .. } => (StatusCode::CONFLICT, "extension_missing"),
        AdvisorError::Query(_) => (StatusCode::BAD_GATEWAY, "database_error"),
    };
    client_error(status, &e.to_string(), code)
}

/// `work` on a read-only session of `cfg`'s database, within [`ANALYSIS_TIMEOUT`].
async fn reading<T, F>(cfg: &DatabaseConfig, work: F) -> Result<T, Box<Response>>
where
    F: AsyncFnOnce(&Database) -> Result<T, AdvisorError>,
{
    let run = async {
        let db = crate::databases::connect(cfg, false).await?;
        work(&db).await
    };
    match tokio::time::timeout(ANALYSIS_TIMEOUT, run).await {
        Ok(Ok(v)) => Ok(v),
        Ok(Err(e)) => Err(Box::new(failed(&e))),
        Err(_) => Err(Box::new(client_error(
            StatusCode::GATEWAY_TIMEOUT,
            &format!(
                "the database did not finish the analysis within {}s",
                ANALYSIS_TIMEOUT.as_secs()
            ),
            "database_timeout",
        ))),
    }
}

/// `work`'s report (a JSON object) on the database `q` names, with the database's name.
async fn report_on<F>(gw: &Gateway, q: &HashMap<String, String>, work: F) -> Response
where
    F: AsyncFnOnce(&Database, Settings) -> Result<Value, AdvisorError>,
{
    match required(gw, q) {
        Ok(cfg) => report_of(&cfg, work).await,
        Err(answer) => *answer,
    }
}

/// `work`'s report (a JSON object) on `cfg`'s database, with its settings, in a read-only
/// session; the database's name added.
async fn report_of<F>(cfg: &DatabaseConfig, work: F) -> Response
where
    F: AsyncFnOnce(&Database, Settings) -> Result<Value, AdvisorError>,
{
    let s = Settings::of(cfg);
    match reading(cfg, async |db: &Database| work(db, s).await).await {
        Ok(mut v) => {
            v["database"] = json!(cfg.name);
            Json(v).into_response()
        }
        Err(answer) => *answer,
    }
}

/// 400 `query_does_not_parse` with the parser's line and column.
fn does_not_parse(e: &flowgate_advisor::ParseError) -> Response {
    let body = json!({"error": {
        "message": format!("the query does not parse: {e}"),
        "type": "invalid_request_error",
        "param": "query",
        "code": "query_does_not_parse",
        "line": e.line,
        "column": e.column,
    }});
    (
        StatusCode::BAD_REQUEST,
        [(header::CONTENT_TYPE, "application/json")],
        body.to_string(),
    )
        .into_response()
}

#[utoipa::path(
    get,
    path = "/api/v1/performance/databases",
    tag = "database",
    summary = "the databases of [[databases]]: their settings and what the watch last saw (last poll, error, slow shapes, plan changes, tables with each kind of finding, oldest transaction-id age)",
    responses((status = 200, description = "the databases (none: an empty list)", body = Object))
)]
async fn databases(State(gw): State<Arc<Gateway>>) -> Response {
    let rt = gw.runtime();
    let list: Vec<Value> = rt
        .config
        .databases
        .iter()
        .map(|d| {
            let watch = gw.databases().with(&d.name, |w| {
                json!({
                    "last_poll": w.last_poll,
                    "error": w.error,
                    "slow_last_poll": w.slow,
                    "shapes_last_poll": w.means.len(),
                    "plan_changes": w.changes.len(),
                    "table_findings": w.tables.findings.iter().map(|(k, n)| (k.to_string(), json!(n))).collect::<serde_json::Map<_, _>>(),
                    "xid_age": w.tables.xid_age,
                })
            });
            json!({
                "name": d.name,
                "writable": d.writable,
                "actions": d.actions.iter().map(|a| a.as_str()).collect::<Vec<_>>(),
                "allow_analyze": d.allow_analyze,
                "poll_seconds": d.poll.as_secs(),
                "slow_ms": d.slow_ms(),
                "threshold": d.threshold,
                "alert_rule": d.alert.then(|| d.alert_rule_name()),
                "watch": watch.unwrap_or_else(|| json!({"last_poll": null, "note": "not polled yet"})),
            })
        })
        .collect();
    Json(json!({ "databases": list })).into_response()
}

#[derive(Debug, serde::Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct AnalyzeBody {
    /// The SQL to analyze (PostgreSQL).
    query: String,
}

#[utoipa::path(
    post,
    path = "/api/v1/performance/database/analyze-query",
    tag = "database",
    summary = "a query's complexity 1-10 with its reasons; on a database, its plan's cost, the indexes proven to help it, and (allow_analyze) its real time",
    params(("database" = Option<String>, Query, description = "the database (the only one when one is configured)")),
    request_body(content = AnalyzeBody, content_type = "application/json"),
    responses((status = 200, description = "the analysis", body = Object), (status = 400, description = "a bad body, or SQL that does not parse (with its line and column)", body = super::openapi::ApiError), (status = 404, description = "no such database", body = super::openapi::ApiError), (status = 409, description = "an extension is missing (the message says what to install)", body = super::openapi::ApiError), (status = 502, description = "the database cannot be reached or refused the query", body = super::openapi::ApiError), (status = 504, description = "the analysis took too long", body = super::openapi::ApiError))
)]
async fn analyze_query(
    State(gw): State<Arc<Gateway>>,
    Query(q): Query<HashMap<String, String>>,
    body: axum::body::Bytes,
) -> Response {
    let asked: AnalyzeBody = match serde_json::from_slice(&body) {
        Ok(b) => b,
        Err(e) => {
            return client_error(
                StatusCode::BAD_REQUEST,
                &format!("the body is not {{\"query\": \"SELECT ...\"}}: {e}"),
                "invalid_body",
            );
        }
    };
    // Bad SQL is said before any database is asked.
    let alone = match report::query(&asked.query) {
        Ok(v) => v,
        Err(e) => return does_not_parse(&e),
    };
    let cfg = match pick(&gw, &q) {
        Ok(Some(cfg)) => cfg,
        Ok(None) => return Json(alone).into_response(),
        Err(answer) => return *answer,
    };
    report_of(&cfg, async |db: &Database, s: Settings| {
        report::query_on(db, &asked.query, s).await
    })
    .await
}

#[utoipa::path(
    get,
    path = "/api/v1/performance/database/slow-queries",
    tag = "database",
    summary = "the query shapes whose mean time is at least the database's slow, most total time first, with their complexity, their mean over the watch's last poll and their plan changes",
    params(("database" = Option<String>, Query, description = "the database (the only one when one is configured)")),
    responses((status = 200, description = "the slow shapes", body = Object), (status = 400, description = "several databases and none named", body = super::openapi::ApiError), (status = 404, description = "no database configured, or none of that name", body = super::openapi::ApiError), (status = 409, description = "pg_stat_statements is missing", body = super::openapi::ApiError), (status = 502, description = "the database cannot be reached", body = super::openapi::ApiError))
)]
async fn slow_queries(
    State(gw): State<Arc<Gateway>>,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    let cfg = match required(&gw, &q) {
        Ok(cfg) => cfg,
        Err(answer) => return *answer,
    };
    let s = Settings::of(&cfg);
    let shapes = match reading(&cfg, async |db: &Database| {
        let shapes = db.slow_queries(s.slow_ms, s.limit).await?;
        let shown = report::shapes_on(db, &shapes).await;
        Ok(shapes.into_iter().zip(shown).collect::<Vec<_>>())
    })
    .await
    {
        Ok(shapes) => shapes,
        Err(answer) => return *answer,
    };
    let (watch, changes, means) = gw
        .databases()
        .with(&cfg.name, |w| {
            let changes: Vec<Value> = w
                .changes
                .iter()
                .map(|c| {
                    json!({"at": c.at, "queryid": c.queryid, "query": c.query,
                           "mean_ms": c.mean_ms, "before": c.before, "after": c.after})
                })
                .collect();
            let means: HashMap<i64, Value> = w
                .means
                .iter()
                .map(|m| (m.queryid, json!({"calls": m.calls, "mean_ms": m.mean_ms})))
                .collect();
            let watch = json!({
                "last_poll": w.last_poll,
                "error": w.error,
                "slow_last_poll": w.slow,
                "plan_changes": changes,
            });
            (watch, changes, means)
        })
        .unwrap_or_else(|| {
            let watch = json!({"last_poll": null, "note": "not polled yet"});
            (watch, Vec::new(), HashMap::new())
        });
    let listed: Vec<Value> = shapes
        .iter()
        .map(|(shape, shown)| {
            let mut v = shown.clone();
            v["last_poll"] = means.get(&shape.queryid).cloned().unwrap_or(Value::Null);
            v["series"] = json!(flowgate_config::query_mean_series(&cfg.name, shape.queryid));
            v["plan_changes"] = json!(
                changes
                    .iter()
                    .filter(|c| c["queryid"] == shape.queryid)
                    .collect::<Vec<_>>()
            );
            v
        })
        .collect();
    Json(json!({
        "database": cfg.name,
        "slow_ms": s.slow_ms,
        "poll_seconds": cfg.poll.as_secs(),
        "slow_queries": listed,
        "watch": watch,
    }))
    .into_response()
}

#[utoipa::path(
    get,
    path = "/api/v1/performance/database/index-recommendations",
    tag = "database",
    summary = "the indexes proven (HypoPG) to lower the slow shapes' cost by the threshold, with statement, size and write overhead; unused and duplicate indexes; foreign keys without one",
    params(("database" = Option<String>, Query, description = "the database (the only one when one is configured)")),
    responses((status = 200, description = "the recommendations", body = Object), (status = 400, description = "several databases and none named", body = super::openapi::ApiError), (status = 404, description = "no database configured, or none of that name", body = super::openapi::ApiError), (status = 409, description = "pg_stat_statements or HypoPG is missing", body = super::openapi::ApiError), (status = 502, description = "the database cannot be reached", body = super::openapi::ApiError), (status = 504, description = "the analysis took too long", body = super::openapi::ApiError))
)]
async fn index_recommendations(
    State(gw): State<Arc<Gateway>>,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    report_on(&gw, &q, async |db: &Database, s: Settings| {
        report::database(db, s).await
    })
    .await
}

#[utoipa::path(
    get,
    path = "/api/v1/performance/database/table-health",
    tag = "database",
    summary = "the tables' health from their statistics: dead rows autovacuum left, stale statistics, tables read whole over and over, transaction ids near wraparound, tables without a primary key; each finding with the vacuum or analyze that fixes it",
    params(("database" = Option<String>, Query, description = "the database (the only one when one is configured)")),
    responses((status = 200, description = "the tables checked and those with findings, largest first", body = Object), (status = 400, description = "several databases and none named", body = super::openapi::ApiError), (status = 404, description = "no database configured, or none of that name", body = super::openapi::ApiError), (status = 502, description = "the database cannot be reached", body = super::openapi::ApiError), (status = 504, description = "the database took too long", body = super::openapi::ApiError))
)]
async fn table_health(
    State(gw): State<Arc<Gateway>>,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    report_on(&gw, &q, async |db: &Database, _: Settings| {
        report::tables(db).await
    })
    .await
}

/// The plan for `cfg`'s database as it is now.
async fn current_plan(cfg: &DatabaseConfig) -> Result<Vec<plan::Step>, Box<Response>> {
    let s = Settings::of(cfg);
    reading(cfg, async |db: &Database| {
        let shapes = db.slow_queries(s.slow_ms, s.limit).await?;
        let recs = flowgate_advisor::recommend(db, &shapes, s.threshold).await?;
        plan::plan(db, &recs).await
    })
    .await
}

fn apply_path(cfg: &DatabaseConfig, step: &plan::Step) -> String {
    format!(
        "/api/v1/performance/database/optimize/{}/{}?database={}",
        step.action.as_str(),
        step.target,
        cfg.name
    )
}

#[utoipa::path(
    get,
    path = "/api/v1/performance/database/optimization-plan",
    tag = "database",
    summary = "the ordered plan (biggest time saved first): each step an action on an index or a table, its statement, why, and whether the database allows it",
    params(("database" = Option<String>, Query, description = "the database (the only one when one is configured)")),
    responses((status = 200, description = "the plan", body = Object), (status = 400, description = "several databases and none named", body = super::openapi::ApiError), (status = 404, description = "no database configured, or none of that name", body = super::openapi::ApiError), (status = 409, description = "pg_stat_statements or HypoPG is missing", body = super::openapi::ApiError), (status = 502, description = "the database cannot be reached", body = super::openapi::ApiError), (status = 504, description = "the analysis took too long", body = super::openapi::ApiError))
)]
async fn optimization_plan(
    State(gw): State<Arc<Gateway>>,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    let cfg = match required(&gw, &q) {
        Ok(cfg) => cfg,
        Err(answer) => return *answer,
    };
    let steps = match current_plan(&cfg).await {
        Ok(steps) => steps,
        Err(answer) => return *answer,
    };
    tracing::info!(database = %cfg.name, steps = steps.len(), "database optimization plan made");
    let listed: Vec<Value> = steps
        .iter()
        .enumerate()
        .map(|(i, step)| {
            let mut v = step.to_json();
            v["order"] = json!(i + 1);
            v["allowed"] = json!(cfg.allows(step.action));
            v["apply"] = json!(format!("POST {}", apply_path(&cfg, step)));
            v
        })
        .collect();
    Json(json!({
        "database": cfg.name,
        "writable": cfg.writable,
        "actions": cfg.actions.iter().map(|a| a.as_str()).collect::<Vec<_>>(),
        "steps": listed,
    }))
    .into_response()
}

#[utoipa::path(
    post,
    path = "/api/v1/performance/database/optimize/{action}/{target}",
    tag = "database",
    summary = "takes one step of the current plan (create_index or drop_index on the index named, vacuum or analyze on the table named), only on a writable database that allows the action; verified by planning the shapes it helps again, or by the table's statistics after",
    params(
        ("action" = String, Path, description = "create_index, drop_index, vacuum or analyze"),
        ("target" = String, Path, description = "the index or table, as the plan names it"),
        ("database" = Option<String>, Query, description = "the database (the only one when one is configured)"),
    ),
    responses((status = 200, description = "what was done and its verification (`verified`)", body = Object), (status = 400, description = "an unknown action", body = super::openapi::ApiError), (status = 403, description = "the database is not writable, or the action not allowed", body = super::openapi::ApiError), (status = 404, description = "no such database, or no such step in the current plan", body = super::openapi::ApiError), (status = 502, description = "the database cannot be reached or refused the statement", body = super::openapi::ApiError))
)]
async fn optimize(
    State(gw): State<Arc<Gateway>>,
    Path((action, target)): Path<(String, String)>,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    let cfg = match required(&gw, &q) {
        Ok(cfg) => cfg,
        Err(answer) => return *answer,
    };
    let Some(action) = DatabaseAction::parse(&action) else {
        return client_error(
            StatusCode::BAD_REQUEST,
            &format!(
                "{action:?} is not an action: one of {}",
                DatabaseAction::ALL.map(DatabaseAction::as_str).join(", ")
            ),
            "invalid_parameter",
        );
    };
    if !cfg.writable {
        return client_error(
            StatusCode::FORBIDDEN,
            &format!(
                "database {:?} is not configured as writable (writable = true in its \
                 [[databases]] entry): nothing is written to it",
                cfg.name
            ),
            "database_read_only",
        );
    }
    if !cfg.allows(action) {
        return client_error(
            StatusCode::FORBIDDEN,
            &format!(
                "database {:?} does not allow {} (its [[databases]] actions)",
                cfg.name,
                action.as_str()
            ),
            "action_not_allowed",
        );
    }
    let _one_at_a_time = gw.databases().acting().await;
    let steps = match current_plan(&cfg).await {
        Ok(steps) => steps,
        Err(answer) => return *answer,
    };
    let Some(step) = steps
        .iter()
        .find(|s| s.action == action && s.target == target)
    else {
        return client_error(
            StatusCode::NOT_FOUND,
            &format!(
                "{} {target:?} is not a step of the current plan (GET \
                 /api/v1/performance/database/optimization-plan lists them)",
                action.as_str()
            ),
            "plan_step_not_found",
        );
    };
    let applied = async {
        let writer = crate::databases::connect(&cfg, true).await?;
        let reader = crate::databases::connect(&cfg, false).await?;
        plan::apply(&writer, &reader, step, cfg.allow_analyze, gw.clock()).await
    }
    .await;
    match applied {
        Ok(done) => {
            tracing::info!(database = %cfg.name, statement = %step.statement, verified = done.verified, took_ms = done.took_ms, note = %done.note, "database optimization taken");
            crate::database_watch::announce(
                &gw,
                &cfg.name,
                if done.verified {
                    Severity::Info
                } else {
                    Severity::Warning
                },
                format!("database {}: {}", cfg.name, step.statement),
                done.note.clone(),
            );
            let mut v = done.to_json();
            v["database"] = json!(cfg.name);
            Json(v).into_response()
        }
        Err(e) => {
            tracing::warn!(database = %cfg.name, statement = %step.statement, error = %e, "a database optimization failed");
            crate::database_watch::announce(
                &gw,
                &cfg.name,
                Severity::Warning,
                format!("database {}: {} failed", cfg.name, step.statement),
                e.to_string(),
            );
            failed(&e)
        }
    }
}
