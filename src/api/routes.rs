//! The API's handlers. Authorization happened before any of these run (see
//! [`super::authorize`]); each handler validates its input, does its work off the async
//! runtime when it touches the ledger, and answers JSON (or the file asked for).

use std::sync::Arc;

use axum::Extension;
use axum::Json;
use axum::extract::{Path, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::json;

use super::tokens::Principal;
use super::{ApiContext, ApiError, error};
use crate::ledger::entry::{EntryBody, LedgerEntry};
use crate::review::{Decision, ReviewError};

type Ctx = State<Arc<ApiContext>>;

/// Run blocking ledger work off the runtime; a panic or join failure is a 500.
pub(crate) async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, ApiError> + Send + 'static,
) -> Result<T, ApiError> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| error(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))?
}

pub(crate) fn internal(e: impl std::fmt::Display) -> ApiError {
    error(StatusCode::INTERNAL_SERVER_ERROR, e.to_string())
}

pub(crate) fn review_error(e: ReviewError) -> ApiError {
    let status = match &e {
        ReviewError::NotFound(_) => StatusCode::NOT_FOUND,
        ReviewError::Conflict(_) => StatusCode::CONFLICT,
        ReviewError::Invalid(_) => StatusCode::BAD_REQUEST,
        _ => StatusCode::INTERNAL_SERVER_ERROR,
    };
    error(status, e.to_string())
}

fn json_body<T: serde::de::DeserializeOwned>(body: &[u8]) -> Result<T, ApiError> {
    serde_json::from_slice(body)
        .map_err(|e| error(StatusCode::BAD_REQUEST, format!("request body: {e}")))
}

/// Record that `p` read evidence of `case` (custody), before the answer leaves. The console
/// calls this too, so a page and the API route showing the same evidence leave the same entry.
pub(crate) fn record_read(
    ctx: &ApiContext,
    p: &Principal,
    case: &str,
    what: String,
) -> Result<(), ApiError> {
    ctx.ev
        .record(&LedgerEntry::new(
            &p.actor(),
            EntryBody::Custody {
                case: case.to_string(),
                action: "read".into(),
                detail: what,
            },
        ))
        .map(|_| ())
        .map_err(internal)
}

pub async fn health(State(ctx): Ctx) -> Response {
    Json(json!({"ok": true, "entries": ctx.ev.ledger.size()})).into_response()
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SubmitBody {
    link: String,
    #[serde(default)]
    note: Option<String>,
}

pub async fn submit(
    State(ctx): Ctx,
    Extension(p): Extension<Principal>,
    body: axum::body::Bytes,
) -> Response {
    let body: SubmitBody = match json_body(&body) {
        Ok(b) => b,
        Err(r) => return r.into_response(),
    };
    match submit_link(&ctx, &p, body.link, body.note).await {
        Ok(sub) => {
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
        Err(e) => e.into_response(),
    }
}

/// Intake of one link for `p` (API and console): the per-token limit, the submission on
/// record, then the group handed to capture.
pub(crate) async fn submit_link(
    ctx: &Arc<ApiContext>,
    p: &Principal,
    link: String,
    note: Option<String>,
) -> Result<crate::intake::Submission, ApiError> {
    if !ctx.allow_submission(p) {
        return Err(error(
            StatusCode::TOO_MANY_REQUESTS,
            "too many submissions from this token; try again in a minute",
        ));
    }
    let ev = ctx.ev.clone();
    let actor = p.actor();
    let result = tokio::task::spawn_blocking(move || {
        crate::intake::submit(&ev, &link, note.as_deref(), &actor)
    })
    .await;
    match result {
        Ok(Ok(sub)) => {
            ctx.submitted.add(sub.group.clone());
            if let Ok(Some(case)) = ctx.ev.state.case(&sub.case) {
                ctx.capture.watch(case);
            }
            Ok(sub)
        }
        Ok(Err(
            e @ (crate::intake::IntakeError::BadLink(_)
            | crate::intake::IntakeError::LinkTooLong(_)
            | crate::intake::IntakeError::NoteTooLong(_)),
        )) => Err(error(StatusCode::BAD_REQUEST, e.to_string())),
        Ok(Err(e)) => Err(internal(e)),
        Err(e) => Err(internal(e)),
    }
}

pub async fn list_cases(State(ctx): Ctx) -> Response {
    match ctx.ev.state.cases() {
        Ok(mut cases) => {
            cases.sort_by_key(|c| c.opened_entry);
            Json(json!({"cases": cases})).into_response()
        }
        Err(e) => internal(e).into_response(),
    }
}

/// One line of a case timeline: what happened, when, by whom (no PII: summaries only).
pub fn timeline_line(index: u64, e: &LedgerEntry) -> serde_json::Value {
    let what = match &e.body {
        EntryBody::Captured(c) => format!(
            "message {} captured ({} media)",
            c.message_id,
            c.media.len()
        ),
        EntryBody::Extracted {
            rows,
            offer,
            capture,
            ..
        } => format!(
            "extraction of entry {capture}: {}{rows} sample rows",
            if offer.is_some() { "an offer, " } else { "" }
        ),
        EntryBody::Matched {
            rows_checked,
            rows_matched,
            distinct_customers,
            ..
        } => format!(
            "sample checked: {rows_matched}/{rows_checked} rows matched, {distinct_customers} customers"
        ),
        EntryBody::ReviewDecided {
            finding, decision, ..
        } => format!("{finding}: {decision}"),
        EntryBody::PacketBuilt {
            packet_id,
            packet_kind,
            ..
        } => format!("{packet_kind} packet {packet_id} built"),
        EntryBody::FilingFinished {
            packet_id,
            channel,
            status,
            ..
        } => format!("{packet_id} via {channel}: {status}"),
        EntryBody::TrackingProbed { result, .. } => format!("group probed: {result}"),
        EntryBody::JoinStatus { status, .. } => format!("join: {status}"),
        EntryBody::GroupEnded { reason, .. } => format!("group ended: {reason}"),
        EntryBody::Custody { action, .. } => format!("custody: {action}"),
        EntryBody::FindingRaised { reason, .. } => format!("finding raised: {reason}"),
        other => other.kind().replace('_', " "),
    };
    json!({"index": index, "at": e.at, "actor": e.actor, "kind": e.body.kind(), "what": what})
}

pub async fn get_case(
    State(ctx): Ctx,
    Extension(p): Extension<Principal>,
    Path(case): Path<String>,
) -> Response {
    let result = blocking(move || {
        let view = ctx
            .ev
            .state
            .case(&case)
            .map_err(internal)?
            .ok_or_else(|| error(StatusCode::NOT_FOUND, format!("no case {case}")))?;
        record_read(&ctx, &p, &case, format!("case {case} timeline"))?;
        let mut timeline = Vec::new();
        for i in ctx.ev.state.entries_of_case(&case).map_err(internal)? {
            let e = ctx.ev.ledger.read_entry(i).map_err(internal)?;
            timeline.push(timeline_line(i, &e));
        }
        let findings: Vec<_> = ctx
            .ev
            .state
            .findings()
            .map_err(internal)?
            .into_iter()
            .filter(|f| f.case == case)
            .collect();
        let packets: Vec<_> = ctx
            .ev
            .state
            .packets()
            .map_err(internal)?
            .into_iter()
            .filter(|x| x.case == case)
            .map(|x| {
                let status = x.filing_status();
                json!({"packet": x, "filing_status": status})
            })
            .collect();
        Ok(json!({"case": view, "timeline": timeline, "findings": findings, "packets": packets}))
    })
    .await;
    match result {
        Ok(v) => Json(v).into_response(),
        Err(r) => r.into_response(),
    }
}

pub async fn queue(State(ctx): Ctx) -> Response {
    match ctx.review.queue() {
        Ok(q) => Json(json!({"queue": q})).into_response(),
        Err(e) => review_error(e).into_response(),
    }
}

pub async fn claim_next(State(ctx): Ctx, Extension(p): Extension<Principal>) -> Response {
    let result = blocking(move || ctx.review.claim_next(&p.actor()).map_err(review_error)).await;
    match result {
        Ok(Some(f)) => Json(json!({"finding": f})).into_response(),
        Ok(None) => StatusCode::NO_CONTENT.into_response(),
        Err(r) => r.into_response(),
    }
}

pub async fn claim(
    State(ctx): Ctx,
    Extension(p): Extension<Principal>,
    Path(finding): Path<String>,
) -> Response {
    let result =
        blocking(move || ctx.review.claim(&finding, &p.actor()).map_err(review_error)).await;
    match result {
        Ok(f) => Json(json!({"finding": f})).into_response(),
        Err(r) => r.into_response(),
    }
}

pub async fn get_finding(
    State(ctx): Ctx,
    Extension(p): Extension<Principal>,
    Path(finding): Path<String>,
) -> Response {
    let result = blocking(move || {
        let card = ctx.review.card(&finding).map_err(review_error)?;
        record_read(
            &ctx,
            &p,
            &card.finding.case,
            format!("finding {finding} card (masked)"),
        )?;
        Ok(card)
    })
    .await;
    match result {
        Ok(card) => Json(card).into_response(),
        Err(r) => r.into_response(),
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct DecisionBody {
    decision: String,
    reason: String,
}

pub async fn decide(
    State(ctx): Ctx,
    Extension(p): Extension<Principal>,
    Path(finding): Path<String>,
    body: axum::body::Bytes,
) -> Response {
    let body: DecisionBody = match json_body(&body) {
        Ok(b) => b,
        Err(r) => return r.into_response(),
    };
    let Some(decision) = Decision::parse(&body.decision) else {
        return error(
            StatusCode::BAD_REQUEST,
            "decision must be approve, reject or escalate",
        )
        .into_response();
    };
    let c = ctx.clone();
    let result = blocking(move || {
        c.review
            .decide_and_build(
                &finding,
                &p.actor(),
                decision,
                &body.reason,
                &c.config.packets,
            )
            .map_err(review_error)
    })
    .await;
    match result {
        Ok(outcome) => {
            if !outcome.packets.is_empty() {
                ctx.dispatcher.wake();
            }
            Json(outcome).into_response()
        }
        Err(r) => r.into_response(),
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RevealBody {
    reason: String,
}

pub async fn reveal(
    State(ctx): Ctx,
    Extension(p): Extension<Principal>,
    Path(finding): Path<String>,
    body: axum::body::Bytes,
) -> Response {
    let body: RevealBody = match json_body(&body) {
        Ok(b) => b,
        Err(r) => return r.into_response(),
    };
    let result = blocking(move || {
        ctx.review
            .reveal(&finding, &p.actor(), &body.reason)
            .map_err(review_error)
    })
    .await;
    match result {
        Ok(rows) => Json(json!({"rows": rows})).into_response(),
        Err(r) => r.into_response(),
    }
}

pub async fn list_packets(State(ctx): Ctx) -> Response {
    match ctx.ev.state.packets() {
        Ok(ps) => {
            let list: Vec<_> = ps
                .iter()
                .map(|x| json!({"packet": x, "filing_status": x.filing_status()}))
                .collect();
            Json(json!({"packets": list})).into_response()
        }
        Err(e) => internal(e).into_response(),
    }
}

pub async fn get_packet(State(ctx): Ctx, Path(packet): Path<String>) -> Response {
    match ctx.ev.state.packet(&packet) {
        Ok(Some(x)) => {
            Json(json!({"packet": x, "filing_status": x.filing_status()})).into_response()
        }
        Ok(None) => error(StatusCode::NOT_FOUND, format!("no packet {packet}")).into_response(),
        Err(e) => internal(e).into_response(),
    }
}

pub async fn packet_file(
    State(ctx): Ctx,
    Extension(p): Extension<Principal>,
    Path((packet, name)): Path<(String, String)>,
) -> Response {
    match read_packet_file(ctx, p, packet, name).await {
        Ok(file) => file.into_response(),
        Err(r) => r.into_response(),
    }
}

/// One packet file as read by `p`: custody entry first, then the decrypted bytes.
pub(crate) struct PacketFile {
    pub media_type: String,
    pub name: String,
    pub bytes: Vec<u8>,
}

impl IntoResponse for PacketFile {
    fn into_response(self) -> Response {
        (
            [
                (header::CONTENT_TYPE, self.media_type),
                (
                    header::CONTENT_DISPOSITION,
                    format!(
                        "attachment; filename=\"{}\"",
                        crate::filing::sanitise_attachment_name(&self.name, 0)
                    ),
                ),
            ],
            self.bytes,
        )
            .into_response()
    }
}

/// Read a packet file for `p` (API and console), recording the read before the bytes leave.
pub(crate) async fn read_packet_file(
    ctx: Arc<ApiContext>,
    p: Principal,
    packet: String,
    name: String,
) -> Result<PacketFile, ApiError> {
    blocking(move || {
        let view = ctx
            .ev
            .state
            .packet(&packet)
            .map_err(internal)?
            .ok_or_else(|| error(StatusCode::NOT_FOUND, format!("no packet {packet}")))?;
        let file = view.files.iter().find(|f| f.name == name).ok_or_else(|| {
            error(
                StatusCode::NOT_FOUND,
                format!("packet {packet} has no file {name}"),
            )
        })?;
        record_read(&ctx, &p, &view.case, format!("packet {packet} file {name}"))?;
        let bytes = ctx.ev.blobs.get(&file.blob.sha256).map_err(internal)?;
        Ok(PacketFile {
            media_type: file.blob.media_type.clone(),
            name,
            bytes,
        })
    })
    .await
}

pub async fn refile(State(ctx): Ctx, Path(packet): Path<String>) -> Response {
    match ctx.ev.state.packet(&packet) {
        Ok(Some(x)) => {
            ctx.dispatcher.refile(&packet);
            (
                StatusCode::ACCEPTED,
                Json(
                    json!({"packet": packet, "filing_status": x.filing_status(), "refiling": true}),
                ),
            )
                .into_response()
        }
        Ok(None) => error(StatusCode::NOT_FOUND, format!("no packet {packet}")).into_response(),
        Err(e) => internal(e).into_response(),
    }
}

pub async fn openapi() -> Response {
    Json(super::openapi_document()).into_response()
}

/// Prometheus text format (version 0.0.4).
pub async fn metrics(State(ctx): Ctx) -> Response {
    let result = blocking(move || {
        let st = &ctx.ev.state;
        let cases = st.cases().map_err(internal)?;
        let watched = cases.iter().filter(|c| c.ended.is_none()).count();
        let gone = cases
            .iter()
            .filter(|c| c.tracking.gone_at.is_some())
            .count();
        let findings = st.findings().map_err(internal)?;
        let queue = findings.iter().filter(|f| f.open()).count();
        let packets = st.packets().map_err(internal)?;
        let failed = packets
            .iter()
            .filter(|p| p.filing_status() == "failed")
            .count();
        let filed = packets
            .iter()
            .filter(|p| p.filing_status() == "filed")
            .count();
        let captured = st.capture_count().map_err(internal)?;
        let age = ctx
            .ev
            .ledger
            .latest_checkpoint()
            .map_err(internal)?
            .and_then(|c| std::fs::metadata(&c.path).ok()?.modified().ok())
            .and_then(|t| t.elapsed().ok())
            .map(|d| d.as_secs_f64());
        let mut out = String::new();
        let mut metric = |name: &str, help: &str, kind: &str, value: f64| {
            out.push_str(&format!(
                "# HELP {name} {help}\n# TYPE {name} {kind}\n{name} {value}\n"
            ));
        };
        metric(
            "leakwatch_ledger_entries",
            "Entries in the evidence ledger.",
            "counter",
            ctx.ev.ledger.size() as f64,
        );
        metric(
            "leakwatch_messages_captured_total",
            "Distinct messages captured.",
            "counter",
            captured as f64,
        );
        metric(
            "leakwatch_groups_watched",
            "Cases whose group is still watched.",
            "gauge",
            watched as f64,
        );
        metric(
            "leakwatch_groups_gone",
            "Groups tracked down after a takedown.",
            "gauge",
            gone as f64,
        );
        metric(
            "leakwatch_review_queue_depth",
            "Findings waiting for a moderator.",
            "gauge",
            queue as f64,
        );
        metric(
            "leakwatch_packets_filed",
            "Packets filed to every recipient.",
            "gauge",
            filed as f64,
        );
        metric(
            "leakwatch_filing_failures",
            "Packets whose filing failed (needs a re-file).",
            "gauge",
            failed as f64,
        );
        metric(
            "leakwatch_checkpoint_age_seconds",
            "Seconds since the latest signed checkpoint (-1: none yet).",
            "gauge",
            age.unwrap_or(-1.0),
        );
        Ok(out)
    })
    .await;
    match result {
        Ok(text) => (
            [(
                header::CONTENT_TYPE,
                "text/plain; version=0.0.4".to_string(),
            )],
            text,
        )
            .into_response(),
        Err(r) => r.into_response(),
    }
}

/// What the records index holds (no personal data: counts and the import's bookkeeping).
pub async fn records_status(State(ctx): Ctx) -> Response {
    let dir = crate::sample_check::index_dir(&ctx.config);
    match crate::matching::index::status(&dir) {
        Ok(v) => Json(v).into_response(),
        Err(e) => internal(e).into_response(),
    }
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct BundleBody {
    #[serde(default)]
    purpose: Option<String>,
    #[serde(default)]
    include_pii: bool,
}

/// Export a bundle for `actor` with role `role`: PII-bearing blobs go in only for legal, and
/// only when asked (admins run the system; they do not hand victims' data on).
pub(crate) fn export_for(
    ctx: &ApiContext,
    case: &str,
    p: &Principal,
    purpose: Option<String>,
    include_pii: bool,
) -> Result<crate::bundle::ExportReport, ApiError> {
    if include_pii && p.role != super::tokens::Role::Legal {
        return Err(error(
            StatusCode::FORBIDDEN,
            format!("role {} may not export PII; ask legal", p.role.as_str()),
        ));
    }
    if ctx.ev.state.case(case).map_err(internal)?.is_none() {
        return Err(error(StatusCode::NOT_FOUND, format!("no case {case}")));
    }
    let opts = crate::bundle::ExportOptions {
        actor: p.actor(),
        purpose,
        include_pii,
    };
    crate::bundle::export_to_store(&ctx.ev, &ctx.config.bundles_dir(), case, &opts)
        .map_err(internal)
}

pub async fn export_bundle(
    State(ctx): Ctx,
    Extension(p): Extension<Principal>,
    Path(case): Path<String>,
    body: axum::body::Bytes,
) -> Response {
    let body: BundleBody = if body.is_empty() {
        BundleBody::default()
    } else {
        match json_body(&body) {
            Ok(b) => b,
            Err(r) => return r.into_response(),
        }
    };
    let result =
        blocking(move || export_for(&ctx, &case, &p, body.purpose, body.include_pii)).await;
    match result {
        Ok(r) => {
            let name = r
                .path
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default();
            (
                StatusCode::CREATED,
                Json(json!({
                    "bundle_id": r.bundle_id,
                    "sha256": r.sha256,
                    "bytes": r.bytes,
                    "entries": r.entries,
                    "blobs": r.blobs,
                    "withheld": r.withheld,
                    "checkpoint_size": r.checkpoint_size,
                    "download": format!("/api/v1/bundles/{name}"),
                })),
            )
                .into_response()
        }
        Err(r) => r.into_response(),
    }
}

pub async fn download_bundle(
    State(ctx): Ctx,
    Extension(p): Extension<Principal>,
    Path(name): Path<String>,
) -> Response {
    let Some(case) = crate::bundle::case_of_stored_bundle(&name).map(str::to_string) else {
        return error(StatusCode::BAD_REQUEST, "not a bundle name").into_response();
    };
    let result = blocking(move || {
        let path = ctx.config.bundles_dir().join(&name);
        if !path.is_file() {
            return Err(error(StatusCode::NOT_FOUND, format!("no bundle {name}")));
        }
        record_read(&ctx, &p, &case, format!("bundle {name} downloaded"))?;
        let bytes = std::fs::read(&path).map_err(internal)?;
        Ok((name, bytes))
    })
    .await;
    match result {
        Ok((name, bytes)) => (
            [
                (header::CONTENT_TYPE, "application/zip".to_string()),
                (
                    header::CONTENT_DISPOSITION,
                    format!("attachment; filename=\"{name}\""),
                ),
            ],
            bytes,
        )
            .into_response(),
        Err(r) => r.into_response(),
    }
}

pub async fn build_packets(
    State(ctx): Ctx,
    Extension(p): Extension<Principal>,
    Path(finding): Path<String>,
) -> Response {
    let c = ctx.clone();
    let result = blocking(move || {
        use crate::packets::assemble::{AssembleError, build_due};
        build_due(&c.ev, &finding, &c.config.packets, &p.actor()).map_err(|e| match e {
            AssembleError::NotFound(_) => error(StatusCode::NOT_FOUND, e.to_string()),
            AssembleError::NotApproved { .. } => error(StatusCode::CONFLICT, e.to_string()),
            other => internal(other),
        })
    })
    .await;
    match result {
        Ok(packets) => {
            if !packets.is_empty() {
                ctx.dispatcher.wake();
            }
            Json(json!({"packets": packets})).into_response()
        }
        Err(r) => r.into_response(),
    }
}
