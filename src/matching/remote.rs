//! The record source over HTTP: the platform keeps its blind index (or any store that can
//! answer token queries) on its side and leakwatch sends only keyed tokens. Also the reference
//! server, which answers the protocol from a [`LocalIndex`].
//!
//! # Protocol (version 2)
//!
//! JSON over HTTP(S). Every request carries `Authorization: Bearer <token>`; a missing or wrong
//! token gets `401`. Tokens are 16 lowercase hex digits (64-bit values: JSON numbers lose
//! precision above 2^53); address tokens are plain JSON numbers (32-bit).
//!
//! A lookup takes two requests (candidates, then the matched orders' details), so that the many
//! candidate orders of a sample travel as tokens only and the details of an order are sent only
//! when a row matched it; attribution then asks for base counts.
//!
//! `POST /v2/candidates` — body: a [`TokenQuery`]
//!
//! ```json
//! {"phone": ["0a1b…"], "masked": ["…"], "name": ["…"], "pinyin": ["…"],
//!  "name_in_city": [{"token": "…", "city": "杭州", "district": "…"}], "pinyin_in_city": [],
//!  "masked_in_city": [{"token": "…", "city": "上海"}], "limit_per_token": 0}
//! ```
//!
//! Answer `200`: a [`CandidatesResponse`], every order carrying any of the tokens (at most
//! `limit_per_token` per token, the lowest order refs, 0 = the server's default). A
//! `name_in_city` / `pinyin_in_city` / `masked_in_city` token counts only for orders whose
//! city is that city (the canonical name, as `normalise::canonical_city` writes it) or that
//! have no city; a name or pinyin one may also carry `"district": "…"` (the district's
//! token), and then counts only for orders in that district or without one (a masked one
//! with a district is a `400`). A city name is at most [`super::MAX_CITY_BYTES`] bytes (`400`
//! beyond). The lists may be left out; a city name is not personal data.
//!
//! ```json
//! {"cities": ["北京", "上海"],
//!  "candidates": [{"order_ref": 17, "created_at": 1730450000, "city": 0,
//!                  "tokens": {"phone": "…", "masked": "…", "name": "…", "pinyin": "…",
//!                             "district": "…", "address": [1234, 2147485000]}}]}
//! ```
//!
//! `city` is a position in `cities` (each city name sent once); `created_at` is unix seconds;
//! the tokens are hex or null, `address` a sorted u32 array (top bit = number piece). At most
//! [`MAX_TOKENS_PER_REQUEST`] tokens per request (`413` beyond); the client splits larger
//! queries.
//!
//! `POST /v2/orders` — body `{"refs": [17, 42]}`: order refs from `/v2/candidates`, at most
//! [`MAX_REFS_PER_REQUEST`] (`413` beyond). Answer `200`: `{"orders": [OrderDetails, …]}`, one
//! per ref in the order asked, each an [`OrderDetails`]: `order_ref`, `order_id`, `created_at`,
//! `city`, `merchant_id`, `rider_id`, `delivery_partner`, `canary_for` (null or a partner) and
//! `access` (`actor_kind`, `actor_id`, `action`, `at`). An unknown ref is a `400`.
//!
//! `POST /v2/base` — body `{"city": "北京" | null, "from": <unix>, "to": <unix>, "actors":
//! [{"actor_kind", "actor_id"}] | null}` (both bounds inclusive; `actors`, optional, limits the
//! answer to those actors). Answer `200`: a [`BaseCounts`]: `{"city", "from", "to", "total",
//! "actors": [{"actor_kind", "actor_id", "orders"}]}`, `total` counting every order of the
//! city and window, `actors` those with at least one order, sorted by kind and id.
//!
//! Errors: `400` malformed request (plain-text reason), `401` unauthorised, `413` too many
//! tokens or refs, `500` server failure. Neither side ever sends a raw name, phone or address;
//! the server never needs the key (it only looks tokens up).
//!
//! Version 1 (`/v1/candidates` answered every candidate with its order id, actors and access
//! events; `/v1/base`) is no longer served or spoken.
//!
//! # Sync and async
//!
//! [`RecordSource`] is synchronous, so [`RemoteSource`] uses reqwest's blocking client, which
//! runs its own runtime on a private thread. Its methods must be called from ordinary threads;
//! async code goes through `tokio::task::spawn_blocking` (a blocking request on an async
//! worker thread panics inside reqwest). Constructing a `RemoteSource` is fine anywhere: the
//! client is built on the first request. Dropping it joins the client's thread, which blocks
//! for a moment but is safe.
//!
//! Invariants: the reference server binds only what the caller passes (tests use 127.0.0.1);
//! the bearer token is compared in constant time and never logged or printed (`Debug` hides
//! it); answers do not depend on how the client split a query.

use std::net::SocketAddr;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use axum::Router;
use axum::extract::rejection::JsonRejection;
use axum::extract::{DefaultBodyLimit, Json, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use tokio::task::JoinHandle;

use super::{
    ActorRef, BaseCounts, Candidate, CandidateSet, LocalIndex, MatchError, OrderDetails,
    OrderTokens, RecordSource, TokenQuery,
};

/// Most tokens one request may carry.
pub const MAX_TOKENS_PER_REQUEST: usize = 5_000;
/// Most order refs one `/v2/orders` request may carry.
pub const MAX_REFS_PER_REQUEST: usize = 5_000;
/// Largest request body the reference server accepts.
const MAX_BODY_BYTES: usize = 4 << 20;

/// Body of `POST /v2/base`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BaseRequest {
    pub city: Option<String>,
    pub from: i64,
    pub to: i64,
    /// Only these actors in the answer (all when absent or null).
    #[serde(default)]
    pub actors: Option<Vec<ActorRef>>,
}

/// Answer of `POST /v2/candidates`: a [`CandidateSet`] in JSON form.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CandidatesResponse {
    /// City names, referred to by position.
    pub cities: Vec<String>,
    pub candidates: Vec<WireCandidate>,
}

/// One candidate order of a [`CandidatesResponse`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WireCandidate {
    pub order_ref: u64,
    /// Unix seconds.
    pub created_at: i64,
    /// Position in [`CandidatesResponse::cities`].
    pub city: u32,
    pub tokens: OrderTokens,
}

impl CandidatesResponse {
    /// The JSON form of `set`.
    pub fn from_set(set: &CandidateSet<'_>) -> CandidatesResponse {
        CandidatesResponse {
            cities: set.cities().to_vec(),
            candidates: set
                .orders()
                .iter()
                .map(|c| WireCandidate {
                    order_ref: c.order_ref,
                    created_at: c.created_at,
                    city: c.city,
                    tokens: OrderTokens {
                        phone: c.phone,
                        masked: c.masked,
                        name: c.name,
                        pinyin: c.pinyin,
                        district: c.district,
                        address: set.address(c).into_owned(),
                    },
                })
                .collect(),
        }
    }

    /// Back to a [`CandidateSet`] (sorted by ref, each order once). Refuses a city position
    /// outside `cities`; sorts address tokens a server sent unsorted.
    pub fn into_set(self) -> Result<CandidateSet<'static>, MatchError> {
        let mut set = CandidateSet::default();
        let positions: Vec<u32> = self.cities.iter().map(|c| set.add_city(c)).collect();
        for w in self.candidates {
            let city = positions.get(w.city as usize).copied().ok_or_else(|| {
                MatchError::Remote(format!(
                    "candidate {} names city {} of {}",
                    w.order_ref,
                    w.city,
                    positions.len()
                ))
            })?;
            let mut address = w.tokens.address;
            if !address.is_sorted() {
                address.sort_unstable();
            }
            let c = Candidate {
                order_ref: w.order_ref,
                created_at: w.created_at,
                city,
                phone: w.tokens.phone,
                masked: w.tokens.masked,
                name: w.tokens.name,
                pinyin: w.tokens.pinyin,
                district: w.tokens.district,
                ..Candidate::default()
            };
            set.push(c, &address)?;
        }
        CandidateSet::merge(vec![set])
    }
}

/// Body of `POST /v2/orders`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OrdersRequest {
    pub refs: Vec<u64>,
}

/// Answer of `POST /v2/orders`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OrdersResponse {
    pub orders: Vec<OrderDetails>,
}

/// A [`RecordSource`] that asks a platform service over HTTP(S).
pub struct RemoteSource {
    /// Built on first use, on the (blocking) thread that makes the first request: building a
    /// blocking client inside an async runtime panics in reqwest's debug builds, and callers
    /// reasonably construct sources while setting up async services.
    client: OnceLock<Result<reqwest::blocking::Client, String>>,
    timeout: Duration,
    base: String,
    bearer: String,
}

impl std::fmt::Debug for RemoteSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RemoteSource")
            .field("base", &self.base)
            .finish_non_exhaustive()
    }
}

impl RemoteSource {
    /// A source at `base_url` (e.g. `https://match.platform.example`), authenticating with
    /// `bearer`. May be called anywhere, async code included: the HTTP client is built by the
    /// first request, which must come from a blocking thread (see the module documentation).
    pub fn new(base_url: &str, bearer: &str) -> Result<RemoteSource, MatchError> {
        RemoteSource::with_timeout(base_url, bearer, Duration::from_secs(120))
    }

    /// [`RemoteSource::new`] with a per-request timeout.
    pub fn with_timeout(
        base_url: &str,
        bearer: &str,
        timeout: Duration,
    ) -> Result<RemoteSource, MatchError> {
        let base = base_url.trim_end_matches('/').to_string();
        let url = reqwest::Url::parse(&base)
            .map_err(|e| MatchError::Remote(format!("bad URL {base_url:?}: {e}")))?;
        if !matches!(url.scheme(), "http" | "https") {
            return Err(MatchError::Remote(format!(
                "bad URL {base_url:?}: only http and https"
            )));
        }
        Ok(RemoteSource {
            client: OnceLock::new(),
            timeout,
            base,
            bearer: bearer.to_string(),
        })
    }

    fn client(&self) -> Result<&reqwest::blocking::Client, MatchError> {
        self.client
            .get_or_init(|| {
                reqwest::blocking::Client::builder()
                    .timeout(self.timeout)
                    .build()
                    .map_err(|e| e.to_string())
            })
            .as_ref()
            .map_err(|e| MatchError::Remote(format!("HTTP client: {e}")))
    }

    fn post<B: Serialize, R: serde::de::DeserializeOwned>(
        &self,
        path: &str,
        body: &B,
    ) -> Result<R, MatchError> {
        let url = format!("{}{path}", self.base);
        let resp = self
            .client()?
            .post(&url)
            .bearer_auth(&self.bearer)
            .json(body)
            .send()
            .map_err(|e| MatchError::Remote(format!("{path}: {e}")))?;
        let status = resp.status();
        if !status.is_success() {
            let text: String = resp.text().unwrap_or_default().chars().take(200).collect();
            return Err(MatchError::Remote(format!("{path}: HTTP {status}: {text}")));
        }
        resp.json::<R>()
            .map_err(|e| MatchError::Remote(format!("{path}: unreadable answer: {e}")))
    }
}

impl RecordSource for RemoteSource {
    fn candidates(&self, query: &TokenQuery) -> Result<CandidateSet<'_>, MatchError> {
        let mut parts = Vec::new();
        for part in query.split(MAX_TOKENS_PER_REQUEST) {
            let r: CandidatesResponse = self.post("/v2/candidates", &part)?;
            parts.push(r.into_set()?);
        }
        CandidateSet::merge(parts)
    }

    fn details(&self, refs: &[u64]) -> Result<Vec<OrderDetails>, MatchError> {
        let mut out = Vec::with_capacity(refs.len());
        for part in refs.chunks(MAX_REFS_PER_REQUEST) {
            let r: OrdersResponse = self.post(
                "/v2/orders",
                &OrdersRequest {
                    refs: part.to_vec(),
                },
            )?;
            if r.orders.len() != part.len()
                || r.orders.iter().zip(part).any(|(o, r)| o.order_ref != *r)
            {
                return Err(MatchError::Remote(
                    "/v2/orders: answer does not list the orders asked for, in order".into(),
                ));
            }
            out.extend(r.orders);
        }
        Ok(out)
    }

    fn base_counts(
        &self,
        city: Option<&str>,
        from: i64,
        to: i64,
        only: Option<&[ActorRef]>,
    ) -> Result<BaseCounts, MatchError> {
        self.post(
            "/v2/base",
            &BaseRequest {
                city: city.map(str::to_string),
                from,
                to,
                actors: only.map(<[ActorRef]>::to_vec),
            },
        )
    }
}

#[derive(Clone)]
struct ServerState {
    index: Arc<LocalIndex>,
    token_hash: [u8; 32],
}

/// Compares the request's bearer token with the configured one in constant time (over their
/// SHA-256, which also hides the length).
fn authorised(headers: &HeaderMap, expected: &[u8; 32]) -> bool {
    let Some(given) = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
    else {
        return false;
    };
    let h: [u8; 32] = Sha256::digest(given.trim().as_bytes()).into();
    h.iter()
        .zip(expected)
        .fold(0u8, |acc, (a, b)| acc | (a ^ b))
        == 0
}

fn error(status: StatusCode, msg: impl Into<String>) -> Response {
    let mut r = (status, msg.into()).into_response();
    if status == StatusCode::UNAUTHORIZED {
        r.headers_mut().insert(
            header::WWW_AUTHENTICATE,
            header::HeaderValue::from_static("Bearer"),
        );
    }
    r
}

fn index_error(e: MatchError) -> Response {
    match e {
        MatchError::Query(m) => error(StatusCode::BAD_REQUEST, m),
        other => error(StatusCode::INTERNAL_SERVER_ERROR, other.to_string()),
    }
}

/// The request body of an authorised caller, or the status and reason to answer instead
/// (401, 400).
fn accept<T>(
    st: &ServerState,
    headers: &HeaderMap,
    body: Result<Json<T>, JsonRejection>,
) -> Result<T, (StatusCode, String)> {
    if !authorised(headers, &st.token_hash) {
        return Err((
            StatusCode::UNAUTHORIZED,
            "missing or wrong bearer token".into(),
        ));
    }
    body.map(|Json(b)| b)
        .map_err(|e| (StatusCode::BAD_REQUEST, e.body_text()))
}

/// Runs an index lookup off the async workers (they are blocking file reads) and answers
/// with its JSON, or with the error mapped to a status.
async fn answer<R: Serialize + Send + 'static>(
    st: &ServerState,
    lookup: impl FnOnce(&LocalIndex) -> Result<R, MatchError> + Send + 'static,
) -> Response {
    let index = Arc::clone(&st.index);
    match tokio::task::spawn_blocking(move || lookup(&index)).await {
        Ok(Ok(answer)) => Json(answer).into_response(),
        Ok(Err(e)) => index_error(e),
        Err(e) => error(
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("lookup failed: {e}"),
        ),
    }
}

async fn candidates_handler(
    State(st): State<ServerState>,
    headers: HeaderMap,
    body: Result<Json<TokenQuery>, JsonRejection>,
) -> Response {
    let q = match accept(&st, &headers, body) {
        Ok(q) => q,
        Err((status, reason)) => return error(status, reason),
    };
    if q.len() > MAX_TOKENS_PER_REQUEST {
        return error(
            StatusCode::PAYLOAD_TOO_LARGE,
            format!("at most {MAX_TOKENS_PER_REQUEST} tokens per request"),
        );
    }
    answer(&st, move |index| {
        index
            .candidates(&q)
            .map(|set| CandidatesResponse::from_set(&set))
    })
    .await
}

async fn orders_handler(
    State(st): State<ServerState>,
    headers: HeaderMap,
    body: Result<Json<OrdersRequest>, JsonRejection>,
) -> Response {
    let req = match accept(&st, &headers, body) {
        Ok(r) => r,
        Err((status, reason)) => return error(status, reason),
    };
    if req.refs.len() > MAX_REFS_PER_REQUEST {
        return error(
            StatusCode::PAYLOAD_TOO_LARGE,
            format!("at most {MAX_REFS_PER_REQUEST} order refs per request"),
        );
    }
    answer(&st, move |index| {
        index
            .details(&req.refs)
            .map(|orders| OrdersResponse { orders })
    })
    .await
}

async fn base_handler(
    State(st): State<ServerState>,
    headers: HeaderMap,
    body: Result<Json<BaseRequest>, JsonRejection>,
) -> Response {
    let req = match accept(&st, &headers, body) {
        Ok(r) => r,
        Err((status, reason)) => return error(status, reason),
    };
    if req.from > req.to {
        return error(StatusCode::BAD_REQUEST, "from is after to");
    }
    answer(&st, move |index| {
        index.base_counts(req.city.as_deref(), req.from, req.to, req.actors.as_deref())
    })
    .await
}

/// Serves the protocol from `index` on `listen` (e.g. "127.0.0.1:0") with bearer `token`.
/// Returns the bound address and the server task (abort it to stop the server).
pub async fn serve_reference(
    index: Arc<LocalIndex>,
    listen: &str,
    token: &str,
) -> Result<(SocketAddr, JoinHandle<()>), MatchError> {
    if token.trim().is_empty() {
        return Err(MatchError::Remote(
            "refusing to serve without a bearer token".into(),
        ));
    }
    let state = ServerState {
        index,
        token_hash: Sha256::digest(token.trim().as_bytes()).into(),
    };
    let app = Router::new()
        .route("/v2/candidates", post(candidates_handler))
        .route("/v2/orders", post(orders_handler))
        .route("/v2/base", post(base_handler))
        .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
        .with_state(state);
    let listener = tokio::net::TcpListener::bind(listen)
        .await
        .map_err(|e| MatchError::Remote(format!("cannot listen on {listen}: {e}")))?;
    let addr = listener
        .local_addr()
        .map_err(|e| MatchError::Remote(format!("listener address: {e}")))?;
    let handle = tokio::spawn(async move {
        // The server runs until the task is aborted; an accept-loop error ends it.
        let _ = axum::serve(listener, app).await;
    });
    Ok((addr, handle))
}
