//! The page shells every page is drawn in: the staff shell with its menu (links filtered by
//! role), the public shell, and the bare shell used by the kiosk, the TV board and the slips.
//!
//! Why one place: the stylesheet, the script, the language and the sample-data warning must be
//! the same on every page, and a menu must never offer a page the role cannot open.

use maud::{DOCTYPE, Markup, html};
use motcua_schema::trust::Role;

use super::session::{CSRF_FIELD, Signed};
use crate::api::AppState;
use crate::auth::StaffRole;

fn head(title: &str, unit: &str) -> Markup {
    html! {
        head {
            meta charset="utf-8";
            meta name="viewport" content="width=device-width, initial-scale=1";
            title { (title) " · " (unit) }
            link rel="stylesheet" href="/static/app.css";
            link rel="icon" href="/static/icon.svg" type="image/svg+xml";
            script src="/static/app.js" defer {}
        }
    }
}

fn sample_warning(state: &AppState) -> Markup {
    let (catalog, calendar) = state
        .shared
        .reference
        .read()
        .expect("reference lock")
        .info();
    html! {
        @if catalog.sample || calendar.sample {
            p.alert.warn.sample {
                "Đang dùng danh mục thủ tục và lịch làm việc "
                b { "mẫu" }
                ", chưa được tỉnh xác nhận."
            }
        }
    }
}

/// The node's role in words.
pub fn node_role_vi(role: Role) -> &'static str {
    match role {
        Role::Province => "Trung tâm Phục vụ hành chính công tỉnh",
        Role::Commune => "Bộ phận một cửa cấp xã",
        Role::Auditor => "Nút kiểm tra, thanh tra",
    }
}

/// A page for signed-in staff.
pub fn staff<const R: u8>(state: &AppState, who: &Signed<R>, title: &str, body: Markup) -> Markup {
    let role = who.user.role;
    let province = state.shared.identity.role == Role::Province;
    let links: Vec<(&str, &str, bool)> = vec![
        ("/quay", "Một cửa", true),
        ("/quay/tiep-nhan", "Tiếp nhận hồ sơ", true),
        ("/bang-tin", "Bảng tin", true),
        ("/bao-cao", "Báo cáo", role >= StaffRole::Leader),
        ("/tinh", "Toàn tỉnh", role >= StaffRole::Leader && province),
        ("/quan-tri", "Quản trị", role >= StaffRole::Admin),
        ("/tra-cuu", "Tra cứu", true),
    ];
    html! {
        (DOCTYPE)
        html lang="vi" {
            (head(title, &state.unit_name))
            body.staff {
                header.top {
                    a.brand href="/quay" { span.logo { "mc" } span { (state.unit_name) } }
                    nav {
                        @for (href, label, shown) in &links {
                            @if *shown { a href=(href) { (label) } }
                        }
                    }
                    form.who method="post" action="/dang-xuat" {
                        span { (who.user.full_name) " · " (role.label_vi()) }
                        input type="hidden" name=(CSRF_FIELD) value=(who.csrf);
                        button.link type="submit" { "Đăng xuất" }
                    }
                }
                main {
                    (sample_warning(state))
                    (body)
                }
                footer.muted {
                    (node_role_vi(state.shared.identity.role)) " · mã đơn vị "
                    code { (state.shared.identity.unit.as_str()) }
                    " · motcua " (env!("CARGO_PKG_VERSION"))
                }
            }
        }
    }
}

/// A page anyone may open (the landing page, the lookup, sign-in).
pub fn public(state: &AppState, title: &str, body: Markup) -> Markup {
    html! {
        (DOCTYPE)
        html lang="vi" {
            (head(title, &state.unit_name))
            body.public {
                header.top {
                    a.brand href="/" { span.logo { "mc" } span { (state.unit_name) } }
                    nav {
                        a href="/tra-cuu" { "Tra cứu hồ sơ" }
                        a href="/dang-nhap" { "Cán bộ đăng nhập" }
                    }
                }
                main { (body) }
                footer.muted {
                    (node_role_vi(state.shared.identity.role)) " · motcua · "
                    "Trang tra cứu không hiển thị thông tin cá nhân (Nghị định 13/2023/NĐ-CP)."
                }
            }
        }
    }
}

/// A page with no menu: `class` is the body class (`kiosk`, `board`, `slip`, `plain`).
pub fn bare(title: &str, class: &str, body: Markup) -> Markup {
    bare_refreshing(title, class, None, body)
}

/// [`bare`], going to `url` after `secs` seconds by itself (no script needed): the kiosk's
/// thanks screen returns to the start this way, and the board without its script reloads.
pub fn bare_refreshing(
    title: &str,
    class: &str,
    refresh: Option<(u32, &str)>,
    body: Markup,
) -> Markup {
    html! {
        (DOCTYPE)
        html lang="vi" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                title { (title) }
                @if let Some((secs, url)) = refresh {
                    meta http-equiv="refresh" content=(format!("{secs}; url={url}"));
                }
                link rel="stylesheet" href="/static/app.css";
                @if class == "slip" { link rel="stylesheet" href="/static/slip.css"; }
                link rel="icon" href="/static/icon.svg" type="image/svg+xml";
                script src="/static/app.js" defer {}
            }
            body class=(class) { (body) }
        }
    }
}
