//! The HTTP API that `serve` runs (axum). Today: intake (`POST /api/v1/cases`) and health;
//! the staff surfaces grow here.
//!
//! Access: a bearer token. Until role-scoped tokens exist, `serve` creates one local operator
//! token in `keys/api-operator.token` (mode 0600) on first start; `leakwatch submit` reads it to
//! reach a running server. Only its SHA-256 is kept in memory for comparison. Request bodies are
//! capped; errors are one line of JSON with a 4xx status and change nothing.

use std::net::SocketAddr;
use std::sync::Arc;

use axum::extract::{DefaultBodyLimit, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::json;
use sha2::{Digest, Sha256};

use crate::adapters::SubmittedGroups;
use crate::capture::CaptureService;
use crate::config::Config;
use crate::service::ServiceError;

pub const TOKEN_FILE: &str = "api-operator.token";
const MAX_BODY: usize = 16 * 1024;

struct ApiState {
    capture: Arc<CaptureService>,
    submitted: Arc<SubmittedGroups>,
    token_hash: [u8; 32],
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

/// Bind and serve the API; returns the bound address and the server task.
pub async fn serve(
    capture: Arc<CaptureService>,
    submitted: Arc<SubmittedGroups>,
    config: &Config,
) -> Result<(SocketAddr, tokio::task::JoinHandle<()>), ServiceError> {
    let start_err = |message: String| ServiceError::Start {
        what: format!("API on {}", config.api.listen),
        message,
    };
    let token = operator_token(config, true)
        .map_err(|e| start_err(e.to_string()))?
        .unwrap_or_default();
    let state = Arc::new(ApiState {
        capture,
        submitted,
        token_hash: Sha256::digest(token.as_bytes()).into(),
    });
    let app = Router::new()
        .route("/healthz", get(health))
        .route("/api/v1/cases", post(submit))
        .layer(DefaultBodyLimit::max(MAX_BODY))
        .with_state(state);
    let listener = tokio::net::TcpListener::bind(&config.api.listen)
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

fn error(status: StatusCode, message: impl Into<String>) -> Response {
    (status, Json(json!({"error": message.into()}))).into_response()
}

fn authorized(state: &ApiState, headers: &HeaderMap) -> bool {
    let given = headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .unwrap_or("");
    let hash: [u8; 32] = Sha256::digest(given.as_bytes()).into();
    // Comparing digests keeps the comparison's timing independent of the secret's bytes.
    hash == state.token_hash && !given.is_empty()
}

async fn health(State(state): State<Arc<ApiState>>) -> Response {
    let ev = state.capture.evidence();
    Json(json!({"ok": true, "entries": ev.ledger.size()})).into_response()
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SubmitBody {
    link: String,
    #[serde(default)]
    note: Option<String>,
}

async fn submit(
    State(state): State<Arc<ApiState>>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> Response {
    if !authorized(&state, &headers) {
        return error(StatusCode::UNAUTHORIZED, "missing or wrong bearer token");
    }
    let body: SubmitBody = match serde_json::from_slice(&body) {
        Ok(b) => b,
        Err(e) => return error(StatusCode::BAD_REQUEST, format!("request body: {e}")),
    };
    let ev = state.capture.evidence().clone();
    let result = tokio::task::spawn_blocking(move || {
        crate::intake::submit(&ev, &body.link, body.note.as_deref(), "api:operator")
    })
    .await;
    match result {
        Ok(Ok(sub)) => {
            state.submitted.add(sub.group.clone());
            if let Ok(Some(case)) = state.capture.evidence().state.case(&sub.case) {
                state.capture.watch(case);
            }
            let status = if sub.new_case {
                StatusCode::CREATED
            } else {
                StatusCode::OK
            };
            (
                status,
                Json(json!({"case": sub.case, "new_case": sub.new_case, "group": sub.group.to_string()})),
            )
                .into_response()
        }
        Ok(Err(
            e @ (crate::intake::IntakeError::BadLink(_)
            | crate::intake::IntakeError::LinkTooLong(_)
            | crate::intake::IntakeError::NoteTooLong(_)),
        )) => error(StatusCode::BAD_REQUEST, e.to_string()),
        Ok(Err(e)) => error(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()),
        Err(e) => error(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()),
    }
}
