//! The console's handlers. `super::gate` has already checked the session, the role and the
//! CSRF token; a handler gathers data off the async runtime (writing custody entries through
//! the API's helpers, so a page and an API call leave the same record), renders a page from
//! [`super::pages`], or redirects after a POST (post/redirect/get, so a reload never repeats a
//! decision).

use std::net::{IpAddr, Ipv4Addr};
use std::sync::Arc;

use axum::Extension;
use axum::extract::{Path, State};
use axum::http::{HeaderValue, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, Utc};

use super::i18n::Msg;
use super::pages::{self, CardPage, CasePage, DoneNotice, Hold, query, seg};
use super::{
    BundleExport, Console, LOGIN_COOKIE, SESSION_COOKIE, Visit, html_response, safe_next,
    see_other, set_cookie,
};
use crate::api::ApiError;
use crate::api::routes::{blocking, internal, read_packet_file, record_read, review_error};
use crate::api::tokens::Role;
use crate::review::Decision;

type Ctx = State<Arc<Console>>;

/// Timeline lines shown on a case page (the latest); the API gives them all.
const TIMELINE_MAX: usize = 500;

/// A failed request as a page: the API error's status and its one line.
fn failed(v: &Visit, e: ApiError, back: &str) -> Response {
    let f = v.frame();
    let message = if e.status == StatusCode::NOT_FOUND {
        format!("{} {}", f.t(Msg::NotFound), e.message)
    } else {
        e.message
    };
    html_response(
        e.status,
        pages::message_page(&f, f.t(Msg::ErrorTitle), &message, back),
    )
}

/// Where a role lands after login.
fn home_of(role: Role) -> &'static str {
    match role {
        Role::Intake => "/ui/intake",
        Role::Moderator => "/ui/review",
        Role::Legal | Role::Admin => "/ui/cases",
    }
}

fn query_pairs(uri: &Uri) -> Vec<(String, String)> {
    uri.query()
        .map(|q| {
            url::form_urlencoded::parse(q.as_bytes())
                .map(|(k, v)| (k.into_owned(), v.into_owned()))
                .collect()
        })
        .unwrap_or_default()
}

fn query_value<'a>(pairs: &'a [(String, String)], name: &str) -> Option<&'a str> {
    pairs
        .iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.as_str())
}

pub async fn root() -> Response {
    see_other("/ui/")
}

pub async fn home(Extension(v): Extension<Visit>) -> Response {
    match &v.user {
        Some(u) => see_other(home_of(u.principal.role)),
        None => see_other("/ui/login"),
    }
}

pub async fn static_file(Path(file): Path<String>) -> Response {
    let (body, media_type) = match file.as_str() {
        "console.js" => (include_str!("console.js"), "text/javascript; charset=utf-8"),
        "console.css" => (include_str!("console.css"), "text/css; charset=utf-8"),
        _ => return StatusCode::NOT_FOUND.into_response(),
    };
    (
        [
            (header::CONTENT_TYPE, media_type),
            (header::CACHE_CONTROL, "public, max-age=300"),
        ],
        body,
    )
        .into_response()
}

/// The login page with a fresh double-submit value (set as a cookie scoped to the login path).
fn login_page(v: &Visit, status: StatusCode, error: Option<Msg>, next: &str) -> Response {
    let login_csrf = super::session::random_secret();
    // A Secure cookie over plain HTTP is never sent back: say so instead of looping.
    let insecure = v.secure && !v.https;
    let mut resp = html_response(
        status,
        pages::login(&v.frame(), error, &login_csrf, next, insecure),
    );
    resp.headers_mut().append(
        header::SET_COOKIE,
        set_cookie(LOGIN_COOKIE, &login_csrf, "/ui/login", 3600, v.secure),
    );
    resp
}

pub async fn login_form(Extension(v): Extension<Visit>, uri: Uri) -> Response {
    let pairs = query_pairs(&uri);
    let next = query_value(&pairs, "next")
        .and_then(safe_next)
        .unwrap_or("");
    if let Some(u) = &v.user {
        return see_other(if next.is_empty() {
            home_of(u.principal.role)
        } else {
            next
        });
    }
    login_page(&v, StatusCode::OK, None, next)
}

pub async fn login(State(c): Ctx, Extension(v): Extension<Visit>) -> Response {
    let next = v
        .form
        .get("next")
        .and_then(safe_next)
        .unwrap_or("")
        .to_string();
    // Without a peer address (never the case under `serve`) all such callers share one limit.
    let client = v.client.unwrap_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED));
    if c.logins.blocked(client) {
        return login_page(
            &v,
            StatusCode::TOO_MANY_REQUESTS,
            Some(Msg::LoginThrottled),
            &next,
        );
    }
    let given = v.form.get("login_csrf").unwrap_or("");
    let expected = v.login_cookie.as_deref().unwrap_or("");
    if expected.is_empty() || !super::session::same_secret(given, expected) {
        return login_page(&v, StatusCode::FORBIDDEN, Some(Msg::FormExpired), &next);
    }
    let token = v.form.get("token").unwrap_or("");
    let Some(principal) = c.api.principal_for_token(token) else {
        c.logins.failed(client);
        tracing::warn!(client = %client, "console login with an unknown token refused");
        return login_page(&v, StatusCode::UNAUTHORIZED, Some(Msg::LoginFailed), &next);
    };
    // A new id at every login (no session fixation); the old session, if any, ends.
    if let Some(old) = &v.session_cookie {
        c.sessions.remove(old);
    }
    tracing::info!(actor = %principal.actor(), "console login");
    let target = if next.is_empty() {
        home_of(principal.role).to_string()
    } else {
        next
    };
    let cookie = c.sessions.create(principal);
    let mut resp = see_other(&target);
    let h = resp.headers_mut();
    h.append(
        header::SET_COOKIE,
        set_cookie(
            SESSION_COOKIE,
            &cookie,
            "/",
            super::session::SESSION_MAX.as_secs(),
            v.secure,
        ),
    );
    h.append(
        header::SET_COOKIE,
        set_cookie(LOGIN_COOKIE, "", "/ui/login", 0, v.secure),
    );
    resp
}

pub async fn logout(State(c): Ctx, Extension(v): Extension<Visit>) -> Response {
    if let Some(cookie) = &v.session_cookie {
        c.sessions.remove(cookie);
    }
    let mut resp = see_other("/ui/login");
    resp.headers_mut().append(
        header::SET_COOKIE,
        set_cookie(SESSION_COOKIE, "", "/", 0, v.secure),
    );
    resp
}

/// The session's user; the gate guarantees one on every route that needs it.
macro_rules! user {
    ($v:expr) => {
        match $v.user.clone() {
            Some(u) => u,
            None => return see_other("/ui/login"),
        }
    };
}

pub async fn cases(State(c): Ctx, Extension(v): Extension<Visit>) -> Response {
    match c.api.ev.state.cases() {
        Ok(mut list) => {
            list.sort_by_key(|x| std::cmp::Reverse(x.opened_entry));
            html_response(StatusCode::OK, pages::cases_list(&v.frame(), &list))
        }
        Err(e) => failed(&v, internal(e), "/ui/"),
    }
}

pub async fn case(
    State(c): Ctx,
    Extension(v): Extension<Visit>,
    Path(case): Path<String>,
) -> Response {
    let u = user!(v);
    let api = c.api.clone();
    let p = u.principal.clone();
    let cards = pages::role_reads_cards(p.role);
    let data = blocking(move || {
        let state = &api.ev.state;
        let view = state
            .case(&case)
            .map_err(internal)?
            .ok_or_else(|| crate::api::error(StatusCode::NOT_FOUND, format!("no case {case}")))?;
        record_read(&api, &p, &case, format!("case {case} timeline"))?;
        let entries = state.entries_of_case(&case).map_err(internal)?;
        let cut = entries.len().saturating_sub(TIMELINE_MAX);
        let mut timeline = Vec::with_capacity(entries.len() - cut);
        for &i in &entries[cut..] {
            let e = api.ev.ledger.read_entry(i).map_err(internal)?;
            timeline.push(crate::api::routes::timeline_line(i, &e));
        }
        let mut findings = Vec::new();
        for x in state.findings().map_err(internal)? {
            if x.case != case {
                continue;
            }
            let sample = if cards && x.kind == "verified_sample" {
                let card = api.review.card(&x.finding).map_err(review_error)?;
                record_read(
                    &api,
                    &p,
                    &case,
                    format!("finding {} card (masked)", x.finding),
                )?;
                Some(card.sample)
            } else {
                None
            };
            findings.push((x, sample));
        }
        let packets = state
            .packets()
            .map_err(internal)?
            .into_iter()
            .filter(|x| x.case == case)
            .collect();
        Ok(CasePage {
            case: view,
            timeline,
            timeline_cut: cut,
            findings,
            packets,
        })
    })
    .await;
    match data {
        Ok(d) => html_response(StatusCode::OK, pages::case_page(&v.frame(), &d)),
        Err(e) => failed(&v, e, "/ui/cases"),
    }
}

pub async fn bundle(
    State(c): Ctx,
    Extension(v): Extension<Visit>,
    Path(case): Path<String>,
) -> Response {
    let u = user!(v);
    let back = format!("/ui/cases/{}", seg(&case));
    let api = c.api.clone();
    let actor = u.principal.actor();
    let result =
        blocking(move || {
            api.ev.state.case(&case).map_err(internal)?.ok_or_else(|| {
                crate::api::error(StatusCode::NOT_FOUND, format!("no case {case}"))
            })?;
            Ok(super::bundle_export(&api, &case, &actor))
        })
        .await;
    match result {
        Ok(BundleExport::Zip { file_name, path }) => match tokio::fs::read(&path).await {
            Ok(bytes) => {
                let name = crate::filing::sanitise_attachment_name(&file_name, 0);
                let disposition =
                    HeaderValue::from_str(&format!("attachment; filename=\"{name}\""))
                        .unwrap_or_else(|_| HeaderValue::from_static("attachment"));
                (
                    [
                        (
                            header::CONTENT_TYPE,
                            HeaderValue::from_static("application/zip"),
                        ),
                        (header::CONTENT_DISPOSITION, disposition),
                    ],
                    bytes,
                )
                    .into_response()
            }
            Err(e) => failed(
                &v,
                internal(format!("bundle {}: {e}", path.display())),
                &back,
            ),
        },
        Ok(BundleExport::Unavailable(why)) => {
            let f = v.frame();
            let message = format!("{} ({why})", f.t(Msg::BundleUnavailable));
            html_response(
                StatusCode::NOT_IMPLEMENTED,
                pages::message_page(&f, f.t(Msg::Bundle), &message, &back),
            )
        }
        Err(e) => failed(&v, e, &back),
    }
}

pub async fn intake_form(Extension(v): Extension<Visit>, uri: Uri) -> Response {
    let pairs = query_pairs(&uri);
    let opened =
        query_value(&pairs, "case").map(|case| (case, query_value(&pairs, "new") == Some("1")));
    html_response(StatusCode::OK, pages::intake(&v.frame(), opened, None))
}

pub async fn intake(State(c): Ctx, Extension(v): Extension<Visit>) -> Response {
    let u = user!(v);
    let link = v.form.get("link").unwrap_or("").to_string();
    let note = v.form.get("note").map(str::to_string);
    match crate::api::routes::submit_link(&c.api, &u.principal, link, note).await {
        Ok(sub) => see_other(&format!(
            "/ui/intake?case={}&new={}",
            query(&sub.case),
            if sub.new_case { 1 } else { 0 }
        )),
        Err(e) => html_response(e.status, pages::intake(&v.frame(), None, Some(&e.message))),
    }
}

fn parse_time(s: &str) -> Option<DateTime<Utc>> {
    DateTime::parse_from_rfc3339(s)
        .ok()
        .map(|t| t.with_timezone(&Utc))
}

/// Whether `actor` holds a live claim on `f`.
fn holds(f: &crate::state::FindingView, actor: &str, now: DateTime<Utc>) -> bool {
    f.claimed_by.as_deref() == Some(actor)
        && f.claim_until
            .as_deref()
            .and_then(parse_time)
            .is_some_and(|until| until > now)
}

/// The "submit & next" note carried in the query after a decision.
fn done_notice(uri: &Uri) -> Option<DoneNotice> {
    let pairs = query_pairs(uri);
    let finding = query_value(&pairs, "done")?.to_string();
    let decision = Decision::parse(query_value(&pairs, "decision")?)?;
    Some(DoneNotice {
        finding,
        decision,
        packets: query_value(&pairs, "packets")
            .and_then(|n| n.parse().ok())
            .unwrap_or(0),
        packet_error: query_value(&pairs, "packet_error") == Some("1"),
    })
}

pub async fn review_queue(State(c): Ctx, Extension(v): Extension<Visit>, uri: Uri) -> Response {
    let u = user!(v);
    let queue = match c.api.review.queue() {
        Ok(q) => q,
        Err(e) => return failed(&v, review_error(e), "/ui/"),
    };
    let actor = u.principal.actor();
    // The queue page leads to the finding the moderator already holds, if any.
    if let Some(held) = queue.iter().find(|f| holds(f, &actor, Utc::now())) {
        let mut to = format!("/ui/review/{}", seg(&held.finding));
        if let Some(q) = uri.query() {
            to.push('?');
            to.push_str(q);
        }
        return see_other(&to);
    }
    html_response(
        StatusCode::OK,
        pages::review_queue(&v.frame(), &queue, done_notice(&uri).as_ref()),
    )
}

/// Claim the next finding and go to it (or to the queue when there is none).
async fn go_next(c: &Console, v: &Visit, actor: String, carry: Option<String>) -> Response {
    let review = c.api.review.clone();
    let next = blocking(move || review.claim_next(&actor).map_err(review_error)).await;
    let carry = carry.map(|q| format!("?{q}")).unwrap_or_default();
    match next {
        Ok(Some(f)) => see_other(&format!("/ui/review/{}{carry}", seg(&f.finding))),
        Ok(None) => see_other(&format!("/ui/review{carry}")),
        Err(e) => failed(v, e, "/ui/review"),
    }
}

pub async fn claim_next(State(c): Ctx, Extension(v): Extension<Visit>) -> Response {
    let u = user!(v);
    go_next(&c, &v, u.principal.actor(), None).await
}

pub async fn claim(
    State(c): Ctx,
    Extension(v): Extension<Visit>,
    Path(finding): Path<String>,
) -> Response {
    let u = user!(v);
    let review = c.api.review.clone();
    let actor = u.principal.actor();
    let id = finding.clone();
    let back = format!("/ui/review/{}", seg(&finding));
    match blocking(move || review.claim(&id, &actor).map_err(review_error)).await {
        Ok(_) => see_other(&back),
        Err(e) => failed(&v, e, &back),
    }
}

/// Render a card (recording the read), optionally with the rows just revealed.
async fn show_card(
    c: &Console,
    v: &Visit,
    finding: String,
    done: Option<DoneNotice>,
    revealed: Option<Vec<crate::extract::SampleRow>>,
) -> Response {
    let u = user!(v);
    let api = c.api.clone();
    let p = u.principal.clone();
    let data = blocking(move || {
        let card = api.review.card(&finding).map_err(review_error)?;
        record_read(
            &api,
            &p,
            &card.finding.case,
            format!("finding {finding} card (masked)"),
        )?;
        let queue_len = api.review.queue().map_err(review_error)?.len();
        Ok((card, queue_len))
    })
    .await;
    let (card, queue_len) = match data {
        Ok(d) => d,
        Err(e) => return failed(v, e, "/ui/review"),
    };
    let actor = u.principal.actor();
    let now = Utc::now();
    let x = &card.finding;
    let hold = if !x.open() {
        Hold::Closed
    } else if holds(x, &actor, now) {
        Hold::Mine
    } else {
        let holder = match (&x.claimed_by, &x.claim_until) {
            (Some(who), Some(until))
                if parse_time(until).is_some_and(|t| t > now) && who != &actor =>
            {
                Some((who.clone(), until.clone()))
            }
            _ => None,
        };
        Hold::Open { holder }
    };
    let page = CardPage {
        card: &card,
        hold,
        queue_len,
        done,
        revealed: revealed.as_deref(),
    };
    html_response(StatusCode::OK, pages::review_card(&v.frame(), &page))
}

pub async fn card(
    State(c): Ctx,
    Extension(v): Extension<Visit>,
    Path(finding): Path<String>,
    uri: Uri,
) -> Response {
    show_card(&c, &v, finding, done_notice(&uri), None).await
}

pub async fn decide(
    State(c): Ctx,
    Extension(v): Extension<Visit>,
    Path(finding): Path<String>,
) -> Response {
    let u = user!(v);
    let back = format!("/ui/review/{}", seg(&finding));
    let Some(decision) = v.form.get("decision").and_then(Decision::parse) else {
        return failed(
            &v,
            crate::api::error(
                StatusCode::BAD_REQUEST,
                "decision must be approve, reject or escalate",
            ),
            &back,
        );
    };
    let reason = v.form.get("reason").unwrap_or("").to_string();
    let actor = u.principal.actor();
    let api = c.api.clone();
    let id = finding.clone();
    let who = actor.clone();
    let outcome = blocking(move || {
        api.review
            .decide_and_build(&id, &who, decision, &reason, &api.config.packets)
            .map_err(review_error)
    })
    .await;
    let outcome = match outcome {
        Ok(o) => o,
        Err(e) => return failed(&v, e, &back),
    };
    if !outcome.packets.is_empty() {
        c.api.dispatcher.wake();
    }
    // Submit & next: the note about this decision travels to whichever page comes next.
    let carry = format!(
        "done={}&decision={}&packets={}{}",
        query(&finding),
        decision.as_str(),
        outcome.packets.len(),
        if outcome.packet_error.is_some() {
            "&packet_error=1"
        } else {
            ""
        }
    );
    go_next(&c, &v, actor, Some(carry)).await
}

pub async fn reveal(
    State(c): Ctx,
    Extension(v): Extension<Visit>,
    Path(finding): Path<String>,
) -> Response {
    let u = user!(v);
    let reason = v.form.get("reason").unwrap_or("").to_string();
    let review = c.api.review.clone();
    let actor = u.principal.actor();
    let id = finding.clone();
    let rows = blocking(move || review.reveal(&id, &actor, &reason).map_err(review_error)).await;
    match rows {
        Ok(rows) => show_card(&c, &v, finding, None, Some(rows)).await,
        Err(e) => failed(&v, e, &format!("/ui/review/{}", seg(&finding))),
    }
}

pub async fn packets(State(c): Ctx, Extension(v): Extension<Visit>) -> Response {
    match c.api.ev.state.packets() {
        Ok(mut list) => {
            list.sort_by_key(|p| std::cmp::Reverse(p.built_entry));
            html_response(StatusCode::OK, pages::packets_page(&v.frame(), &list))
        }
        Err(e) => failed(&v, internal(e), "/ui/"),
    }
}

pub async fn packet_file(
    State(c): Ctx,
    Extension(v): Extension<Visit>,
    Path((packet, name)): Path<(String, String)>,
) -> Response {
    let u = user!(v);
    match read_packet_file(c.api.clone(), u.principal, packet, name).await {
        Ok(file) => file.into_response(),
        Err(e) => failed(&v, e, "/ui/packets"),
    }
}

pub async fn refile(
    State(c): Ctx,
    Extension(v): Extension<Visit>,
    Path(packet): Path<String>,
) -> Response {
    match c.api.ev.state.packet(&packet) {
        Ok(Some(_)) => {
            c.api.dispatcher.refile(&packet);
            see_other("/ui/packets")
        }
        Ok(None) => failed(
            &v,
            crate::api::error(StatusCode::NOT_FOUND, format!("no packet {packet}")),
            "/ui/packets",
        ),
        Err(e) => failed(&v, internal(e), "/ui/packets"),
    }
}
