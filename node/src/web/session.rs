//! Who is asking: cookie sessions for staff, device cookies for the rating tablet and the hall
//! TV, and the CSRF check on every form.
//!
//! Why extractors: a handler cannot forget a check it never performs. A page for leaders takes
//! [`Signed<LEADER>`]; a form for intake officers takes [`SignedForm<INTAKE>`], which refuses with
//! 403 before the handler runs unless the POST carries the CSRF token of the caller's session.
//! Cookies are `HttpOnly; SameSite=Strict; Path=/`, plus `Secure` when the request came over
//! https (directly or through a proxy that says so in `X-Forwarded-Proto`).

use axum::extract::{Form, FromRequest, FromRequestParts, Request, State};
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, Method, Uri, header};
use axum::response::{IntoResponse, Redirect, Response};
use maud::html;

use super::{WebError, blocking, layout};
use crate::api::AppState;
use crate::auth::{
    DEVICE_COOKIE, Device, DeviceKind, PRELOGIN_COOKIE, SESSION_COOKIE, SESSION_LIFETIME_MS,
    StaffRole, User, constant_time_eq, csrf_matches, csrf_token, random_secret,
};
use crate::writer::clock_now;

/// Role ranks for the const parameter of [`Signed`] and [`SignedForm`].
pub const INTAKE: u8 = StaffRole::Intake as u8;
/// See [`INTAKE`].
pub const PROCESSING: u8 = StaffRole::Processing as u8;
/// See [`INTAKE`].
pub const LEADER: u8 = StaffRole::Leader as u8;
/// See [`INTAKE`].
pub const ADMIN: u8 = StaffRole::Admin as u8;

/// The name of the form field that carries the CSRF token.
pub const CSRF_FIELD: &str = "csrf";

fn role_of_rank(rank: u8) -> StaffRole {
    match rank {
        0 => StaffRole::Intake,
        1 => StaffRole::Processing,
        2 => StaffRole::Leader,
        _ => StaffRole::Admin,
    }
}

/// The value of cookie `name`, if the request carries it.
pub fn cookie(headers: &HeaderMap, name: &str) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v.trim().to_owned())
        .filter(|v| !v.is_empty())
}

/// Whether the browser reached us over https.
pub fn is_https(headers: &HeaderMap, uri: &Uri) -> bool {
    uri.scheme_str() == Some("https")
        || headers
            .get("x-forwarded-proto")
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.eq_ignore_ascii_case("https"))
}

/// A `Set-Cookie` value; `max_age_s == 0` deletes the cookie.
pub fn set_cookie(name: &str, value: &str, max_age_s: i64, secure: bool) -> HeaderValue {
    let secure = if secure { "; Secure" } else { "" };
    HeaderValue::from_str(&format!(
        "{name}={value}; Path=/; HttpOnly; SameSite=Strict; Max-Age={max_age_s}{secure}"
    ))
    .expect("cookie values are hex")
}

/// The form fields of a POST, in order, as sent.
#[derive(Debug, Clone, Default)]
pub struct Fields(pub Vec<(String, String)>);

impl Fields {
    /// The first value of `name`, trimmed (`""` when absent).
    pub fn get(&self, name: &str) -> &str {
        self.0
            .iter()
            .find(|(k, _)| k == name)
            .map_or("", |(_, v)| v.trim())
    }

    /// Every value of `name` (checkbox groups).
    pub fn all<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a str> + 'a {
        self.0
            .iter()
            .filter(move |(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    /// Whether a checkbox named `name` was ticked.
    pub fn checked(&self, name: &str) -> bool {
        self.0.iter().any(|(k, v)| k == name && !v.is_empty())
    }
}

async fn read_fields(req: Request, state: &AppState) -> Result<Fields, WebError> {
    // A body that is not a form (a cross-site `text/plain` or multipart post, say) cannot carry
    // a valid token either: refuse it the same way.
    let Form(fields) = Form::<Vec<(String, String)>>::from_request(req, state)
        .await
        .map_err(|_| csrf_refused())?;
    Ok(Fields(fields))
}

fn same_token(presented: &str, expected: &str) -> bool {
    !expected.is_empty() && constant_time_eq(presented, expected)
}

fn csrf_refused() -> WebError {
    WebError::forbidden(
        "Biểu mẫu không hợp lệ hoặc đã hết hạn (thiếu mã chống giả mạo CSRF). \
         Vui lòng tải lại trang rồi gửi lại.",
    )
}

/// A signed-in staff member whose role is at least `MIN` (see [`INTAKE`] ...).
pub struct Signed<const MIN: u8> {
    /// The account.
    pub user: User,
    /// The CSRF token for forms rendered for this session.
    pub csrf: String,
}

async fn staff_from_parts(parts: &Parts, state: &AppState, min: u8) -> Result<Signed<0>, WebError> {
    let not_signed_in = || {
        if parts.method == Method::GET || parts.method == Method::HEAD {
            WebError::redirect("/dang-nhap")
        } else {
            WebError::forbidden(
                "Phiên làm việc đã hết hạn hoặc chưa đăng nhập. Vui lòng đăng nhập lại.",
            )
        }
    };
    let token = cookie(&parts.headers, SESSION_COOKIE).ok_or_else(not_signed_in)?;
    let s = state.clone();
    let t = token.clone();
    let user = blocking(
        move || match s.auth.session(s.shared.store.db(), &t, clock_now()) {
            Ok(u) => Ok(Some(u)),
            Err(crate::auth::AuthError::NoSession) => Ok(None),
            Err(e) => Err(e.into()),
        },
    )
    .await?
    .ok_or_else(not_signed_in)?;
    if (user.role as u8) < min {
        return Err(WebError::forbidden(format!(
            "Trang này dành cho vai trò «{}» trở lên; tài khoản của bạn có vai trò «{}».",
            role_of_rank(min).label_vi(),
            user.role.label_vi()
        )));
    }
    Ok(Signed {
        user,
        csrf: csrf_token(&token),
    })
}

impl<const MIN: u8> FromRequestParts<AppState> for Signed<MIN> {
    type Rejection = WebError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, WebError> {
        let s = staff_from_parts(parts, state, MIN).await?;
        Ok(Signed {
            user: s.user,
            csrf: s.csrf,
        })
    }
}

/// A POSTed form from a signed-in staff member of role `MIN` or above, whose CSRF token matched.
pub struct SignedForm<const MIN: u8> {
    /// Who.
    pub staff: Signed<MIN>,
    /// The fields (the CSRF field included).
    pub fields: Fields,
}

impl<const MIN: u8> FromRequest<AppState> for SignedForm<MIN> {
    type Rejection = WebError;

    async fn from_request(req: Request, state: &AppState) -> Result<Self, WebError> {
        let (mut parts, body) = req.into_parts();
        let staff = Signed::<MIN>::from_request_parts(&mut parts, state).await?;
        let fields = read_fields(Request::from_parts(parts, body), state).await?;
        // `csrf` is derived from this session's token: compare against a fresh derivation.
        if !same_token(fields.get(CSRF_FIELD), &staff.csrf) {
            return Err(csrf_refused());
        }
        Ok(SignedForm { staff, fields })
    }
}

/// A paired device (rating tablet or hall TV), from its cookie.
pub struct Paired {
    /// The device.
    pub device: Device,
    /// The CSRF token for forms rendered for this device.
    pub csrf: String,
}

async fn device_from_parts(parts: &Parts, state: &AppState) -> Result<Option<Paired>, WebError> {
    let Some(token) = cookie(&parts.headers, DEVICE_COOKIE) else {
        return Ok(None);
    };
    let s = state.clone();
    let t = token.clone();
    let device = blocking(
        move || match s.auth.device(s.shared.store.db(), &t, clock_now()) {
            Ok(d) => Ok(Some(d)),
            Err(crate::auth::AuthError::NoSession) => Ok(None),
            Err(e) => Err(e.into()),
        },
    )
    .await?;
    Ok(device.map(|device| Paired {
        device,
        csrf: csrf_token(&token),
    }))
}

impl FromRequestParts<AppState> for Paired {
    type Rejection = WebError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, WebError> {
        match device_from_parts(parts, state).await? {
            Some(p) => Ok(p),
            None if parts.method == Method::GET => Err(WebError::redirect("/thiet-bi/ghep")),
            None => Err(WebError::forbidden(
                "Thiết bị chưa được ghép hoặc đã bị thu hồi.",
            )),
        }
    }
}

/// A POSTed form from a paired rating tablet (kind [`DeviceKind::Kiosk`]) whose CSRF token
/// matched. Such a device can do nothing else.
pub struct DeviceForm {
    /// The device.
    pub device: Device,
    /// The fields.
    pub fields: Fields,
}

impl FromRequest<AppState> for DeviceForm {
    type Rejection = WebError;

    async fn from_request(req: Request, state: &AppState) -> Result<Self, WebError> {
        let (mut parts, body) = req.into_parts();
        let paired = Paired::from_request_parts(&mut parts, state).await?;
        if paired.device.kind != DeviceKind::Kiosk {
            return Err(WebError::forbidden(
                "Thiết bị này không phải máy đánh giá nên không ghi được đánh giá.",
            ));
        }
        let fields = read_fields(Request::from_parts(parts, body), state).await?;
        if !same_token(fields.get(CSRF_FIELD), &paired.csrf) {
            return Err(csrf_refused());
        }
        Ok(DeviceForm {
            device: paired.device,
            fields,
        })
    }
}

/// Who may look at the hall board: a paired device of either kind, or any signed-in staff.
pub struct BoardViewer;

impl FromRequestParts<AppState> for BoardViewer {
    type Rejection = WebError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, WebError> {
        if device_from_parts(parts, state).await?.is_some() {
            return Ok(BoardViewer);
        }
        match staff_from_parts(parts, state, INTAKE).await {
            Ok(_) => Ok(BoardViewer),
            Err(_) => Err(WebError::redirect("/thiet-bi/ghep")),
        }
    }
}

/// A POSTed form before sign-in (the sign-in form, device pairing), checked against the
/// pre-sign-in cookie so that another site cannot sign a browser in to its own account.
pub struct PreloginForm {
    /// The fields.
    pub fields: Fields,
    /// Whether the request came over https (for the cookie the handler sets).
    pub https: bool,
}

impl FromRequest<AppState> for PreloginForm {
    type Rejection = WebError;

    async fn from_request(req: Request, state: &AppState) -> Result<Self, WebError> {
        let secret = cookie(req.headers(), PRELOGIN_COOKIE).unwrap_or_default();
        let https = is_https(req.headers(), req.uri());
        let fields = read_fields(req, state).await?;
        if !csrf_matches(&secret, fields.get(CSRF_FIELD)) {
            return Err(csrf_refused());
        }
        Ok(PreloginForm { fields, https })
    }
}

/// The pre-sign-in secret of this browser, and the `Set-Cookie` to send when it is new.
pub fn prelogin_secret(headers: &HeaderMap, uri: &Uri) -> (String, Option<HeaderValue>) {
    match cookie(headers, PRELOGIN_COOKIE) {
        Some(s) if s.len() == 64 && s.bytes().all(|b| b.is_ascii_hexdigit()) => (s, None),
        _ => {
            let s = random_secret();
            let c = set_cookie(PRELOGIN_COOKIE, &s, 24 * 3600, is_https(headers, uri));
            (s, Some(c))
        }
    }
}

fn sign_in_form(csrf: &str, error: Option<&str>, username: &str) -> maud::Markup {
    html! {
        section.card.narrow {
            h1 { "Đăng nhập" }
            p.muted { "Dành cho cán bộ bộ phận một cửa, xử lý, lãnh đạo và quản trị." }
            @if let Some(e) = error { p.alert.bad role="alert" { (e) } }
            form method="post" action="/dang-nhap" {
                input type="hidden" name=(CSRF_FIELD) value=(csrf);
                label { "Tên đăng nhập"
                    input name="username" value=(username) autocomplete="username" required autofocus; }
                label { "Mật khẩu"
                    input name="password" type="password" autocomplete="current-password" required; }
                button.primary type="submit" { "Đăng nhập" }
            }
            p.muted { "Máy đánh giá hoặc màn hình bảng tin? " a href="/thiet-bi/ghep" { "Ghép thiết bị" } }
        }
    }
}

/// `GET /dang-nhap`.
pub async fn sign_in_page(State(state): State<AppState>, headers: HeaderMap, uri: Uri) -> Response {
    let (secret, set) = prelogin_secret(&headers, &uri);
    let page = layout::public(
        &state,
        "Đăng nhập",
        sign_in_form(&csrf_token(&secret), None, ""),
    );
    let mut response = page.into_response();
    if let Some(c) = set {
        response.headers_mut().append(header::SET_COOKIE, c);
    }
    response
}

/// `POST /dang-nhap`: opens a session and sets its cookie.
pub async fn sign_in(State(state): State<AppState>, form: PreloginForm) -> Response {
    let username = form.fields.get("username").to_owned();
    let password = form
        .fields
        .0
        .iter()
        .find(|(k, _)| k == "password")
        .map(|(_, v)| v.clone())
        .unwrap_or_default();
    let s = state.clone();
    let u = username.clone();
    let result = blocking(move || {
        Ok(s.auth
            .login(s.shared.store.db(), &u, &password, clock_now()))
    })
    .await;
    match result {
        Ok(Ok((token, user))) => {
            let home = match user.role {
                StaffRole::Admin => "/quan-tri",
                _ => "/quay",
            };
            let mut r = Redirect::to(home).into_response();
            let h = r.headers_mut();
            h.append(
                header::SET_COOKIE,
                set_cookie(
                    SESSION_COOKIE,
                    &token,
                    SESSION_LIFETIME_MS / 1000,
                    form.https,
                ),
            );
            h.append(
                header::SET_COOKIE,
                set_cookie(PRELOGIN_COOKIE, "", 0, form.https),
            );
            r
        }
        Ok(Err(e)) => {
            let e = WebError::from(e);
            let csrf = form.fields.get(CSRF_FIELD).to_owned();
            let page = layout::public(
                &state,
                "Đăng nhập",
                sign_in_form(&csrf, Some(e.message()), &username),
            );
            (e.status(), page).into_response()
        }
        Err(e) => e.into_response(),
    }
}

/// `POST /dang-xuat`: ends the session and clears its cookie.
pub async fn sign_out(
    State(state): State<AppState>,
    headers: HeaderMap,
    uri: Uri,
    _form: SignedForm<INTAKE>,
) -> Result<Response, WebError> {
    if let Some(token) = cookie(&headers, SESSION_COOKIE) {
        blocking(move || Ok(state.auth.logout(state.shared.store.db(), &token)?)).await?;
    }
    let mut r = Redirect::to("/dang-nhap").into_response();
    r.headers_mut().append(
        header::SET_COOKIE,
        set_cookie(SESSION_COOKIE, "", 0, is_https(&headers, &uri)),
    );
    Ok(r)
}
