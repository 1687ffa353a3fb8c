//! `GET /v1/models`: the models the gateway serves by name (the catalog's deployments),
//! each id and alias as OpenAI lists models, answered by the gateway itself. With `[auth]`
//! on, only to a valid key, and only the models that key may use.

use std::sync::Arc;

use bytes::Bytes;
use http::{Method, Request, Response, StatusCode};
use serde_json::json;

use crate::body::ProxyBody;
use crate::error::ProxyError;
use crate::gateway::Gateway;
use crate::outcome::Outcome;
use crate::runtime::Runtime;

/// The path the list is served at.
const PATH: &str = "/v1/models";

/// Whether the gateway answers `req` with its model list: a `GET /v1/models` when the
/// catalog deploys models.
pub(super) fn is_list<B>(rt: &Runtime, req: &Request<B>) -> bool {
    req.method() == Method::GET
        && req.uri().path() == PATH
        && rt.config.models.served().next().is_some()
}

impl Gateway {
    /// The model list, for the caller `req` names.
    pub(super) fn list_models<B>(
        &self,
        rt: &Runtime,
        req: &Request<B>,
        out: &mut Outcome,
    ) -> Result<Response<ProxyBody>, ProxyError> {
        out.route = Some(Arc::from("models"));
        let auth = &rt.config.auth;
        let caller = if auth.enabled {
            Some(self.auth().authenticate(auth, &rt.keys, req.headers())?)
        } else {
            None
        };
        let mut data = Vec::new();
        for m in rt.config.models.served() {
            let owner = m.provider.map_or("flowgate", |p| p.as_str());
            for name in std::iter::once(&m.id).chain(&m.aliases) {
                if caller
                    .as_ref()
                    .is_some_and(|c| c.check_model(|| Some(name)).is_err())
                {
                    continue;
                }
                data.push(json!({
                    "id": name,
                    "object": "model",
                    "created": 0,
                    "owned_by": owner,
                }));
            }
        }
        let body = json!({"object": "list", "data": data}).to_string();
        Ok(crate::error::json_response(
            StatusCode::OK,
            Bytes::from(body),
        ))
    }
}
