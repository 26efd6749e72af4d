//! Node administration: the node's status, its enrolment and the registry it trusts, the catalog
//! and calendar versions in force (and whether they are samples), replication status, staff
//! accounts, and the devices (rating tablets, hall TVs) paired with the node.
//!
//! Why devices live here: a device token is shown exactly once, in the answer to the POST that
//! made it (never in a URL), and only an administrator can make or revoke one.

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use maud::{Markup, html};

use super::province::peer_sync_status;
use super::session::{ADMIN, CSRF_FIELD, Signed, SignedForm};
use super::{WebError, blocking, date_time, layout};
use crate::api::AppState;
use crate::auth::{DeviceKind, StaffRole};
use crate::writer::clock_now;

/// Something to say at the top of the page after a POST.
enum Notice {
    None,
    Error(String),
    NewDevice { name: String, token: String },
}

async fn render<const R: u8>(
    state: &AppState,
    who: &Signed<R>,
    notice: Notice,
) -> Result<Markup, WebError> {
    let s = state.clone();
    let (counts, users, devices) = blocking(move || {
        let db = s.shared.store.db();
        Ok((
            s.shared.store.counts()?,
            s.auth.users(db)?,
            s.auth.devices(db)?,
        ))
    })
    .await?;
    let id = &state.shared.identity;
    let key = *id.key.verifying_key().as_bytes();
    let (catalog, calendar) = state
        .shared
        .reference
        .read()
        .expect("reference lock")
        .info();
    let (mine, enrolled) = {
        let registry = state.shared.registry.read().expect("registry lock");
        let mine = registry.standing(&key).cloned();
        let all: Vec<_> = registry
            .standings()
            .map(|(k, s)| (hex::encode(k), s.clone()))
            .collect();
        (mine, all)
    };
    let peers = peer_sync_status(state);
    let now = clock_now();
    let reference_row = |name: &str, info: &crate::reference::ReferenceInfo| {
        html! {
            tr {
                td { (name) }
                td { "phiên bản " (info.version) }
                td { @if info.sample { span.badge.st-wait { "Dữ liệu mẫu" } } @else { span.badge.st-done { "Của tỉnh" } } }
                td { @if info.embedded { "Có sẵn trong phần mềm (chưa nhận từ tỉnh)" } @else { "Nhận từ tỉnh" } }
            }
        }
    };
    Ok(layout::staff(
        state,
        who,
        "Quản trị nút",
        html! {
            h1 { "Quản trị nút" }
            @match &notice {
                Notice::None => {}
                Notice::Error(e) => p.alert.bad role="alert" { (e) },
                Notice::NewDevice { name, token } => section.card.created #new-device {
                    p { "Đã tạo thiết bị " b { (name) } ". Mã ghép (chỉ hiển thị một lần):" }
                    p.bigcode { code #device-token { (token) } }
                    p { "Trên thiết bị, mở trang " code { "/thiet-bi/ghep" } " của nút này và nhập mã trên." }
                },
            }
            div.grid2 {
                section.card {
                    h2 { "Trạng thái" }
                    dl {
                        dt { "Đơn vị" } dd { (state.unit_name) " (" code { (id.unit.as_str()) } ")" }
                        dt { "Vai trò của nút" } dd { (layout::node_role_vi(id.role)) }
                        dt { "Khóa nút" } dd { code.wrap { (hex::encode(key)) } }
                        dt { "Phiên bản" } dd { "motcua " (env!("CARGO_PKG_VERSION")) }
                        dt { "Hồ sơ / đánh giá" } dd { (counts.dossiers) " / " (counts.ratings) }
                        dt { "Thay đổi đã ký" } dd { (counts.changes) " · chờ phụ thuộc " (counts.pending) }
                        dt { "Bị từ chối / bằng chứng rẽ nhánh" } dd { (counts.rejects) " / " (counts.forks) }
                    }
                }
                section.card {
                    h2 { "Đăng ký nút (enrolment)" }
                    @match &mine {
                        Some(s) => dl {
                            dt { "Đăng ký cho" } dd { (s.unit_name) " (" (s.unit.as_str()) ")" }
                            dt { "Hiệu lực từ" } dd { (date_time(s.valid_from)) }
                            dt { "Hiệu lực đến" } dd { (s.valid_until.map(date_time).unwrap_or_else(|| "không thời hạn".into())) }
                            dt { "Thu hồi" } dd { @match s.revoked_at { Some(t) => span.badge.st-late { "Thu hồi từ " (date_time(t)) }, None => "Không" } }
                        },
                        None => p.alert.bad { "Khóa của nút này chưa được tỉnh đăng ký: nút không ký được thay đổi nào." },
                    }
                    h3 { "Danh mục và lịch làm việc" }
                    table.list {
                        tbody {
                            (reference_row("Danh mục thủ tục", &catalog))
                            (reference_row("Lịch làm việc", &calendar))
                        }
                    }
                }
            }
            section.card {
                h2 { "Các nút đã đăng ký và đồng bộ" }
                table.list {
                    thead { tr { th { "Đơn vị" } th { "Vai trò" } th { "Khóa" } th { "Đồng bộ lần cuối" } } }
                    tbody { @for (k, s) in &enrolled {
                        @let peer = peers.iter().find(|p| p.unit == s.unit.as_str());
                        tr {
                            td { (s.unit_name) br; small.muted { (s.unit.as_str()) } }
                            td { (s.role.name()) }
                            td { code { (k[..16]) "…" } }
                            td {
                                @if peer.is_some_and(|p| p.local) { "Nút này" }
                                @else if let Some(t) = peer.and_then(|p| p.last_sync) { (date_time(t)) }
                                @else { span.badge.st-none { "chưa có dữ liệu đồng bộ" } }
                            }
                        }
                    } }
                }
            }
            section.card {
                h2 { "Tài khoản cán bộ" }
                table.list #users {
                    thead { tr { th { "Tên đăng nhập" } th { "Họ và tên" } th { "Vai trò" } th { "Trạng thái" } } }
                    tbody { @for u in &users { tr {
                        td { code { (u.username) } } td { (u.full_name) } td { (u.role.label_vi()) }
                        td { @if u.disabled { "Đã khóa" } @else { "Hoạt động" } }
                    } } }
                }
                h3 { "Thêm tài khoản" }
                form.grid4 method="post" action="/quan-tri/nguoi-dung" {
                    input type="hidden" name=(CSRF_FIELD) value=(who.csrf);
                    label { "Tên đăng nhập" input name="username" required pattern="[A-Za-z0-9._-]{1,64}" autocomplete="off"; }
                    label { "Họ và tên" input name="full_name" required maxlength="200"; }
                    label { "Vai trò"
                        select name="role" {
                            @for r in [StaffRole::Intake, StaffRole::Processing, StaffRole::Leader, StaffRole::Admin] {
                                option value=(role_name(r)) { (r.label_vi()) }
                            }
                        }
                    }
                    label { "Mật khẩu (ít nhất 8 ký tự)" input name="password" type="password" required minlength="8" autocomplete="new-password"; }
                    button.primary type="submit" { "Thêm tài khoản" }
                }
            }
            section.card {
                h2 { "Thiết bị đã ghép" }
                table.list #devices {
                    thead { tr { th { "Tên" } th { "Loại" } th { "Tạo bởi" } th { "Tạo lúc" } th { "Trạng thái" } th { "" } } }
                    tbody { @for d in &devices { tr {
                        td { code { (d.device.name) } } td { (d.device.kind.label_vi()) }
                        td { (d.device.created_by) } td { (date_time(d.device.created_at)) }
                        td { @if d.device.revoked { "Đã thu hồi" } @else if d.device.expires_at <= now { "Hết hạn" } @else { "Hoạt động" } }
                        td { @if !d.device.revoked {
                            form method="post" action="/quan-tri/thiet-bi/thu-hoi" {
                                input type="hidden" name=(CSRF_FIELD) value=(who.csrf);
                                input type="hidden" name="id" value=(d.id);
                                button.danger type="submit" { "Thu hồi" }
                            }
                        } }
                    } } }
                }
                h3 { "Thêm thiết bị" }
                form.grid4 method="post" action="/quan-tri/thiet-bi" {
                    input type="hidden" name=(CSRF_FIELD) value=(who.csrf);
                    label { "Tên thiết bị" input name="name" required pattern="[A-Za-z0-9._-]{1,64}" placeholder="may-danh-gia-1" autocomplete="off"; }
                    label { "Loại"
                        select name="kind" {
                            option value="kiosk" { (DeviceKind::Kiosk.label_vi()) }
                            option value="board" { (DeviceKind::Board.label_vi()) }
                        }
                    }
                    button.primary type="submit" { "Tạo mã ghép" }
                }
            }
        },
    ))
}

fn role_name(r: StaffRole) -> &'static str {
    match r {
        StaffRole::Intake => "intake",
        StaffRole::Processing => "processing",
        StaffRole::Leader => "leader",
        StaffRole::Admin => "admin",
    }
}

/// `GET /quan-tri`.
pub async fn page(State(state): State<AppState>, who: Signed<ADMIN>) -> Result<Markup, WebError> {
    render(&state, &who, Notice::None).await
}

async fn refused<const R: u8>(
    state: &AppState,
    who: &Signed<R>,
    e: WebError,
) -> Result<Response, WebError> {
    if e.status().is_server_error() {
        return Err(e);
    }
    let status = e.status();
    let page = render(state, who, Notice::Error(e.message().to_owned())).await?;
    Ok((status, page).into_response())
}

/// `POST /quan-tri/nguoi-dung`.
pub async fn add_user(
    State(state): State<AppState>,
    form: SignedForm<ADMIN>,
) -> Result<Response, WebError> {
    let f = &form.fields;
    let Some(role) = StaffRole::parse(f.get("role")) else {
        return refused(
            &state,
            &form.staff,
            WebError::bad_request("Vai trò không hợp lệ."),
        )
        .await;
    };
    let (username, full_name) = (f.get("username").to_owned(), f.get("full_name").to_owned());
    let password =
        f.0.iter()
            .find(|(k, _)| k == "password")
            .map(|(_, v)| v.clone())
            .unwrap_or_default();
    let s = state.clone();
    let result = blocking(move || {
        Ok(s.auth
            .add_user(s.shared.store.db(), &username, &password, &full_name, role))
    })
    .await?;
    match result {
        Ok(_) => Ok(Redirect::to("/quan-tri").into_response()),
        Err(e) => refused(&state, &form.staff, e.into()).await,
    }
}

/// `POST /quan-tri/thiet-bi`: makes a device and shows its pairing token once.
pub async fn add_device(
    State(state): State<AppState>,
    form: SignedForm<ADMIN>,
) -> Result<Response, WebError> {
    let Some(kind) = DeviceKind::parse(form.fields.get("kind")) else {
        return refused(
            &state,
            &form.staff,
            WebError::bad_request("Loại thiết bị không hợp lệ."),
        )
        .await;
    };
    let name = form.fields.get("name").to_owned();
    let by = form.staff.user.username.clone();
    let s = state.clone();
    let result = blocking(move || {
        Ok(s.auth
            .add_device(s.shared.store.db(), &name, kind, &by, clock_now()))
    })
    .await?;
    match result {
        Ok((token, device)) => {
            tracing::info!(device = %device.name, by = %device.created_by, "device created");
            let page = render(
                &state,
                &form.staff,
                Notice::NewDevice {
                    name: device.name,
                    token,
                },
            )
            .await?;
            Ok((StatusCode::CREATED, page).into_response())
        }
        Err(e) => refused(&state, &form.staff, e.into()).await,
    }
}

/// `POST /quan-tri/thiet-bi/thu-hoi`.
pub async fn revoke_device(
    State(state): State<AppState>,
    form: SignedForm<ADMIN>,
) -> Result<Response, WebError> {
    let id = form.fields.get("id").to_owned();
    let s = state.clone();
    let result = blocking(move || Ok(s.auth.revoke_device(s.shared.store.db(), &id))).await?;
    match result {
        Ok(()) => Ok(Redirect::to("/quan-tri").into_response()),
        Err(e) => refused(&state, &form.staff, e.into()).await,
    }
}
