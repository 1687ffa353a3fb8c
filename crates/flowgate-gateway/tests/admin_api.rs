//! The admin API against its own OpenAPI document, endpoint by endpoint:
//!
//! - the document served at `/api/v1/openapi.json` is the one `flowgate openapi` prints;
//! - **every documented operation is routed** (each answers its success case), and nothing
//!   else is: other methods on a documented path answer 405, an undocumented path the
//!   fallback's 404, and the admin sources route nothing outside `utoipa_axum::routes!`
//!   (which documents what it routes);
//! - **every operation**: success, bad input (400 saying what is wrong) and an unknown id
//!   (404) wherever the document says it answers them — a table case for each, checked
//!   against the document both ways —, no token (401), a token beyond its scope (403), and
//!   for writes a body that is not JSON (415).
#![allow(
    clippy::disallowed_methods,
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic
)]

mod common;
#[path = "../../flowgate-advisor/tests/common/mod.rs"]
mod pg;

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::net::SocketAddr;

use bytes::Bytes;
use common::*;
use flowgate_sim::EndpointSpec;
use http::{Request, StatusCode};
use http_body_util::{BodyExt, Full};
use serde_json::Value;

const WRITE: &str = "fgk_write_token_for_the_admin_api_matrix_000000000000";
const READ: &str = "fgk_read_token_for_the_admin_api_matrix_0000000000000";
const METRICS: &str = "fgk_metrics_token_for_the_admin_api_matrix_0000000000";

fn hash(token: &str) -> String {
    flowgate_config::format_key_hash(&flowgate_admission::keys::hash(token.as_bytes()))
}

/// An answer: its status, and its body as JSON when it has one (an event stream's is not
/// read: it does not end).
struct Answer {
    status: StatusCode,
    json: Value,
}

impl Answer {
    fn code(&self) -> &str {
        self.json["error"]["code"].as_str().unwrap_or("")
    }
    fn message(&self) -> &str {
        self.json["error"]["message"].as_str().unwrap_or("")
    }
}

#[derive(Clone, Copy)]
struct Call<'a> {
    method: &'a str,
    path: &'a str,
    body: &'a str,
    token: Option<&'a str>,
    content_type: &'a str,
    host: &'a str,
}

impl<'a> Call<'a> {
    fn new(method: &'a str, path: &'a str, body: &'a str) -> Self {
        Call {
            method,
            path,
            body,
            token: Some(WRITE),
            content_type: "application/json",
            host: "127.0.0.1",
        }
    }
}

async fn call(addr: SocketAddr, c: Call<'_>) -> Answer {
    let mut req = Request::builder()
        .method(c.method)
        .uri(format!("http://{addr}{}", c.path))
        .header("host", c.host)
        .header("content-type", c.content_type);
    if let Some(t) = c.token {
        req = req.header("authorization", format!("Bearer {t}"));
    }
    let req = req
        .body(Full::new(Bytes::from(c.body.to_string())))
        .unwrap();
    let resp = client().request(req).await.unwrap();
    let status = resp.status();
    let stream = resp
        .headers()
        .get("content-type")
        .is_some_and(|v| v.to_str().unwrap_or("").starts_with("text/event-stream"));
    let json = if stream {
        Value::Null
    } else {
        let body = resp.into_body().collect().await.unwrap().to_bytes();
        serde_json::from_slice(&body).unwrap_or(Value::Null)
    };
    Answer { status, json }
}

/// Every operation's cases, in the order they run (writes make what later cases use): one
/// a line, `[bare] METHOD STATUS PATH [BODY]`. `bare` runs on the gateway without cache or
/// history (the 404s and 409s of what is off); `{silence}` and `{key}` in a path are the
/// ids the cases before made, `{series}` a series the history keeps. The documented path
/// a case exercises is the one its path matches.
const CASES: &str = r#"
GET    200 /dashboard
GET    200 /dashboard/app.js
GET    200 /dashboard/app.css
GET    200 /dashboard/session
GET    200 /metrics
GET    200 /health
GET    200 /ready
GET    200 /api/v1/openapi.json
GET    200 /api/v1/performance/metrics
GET    200 /api/v1/performance/health
GET    200 /api/v1/performance/score
GET    200 /api/v1/monitoring/live
bare GET    409 /api/v1/monitoring/live
GET    200 /api/v1/performance/stages
GET    400 /api/v1/performance/stages?window=5m
GET    404 /api/v1/performance/stages?route=nowhere
bare GET    409 /api/v1/performance/stages
GET    200 /api/v1/anomalies
GET    400 /api/v1/anomalies?state=sleepy
GET    200 /api/v1/performance/report?window=24h
GET    400 /api/v1/performance/report?window=5m
bare GET    409 /api/v1/performance/report
GET    200 /api/v1/performance/recommendations
GET    200 /api/v1/cost/recommendations
GET    400 /api/v1/cost/recommendations?window=soon
GET    200 /api/v1/cost/summary?group_by=model
GET    400 /api/v1/cost/summary?group_by=planet
GET    200 /api/v1/cost/timeseries?step=hour
GET    400 /api/v1/cost/timeseries?step=fortnight
GET    200 /api/v1/cost/budgets
GET    200 /api/v1/cost/budgets/from-config
GET    404 /api/v1/cost/budgets/nowhere
PUT    201 /api/v1/cost/budgets/daily {"scope":"route","match":"chat","limit_usd":"5","window":"day","actions":[{"at":100,"do":"block"}]}
PUT    200 /api/v1/cost/budgets/daily {"scope":"route","match":"chat","limit_usd":"6","window":"day","actions":[{"at":100,"do":"block"}]}
PUT    400 /api/v1/cost/budgets/daily {"limit_usd":"lots"}
PUT    409 /api/v1/cost/budgets/from-config {"limit_usd":1,"window":"day","actions":[{"at":100,"do":"block"}]}
DELETE 204 /api/v1/cost/budgets/daily
DELETE 404 /api/v1/cost/budgets/daily
DELETE 409 /api/v1/cost/budgets/from-config
POST   200 /api/v1/cost/explain?route=chat {"model":"gpt-4o-mini","messages":[{"role":"user","content":"hi"}]}
POST   400 /api/v1/cost/explain?route=chat [1]
POST   400 /api/v1/cost/explain?route=chat&priority=urgentest {"model":"gpt-4o-mini","messages":[{"role":"user","content":"hi"}]}
POST   404 /api/v1/cost/explain?route=nowhere {"model":"gpt-4o-mini","messages":[{"role":"user","content":"hi"}]}
GET    200 /api/v1/capacity/scenarios?growth=0.2&peak=1.5
GET    400 /api/v1/capacity/scenarios?growth=lots
GET    200 /api/v1/capacity/bottlenecks
GET    400 /api/v1/capacity/bottlenecks?days=never
GET    404 /api/v1/capacity/bottlenecks?scenario=nowhere
GET    200 /api/v1/capacity/recommendations
GET    400 /api/v1/capacity/recommendations?days=never
GET    404 /api/v1/capacity/recommendations?scenario=nowhere
GET    200 /api/v1/capacity/forecast?series={series}
GET    400 /api/v1/capacity/forecast
GET    404 /api/v1/capacity/forecast?series=nowhere
bare GET    409 /api/v1/capacity/forecast
GET    200 /api/v1/metrics/series
bare GET    409 /api/v1/metrics/series
GET    200 /api/v1/metrics/history?series={series}
GET    400 /api/v1/metrics/history?series={series}&step=2m
GET    404 /api/v1/metrics/history?series=nowhere
bare GET    409 /api/v1/metrics/history
GET    200 /api/v1/alerts?limit=10
GET    400 /api/v1/alerts?from=yesterday
GET    200 /api/v1/alerts/silences
POST   201 /api/v1/alerts/silences {"rule": "chat-*", "for": "1h", "comment": "deploying"}
POST   400 /api/v1/alerts/silences {"for": "forever"}
DELETE 204 /api/v1/alerts/silences/{silence}
DELETE 404 /api/v1/alerts/silences/{silence}
GET    200 /api/v1/alerts/notifiers
GET    200 /api/v1/alerts/rules
GET    200 /api/v1/alerts/rules/from-config
GET    404 /api/v1/alerts/rules/nowhere
PUT    201 /api/v1/alerts/rules/chat-busy {"severity":"info","series":"requests_per_second{route=\"chat\"}","window":"3s","op":">","value":0}
PUT    200 /api/v1/alerts/rules/chat-busy {"severity":"info","series":"requests_per_second{route=\"chat\"}","window":"5s","op":">","value":0}
PUT    400 /api/v1/alerts/rules/chat-busy {"severity":"apocalyptic"}
PUT    409 /api/v1/alerts/rules/from-config {"series":"requests_per_second","value":0}
DELETE 204 /api/v1/alerts/rules/chat-busy
DELETE 404 /api/v1/alerts/rules/chat-busy
DELETE 409 /api/v1/alerts/rules/from-config
GET    200 /api/v1/automation/rules
GET    200 /api/v1/automation/history
GET    400 /api/v1/automation/history?limit=many
POST   200 /api/v1/automation/cycle {}
POST   200 /api/v1/automation/pause {}
POST   200 /api/v1/automation/resume {}
GET    200 /api/v1/keys
POST   201 /api/v1/keys {"name":"ci-bot","team":"infra"}
POST   409 /api/v1/keys {"name":"ci-bot"}
POST   400 /api/v1/keys {"name":5}
DELETE 200 /api/v1/keys/{key}
DELETE 404 /api/v1/keys/nowhere
GET    200 /api/v1/performance/load-balancer/instances
POST   201 /api/v1/performance/load-balancer/instances/register {"pool": "llm", "url": "http://127.0.0.1:9", "name": "extra"}
POST   409 /api/v1/performance/load-balancer/instances/register {"pool": "llm", "url": "http://127.0.0.1:9", "name": "extra"}
POST   400 /api/v1/performance/load-balancer/instances/register {"pool": "llm", "url": "nonsense", "name": "x"}
POST   404 /api/v1/performance/load-balancer/instances/register {"pool": "nowhere", "url": "http://127.0.0.1:9", "name": "x"}
POST   200 /api/v1/performance/load-balancer/instances/deregister {"pool": "llm", "name": "extra"}
POST   400 /api/v1/performance/load-balancer/instances/deregister {"pool": "llm"}
POST   404 /api/v1/performance/load-balancer/instances/deregister {"pool": "llm", "name": "extra"}
POST   409 /api/v1/performance/load-balancer/instances/deregister {"pool": "llm", "name": "main"}
POST   200 /api/v1/performance/load-balancer/simulate-request {"method": "POST", "path": "/v1/chat/completions", "body": {"model": "gpt-4o-mini", "messages": []}}
POST   400 /api/v1/performance/load-balancer/simulate-request []
POST   404 /api/v1/performance/load-balancer/simulate-request {"method": "GET", "path": "/nowhere"}
GET    200 /api/v1/performance/load-balancer/metrics
POST   200 /api/v1/performance/load-balancer/strategy {"pool":"llm","strategy":"round_robin"}
POST   400 /api/v1/performance/load-balancer/strategy {"pool":"llm","strategy":"telepathy"}
POST   404 /api/v1/performance/load-balancer/strategy {"pool":"nowhere","strategy":"round_robin"}
POST   200 /api/v1/performance/load-balancer/optimize {}
POST   400 /api/v1/performance/load-balancer/optimize nonsense
POST   404 /api/v1/performance/load-balancer/optimize?pool=nowhere {}
POST   200 /api/v1/performance/cache/optimize {}
POST   400 /api/v1/performance/cache/optimize {"apply": "yes"}
bare POST   404 /api/v1/performance/cache/optimize
GET    200 /api/v1/performance/cache/stats
GET    200 /api/v1/performance/cache/strategies
bare GET    404 /api/v1/performance/cache/strategies
bare GET    404 /api/v1/performance/cache/stats
GET    200 /api/v1/performance/cache/hit-rate
bare GET    404 /api/v1/performance/cache/hit-rate
GET    200 /api/v1/performance/cache/metrics
bare GET    404 /api/v1/performance/cache/metrics
POST   200 /api/v1/performance/cache/invalidate {"prefix": "/v1"}
POST   400 /api/v1/performance/cache/invalidate {"color": "red"}
bare POST   404 /api/v1/performance/cache/invalidate
GET    200 /api/v1/performance/cache/warm
bare GET    404 /api/v1/performance/cache/warm
POST   202 /api/v1/performance/cache/warm {"requests": [{"path": "/v1/chat/completions", "body": {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "warm"}]}}]}
POST   400 /api/v1/performance/cache/warm {"top": "many"}
bare POST   404 /api/v1/performance/cache/warm
GET    200 /api/v1/performance/databases
bare GET    200 /api/v1/performance/databases
POST   200 /api/v1/performance/database/analyze-query?database=crm {"query": "SELECT * FROM child WHERE parent_id = 3"}
POST   400 /api/v1/performance/database/analyze-query {"query": "SELEC 1"}
POST   404 /api/v1/performance/database/analyze-query?database=nowhere {"query": "SELECT 1"}
GET    200 /api/v1/performance/database/slow-queries?database=crm
GET    400 /api/v1/performance/database/slow-queries
GET    404 /api/v1/performance/database/slow-queries?database=nowhere
bare GET    404 /api/v1/performance/database/slow-queries
GET    200 /api/v1/performance/database/index-recommendations?database=crm
GET    400 /api/v1/performance/database/index-recommendations
GET    404 /api/v1/performance/database/index-recommendations?database=nowhere
GET    200 /api/v1/performance/database/table-health?database=crm
GET    400 /api/v1/performance/database/table-health
GET    404 /api/v1/performance/database/table-health?database=nowhere
bare GET    404 /api/v1/performance/database/table-health
GET    200 /api/v1/performance/database/optimization-plan?database=crm
GET    400 /api/v1/performance/database/optimization-plan
GET    404 /api/v1/performance/database/optimization-plan?database=nowhere
POST   400 /api/v1/performance/database/optimize/truncate/child_parent_id_idx?database=crm
POST   404 /api/v1/performance/database/optimize/create_index/nothing_idx?database=crm
POST   200 /api/v1/performance/database/optimize/create_index/child_parent_id_idx?database=crm
GET    200 /api/v1/performance/rate-limits
GET    200 /api/v1/performance/concurrency
GET    200 /api/v1/scaling/status
POST   200 /api/v1/scaling/optimize {}
GET    200 /api/v1/scaling/keda/llm
GET    404 /api/v1/scaling/keda/nowhere
"#;

struct Case {
    bare: bool,
    method: &'static str,
    want: u16,
    path: &'static str,
    body: &'static str,
}

fn cases() -> Vec<Case> {
    CASES
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| {
            let (bare, l) = match l.strip_prefix("bare ") {
                Some(rest) => (true, rest),
                None => (false, l),
            };
            let (method, rest) = l.split_once(' ').unwrap();
            let (want, rest) = rest.trim_start().split_once(' ').unwrap();
            let (path, body) = rest
                .split_once(' ')
                .unwrap_or((rest, if bare { "{}" } else { "" }));
            Case {
                bare,
                method,
                want: want.parse().unwrap(),
                path,
                body: body.trim(),
            }
        })
        .collect()
}

/// The documented path `path` (its query left out) is an instance of.
fn template<'d>(
    ops: &'d BTreeMap<(String, String), BTreeSet<u16>>,
    path: &str,
) -> Option<&'d String> {
    let path = path.split('?').next().unwrap_or(path);
    let segments: Vec<&str> = path.split('/').collect();
    ops.keys().map(|(_, p)| p).find(|p| {
        let t: Vec<&str> = p.split('/').collect();
        t.len() == segments.len()
            && t.iter()
                .zip(&segments)
                .all(|(t, s)| t == s || (t.starts_with('{') && !s.is_empty()))
    })
}

fn config(up: &str, dir: &std::path::Path, full: bool) -> String {
    let admin = format!(
        "[admin]\nopen = []\n\
         [[admin.tokens]]\nname = \"ops\"\nscope = \"write\"\nhash = \"{}\"\n\
         [[admin.tokens]]\nname = \"grafana\"\nscope = \"read\"\nhash = \"{}\"\n\
         [[admin.tokens]]\nname = \"scraper\"\nscope = \"metrics\"\nhash = \"{}\"\n\n",
        hash(WRITE),
        hash(READ),
        hash(METRICS)
    );
    let pool = format!(
        "[pools.llm]\nendpoints = [{{ url = \"{up}\", name = \"main\" }}]\n\n\
         [[routes]]\nname = \"chat\"\nkind = \"openai\"\nprefix = \"/v1\"\npool = \"llm\"\n\n"
    );
    if !full {
        return format!("{admin}[history]\nenabled = false\n\n{pool}");
    }
    format!(
        "{admin}[auth]\nstore = \"{}\"\n\n\
         [cache]\nenabled = true\n\n\
         [[cost.budgets]]\nname = \"from-config\"\nlimit_usd = 100\nwindow = \"month\"\n\
         actions = [{{ at = 80, do = \"notify\" }}]\n\n\
         [[alerts.rules]]\nname = \"from-config\"\nseries = \"spend_usd_per_hour\"\nvalue = 100\n\n\
         [automation]\ninterval = \"1h\"\n\n\
         [scaling.pools.llm]\nper_replica = {{ requests_per_second = 10 }}\nmax = 6\n\
         actuator = {{ command = [\"true\"] }}\n\n\
         [[databases]]\nname = \"crm\"\nurl_env = \"ADMIN_API_DB\"\npoll = \"1h\"\n\
         writable = true\nactions = [\"create_index\"]\n\n\
         [[databases]]\nname = \"ro\"\nurl_env = \"ADMIN_API_DB\"\npoll = \"1h\"\n\n{pool}",
        dir.join("keys.redb").display()
    )
}

/// The documented operations: (method, path) → the statuses they answer.
fn documented(doc: &Value) -> BTreeMap<(String, String), BTreeSet<u16>> {
    let mut out = BTreeMap::new();
    for (path, item) in doc["paths"].as_object().unwrap() {
        for (method, op) in item.as_object().unwrap() {
            let statuses = op["responses"]
                .as_object()
                .unwrap()
                .keys()
                .map(|s| s.parse::<u16>().unwrap())
                .collect();
            out.insert((method.to_uppercase(), path.clone()), statuses);
        }
    }
    out
}

/// A concrete path for a documented one (its parameters filled with names that exist).
fn concrete(path: &str) -> String {
    path.replace("{name}", "from-config")
        .replace("{id}", "1")
        .replace("{pool}", "llm")
        .replace("{action}", "create_index")
        .replace("{target}", "child_parent_id_idx")
}

#[tokio::test]
async fn every_operation_answers_as_its_document_says() {
    let up = sim(EndpointSpec::default()).await;
    let dir = std::env::temp_dir().join(format!("flowgate-admin-api-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let server = format!("data_dir = \"{}\"", dir.display());
    // A database for the advisor's endpoints: a foreign key without an index is a step of
    // its plan.
    let db = pg::Pg::start();
    let url = db.url("postgres");
    pg::owner(&url)
        .await
        .batch_execute(
            "CREATE EXTENSION pg_stat_statements; CREATE EXTENSION hypopg;
             CREATE TABLE parent (id int PRIMARY KEY);
             CREATE TABLE child (id int PRIMARY KEY, parent_id int REFERENCES parent (id));",
        )
        .await
        .unwrap();
    let gw = launch_on(
        &server,
        &config(&up.url(), &dir, true),
        flowgate_clock::SystemClock::shared(),
        &[("ADMIN_API_DB", &url)],
    )
    .await;
    let plain = gateway(&config(&up.url(), &dir, false)).await;

    // The document served is the one `flowgate openapi` prints.
    let served = call(gw.admin_addr, Call::new("GET", "/api/v1/openapi.json", "")).await;
    assert_eq!(served.status, StatusCode::OK);
    let printed = serde_json::to_value(flowgate_gateway::admin_openapi()).unwrap();
    assert_eq!(served.json, printed);
    assert!(served.json["openapi"].as_str().unwrap().starts_with("3.1"));
    let ops = documented(&served.json);
    assert!(ops.len() >= 60, "{} operations", ops.len());

    // The table covers each documented success, 400 and 404, and nothing undocumented.
    let table = cases();
    let docs: Vec<&String> = table
        .iter()
        .map(|c| {
            template(&ops, c.path)
                .unwrap_or_else(|| panic!("{} {}: no documented path", c.method, c.path))
        })
        .collect();
    // The statuses the table's cases of an operation want.
    let cases_of = |method: &str, path: &str| -> Vec<u16> {
        table
            .iter()
            .zip(&docs)
            .filter(|(c, d)| c.method == method && d.as_str() == path)
            .map(|(c, _)| c.want)
            .collect()
    };
    for ((method, path), statuses) in &ops {
        for want in statuses
            .iter()
            .filter(|s| **s < 300 || **s == 400 || **s == 404)
        {
            let covered = cases_of(method, path).contains(want);
            // One success case stands for several documented ones (200 and 201 of a PUT).
            let success = *want < 300 && cases_of(method, path).iter().any(|w| *w < 300);
            assert!(
                covered || success,
                "no case for {method} {path} answering {want}"
            );
        }
    }
    for (c, doc) in table.iter().zip(&docs) {
        let statuses = ops
            .get(&(c.method.to_string(), doc.to_string()))
            .unwrap_or_else(|| panic!("{} {doc} is not documented", c.method));
        assert!(
            statuses.contains(&c.want),
            "{} {doc} is not documented to answer {}",
            c.method,
            c.want
        );
    }

    // A series in the history (its first sample is written within seconds of the start).
    let mut ids: HashMap<&str, String> = HashMap::new();
    let mut waited = 0;
    let series = loop {
        let a = call(
            gw.admin_addr,
            Call::new("GET", "/api/v1/metrics/series", ""),
        )
        .await;
        if let Some(s) = a.json["series"].as_array().and_then(|l| l.first()) {
            break s.as_str().unwrap().to_string();
        }
        waited += 1;
        assert!(
            waited < 300,
            "the history wrote no series in 30 s: {}",
            a.json
        );
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    };
    ids.insert("series", query_value(&series));

    // Each case, in order.
    for (c, doc) in table.iter().zip(&docs) {
        let mut path = c.path.to_string();
        for (k, v) in &ids {
            path = path.replace(&format!("{{{k}}}"), v);
        }
        let addr = if c.bare {
            plain.admin_addr
        } else {
            gw.admin_addr
        };
        let a = call(addr, Call::new(c.method, &path, c.body)).await;
        assert_eq!(
            a.status.as_u16(),
            c.want,
            "{} {path} {}: {}",
            c.method,
            c.body,
            a.json
        );
        if a.status.is_client_error() {
            // An error says what is wrong, with a code, in the OpenAI shape.
            assert!(
                !a.message().is_empty() && !a.code().is_empty(),
                "{} {path}: {}",
                c.method,
                a.json
            );
            assert_ne!(
                a.code(),
                "unknown_endpoint",
                "{} {path} fell through to the fallback",
                c.method
            );
        }
        match (c.method, doc.as_str()) {
            ("POST", "/api/v1/alerts/silences") if c.want == 201 => {
                ids.insert("silence", a.json["id"].to_string());
            }
            ("POST", "/api/v1/keys") if c.want == 201 => {
                ids.insert("key", a.json["id"].as_str().unwrap().to_string());
            }
            _ => {}
        }
    }

    // No token, a token beyond its scope, a write that is not JSON.
    let scraped = ["/metrics", "/health", "/ready"];
    for (method, path) in ops.keys() {
        let op = &served.json["paths"][path][method.to_lowercase()];
        let open = op["security"] == serde_json::json!([{}]);
        let path = &concrete(path);
        let mut no_token = Call::new(method, path, "{}");
        no_token.token = None;
        let a = call(gw.admin_addr, no_token).await;
        if open {
            // The dashboard's assets hold no data: served without a token, but only to
            // a Host the API answers for.
            assert_eq!(a.status, StatusCode::OK, "{method} {path}");
            no_token.host = "flowgate.evil.example";
            let a = call(gw.admin_addr, no_token).await;
            assert_eq!(
                (a.status, a.code()),
                (StatusCode::FORBIDDEN, "host_not_allowed"),
                "{method} {path}"
            );
            continue;
        }
        assert_eq!(a.status, StatusCode::UNAUTHORIZED, "{method} {path}");
        assert_eq!(a.code(), "invalid_admin_token");

        let reads = method == "GET";
        let mut beyond = Call::new(method, path, "{}");
        if scraped.contains(&path.as_str()) {
            // Nothing is below a metrics token: another site's Host is refused.
            beyond.token = Some(METRICS);
            beyond.host = "flowgate.evil.example";
        } else {
            beyond.token = Some(if reads { METRICS } else { READ });
        }
        let a = call(gw.admin_addr, beyond).await;
        assert_eq!(
            a.status,
            StatusCode::FORBIDDEN,
            "{method} {path}: {}",
            a.json
        );
        assert!(
            ["insufficient_scope", "host_not_allowed"].contains(&a.code()),
            "{method} {path}: {}",
            a.json
        );
        if scraped.contains(&path.as_str()) {
            let mut allowed = Call::new(method, path, "");
            allowed.token = Some(METRICS);
            assert_eq!(
                call(gw.admin_addr, allowed).await.status,
                StatusCode::OK,
                "{path}"
            );
        }
        if !reads {
            let mut form = Call::new(method, path, "a=1");
            form.content_type = "application/x-www-form-urlencoded";
            let a = call(gw.admin_addr, form).await;
            if method != "DELETE" {
                assert_eq!(
                    a.status,
                    StatusCode::UNSUPPORTED_MEDIA_TYPE,
                    "{method} {path}"
                );
            }
        }
    }

    // Nothing is routed that is not documented: other methods on a documented path are
    // 405, another path the fallback's 404.
    let paths: BTreeSet<&String> = ops.keys().map(|(_, p)| p).collect();
    for path in paths {
        for method in ["GET", "POST", "PUT", "DELETE", "PATCH"] {
            if ops.contains_key(&(method.to_string(), path.clone())) {
                continue;
            }
            let a = call(gw.admin_addr, Call::new(method, &concrete(path), "{}")).await;
            assert_eq!(
                a.status,
                StatusCode::METHOD_NOT_ALLOWED,
                "{method} {path} is routed but not documented"
            );
        }
    }
    let a = call(gw.admin_addr, Call::new("GET", "/api/v1/undocumented", "")).await;
    assert_eq!(
        (a.status, a.code()),
        (StatusCode::NOT_FOUND, "unknown_endpoint")
    );
    let mut dirs = vec![std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("src/admin")];
    let mut files = Vec::new();
    while let Some(d) = dirs.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                dirs.push(p);
            } else if p.extension().is_some_and(|x| x == "rs") {
                files.push(p);
            }
        }
    }
    assert!(files.len() > 20, "{files:?}");
    for f in files {
        let text = std::fs::read_to_string(&f).unwrap();
        for banned in [
            ".route(\"",
            ".route_service(\"",
            ".nest(\"",
            "axum::Router::new()",
        ] {
            assert!(
                !text.contains(banned),
                "{}: {banned} routes outside utoipa_axum::routes!, undocumented",
                f.display()
            );
        }
    }
    let _ = std::fs::remove_dir_all(&dir);
}
