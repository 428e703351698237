//! The web console: server-rendered pages for the people around the pipeline — intake submits
//! groups, moderators work the review queue with the keyboard, legal reads cases and packets
//! and takes evidence bundles — mounted under `/ui/` in the API's router, on `api.listen`.
//!
//! Access: the same role tokens as the API (and the operator token), exchanged once at
//! `/ui/login` for a server-side session ([`session`]). The session cookie is `HttpOnly;
//! SameSite=Strict; Path=/`, plus `Secure` when `[api] secure_cookies` says so (by default:
//! whenever `listen` is not loopback) or the request arrived over HTTPS through a proxy. Every
//! POST carries the session's CSRF token as a hidden field; one middleware (`gate`) checks it
//! before any handler runs, so a handler cannot forget it — a POST without it is a 403 and
//! nothing changes. The same middleware looks each page up in [`crate::api::PERMISSIONS`]
//! (the single route × role matrix), adds the security headers (a CSP without inline code,
//! no framing, no referrer, `no-store`) and picks the language ([`i18n`]). Failed logins are
//! limited per client address.
//!
//! Pages act as `<role>:<owner>` of the session's token: reading a case, a finding card or a
//! packet file writes the same `custody` entries as the API (its helpers are shared), and
//! decisions go through `Review::decide_and_build` exactly as over the API.

mod handlers;
pub mod i18n;
pub mod pages;
pub mod session;

use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::sync::Arc;

use axum::Router;
use axum::body::Body;
use axum::extract::{ConnectInfo, MatchedPath, Request, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};

use crate::api::{Access, ApiContext};
use i18n::{Lang, Msg};
use pages::Frame;
use session::{LoginLimiter, SessionInfo, SessionStore};

/// The session cookie.
pub const SESSION_COOKIE: &str = "lw_session";
/// The login form's double-submit cookie (there is no session yet to hold a CSRF token).
pub const LOGIN_COOKIE: &str = "lw_login";
/// The chosen language.
pub const LANG_COOKIE: &str = "lw_lang";
/// Largest form body accepted: a note of `intake::MAX_NOTE` Chinese characters is 9 bytes a
/// character once form-encoded.
const MAX_FORM: usize = 64 * 1024;

/// Self only, and no inline code: the console's script and stylesheet are files served from
/// the binary. `connect-src 'self'` lets a page fetch its own downloads; nothing else.
const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; \
                   connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'";

/// The console's shared state: the API's context plus sessions and the login limiter.
pub struct Console {
    api: Arc<ApiContext>,
    sessions: SessionStore,
    logins: LoginLimiter,
    /// `Secure` on cookies regardless of how the request came.
    secure_cookies: bool,
}

/// What the middleware learned about a request, for the handler.
#[derive(Clone)]
pub(crate) struct Visit {
    pub lang: Lang,
    pub user: Option<SessionInfo>,
    /// The path the language switch links to.
    pub here: String,
    pub client: Option<IpAddr>,
    /// Cookies set on this response carry `Secure`.
    pub secure: bool,
    /// The request came over HTTPS (per the proxy's `X-Forwarded-Proto`).
    pub https: bool,
    pub form: Form,
    /// The session cookie as sent (to end it on logout or a new login).
    pub session_cookie: Option<String>,
    pub login_cookie: Option<String>,
}

impl Visit {
    pub fn frame(&self) -> Frame<'_> {
        Frame {
            lang: self.lang,
            user: self.user.as_ref(),
            here: &self.here,
        }
    }
}

/// A POSTed form (`application/x-www-form-urlencoded`), parsed once by the middleware.
#[derive(Clone, Default)]
pub(crate) struct Form(Vec<(String, String)>);

impl Form {
    fn parse(bytes: &[u8]) -> Form {
        Form(
            url::form_urlencoded::parse(bytes)
                .map(|(k, v)| (k.into_owned(), v.into_owned()))
                .collect(),
        )
    }

    /// The first value of a field.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }
}

/// The console's routes, each behind [`gate`].
pub fn router(api: Arc<ApiContext>) -> Router {
    use handlers::*;
    let console = Arc::new(Console {
        secure_cookies: api.config.api.cookies_secure(),
        api,
        sessions: SessionStore::default(),
        logins: LoginLimiter::default(),
    });
    Router::new()
        .route("/", get(root))
        .route("/ui/", get(home))
        .route("/ui/static/{file}", get(static_file))
        .route("/ui/login", get(login_form).post(login))
        .route("/ui/logout", post(logout))
        .route("/ui/cases", get(cases))
        .route("/ui/cases/{case}", get(case))
        .route("/ui/cases/{case}/bundle", get(bundle))
        .route("/ui/intake", get(intake_form).post(intake))
        .route("/ui/review", get(review_queue))
        .route("/ui/review/next", post(claim_next))
        .route("/ui/review/{finding}", get(card))
        .route("/ui/review/{finding}/claim", post(claim))
        .route("/ui/review/{finding}/decision", post(decide))
        .route("/ui/review/{finding}/reveal", post(reveal))
        .route("/ui/packets", get(packets))
        .route("/ui/packets/{packet}/files/{name}", get(packet_file))
        .route("/ui/packets/{packet}/file", post(refile))
        .layer(axum::middleware::from_fn_with_state(console.clone(), gate))
        .with_state(console)
}

/// What an evidence-bundle export produced.
pub enum BundleExport {
    /// A bundle written to `path`, offered for download as `file_name`.
    Zip { file_name: String, path: PathBuf },
    /// No bundle; the reason is shown to the user.
    Unavailable(String),
}

/// The one place the console asks for an evidence bundle of `case` on behalf of `actor`
/// (`legal:lena`); runs off the async runtime. The bundle exporter is wired in here.
pub fn bundle_export(api: &ApiContext, case: &str, actor: &str) -> BundleExport {
    let opts = crate::bundle::ExportOptions {
        actor: actor.to_string(),
        purpose: Some("downloaded from the web console".into()),
        // The console exports without PII; legal asks the API for a PII bundle deliberately.
        include_pii: false,
    };
    match crate::bundle::export_to_store(&api.ev, &api.config.bundles_dir(), case, &opts) {
        Ok(r) => BundleExport::Zip {
            file_name: r
                .path
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_else(|| format!("{case}.zip")),
            path: r.path,
        },
        Err(e) => BundleExport::Unavailable(e.to_string()),
    }
}

fn cookies(headers: &HeaderMap) -> Vec<(String, String)> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| {
            let (k, v) = pair.trim().split_once('=')?;
            Some((k.trim().to_string(), v.trim().to_string()))
        })
        .collect()
}

fn cookie_value(all: &[(String, String)], name: &str) -> Option<String> {
    all.iter().find(|(k, _)| k == name).map(|(_, v)| v.clone())
}

/// A `Set-Cookie` value: always `HttpOnly; SameSite=Strict`; `max_age` 0 deletes it.
pub(crate) fn set_cookie(
    name: &str,
    value: &str,
    path: &str,
    max_age: u64,
    secure: bool,
) -> HeaderValue {
    let secure = if secure { "; Secure" } else { "" };
    let text = format!(
        "{name}={value}; Path={path}; Max-Age={max_age}; HttpOnly; SameSite=Strict{secure}"
    );
    // Names and values are ours (hex, fixed names); a bad byte would be a bug, so fall back to
    // a cookie that deletes rather than failing the response.
    HeaderValue::from_str(&text).unwrap_or_else(|_| HeaderValue::from_static("lw_bad=; Max-Age=0"))
}

fn html_response(status: StatusCode, body: String) -> Response {
    (
        status,
        [(header::CONTENT_TYPE, "text/html; charset=utf-8")],
        body,
    )
        .into_response()
}

pub(crate) fn see_other(location: &str) -> Response {
    match HeaderValue::from_str(location) {
        Ok(v) => (StatusCode::SEE_OTHER, [(header::LOCATION, v)]).into_response(),
        Err(_) => (StatusCode::SEE_OTHER, [(header::LOCATION, "/ui/")]).into_response(),
    }
}

/// A `next` target after login: a console path only (no open redirect).
pub(crate) fn safe_next(next: &str) -> Option<&str> {
    let ok = next.starts_with("/ui/")
        && next.len() <= 512
        && !next.contains("//")
        && !next.contains('\\')
        && !next.chars().any(|c| c.is_control());
    ok.then_some(next)
}

/// A refusal page in the visitor's language.
pub(crate) fn refusal(v: &Visit, status: StatusCode, msg: Msg, back: &str) -> Response {
    let f = v.frame();
    html_response(
        status,
        pages::message_page(&f, f.t(Msg::ErrorTitle), f.t(msg), back),
    )
}

/// Every console request passes here first: language, session, permission, CSRF; then the
/// security headers on the way out.
async fn gate(
    State(c): State<Arc<Console>>,
    matched: Option<MatchedPath>,
    req: Request,
    next: Next,
) -> Response {
    let (mut parts, body) = req.into_parts();
    let jar = cookies(&parts.headers);
    let asked_lang = parts.uri.query().and_then(|q| {
        url::form_urlencoded::parse(q.as_bytes())
            .find(|(k, _)| k == "lang")
            .and_then(|(_, v)| Lang::parse(&v))
    });
    let lang = asked_lang
        .or_else(|| cookie_value(&jar, LANG_COOKIE).and_then(|v| Lang::parse(&v)))
        .unwrap_or_else(|| {
            Lang::from_accept_language(
                parts
                    .headers
                    .get(header::ACCEPT_LANGUAGE)
                    .and_then(|v| v.to_str().ok())
                    .unwrap_or(""),
            )
        });
    let https = parts
        .headers
        .get("x-forwarded-proto")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.trim().eq_ignore_ascii_case("https"));
    let session_cookie = cookie_value(&jar, SESSION_COOKIE);
    let user = session_cookie.as_deref().and_then(|cookie| {
        let s = c.sessions.get(cookie)?;
        if c.api.still_valid(&s.principal) {
            Some(s)
        } else {
            // The token was revoked: the session ends with it.
            c.sessions.remove(cookie);
            None
        }
    });
    let here = if parts.method == Method::GET {
        parts.uri.path().to_string()
    } else {
        "/ui/".to_string()
    };
    let mut visit = Visit {
        lang,
        user,
        here,
        client: parts
            .extensions
            .get::<ConnectInfo<SocketAddr>>()
            .map(|ci| ci.0.ip()),
        secure: c.secure_cookies || https,
        https,
        form: Form::default(),
        session_cookie,
        login_cookie: cookie_value(&jar, LOGIN_COOKIE),
    };

    let perm = matched
        .and_then(|m| crate::api::permission(&parts.method, m.as_str()))
        .filter(|p| p.via == Access::Session);
    let response = match perm {
        // A console route without a permission line is a bug; refuse rather than guess.
        None => refusal(&visit, StatusCode::FORBIDDEN, Msg::Forbidden, "/ui/"),
        Some(perm) => 'checked: {
            if !perm.roles.is_empty() {
                match &visit.user {
                    None if parts.method == Method::GET => {
                        let path_and_query = parts
                            .uri
                            .path_and_query()
                            .map(|p| p.as_str())
                            .unwrap_or("/ui/");
                        break 'checked see_other(&format!(
                            "/ui/login?next={}",
                            pages::query(path_and_query)
                        ));
                    }
                    None => break 'checked see_other("/ui/login"),
                    Some(u) if !perm.roles.contains(&u.principal.role) => {
                        break 'checked refusal(
                            &visit,
                            StatusCode::FORBIDDEN,
                            Msg::Forbidden,
                            "/ui/",
                        );
                    }
                    Some(_) => {}
                }
            }
            if parts.method == Method::POST {
                let Ok(bytes) = axum::body::to_bytes(body, MAX_FORM).await else {
                    break 'checked refusal(
                        &visit,
                        StatusCode::PAYLOAD_TOO_LARGE,
                        Msg::FormExpired,
                        "/ui/",
                    );
                };
                visit.form = Form::parse(&bytes);
                if let Some(u) = &visit.user
                    && !perm.roles.is_empty()
                {
                    let given = visit.form.get("csrf").unwrap_or("");
                    if !session::same_secret(given, &u.csrf) {
                        tracing::warn!(
                            actor = %u.principal.actor(),
                            path = %parts.uri.path(),
                            "console POST without a valid CSRF token refused"
                        );
                        break 'checked refusal(
                            &visit,
                            StatusCode::FORBIDDEN,
                            Msg::FormExpired,
                            "/ui/",
                        );
                    }
                }
            }
            parts.extensions.insert(visit.clone());
            next.run(Request::from_parts(parts, Body::empty())).await
        }
    };
    finish(response, asked_lang, visit.secure)
}

/// Security headers on every console response, and the language cookie when one was chosen.
fn finish(mut resp: Response, asked_lang: Option<Lang>, secure: bool) -> Response {
    let h = resp.headers_mut();
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CSP),
    );
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(
        "cross-origin-opener-policy",
        HeaderValue::from_static("same-origin"),
    );
    // Pages show case data: never stored by the browser or a proxy. Static files set their
    // own caching.
    if !h.contains_key(header::CACHE_CONTROL) {
        h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    }
    if let Some(lang) = asked_lang {
        h.append(
            header::SET_COOKIE,
            set_cookie(LANG_COOKIE, lang.code(), "/", 365 * 24 * 3600, secure),
        );
    }
    resp
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn login_redirects_stay_inside_the_console() {
        assert_eq!(safe_next("/ui/cases"), Some("/ui/cases"));
        assert_eq!(safe_next("/ui/review/F-1?x=1"), Some("/ui/review/F-1?x=1"));
        for bad in [
            "//evil.example/ui/",
            "https://evil.example/",
            "/ui//evil",
            "/ui/\\evil",
            "/api/v1/cases",
            "/ui/\nx",
        ] {
            assert_eq!(safe_next(bad), None, "{bad}");
        }
    }

    #[test]
    fn cookies_are_parsed_and_set_strictly() {
        let mut h = HeaderMap::new();
        h.insert(
            header::COOKIE,
            HeaderValue::from_static("a=1; lw_session=abc ; lw_lang=zh"),
        );
        let jar = cookies(&h);
        assert_eq!(cookie_value(&jar, SESSION_COOKIE).as_deref(), Some("abc"));
        assert_eq!(cookie_value(&jar, LANG_COOKIE).as_deref(), Some("zh"));
        assert_eq!(cookie_value(&jar, "b"), None);
        let c = set_cookie(SESSION_COOKIE, "v", "/", 10, false);
        assert_eq!(
            c.to_str().unwrap(),
            "lw_session=v; Path=/; Max-Age=10; HttpOnly; SameSite=Strict"
        );
        let c = set_cookie(SESSION_COOKIE, "v", "/", 10, true);
        assert!(c.to_str().unwrap().ends_with("; Secure"));
    }

    #[test]
    fn forms_keep_the_first_value() {
        let f = Form::parse(b"csrf=abc&reason=%E7%9C%9F%E5%AE%9E+orders&csrf=zzz");
        assert_eq!(f.get("csrf"), Some("abc"));
        assert_eq!(f.get("reason"), Some("真实 orders"));
        assert_eq!(f.get("none"), None);
    }

    #[test]
    fn every_console_route_has_a_session_permission_line() {
        let console: Vec<_> = crate::api::PERMISSIONS
            .iter()
            .filter(|p| p.path == "/" || p.path.starts_with("/ui/"))
            .collect();
        assert!(console.len() >= 18);
        assert!(console.iter().all(|p| p.via == Access::Session));
        assert!(
            crate::api::PERMISSIONS
                .iter()
                .filter(|p| p.path.starts_with("/api/") || p.path == "/healthz")
                .all(|p| p.via == Access::Token)
        );
    }
}
