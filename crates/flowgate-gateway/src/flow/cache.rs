//! Stage 6, the cache: a request the route caches is answered from a tier (promoted from
//! a lower one), waits for an identical request already upstream, or leads the flight
//! upstream and fills the cache with its answer.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use flowgate_cache::{Cache, Entry, Lookup, Lower, Waited};
use http::{Method, Response};

use crate::body::ProxyBody;
use crate::caching::{self, Fill, Form, Plan};
use crate::error::ProxyError;
use crate::gateway::Gateway;
use crate::outcome::Outcome;
use crate::router::RouteEntry;
use crate::runtime::Runtime;

impl Gateway {
    /// Whether the cache needs an http request's body: the cache is on and the route caches
    /// requests of this method. A method the route's mode leaves out is a bypass.
    pub(super) fn http_cached(
        &self,
        route: &RouteEntry,
        method: &Method,
        out: &mut Outcome,
    ) -> bool {
        let Some(cache) = self.cache() else {
            return false;
        };
        match caching::http_eligible(&route.cfg, method) {
            None => false,
            Some(true) => true,
            Some(false) => {
                cache.count_bypass();
                out.cache = Some(caching::Status::Bypass);
                false
            }
        }
    }

    /// Asks the cache about a request: its answer, or the flight to lead upstream.
    pub(super) async fn consult(
        self: &Arc<Self>,
        cache: &Arc<Cache>,
        rt: &Runtime,
        route: &RouteEntry,
        parts: &http::request::Parts,
        body: &Bytes,
        out: &mut Outcome,
    ) -> Result<Consulted, ProxyError> {
        let planned = match caching::plan(route, &rt.config, parts, body)? {
            Plan::Off => return Ok(Consulted::Upstream(None)),
            Plan::Bypass => {
                cache.count_bypass();
                out.cache = Some(caching::Status::Bypass);
                return Ok(Consulted::Upstream(None));
            }
            Plan::Use(p) => p,
        };
        let form = planned.form;
        let hit = match cache.lookup(&planned.key, &planned.query()) {
            Lookup::Hit(hit) => {
                self.warming().recent.hit(&planned.key);
                hit
            }
            Lookup::Coalesced(follower) => {
                self.warming().recent.hit(&planned.key);
                let waited = follower
                    .wait(cache.settings().coalesce_wait, form.flavor())
                    .await;
                let resp = match waited {
                    Some(Waited::Entry(entry)) => caching::respond(&entry, Duration::ZERO, form),
                    Some(Waited::Stream { fields, stream }) => {
                        Some(caching::respond_shared(&fields, stream))
                    }
                    None => None,
                };
                return match resp {
                    Some(resp) => {
                        out.cache = Some(caching::Status::Coalesced);
                        Ok(Consulted::Answer(Box::new(resp)))
                    }
                    // The identical request failed or took too long: go upstream alone.
                    None => {
                        out.cache = Some(caching::Status::Miss);
                        Ok(Consulted::Upstream(None))
                    }
                };
            }
            Lookup::Miss(leader) => {
                self.warming().recent.miss(&planned.key, parts, body);
                // A streaming client is not made to wait for another replica's whole
                // answer: it goes upstream (and streams) at once.
                let wait_for_peers = matches!(form, caching::Form::Json);
                match cache
                    .lookup_lower(leader, &planned.query(), wait_for_peers)
                    .await
                {
                    Lower::Hit(hit) => hit,
                    // A HEAD request's answer has no body to store: it goes upstream
                    // without leading (GETs waiting on it go upstream themselves).
                    Lower::Miss(_) if parts.method == Method::HEAD => {
                        out.cache = Some(caching::Status::Miss);
                        return Ok(Consulted::Upstream(None));
                    }
                    Lower::Miss(leader) => {
                        out.cache = Some(caching::Status::Miss);
                        let life = planned.life;
                        let fill = planned.fill(cache, leader, life);
                        return Ok(Consulted::Upstream(Some(Box::new(fill))));
                    }
                }
            }
        };
        if let Some(leader) = hit.refresh {
            let life = caching::refreshed_life(&hit.entry, &planned, cache.settings());
            let fill = planned.fill(cache, leader, life);
            crate::refresh::spawn(
                self.clock().clone(),
                self.request_ids().clone(),
                rt.config.clone(),
                route.clone(),
                parts,
                body.clone(),
                fill,
            );
        }
        let status = if hit.stale {
            caching::Status::Stale
        } else {
            caching::Status::Hit(hit.tier)
        };
        Ok(Self::answer(cache, &hit.entry, status, hit.age, form, out))
    }

    /// The answer for an entry a tier had.
    fn answer(
        cache: &Cache,
        entry: &Entry,
        status: caching::Status,
        age: Duration,
        form: Form,
        out: &mut Outcome,
    ) -> Consulted {
        match caching::respond(entry, age, form) {
            Some(resp) => {
                out.cache = Some(status);
                Consulted::Answer(Box::new(resp))
            }
            // Stored in a form this client cannot be given: ask upstream.
            None => {
                cache.count_bypass();
                out.cache = Some(caching::Status::Bypass);
                Consulted::Upstream(None)
            }
        }
    }
}

/// What the cache said about a request.
pub(super) enum Consulted {
    /// Answered from the cache (boxed: the common path is `Upstream`).
    Answer(Box<Response<ProxyBody>>),
    /// Go upstream; lead the flight (and fill the cache) when given one (boxed: a miss
    /// goes upstream anyway, a hit should not carry its size).
    Upstream(Option<Box<Fill>>),
}
