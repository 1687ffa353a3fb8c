//! flowgate's cache in-process, as a tower layer in front of a slow model service.
//!
//!     cargo run -p flowgate-cache --features tower --example tower_layer
//!
//! The "model" here is a service that takes 300 ms per answer; in a real program it is an
//! HTTP client calling an LLM API (hyper-util's client is a tower `Service`), or an axum
//! app the layer wraps. The same layer works with Redis and disk tiers: fill
//! `CacheSettings::redis` / `disk`.
#![allow(clippy::disallowed_methods, clippy::unwrap_used, clippy::expect_used)]

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use bytes::Bytes;
use flowgate_cache::layer::{CACHE_STATUS, CacheLayer, LayerConfig};
use flowgate_cache::{Cache, CacheSettings};
use flowgate_clock::SystemClock;
use http::{Request, Response};
use http_body_util::{BodyExt, Full};
use tower_layer::Layer;
use tower_service::Service;

/// A slow model: 300 ms per answer, counting its calls.
#[derive(Clone, Default)]
struct Model {
    calls: Arc<AtomicUsize>,
}

impl Service<Request<Full<Bytes>>> for Model {
    type Response = Response<Full<Bytes>>;
    type Error = std::convert::Infallible;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, Self::Error>> + Send>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, _req: Request<Full<Bytes>>) -> Self::Future {
        self.calls.fetch_add(1, Ordering::SeqCst);
        Box::pin(async {
            tokio::time::sleep(Duration::from_millis(300)).await;
            let body = r#"{"choices":[{"message":{"role":"assistant","content":"42"}}],"usage":{"prompt_tokens":12,"completion_tokens":1}}"#;
            Ok(Response::builder()
                .header("content-type", "application/json")
                .body(Full::new(Bytes::from(body)))
                .unwrap())
        })
    }
}

fn ask() -> Request<Full<Bytes>> {
    let body = r#"{"model":"gpt-4o-mini","temperature":0,"messages":[{"role":"user","content":"What is the answer?"}]}"#;
    Request::post("/v1/chat/completions")
        .header("content-type", "application/json")
        .body(Full::new(Bytes::from(body)))
        .unwrap()
}

async fn send<S>(svc: &mut S) -> (String, Duration)
where
    S: Service<Request<Full<Bytes>>, Response = Response<Full<Bytes>>>,
    S::Error: std::fmt::Debug,
{
    let started = Instant::now();
    std::future::poll_fn(|cx| svc.poll_ready(cx)).await.unwrap();
    let resp = svc.call(ask()).await.unwrap();
    let label = resp.headers()[&CACHE_STATUS].to_str().unwrap().to_string();
    let _ = resp.into_body().collect().await.unwrap();
    (label, started.elapsed())
}

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let settings = CacheSettings {
        memory_bytes: 64 << 20,
        max_entry_bytes: 1 << 20,
        coalesce_wait: Duration::from_secs(30),
        redis: None,
        disk: None,
        refresh_ahead: Duration::ZERO,
        popular_hits: 5,
    };
    let cache = Arc::new(Cache::open(settings, SystemClock::shared()).unwrap());
    let layer = CacheLayer::new(
        cache.clone(),
        LayerConfig::openai("chat", Duration::from_secs(3600)),
    );
    let model = Model::default();

    // Ten identical requests at once: one reaches the model, nine wait for its answer.
    let tasks: Vec<_> = (0..10)
        .map(|_| {
            let mut svc = layer.layer(model.clone());
            tokio::spawn(async move { send(&mut svc).await })
        })
        .collect();
    for t in tasks {
        let (label, took) = t.await.unwrap();
        println!("burst   {label:<10} {:>7.1} ms", took.as_secs_f64() * 1e3);
    }
    // Later requests are answered from memory.
    let mut svc = layer.layer(model.clone());
    for _ in 0..3 {
        let (label, took) = send(&mut svc).await;
        println!("later   {label:<10} {:>7.3} ms", took.as_secs_f64() * 1e3);
    }
    let s = cache.stats();
    println!(
        "model calls {}, hits {}, coalesced {}, tokens saved {}",
        model.calls.load(Ordering::SeqCst),
        s.hits(),
        s.coalesced,
        s.tokens_saved
    );
}
