//! The web interface: server-rendered Vietnamese pages for the counter, the printable slips, the
//! rating tablet, the hall's TV board, the citizen's lookup, reports, the province's dashboard
//! and node administration.
//!
//! Why server-rendered: the pages run on old office PCs and cheap tablets on the office LAN,
//! often with no internet, so everything (CSS, the one small script, icons) is embedded in the
//! binary and every page works without the script; the script only adds live procedure search
//! and the board's refresh.
//!
//! **Rules every page follows.**
//! - Writes go through `state.writer.submit(Command::...)` exactly like the JSON API; validation
//!   stays in `motcua_schema` and `crate::commands`.
//! - Every POST carries a CSRF token derived from the secret of the cookie that authorises it
//!   ([`session::SignedForm`], [`session::DeviceForm`], [`session::PreloginForm`]); without a
//!   valid one the answer is 403 and nothing is written.
//! - Every route names who may use it in its extractor: a staff role ([`session::Signed`]), a
//!   paired device ([`session::Paired`]), or nobody in particular (the lookup, sign-in, assets).
//! - No personal data in URLs or logs: searches by ID number are POSTed; the dossier URL carries
//!   only its code; the public lookup renders no applicant field (Decree 13/2023).

mod admin;
mod assets;
mod board;
mod charts;
mod counter;
mod dossier;
mod kiosk;
mod layout;
mod lookup;
mod province;
mod reports;
pub mod session;
mod slips;

use axum::Router;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use maud::html;
use motcua_schema::timestamp::Timestamp;

use crate::api::AppState;
use crate::auth::AuthError;
use crate::commands::CommandError;
use crate::store::StoreError;

pub use province::{UnitSyncStatus, peer_sync_status};

/// The page routes.
pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/", get(lookup::home))
        .route("/static/{file}", get(assets::serve))
        .route(
            "/dang-nhap",
            get(session::sign_in_page).post(session::sign_in),
        )
        .route("/dang-xuat", post(session::sign_out))
        .route("/quay", get(counter::home))
        .route("/quay/tim", post(counter::search))
        .route(
            "/quay/tiep-nhan",
            get(counter::receive_page).post(counter::receive),
        )
        .route("/quay/thu-tuc", get(counter::procedures_fragment))
        .route("/ho-so/{code}", get(dossier::page))
        .route("/ho-so/{code}/buoc", post(dossier::step))
        .route("/ho-so/{code}/in/{slip}", get(slips::slip))
        .route("/danh-gia", get(kiosk::start).post(kiosk::rate))
        .route("/danh-gia/cam-on", get(kiosk::thanks))
        .route("/thiet-bi/ghep", get(kiosk::pair_page).post(kiosk::pair))
        .route("/bang-tin", get(board::page))
        .route("/bang-tin/so-lieu", get(board::figures))
        .route("/tra-cuu", get(lookup::lookup_form))
        .route("/tra-cuu/{code}", get(lookup::lookup_code))
        .route("/bao-cao", get(reports::page))
        .route("/bao-cao/xlsx", get(reports::xlsx))
        .route("/bao-cao/csv", get(reports::csv))
        .route("/tinh", get(province::dashboard))
        .route("/tinh/don-vi/{unit}", get(province::unit_page))
        .route("/quan-tri", get(admin::page))
        .route("/quan-tri/nguoi-dung", post(admin::add_user))
        .route("/quan-tri/thiet-bi", post(admin::add_device))
        .route("/quan-tri/thiet-bi/thu-hoi", post(admin::revoke_device))
        .layer(axum::middleware::map_response(security_headers))
}

/// Headers on every page: no caching of pages that may hold personal data, no referrer (so a
/// dossier code in a URL never travels to another site), no framing, and a content security
/// policy that allows only the node's own scripts and styles.
async fn security_headers(mut response: Response) -> Response {
    let h = response.headers_mut();
    let set = |h: &mut axum::http::HeaderMap, name, value: &'static str| {
        if !h.contains_key(&name) {
            h.insert(name, HeaderValue::from_static(value));
        }
    };
    set(h, header::CACHE_CONTROL, "no-store");
    set(h, header::REFERRER_POLICY, "no-referrer");
    set(h, header::X_CONTENT_TYPE_OPTIONS, "nosniff");
    set(h, header::X_FRAME_OPTIONS, "DENY");
    set(
        h,
        header::CONTENT_SECURITY_POLICY,
        "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; \
         form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
    );
    response
}

/// An error page (or, for a missing sign-in on a GET, a redirect to the sign-in page).
#[derive(Debug)]
pub struct WebError {
    status: StatusCode,
    message: String,
    redirect: Option<&'static str>,
}

impl WebError {
    /// A page with `status` and a Vietnamese `message`.
    pub fn new(status: StatusCode, message: impl Into<String>) -> WebError {
        WebError {
            status,
            message: message.into(),
            redirect: None,
        }
    }

    /// 400.
    pub fn bad_request(message: impl Into<String>) -> WebError {
        WebError::new(StatusCode::BAD_REQUEST, message)
    }

    /// 404.
    pub fn not_found(message: impl Into<String>) -> WebError {
        WebError::new(StatusCode::NOT_FOUND, message)
    }

    /// 403.
    pub fn forbidden(message: impl Into<String>) -> WebError {
        WebError::new(StatusCode::FORBIDDEN, message)
    }

    /// 303 to `to`.
    pub fn redirect(to: &'static str) -> WebError {
        WebError {
            status: StatusCode::SEE_OTHER,
            message: String::new(),
            redirect: Some(to),
        }
    }

    /// 500; the cause goes to the log (it never holds personal data: store and writer errors
    /// name records by code), the page says only that something failed.
    pub fn internal(cause: impl std::fmt::Display) -> WebError {
        tracing::error!(error = %cause, "page failed");
        WebError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "Lỗi hệ thống khi xử lý yêu cầu. Vui lòng thử lại hoặc báo quản trị viên.",
        )
    }

    /// The status.
    pub fn status(&self) -> StatusCode {
        self.status
    }

    /// The message shown.
    pub fn message(&self) -> &str {
        &self.message
    }
}

impl IntoResponse for WebError {
    fn into_response(self) -> Response {
        if let Some(to) = self.redirect {
            return Redirect::to(to).into_response();
        }
        let title = match self.status {
            StatusCode::FORBIDDEN => "Không được phép",
            StatusCode::NOT_FOUND => "Không tìm thấy",
            StatusCode::TOO_MANY_REQUESTS => "Thử lại sau",
            s if s.is_server_error() => "Lỗi hệ thống",
            _ => "Yêu cầu không hợp lệ",
        };
        let body = html! {
            section.card.error {
                h1 { (title) }
                p { (self.message) }
                p { a href="/" { "Về trang chủ" } " · " a href="/quay" { "Về bộ phận một cửa" } }
            }
        };
        (self.status, layout::bare(title, "plain", body)).into_response()
    }
}

impl From<StoreError> for WebError {
    fn from(e: StoreError) -> Self {
        WebError::internal(e)
    }
}

impl From<AuthError> for WebError {
    fn from(e: AuthError) -> Self {
        match e {
            AuthError::BadCredentials => {
                WebError::new(StatusCode::UNAUTHORIZED, "Sai tên đăng nhập hoặc mật khẩu.")
            }
            AuthError::RateLimited => WebError::new(
                StatusCode::TOO_MANY_REQUESTS,
                "Đăng nhập sai quá nhiều lần. Vui lòng đợi vài phút rồi thử lại.",
            ),
            AuthError::NoSession => WebError::forbidden(
                "Phiên làm việc đã hết hạn hoặc chưa đăng nhập. Vui lòng đăng nhập lại.",
            ),
            AuthError::Exists(name) => {
                WebError::new(StatusCode::CONFLICT, format!("«{name}» đã tồn tại."))
            }
            AuthError::Invalid(m) => WebError::bad_request(format!("Dữ liệu không hợp lệ: {m}")),
            AuthError::Store(e) => WebError::internal(e),
        }
    }
}

impl From<CommandError> for WebError {
    fn from(e: CommandError) -> Self {
        match e {
            CommandError::Invalid(m) => WebError::bad_request(format!("Dữ liệu không hợp lệ: {m}")),
            CommandError::NotFound(m) => WebError::not_found(format!("Không tìm thấy: {m}")),
            CommandError::Conflict(m) => WebError::new(
                StatusCode::CONFLICT,
                format!("Không thực hiện được ở trạng thái hiện tại: {m}"),
            ),
            CommandError::Forbidden(m) => {
                WebError::forbidden(format!("Nút này không được phép ghi: {m}"))
            }
            e @ (CommandError::Store(_) | CommandError::Internal(_)) => WebError::internal(e),
        }
    }
}

/// Runs blocking store work off the async threads.
pub(crate) async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, WebError> + Send + 'static,
) -> Result<T, WebError> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(WebError::internal)?
}

/// `16/11/2025 08:30`, in Vietnam's time.
pub(crate) fn date_time(t: Timestamp) -> String {
    let l = t.local();
    format!(
        "{:02}/{:02}/{} {:02}:{:02}",
        l.day(),
        u8::from(l.month()),
        l.year(),
        l.hour(),
        l.minute()
    )
}

/// `16/11/2025`.
pub(crate) fn date_vn(t: Timestamp) -> String {
    motcua_schema::timestamp::format_date_vn(t.local_date())
}

/// The name of the day of the week and the date, e.g. `Thứ Hai, 17/11/2025`.
pub(crate) fn weekday_date(t: Timestamp) -> String {
    format!(
        "{}, {}",
        motcua_schema::calendar::weekday_vi(t.local_date().weekday()),
        date_vn(t)
    )
}

/// Accepts a dossier code typed or scanned: the bare code, or a URL ending in it (a QR scanned
/// by a phone), with spaces trimmed.
pub(crate) fn code_from_input(input: &str) -> String {
    let t = input.trim().trim_end_matches('/');
    t.rsplit('/').next().unwrap_or(t).trim().to_owned()
}

#[cfg(test)]
mod tests;
