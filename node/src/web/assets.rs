//! The static files of the pages, embedded in the binary with `include_str!` so that nothing is
//! fetched from the internet: the stylesheet (screen, print and A5 slip rules), the one small
//! script, and the icon. Fonts are the system's own (every office PC and tablet sold in Vietnam
//! has a font with Vietnamese diacritics), so none are shipped.

use axum::extract::Path;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};

/// The stylesheet.
pub const APP_CSS: &str = include_str!("../../assets/app.css");
/// The paper size of the slips (linked only from slip pages, so reports print on A4).
pub const SLIP_CSS: &str = include_str!("../../assets/slip.css");
/// The script: live procedure search, the board's refresh, print buttons.
pub const APP_JS: &str = include_str!("../../assets/app.js");
/// The icon.
pub const ICON_SVG: &str = include_str!("../../assets/icon.svg");

/// `GET /static/{file}`.
pub async fn serve(Path(file): Path<String>) -> Response {
    let (body, kind) = match file.as_str() {
        "app.css" => (APP_CSS, "text/css; charset=utf-8"),
        "slip.css" => (SLIP_CSS, "text/css; charset=utf-8"),
        "app.js" => (APP_JS, "text/javascript; charset=utf-8"),
        "icon.svg" => (ICON_SVG, "image/svg+xml"),
        _ => return (StatusCode::NOT_FOUND, "không có tệp này").into_response(),
    };
    let mut r = body.into_response();
    let h = r.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static(kind));
    // Short enough that an upgraded node's new stylesheet shows within minutes.
    h.insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("public, max-age=600"),
    );
    r
}
