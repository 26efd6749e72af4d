//! The node's landing page: who this node is and where to go next, in Vietnamese. The full web
//! interface (counter, kiosk, TV board, dashboard) is served from here as it grows.

use axum::Router;
use axum::extract::State;
use axum::response::Html;
use axum::routing::get;

use crate::api::AppState;

/// The page routes.
pub fn routes() -> Router<AppState> {
    Router::new().route("/", get(index))
}

fn escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

async fn index(State(state): State<AppState>) -> Html<String> {
    let id = &state.shared.identity;
    let role = match id.role {
        motcua_schema::trust::Role::Province => "Trung tâm Phục vụ hành chính công tỉnh",
        motcua_schema::trust::Role::Commune => "Bộ phận một cửa cấp xã",
        motcua_schema::trust::Role::Auditor => "Nút kiểm tra, thanh tra",
    };
    let (catalog, calendar) = state
        .shared
        .reference
        .read()
        .expect("reference lock")
        .info();
    let sample = if catalog.sample || calendar.sample {
        "<p class=warn>Đang dùng danh mục thủ tục và lịch làm việc <b>mẫu</b>, cần được tỉnh xác nhận.</p>"
    } else {
        ""
    };
    Html(format!(
        r#"<!doctype html><html lang="vi"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width">
<title>motcua – {name}</title>
<style>body{{font-family:system-ui,sans-serif;max-width:46rem;margin:2rem auto;padding:0 1rem;color:#1d2733}}
h1{{color:#a4161a}}code{{background:#f1f1f1;padding:.1rem .3rem}}.warn{{background:#fff3cd;padding:.5rem}}</style></head>
<body><h1>motcua · một cửa</h1><h2>{name}</h2><p>{role} · mã đơn vị <code>{unit}</code></p>{sample}
<h3>Tra cứu hồ sơ</h3>
<form onsubmit="location.href='/api/v1/public/dossiers/'+encodeURIComponent(this.code.value.trim());return false">
<input name="code" placeholder="Mã hồ sơ, ví dụ {unit}-251116-0001" size="36"> <button>Tra cứu</button></form>
<h3>Dành cho cán bộ</h3><ul>
<li>API: <code>POST /api/v1/session</code> để đăng nhập, rồi <code>/api/v1/dossiers</code>, <code>/api/v1/ratings</code>, <code>/api/v1/reports</code></li>
<li>Trạng thái nút: <code>GET /api/v1/status</code></li></ul>
<p><small>Khóa nút <code>{key}</code></small></p></body></html>"#,
        name = escape(&state.unit_name),
        unit = escape(id.unit.as_str()),
        key = hex::encode(id.key.verifying_key().as_bytes()),
    ))
}
