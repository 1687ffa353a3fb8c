//! Pools of Anthropic's models on AWS Bedrock (`provider = "bedrock"`), served to OpenAI
//! clients: the simulator's Bedrock dialect on loopback checks every request's SigV4
//! signature (with the key it is given, for the region it is given), the body Bedrock
//! wants and the model in the path, and answers in event-stream frames.
#![allow(
    clippy::disallowed_methods,
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic
)]

mod common;

use std::time::Duration;

use bytes::Bytes;
use common::*;
use flowgate_providers::sigv4::Credentials;
use flowgate_sim::{EndpointSpec, SIM_AWS_KEY};
use http::StatusCode;

const MODEL_ID: &str = "anthropic.claude-3-5-sonnet-20240620-v1:0";

fn aws_env() -> Vec<(&'static str, &'static str)> {
    vec![
        ("AWS_ACCESS_KEY_ID", SIM_AWS_KEY.0),
        ("AWS_SECRET_ACCESS_KEY", SIM_AWS_KEY.1),
        // No shared files: the environment's key or nothing.
        ("HOME", "/nonexistent"),
    ]
}

/// A simulated Bedrock endpoint that wants requests signed for `region`.
async fn bedrock_sim(region: &str, spec: EndpointSpec) -> flowgate_sim::SimServer {
    sim(EndpointSpec {
        aws_region: Some(region.into()),
        ..spec
    })
    .await
}

/// A bedrock pool `claude` of (url, region) endpoints behind the `chat` route, and `extra`
/// in the pool's table.
fn config(endpoints: &[(String, &str)], pool_extra: &str, route_extra: &str) -> String {
    let eps: Vec<String> = endpoints
        .iter()
        .map(|(u, r)| format!("{{ url = \"{u}\", region = \"{r}\" }}"))
        .collect();
    format!(
        "[pools.claude]\nprovider = \"bedrock\"\nmodel = \"{MODEL_ID}\"\nendpoints = [{}]\n{pool_extra}\n\n\
         [[routes]]\nname = \"chat\"\nkind = \"openai\"\npath = \"/v1/chat/completions\"\npool = \"claude\"\n{route_extra}\n",
        eps.join(", ")
    )
}

fn body(extra: &str) -> Bytes {
    Bytes::from(format!(
        "{{\"model\":\"claude-sonnet\",\"max_tokens\":6,\"messages\":[{{\"role\":\"system\",\"content\":\"Be brief.\"}},{{\"role\":\"user\",\"content\":\"hi\"}}]{extra}}}"
    ))
}

/// The `data:` events of a streamed answer, `[DONE]` left out; and whether it ended so.
async fn stream(gw: &flowgate_gateway::Running, extra: &str) -> (Vec<serde_json::Value>, bool) {
    openai_stream(gw.data_addr, "/v1/chat/completions", body(extra)).await
}

#[tokio::test]
async fn an_openai_client_gets_an_openai_answer_from_a_signed_bedrock_request() {
    let up = bedrock_sim("us-east-1", EndpointSpec::default()).await;
    let gw = gateway_env(&config(&[(up.url(), "us-east-1")], "", ""), &aws_env()).await;
    let r = send(
        &client(),
        post(gw.data_addr, "/v1/chat/completions", body("")),
    )
    .await;
    // The simulator refuses a bad signature (403), a body with `model` or without Bedrock's
    // anthropic_version (400): a 200 means the request was signed and shaped for Bedrock.
    r.expect(StatusCode::OK);
    let v = r.json();
    assert_eq!(v["object"], "chat.completion");
    assert_eq!(v["model"], "claude-sonnet", "the client's name for it");
    assert_eq!(v["choices"][0]["finish_reason"], "stop");
    assert_eq!(v["usage"]["completion_tokens"], 6);
    assert!(v["usage"]["prompt_tokens"].as_u64().unwrap() > 0);
    let s = up.stats();
    assert_eq!((s.requests, s.unauthorized), (1, 0));
}

#[tokio::test]
async fn a_streamed_bedrock_answer_reaches_the_client_as_openai_chunks() {
    let up = bedrock_sim(
        "us-east-1",
        EndpointSpec {
            token_delay: Duration::from_millis(2),
            ..EndpointSpec::default()
        },
    )
    .await;
    let gw = gateway_env(&config(&[(up.url(), "us-east-1")], "", ""), &aws_env()).await;
    let (events, done) = stream(
        &gw,
        ",\"stream\":true,\"stream_options\":{\"include_usage\":true}",
    )
    .await;
    assert!(done, "{events:?}");
    assert!(
        events
            .iter()
            .all(|e| e["object"] == "chat.completion.chunk")
    );
    let content: String = events
        .iter()
        .filter_map(|e| e["choices"][0]["delta"]["content"].as_str())
        .collect();
    assert_eq!(content.split(' ').count(), 6, "{content}");
    let usage = &events.last().unwrap()["usage"];
    assert_eq!(usage["completion_tokens"], 6);
    assert!(usage["prompt_tokens"].as_u64().unwrap() > 0);
    let finish = &events[events.len() - 2]["choices"][0]["finish_reason"];
    assert_eq!(finish, "stop");
}

#[tokio::test]
async fn tool_calls_and_images_go_through_bedrock_whole_and_streamed() {
    let up = bedrock_sim("us-east-1", EndpointSpec::default()).await;
    let gw = gateway_env(&config(&[(up.url(), "us-east-1")], "", ""), &aws_env()).await;
    let tools = ",\"tools\":[{\"type\":\"function\",\"function\":{\"name\":\"lookup\",\"parameters\":{\"type\":\"object\"}}}],\"tool_choice\":{\"type\":\"function\",\"function\":{\"name\":\"lookup\"}}";
    let r = send(
        &client(),
        post(gw.data_addr, "/v1/chat/completions", body(tools)),
    )
    .await;
    r.expect(StatusCode::OK);
    let v = r.json();
    assert_eq!(v["choices"][0]["finish_reason"], "tool_calls");
    let call = &v["choices"][0]["message"]["tool_calls"][0];
    assert_eq!(call["function"]["name"], "lookup");
    let args: serde_json::Value =
        serde_json::from_str(call["function"]["arguments"].as_str().unwrap()).unwrap();
    assert!(args["query"].is_string(), "{args}");

    let (events, done) = stream(&gw, &format!("{tools},\"stream\":true")).await;
    assert!(done);
    let name = events
        .iter()
        .find_map(|e| e["choices"][0]["delta"]["tool_calls"][0]["function"]["name"].as_str());
    assert_eq!(name, Some("lookup"));
    let args: String = events
        .iter()
        .filter_map(|e| e["choices"][0]["delta"]["tool_calls"][0]["function"]["arguments"].as_str())
        .collect();
    assert!(
        serde_json::from_str::<serde_json::Value>(&args).is_ok(),
        "{args}"
    );

    // A user turn with an image (base64 data URL), as OpenAI clients send it.
    let image = r#"{"model":"claude-sonnet","max_tokens":4,"messages":[{"role":"user","content":[{"type":"text","text":"what is this?"},{"type":"image_url","image_url":{"url":"data:image/png;base64,iVBORw0KGgo="}}]}]}"#;
    let r = send(
        &client(),
        post(gw.data_addr, "/v1/chat/completions", Bytes::from(image)),
    )
    .await;
    r.expect(StatusCode::OK);
}

#[tokio::test]
async fn a_wrong_secret_is_a_401_naming_the_endpoint() {
    let up = bedrock_sim(
        "us-east-1",
        EndpointSpec {
            aws: Credentials {
                access_key: SIM_AWS_KEY.0.into(),
                secret_key: "another-secret".into(),
                session_token: None,
            },
            ..EndpointSpec::default()
        },
    )
    .await;
    let gw = gateway_env(&config(&[(up.url(), "us-east-1")], "", ""), &aws_env()).await;
    let r = send(
        &client(),
        post(gw.data_addr, "/v1/chat/completions", body("")),
    )
    .await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    assert_eq!(r.error_code(), "upstream_auth_failed");
    let m = r.error_message();
    assert!(m.contains("InvalidSignatureException"), "{m}");
    assert!(m.contains(&format!("endpoint {}", up.addr())), "{m}");
    assert_eq!(up.stats().unauthorized, 1);
}

#[tokio::test]
async fn throttling_is_a_429_with_retry_after_and_unavailable_fails_over() {
    let throttled = bedrock_sim(
        "us-east-1",
        EndpointSpec {
            rate_limit_rate: 1.0,
            ..EndpointSpec::default()
        },
    )
    .await;
    let gw = gateway_env(
        &config(&[(throttled.url(), "us-east-1")], "", ""),
        &aws_env(),
    )
    .await;
    let r = send(
        &client(),
        post(gw.data_addr, "/v1/chat/completions", body("")),
    )
    .await;
    assert_eq!(r.status, StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(r.error_code(), "rate_limit_exceeded");
    assert!(r.error_message().contains("ThrottlingException"));
    assert_eq!(r.headers["retry-after"], "1");

    // A region that is unavailable: the attempt goes again to the other region, signed
    // anew for it (each simulator wants its own region in the signature).
    let down = bedrock_sim(
        "us-east-1",
        EndpointSpec {
            error_rate: 1.0,
            ..EndpointSpec::default()
        },
    )
    .await;
    let west = bedrock_sim("us-west-2", EndpointSpec::default()).await;
    let gw = gateway_env(
        &config(
            &[(down.url(), "us-east-1"), (west.url(), "us-west-2")],
            "strategy = \"round_robin\"\nretries = { attempts = 2 }",
            "",
        ),
        &aws_env(),
    )
    .await;
    for _ in 0..4 {
        let r = send(
            &client(),
            post(gw.data_addr, "/v1/chat/completions", body("")),
        )
        .await;
        r.expect(StatusCode::OK);
    }
    assert!(down.stats().server_errors >= 1);
    assert_eq!(down.stats().unauthorized + west.stats().unauthorized, 0);
}

#[tokio::test]
async fn a_bedrock_pool_falls_back_to_anthropic_with_the_request_translated_for_it() {
    let down = bedrock_sim(
        "us-east-1",
        EndpointSpec {
            error_rate: 1.0,
            ..EndpointSpec::default()
        },
    )
    .await;
    let anthropic = sim(EndpointSpec::default()).await;
    let chain = format!(
        "\n[pools.direct]\nprovider = \"anthropic\"\nmodel = \"claude-3-5-sonnet-20240620\"\nendpoints = [{{ url = \"{}\", api_key_env = \"ANTHROPIC_API_KEY\" }}]\n",
        anthropic.url()
    );
    let mut env = aws_env();
    env.push(("ANTHROPIC_API_KEY", "sk-ant-sim"));
    let gw = gateway_env(
        &(config(
            &[(down.url(), "us-east-1")],
            "",
            "fallback = [{ pool = \"direct\" }]",
        ) + &chain),
        &env,
    )
    .await;
    let r = send(
        &client(),
        post(gw.data_addr, "/v1/chat/completions", body("")),
    )
    .await;
    r.expect(StatusCode::OK);
    assert_eq!(r.json()["model"], "claude-sonnet");
    assert!(down.stats().server_errors >= 1);
    assert_eq!(anthropic.stats().requests, 1);
    // Streamed too: the fallback's answer is Anthropic's SSE, translated as such.
    let (events, done) = stream(&gw, ",\"stream\":true").await;
    assert!(done, "{events:?}");
}

#[tokio::test]
async fn credentials_are_read_again_when_their_file_changes() {
    let dir = std::env::temp_dir().join(format!("flowgate-aws-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("credentials");
    let write = |secret: &str| {
        std::fs::write(
            &file,
            format!(
                "[default]\naws_access_key_id = {}\naws_secret_access_key = {secret}\n\n[prod]\naws_access_key_id = {}\naws_secret_access_key = {secret}\n",
                SIM_AWS_KEY.0, SIM_AWS_KEY.0
            ),
        )
        .unwrap();
    };
    write("stale-secret");
    let up = bedrock_sim("us-east-1", EndpointSpec::default()).await;
    let path = file.to_str().unwrap().to_string();
    let env = [
        ("AWS_SHARED_CREDENTIALS_FILE", path.as_str()),
        ("HOME", "/nonexistent"),
    ];
    let gw = gateway_env(
        &config(&[(up.url(), "us-east-1")], "aws_profile = \"prod\"", ""),
        &env,
    )
    .await;
    let ask = || async {
        send(
            &client(),
            post(gw.data_addr, "/v1/chat/completions", body("")),
        )
        .await
        .status
    };
    assert_eq!(ask().await, StatusCode::UNAUTHORIZED);
    write(SIM_AWS_KEY.1);
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        if ask().await == StatusCode::OK {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the new secret was never used"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_bedrock_pool_needs_credentials_a_region_and_no_api_key() {
    let check = |pool: &str, env: &[(&str, &str)]| {
        let src = format!(
            "[server]\nlisten = \"127.0.0.1:0\"\nadmin_listen = \"127.0.0.1:0\"\n\n[pools.p]\nprovider = \"bedrock\"\n{pool}\n"
        );
        let env = env.iter().map(|(k, v)| (k.to_string(), v.to_string()));
        flowgate_config::parse_with(&src, "t.toml", env, flowgate_gateway::check_external)
            .err()
            .map(|e| e.problems().to_vec())
    };
    // No credentials anywhere.
    let p = check(
        "endpoints = [{ url = \"https://bedrock-runtime.us-east-1.amazonaws.com\" }]",
        &[("HOME", "/nonexistent")],
    )
    .unwrap();
    assert_eq!(p[0].key.to_string(), "pools.p.provider");
    assert!(
        p[0].message.contains("no AWS credentials"),
        "{}",
        p[0].message
    );
    // A profile that the file does not have.
    let p = check(
        "aws_profile = \"nope\"\nendpoints = [{ url = \"https://bedrock-runtime.us-east-1.amazonaws.com\" }]",
        &[("HOME", "/nonexistent")],
    )
    .unwrap();
    assert_eq!(p[0].key.to_string(), "pools.p.aws_profile");
    // A host that names no region, and an endpoint with a key of its own.
    let p = check(
        "endpoints = [{ url = \"http://127.0.0.1:1\", api_key_env = \"K\" }]",
        &[
            ("K", "x"),
            ("AWS_ACCESS_KEY_ID", "a"),
            ("AWS_SECRET_ACCESS_KEY", "b"),
        ],
    )
    .unwrap();
    let keys: Vec<String> = p.iter().map(|p| p.key.to_string()).collect();
    assert!(
        keys.contains(&"pools.p.endpoints[0].region".to_string())
            && keys.contains(&"pools.p.endpoints[0].api_key_env".to_string()),
        "{keys:?}"
    );
    // The region read from Bedrock's host name; the environment's key.
    assert!(
        check(
            "endpoints = [{ url = \"https://bedrock-runtime.eu-west-3.amazonaws.com\" }]",
            &[("AWS_ACCESS_KEY_ID", "a"), ("AWS_SECRET_ACCESS_KEY", "b")],
        )
        .is_none()
    );
}

#[tokio::test]
async fn embeddings_go_to_titan_or_cohere_on_bedrock() {
    let up = bedrock_sim("us-east-1", EndpointSpec::default()).await;
    let pool = |model: &str| {
        format!(
            "[pools.embed]\nprovider = \"bedrock\"\nmodel = \"{model}\"\nendpoints = [{{ url = \"{}\", region = \"us-east-1\" }}]\n\n\
             [[routes]]\nname = \"embed\"\nkind = \"openai\"\npath = \"/v1/embeddings\"\npool = \"embed\"\n",
            up.url()
        )
    };
    // Titan: one text, its dimensions, the token count Bedrock reports.
    let gw = gateway_env(&pool("amazon.titan-embed-text-v2:0"), &aws_env()).await;
    let ask = |body: &'static str| post(gw.data_addr, "/v1/embeddings", Bytes::from(body));
    let r = send(
        &client(),
        ask(r#"{"model":"titan","input":"the quarterly report","dimensions":4}"#),
    )
    .await;
    r.expect(StatusCode::OK);
    let v = r.json();
    assert_eq!(v["data"][0]["embedding"].as_array().unwrap().len(), 4);
    assert_eq!(v["model"], "titan");
    assert!(v["usage"]["prompt_tokens"].as_u64().unwrap() > 0);
    // Two texts cannot go to Titan in one call: a 400 before anything is sent.
    let before = up.stats().requests;
    let r = send(&client(), ask(r#"{"model":"titan","input":["a","b"]}"#)).await;
    r.expect(StatusCode::BAD_REQUEST);
    assert!(
        r.error_message().contains("one text"),
        "{}",
        r.error_message()
    );
    assert_eq!(up.stats().requests, before);
    // Cohere: a batch, in base64 as OpenAI's SDKs ask.
    let gw = gateway_env(&pool("cohere.embed-english-v3"), &aws_env()).await;
    let r = send(
        &client(),
        post(
            gw.data_addr,
            "/v1/embeddings",
            Bytes::from(r#"{"model":"cohere","input":["a","b","c"],"encoding_format":"base64"}"#),
        ),
    )
    .await;
    r.expect(StatusCode::OK);
    let data = r.json()["data"].as_array().unwrap().clone();
    assert_eq!(data.len(), 3);
    assert!(data[2]["embedding"].is_string());
    assert_eq!(up.stats().unauthorized, 0);
}
