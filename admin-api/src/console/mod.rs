//! # Konsol: the agencies' web console at `/console`
//!
//! Server-rendered HTML and plain forms (no JavaScript needed), in Bahasa Indonesia by default
//! and English when chosen. It is a client of the API in the same process: every page reads
//! and every form acts by calling `/api/v1` through the API's own router with the signed-in
//! person's token as the bearer, so an action from the console is refused, validated and
//! audited exactly as the same call with `curl` would be.
//!
//! - `session`: sessions, cookies, CSRF tokens; `form`: a form's fields, urlencoded or
//!   multipart with an uploaded file.
//! - `layout`: the page around every page, the role-filtered menu, HTML pieces.
//! - `i18n`: the two languages' texts; `format`: money, dates and times the Indonesian way.
//! - one module per page group: `dashboard`, `beneficiaries`, `programs` (with funding and
//!   disbursements), `cards`, `merchants` (E-Warong and terminals), `settlement`, `report`,
//!   `records` (transactions and the audit log).
//!
//! ## Invariants
//!
//! - The console never touches the ledger: it has no handle on it, only the API's router.
//! - Every POST carries its session's CSRF token (the sign-in form a cookie-bound one); one
//!   without it is refused before anything is called.
//! - The token a person signs in with never reaches the browser: the cookie holds a random
//!   session id.
//! - Not in the OpenAPI document: the console is HTML for people, not part of `/api/v1`.

mod beneficiaries;
mod cards;
mod dashboard;
mod form;
mod format;
mod i18n;
mod layout;
mod merchants;
mod programs;
mod records;
mod report;
mod session;
mod settlement;

use std::sync::Arc;

use axum::Router;
use axum::body::Body;
use axum::extract::rejection::QueryRejection;
use axum::extract::{ConnectInfo, Extension, FromRequestParts, Query, State};
use axum::http::request::Parts;
use axum::http::{HeaderMap, Method, Request, StatusCode, header};
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use serde_json::Value;
use tower::ServiceExt;

use crate::AdminState;
use form::{Fields, FormBody};
use i18n::{Lang, t};
use layout::{Notice, page};
use session::{Session, Sessions};

/// Largest answer of the API the console reads (a page of 1,000 transactions is ~500 KB).
const API_RESPONSE_BYTES_MAX: usize = 16 * 1024 * 1024;

/// What the console's handlers share.
#[derive(Clone)]
pub(crate) struct Console {
    /// The API's router (with its layers): every read and action goes through it.
    api: Router,
    /// The sessions of signed-in people.
    sessions: Arc<Sessions>,
    /// For signing in (the API's own token check) and the clock.
    admin: AdminState,
}

impl std::fmt::Debug for Console {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Console").finish_non_exhaustive()
    }
}

/// The console's routes, calling `api` for everything it reads and does.
pub(crate) fn router(admin: AdminState, api: Router) -> Router {
    let console = Console {
        api,
        sessions: Arc::default(),
        admin,
    };
    Router::new()
        .route("/console", get(dashboard::show))
        .route("/console/", get(|| async { Redirect::to("/console") }))
        .route("/console/masuk", get(sign_in_form).post(sign_in))
        .route("/console/keluar", post(sign_out))
        .route("/console/bahasa", get(language))
        .route("/console/kartu", get(cards::show).post(cards::act))
        .route(
            "/console/ewarong",
            get(merchants::show).post(merchants::act),
        )
        .route(
            "/console/penerima",
            get(beneficiaries::show).post(beneficiaries::act),
        )
        .route("/console/program", get(programs::show).post(programs::act))
        .route(
            "/console/setelmen",
            get(settlement::show).post(settlement::act),
        )
        .route("/console/setelmen/berkas", get(settlement::file))
        .route("/console/laporan", get(report::show))
        .route("/console/laporan/cetak", get(report::printable))
        .route("/console/transaksi", get(records::transactions))
        .route("/console/audit", get(records::audit))
        .route("/console/{*rest}", get(not_found).post(not_found))
        .route("/favicon.ico", get(icon))
        .layer(axum::extract::DefaultBodyLimit::max(
            crate::IMPORT_BODY_BYTES_MAX,
        ))
        .with_state(console)
}

// ------------------------------------------------------------------------ the signed-in person

/// A request of a signed-in person; anyone else is sent to the sign-in page.
#[derive(Debug)]
pub(crate) struct Signed {
    /// The session.
    session: Session,
    /// The language of the answer.
    lang: Lang,
}

impl FromRequestParts<Console> for Signed {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, console: &Console) -> Result<Signed, Response> {
        let session = session::cookie(&parts.headers, session::SESSION_COOKIE)
            .and_then(|id| console.sessions.get(id, console.admin.now()));
        match session {
            Some(session) => Ok(Signed {
                session,
                lang: session::lang(&parts.headers),
            }),
            None => Err(Redirect::to("/console/masuk").into_response()),
        }
    }
}

impl Signed {
    /// A page of this person with `body`, titled by the text key `key`.
    fn page(&self, key: &str, notice: Option<&Notice>, body: &str) -> Response {
        let lang = self.lang;
        let notice = notice.map(|n| n.html(lang)).unwrap_or_default();
        Html(page(
            lang,
            Some(&self.session),
            key,
            t(lang, key),
            &format!("{notice}{body}"),
        ))
        .into_response()
    }

    /// The 403 page unless this person's role may open the page `key`.
    fn may_open(&self, key: &str) -> Result<(), Box<Response>> {
        if layout::may_open(self.session.role, key) {
            return Ok(());
        }
        Err(self.refusal("forbidden", "forbidden"))
    }

    /// The page's query (its default when it does not read) once this person's role may
    /// open the page `key`; the 403 page otherwise.
    fn open<Q: Default>(
        &self,
        key: &str,
        query: Result<Query<Q>, QueryRejection>,
    ) -> Result<Q, Box<Response>> {
        self.may_open(key)?;
        Ok(query.map(|Query(q)| q).unwrap_or_default())
    }

    /// The form's fields after checking its CSRF token; the 403 page when it is missing or
    /// wrong, before anything is done.
    fn form(&self, key: &str, body: &FormBody) -> Result<Fields, Box<Response>> {
        self.may_open(key)?;
        let fields = Fields::parse(body);
        match fields.get("csrf") {
            Some(csrf) if session::same_secret(csrf, &self.session.csrf) => Ok(fields),
            _ => Err(self.refusal("refused", "csrf")),
        }
    }

    /// A 403 page titled by the text key `title`, saying the text `text`.
    fn refusal(&self, title: &str, text: &str) -> Box<Response> {
        let lang = self.lang;
        let body = format!("<p>{}</p>", t(lang, text));
        let html = page(lang, Some(&self.session), "", t(lang, title), &body);
        Box::new((StatusCode::FORBIDDEN, Html(html)).into_response())
    }
}

// ---------------------------------------------------------------------------- calling the API

/// An answer of the API.
#[derive(Debug)]
pub(crate) struct Reply {
    /// Its status.
    status: StatusCode,
    /// Its body as JSON (`Null` when it was not JSON).
    json: Value,
    /// Its body as text (files: CSV, the settlement file, the HTML report).
    text: String,
}

impl Reply {
    /// The JSON body when the call succeeded, or the API's message for a person.
    fn ok(self) -> Result<Value, String> {
        if self.status.is_success() {
            Ok(self.json)
        } else {
            Err(self.message())
        }
    }

    /// The API's message of a failed call.
    fn message(&self) -> String {
        self.json["message"]
            .as_str()
            .map(str::to_string)
            .unwrap_or_else(|| self.status.to_string())
    }

    /// A notice saying the action was done or why it was refused.
    fn notice(&self, lang: Lang) -> Notice {
        if self.status.is_success() {
            Notice::Done(t(lang, "done").to_string())
        } else {
            Notice::Refused(self.message())
        }
    }
}

impl Console {
    /// Calls `/api/v1{path}` as the signed-in person.
    async fn call(
        &self,
        signed: &Signed,
        method: Method,
        path: &str,
        content_type: &str,
        body: Body,
    ) -> Reply {
        let request = Request::builder()
            .method(method)
            .uri(format!("/api/v1{path}"))
            .header(
                header::AUTHORIZATION,
                format!("Bearer {}", signed.session.secret),
            )
            .header(header::CONTENT_TYPE, content_type)
            .body(body);
        let failed = |message: &str| Reply {
            status: StatusCode::INTERNAL_SERVER_ERROR,
            json: serde_json::json!({ "message": message }),
            text: String::new(),
        };
        let Ok(request) = request else {
            return failed("the console could not make this request");
        };
        let Ok(response) = self.api.clone().oneshot(request).await;
        let status = response.status();
        match axum::body::to_bytes(response.into_body(), API_RESPONSE_BYTES_MAX).await {
            Ok(bytes) => Reply {
                status,
                json: serde_json::from_slice(&bytes).unwrap_or(Value::Null),
                text: String::from_utf8_lossy(&bytes).into_owned(),
            },
            Err(_) => failed("the answer was too large for the console"),
        }
    }

    /// `GET /api/v1{path}`.
    async fn get(&self, signed: &Signed, path: &str) -> Reply {
        self.call(signed, Method::GET, path, "application/json", Body::empty())
            .await
    }

    /// `POST /api/v1{path}` with a JSON body.
    async fn post(&self, signed: &Signed, path: &str, body: Value) -> Reply {
        self.call(
            signed,
            Method::POST,
            path,
            "application/json",
            Body::from(body.to_string()),
        )
        .await
    }
}

/// A path segment or query value, percent-encoded.
fn enc(text: &str) -> String {
    form_urlencoded::byte_serialize(text.as_bytes()).collect()
}

// ------------------------------------------------------------------------- sign in and out

/// `GET /console/masuk`: the sign-in form, with a fresh CSRF token bound to a cookie.
async fn sign_in_form(State(console): State<Console>, headers: HeaderMap) -> Response {
    sign_in_page(&console, session::lang(&headers), None, StatusCode::OK)
}

fn sign_in_page(
    console: &Console,
    lang: Lang,
    notice: Option<Notice>,
    status: StatusCode,
) -> Response {
    let Ok(csrf) = session::random_hex() else {
        return StatusCode::SERVICE_UNAVAILABLE.into_response();
    };
    let notice = notice.map(|n| n.html(lang)).unwrap_or_default();
    let body = format!(
        r#"{notice}<form method="post" action="/console/masuk">
<input type="hidden" name="csrf" value="{csrf}">
<p><label for="token">{label}</label><br><input id="token" name="token" type="password" autocomplete="current-password" required size="70" aria-describedby="token-help"></p>
<p id="token-help">{help}</p>
<p><button type="submit">{sign_in}</button></p>
</form>"#,
        label = t(lang, "token"),
        help = t(lang, "token_help"),
        sign_in = t(lang, "sign_in"),
    );
    let cookie = session::set_cookie(
        session::SIGN_IN_COOKIE,
        &csrf,
        session::SESSION_SECONDS,
        console.admin.config.console_secure_cookie,
    );
    (
        status,
        [(header::SET_COOKIE, cookie)],
        Html(page(lang, None, "", t(lang, "sign_in"), &body)),
    )
        .into_response()
}

/// `POST /console/masuk`: checks the token as the API does and starts a session.
async fn sign_in(
    State(console): State<Console>,
    address: Option<Extension<ConnectInfo<std::net::SocketAddr>>>,
    headers: HeaderMap,
    body: FormBody,
) -> Response {
    let lang = session::lang(&headers);
    let fields = Fields::parse(&body);
    let bound = session::cookie(&headers, session::SIGN_IN_COOKIE);
    let csrf_ok =
        matches!((fields.get("csrf"), bound), (Some(a), Some(b)) if session::same_secret(a, b));
    if !csrf_ok {
        let notice = Notice::Refused(t(lang, "csrf").to_string());
        return sign_in_page(&console, lang, Some(notice), StatusCode::FORBIDDEN);
    }
    let secret = fields.text("token").to_string();
    let caller = crate::support::caller_of_secret(&console.admin, &secret).await;
    let caller = match caller {
        Ok(caller) => caller,
        Err(e) => {
            // Counted and slowed down as a refused bearer token is.
            if e.status == StatusCode::UNAUTHORIZED
                && let Some(Extension(ConnectInfo(address))) = address
            {
                let delay = console
                    .admin
                    .failed_authentications
                    .failed(address.ip(), console.admin.now());
                tokio::time::sleep(delay).await;
            }
            let notice = Notice::Refused(if e.status == StatusCode::UNAUTHORIZED {
                t(lang, "bad_token").to_string()
            } else {
                e.message
            });
            return sign_in_page(&console, lang, Some(notice), e.status);
        }
    };
    let id = match console
        .sessions
        .start(secret, caller.name, caller.role, console.admin.now())
    {
        Ok(id) => id,
        Err(e) => return (e.status, e.message).into_response(),
    };
    let secure = console.admin.config.console_secure_cookie;
    (
        StatusCode::SEE_OTHER,
        [
            (
                header::SET_COOKIE,
                session::set_cookie(
                    session::SESSION_COOKIE,
                    &id,
                    session::SESSION_SECONDS,
                    secure,
                ),
            ),
            (header::LOCATION, "/console".to_string()),
        ],
    )
        .into_response()
}

/// `POST /console/keluar`: ends the session (CSRF-checked: a forged sign-out is refused too).
async fn sign_out(
    State(console): State<Console>,
    signed: Signed,
    headers: HeaderMap,
    body: FormBody,
) -> Response {
    if let Err(refused) = signed.form("dashboard", &body) {
        return *refused;
    }
    if let Some(id) = session::cookie(&headers, session::SESSION_COOKIE) {
        console.sessions.end(id);
    }
    let secure = console.admin.config.console_secure_cookie;
    (
        StatusCode::SEE_OTHER,
        [
            (
                header::SET_COOKIE,
                session::set_cookie(session::SESSION_COOKIE, "", 0, secure),
            ),
            (header::LOCATION, "/console/masuk".to_string()),
        ],
    )
        .into_response()
}

/// The language asked for by the switch link.
#[derive(Debug, serde::Deserialize)]
struct LanguageChoice {
    /// `id` or `en`.
    ke: Option<String>,
}

/// `GET /console/bahasa?ke=en`: remembers the language (a preference, not an action: no
/// CSRF needed) and goes back to the console.
async fn language(
    State(console): State<Console>,
    choice: Result<Query<LanguageChoice>, QueryRejection>,
) -> Response {
    let lang = choice
        .ok()
        .and_then(|Query(c)| c.ke)
        .map_or(Lang::Id, |code| Lang::from_code(&code));
    let mut cookie = session::set_cookie(
        session::LANG_COOKIE,
        lang.code(),
        365 * 86_400,
        console.admin.config.console_secure_cookie,
    );
    // The language is no secret; SameSite=Lax so that it holds when arriving from a link.
    cookie = cookie.replace("SameSite=Strict", "SameSite=Lax");
    (
        StatusCode::SEE_OTHER,
        [
            (header::SET_COOKIE, cookie),
            (header::LOCATION, "/console".to_string()),
        ],
    )
        .into_response()
}

/// The console's icon, an SVG the browser asks for at `/favicon.ico` (the semester report's
/// page, served as the API makes it, names none: without this its every visit logged a 404).
async fn icon() -> Response {
    const ICON: &str = r##"<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 16 16"><rect width="16" height="16" rx="3" fill="#0b4f9c"/><path d="M4 3h2v4l4-4h2.5l-4.5 4.5 4.8 5.5h-2.6L6.6 8.4 6 9v4H4z" fill="#fff"/></svg>"##;
    (
        [
            (header::CONTENT_TYPE, "image/svg+xml"),
            (header::CACHE_CONTROL, "max-age=86400"),
        ],
        ICON,
    )
        .into_response()
}

/// Any other `/console/...` path.
async fn not_found(headers: HeaderMap) -> Response {
    let lang = session::lang(&headers);
    (
        StatusCode::NOT_FOUND,
        Html(page(
            lang,
            None,
            "",
            t(lang, "not_found"),
            &format!(r#"<p><a href="/console">{}</a></p>"#, t(lang, "dashboard")),
        )),
    )
        .into_response()
}
