//! The HTTP API that `serve` runs (axum): intake, cases, the review queue, packets, health.
//!
//! Access control: every route is listed once in [`PERMISSIONS`] with the roles that may call
//! it; one middleware looks the matched route up there, so a route cannot exist without a
//! permission line (a test walks every route × role × no/bad token). Tokens are role-scoped
//! bearer tokens from [`tokens`] (stored as SHA-256 only); the local operator token in
//! `keys/api-operator.token` (0600, created on first start, used by `leakwatch submit` to reach
//! a running server) acts as `admin:operator`.
//!
//! Every read of evidence (a case timeline, a finding card, a packet file) and every reveal of
//! unmasked PII is a ledger entry naming the token's owner. Request bodies are capped; errors
//! are one line of JSON with a 4xx status and change nothing. Neither tokens nor PII are
//! logged.

pub mod routes;
pub mod tokens;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use axum::extract::{DefaultBodyLimit, MatchedPath, Request, State};
use axum::http::{HeaderMap, Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::{MethodRouter, get, post};
use axum::{Json, Router};
use serde_json::json;
use sha2::{Digest, Sha256};

use crate::adapters::SubmittedGroups;
use crate::capture::CaptureService;
use crate::config::Config;
use crate::evidence::Evidence;
use crate::filing::dispatch::Dispatcher;
use crate::review::Review;
use crate::service::ServiceError;
use tokens::{Principal, Role, TokenStore};

pub const TOKEN_FILE: &str = "api-operator.token";
const MAX_BODY: usize = 16 * 1024;
/// Submissions per token per minute.
const SUBMIT_PER_MINUTE: u32 = 30;

const ANY: &[Role] = &[Role::Intake, Role::Moderator, Role::Legal, Role::Admin];
const REVIEW: &[Role] = &[Role::Moderator, Role::Admin];
const PACKET_READ: &[Role] = &[Role::Moderator, Role::Legal, Role::Admin];
const LEGAL: &[Role] = &[Role::Legal, Role::Admin];

/// One API route and who may call it. An empty role list is a public route.
pub struct Permission {
    pub method: &'static str,
    pub path: &'static str,
    pub roles: &'static [Role],
    pub summary: &'static str,
}

/// The permission matrix: the single source for the middleware, the OpenAPI document and the
/// README table.
pub const PERMISSIONS: &[Permission] = &[
    Permission {
        method: "GET",
        path: "/healthz",
        roles: &[],
        summary: "Liveness and ledger size",
    },
    Permission {
        method: "GET",
        path: "/openapi.json",
        roles: &[],
        summary: "This API's OpenAPI document",
    },
    Permission {
        method: "GET",
        path: "/metrics",
        roles: &[Role::Admin],
        summary: "Prometheus metrics: captures, groups watched, queue depth, filing failures, checkpoint age",
    },
    Permission {
        method: "POST",
        path: "/api/v1/cases",
        roles: &[Role::Intake, Role::Admin],
        summary: "Submit a group link (opens a case, or returns the existing one)",
    },
    Permission {
        method: "GET",
        path: "/api/v1/cases",
        roles: ANY,
        summary: "List cases",
    },
    Permission {
        method: "GET",
        path: "/api/v1/cases/{case}",
        roles: ANY,
        summary: "A case with its timeline (recorded as a custody read)",
    },
    Permission {
        method: "GET",
        path: "/api/v1/review/queue",
        roles: REVIEW,
        summary: "Open findings in queue order",
    },
    Permission {
        method: "POST",
        path: "/api/v1/review/next",
        roles: REVIEW,
        summary: "Claim the next finding (204 when the queue has nothing for the caller)",
    },
    Permission {
        method: "GET",
        path: "/api/v1/findings/{finding}",
        roles: PACKET_READ,
        summary: "A finding's review card, sample masked (recorded as a custody read)",
    },
    Permission {
        method: "POST",
        path: "/api/v1/findings/{finding}/claim",
        roles: REVIEW,
        summary: "Claim one finding",
    },
    Permission {
        method: "POST",
        path: "/api/v1/findings/{finding}/decision",
        roles: REVIEW,
        summary: "Approve, reject or escalate a claimed finding, with a reason",
    },
    Permission {
        method: "POST",
        path: "/api/v1/findings/{finding}/reveal",
        roles: REVIEW,
        summary: "The unmasked sample, with a reason (recorded)",
    },
    Permission {
        method: "GET",
        path: "/api/v1/packets",
        roles: PACKET_READ,
        summary: "Packets and their filing status",
    },
    Permission {
        method: "GET",
        path: "/api/v1/packets/{packet}",
        roles: PACKET_READ,
        summary: "One packet: files, filings, attempts",
    },
    Permission {
        method: "GET",
        path: "/api/v1/packets/{packet}/files/{name}",
        roles: LEGAL,
        summary: "Download one packet file (recorded as a custody read)",
    },
    Permission {
        method: "POST",
        path: "/api/v1/packets/{packet}/file",
        roles: LEGAL,
        summary: "File a packet again after a failure",
    },
    Permission {
        method: "GET",
        path: "/api/v1/records",
        roles: &[Role::Admin],
        summary: "The platform-records index: orders, import state, skipped rows",
    },
];

/// Everything the handlers share.
pub struct ApiContext {
    pub ev: Arc<Evidence>,
    pub capture: Arc<CaptureService>,
    pub submitted: Arc<SubmittedGroups>,
    pub review: Arc<Review>,
    pub dispatcher: Arc<Dispatcher>,
    pub config: Arc<Config>,
    pub tokens: TokenStore,
    operator_hash: [u8; 32],
    submissions: Mutex<HashMap<String, (Instant, u32)>>,
}

impl ApiContext {
    pub fn new(
        capture: Arc<CaptureService>,
        submitted: Arc<SubmittedGroups>,
        review: Arc<Review>,
        dispatcher: Arc<Dispatcher>,
        config: Arc<Config>,
        operator_token: &str,
    ) -> ApiContext {
        ApiContext {
            ev: capture.evidence().clone(),
            capture,
            submitted,
            review,
            dispatcher,
            tokens: TokenStore::new(&config.keys_dir()),
            config,
            operator_hash: Sha256::digest(operator_token.as_bytes()).into(),
            submissions: Mutex::new(HashMap::new()),
        }
    }

    /// The caller behind a bearer token, if any.
    fn principal(&self, headers: &HeaderMap) -> Option<Principal> {
        let given = headers
            .get("authorization")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .unwrap_or("")
            .trim();
        if given.is_empty() {
            return None;
        }
        let hash: [u8; 32] = Sha256::digest(given.as_bytes()).into();
        if hash == self.operator_hash {
            return Some(Principal {
                owner: "operator".into(),
                role: Role::Admin,
                token_id: "operator".into(),
            });
        }
        self.tokens.lookup(given)
    }

    /// A fixed window per token: false when the caller has used up this minute's submissions.
    pub fn allow_submission(&self, p: &Principal) -> bool {
        let mut map = self.submissions.lock().unwrap_or_else(|x| x.into_inner());
        let now = Instant::now();
        let slot = map.entry(p.token_id.clone()).or_insert((now, 0));
        if now.duration_since(slot.0).as_secs() >= 60 {
            *slot = (now, 0);
        }
        slot.1 += 1;
        slot.1 <= SUBMIT_PER_MINUTE
    }
}

/// Read the operator token, creating it on first use.
pub fn operator_token(config: &Config, create: bool) -> Result<Option<String>, std::io::Error> {
    let path = config.keys_dir().join(TOKEN_FILE);
    match std::fs::read_to_string(&path) {
        Ok(t) => Ok(Some(t.trim().to_string())),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound && create => {
            crate::durable::create_dir_all_synced(&config.keys_dir())?;
            let mut bytes = [0u8; 32];
            rand::RngCore::fill_bytes(&mut rand::rngs::OsRng, &mut bytes);
            let token = format!("lw_op_{}", hex::encode(bytes));
            crate::durable::write_atomic(&path, token.as_bytes(), 0o600)?;
            Ok(Some(token))
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e),
    }
}

/// An API failure: a status and one line of explanation, answered as `{"error": ...}`.
#[derive(Debug)]
pub struct ApiError {
    pub status: StatusCode,
    pub message: String,
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        (self.status, Json(json!({"error": self.message}))).into_response()
    }
}

pub fn error(status: StatusCode, message: impl Into<String>) -> ApiError {
    ApiError {
        status,
        message: message.into(),
    }
}

/// The permission line of a matched route.
pub fn permission(method: &Method, path: &str) -> Option<&'static Permission> {
    PERMISSIONS
        .iter()
        .find(|p| p.method == method.as_str() && p.path == path)
}

async fn authorize(
    State(ctx): State<Arc<ApiContext>>,
    matched: Option<MatchedPath>,
    mut req: Request,
    next: Next,
) -> Response {
    let Some(path) = matched else {
        return error(StatusCode::NOT_FOUND, "no such route").into_response();
    };
    let Some(perm) = permission(req.method(), path.as_str()) else {
        // A route without a permission line is a bug; refuse rather than guess.
        return error(StatusCode::FORBIDDEN, "route has no permission entry").into_response();
    };
    if !perm.roles.is_empty() {
        let Some(p) = ctx.principal(req.headers()) else {
            return error(StatusCode::UNAUTHORIZED, "missing or wrong bearer token")
                .into_response();
        };
        if !perm.roles.contains(&p.role) {
            return error(
                StatusCode::FORBIDDEN,
                format!(
                    "role {} may not {} {}",
                    p.role.as_str(),
                    perm.method,
                    perm.path
                ),
            )
            .into_response();
        }
        req.extensions_mut().insert(p);
    }
    next.run(req).await
}

/// The API's routes, with authorization applied to all of them.
/// Every route with its handler. `router` mounts exactly these, and a test checks that they
/// are exactly the routes of [`PERMISSIONS`] and of the OpenAPI document.
pub fn handlers() -> Vec<(&'static str, &'static str, MethodRouter<Arc<ApiContext>>)> {
    use routes::*;
    vec![
        ("GET", "/healthz", get(health)),
        ("GET", "/openapi.json", get(openapi)),
        ("GET", "/metrics", get(metrics)),
        ("POST", "/api/v1/cases", post(submit)),
        ("GET", "/api/v1/cases", get(list_cases)),
        ("GET", "/api/v1/cases/{case}", get(get_case)),
        ("GET", "/api/v1/review/queue", get(queue)),
        ("POST", "/api/v1/review/next", post(claim_next)),
        ("GET", "/api/v1/findings/{finding}", get(get_finding)),
        ("POST", "/api/v1/findings/{finding}/claim", post(claim)),
        ("POST", "/api/v1/findings/{finding}/decision", post(decide)),
        ("POST", "/api/v1/findings/{finding}/reveal", post(reveal)),
        ("GET", "/api/v1/packets", get(list_packets)),
        ("GET", "/api/v1/packets/{packet}", get(get_packet)),
        (
            "GET",
            "/api/v1/packets/{packet}/files/{name}",
            get(packet_file),
        ),
        ("POST", "/api/v1/packets/{packet}/file", post(refile)),
        ("GET", "/api/v1/records", get(records_status)),
    ]
}

/// The API's routes, with authorization applied to all of them.
pub fn router(ctx: Arc<ApiContext>) -> Router {
    let mut router = Router::new();
    for (_, path, handler) in handlers() {
        router = router.route(path, handler);
    }
    router
        .layer(axum::middleware::from_fn_with_state(ctx.clone(), authorize))
        .layer(DefaultBodyLimit::max(MAX_BODY))
        .with_state(ctx)
}

/// The OpenAPI 3.1 document, generated from [`PERMISSIONS`] (so it cannot drift from the
/// routes): each operation names its roles under `x-roles` and requires the bearer scheme
/// unless it is public.
pub fn openapi_document() -> serde_json::Value {
    let mut paths = serde_json::Map::new();
    for p in PERMISSIONS {
        let params: Vec<serde_json::Value> = p
            .path
            .split('/')
            .filter_map(|seg| seg.strip_prefix('{').and_then(|s| s.strip_suffix('}')))
            .map(|name| json!({"name": name, "in": "path", "required": true, "schema": {"type": "string"}}))
            .collect();
        let mut op = json!({
            "summary": p.summary,
            "operationId": format!("{} {}", p.method.to_lowercase(), p.path),
            "parameters": params,
            "x-roles": p.roles.iter().map(|r| r.as_str()).collect::<Vec<_>>(),
            "responses": {
                "200": {"description": "OK"},
                "400": {"description": "Bad input: one line of JSON `{\"error\": ...}`"},
                "401": {"description": "Missing or wrong bearer token"},
                "403": {"description": "The token's role may not call this route"},
                "404": {"description": "No such object"}
            }
        });
        if !p.roles.is_empty() {
            op["security"] = json!([{"bearer": []}]);
        }
        let entry = paths.entry(p.path.to_string()).or_insert_with(|| json!({}));
        entry[p.method.to_lowercase()] = op;
    }
    json!({
        "openapi": "3.1.0",
        "info": {
            "title": "leakwatch API",
            "version": env!("CARGO_PKG_VERSION"),
            "description": "Intake, cases, review, packets and health of leakwatch. Roles per operation under x-roles."
        },
        "components": {"securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}}},
        "paths": paths
    })
}

/// Bind and serve the API; returns the bound address and the server task.
pub async fn serve(
    ctx: Arc<ApiContext>,
) -> Result<(SocketAddr, tokio::task::JoinHandle<()>), ServiceError> {
    let listen = ctx.config.api.listen.clone();
    let start_err = |message: String| ServiceError::Start {
        what: format!("API on {listen}"),
        message,
    };
    let app = router(ctx.clone());
    let listener = tokio::net::TcpListener::bind(&listen)
        .await
        .map_err(|e| start_err(e.to_string()))?;
    let addr = listener
        .local_addr()
        .map_err(|e| start_err(e.to_string()))?;
    let task = tokio::spawn(async move {
        if let Err(e) = axum::serve(listener, app).await {
            tracing::error!("API server stopped: {e}");
        }
    });
    Ok((addr, task))
}

/// The permission matrix as the Markdown table the README carries (a test keeps them equal).
pub fn permission_table() -> String {
    let mut out = String::from(
        "| method | route | intake | moderator | legal | admin |\n|---|---|---|---|---|---|\n",
    );
    for p in PERMISSIONS {
        let cells: Vec<&str> = Role::ALL
            .iter()
            .map(|r| {
                if p.roles.is_empty() || p.roles.contains(r) {
                    "yes"
                } else {
                    "—"
                }
            })
            .collect();
        out.push_str(&format!(
            "| {} | `{}` | {} |\n",
            p.method,
            p.path,
            cells.join(" | ")
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    #[test]
    fn routes_permissions_and_openapi_name_the_same_operations() {
        let mut routes: Vec<(String, String)> = super::handlers()
            .into_iter()
            .map(|(m, p, _)| (m.to_string(), p.to_string()))
            .collect();
        let mut perms: Vec<(String, String)> = super::PERMISSIONS
            .iter()
            .map(|p| (p.method.to_string(), p.path.to_string()))
            .collect();
        let doc = super::openapi_document();
        let mut documented: Vec<(String, String)> = Vec::new();
        for (path, ops) in doc["paths"].as_object().unwrap() {
            for method in ops.as_object().unwrap().keys() {
                documented.push((method.to_uppercase(), path.clone()));
            }
        }
        routes.sort();
        perms.sort();
        documented.sort();
        assert_eq!(routes, perms, "every route has exactly one permission line");
        assert_eq!(
            routes, documented,
            "the OpenAPI document lists exactly the routes"
        );
    }

    #[test]
    fn the_readme_carries_the_permission_matrix() {
        let readme = include_str!("../../README.md");
        let table = super::permission_table();
        assert!(
            readme.contains(&table),
            "README.md must contain the permission matrix exactly as:\n{table}"
        );
    }
}
