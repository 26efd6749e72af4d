//! Sample reference data embedded in the binary, so that a node works from its first minute:
//! a small catalog of common procedures and a working-day calendar for 2025-2027.
//!
//! **Both are marked `sample`**: the province publishes its own catalog (its decisions on the
//! list of procedures) and confirms each year's holidays and compensatory working days, which
//! the government decides and sometimes changes. Every page and report that uses sample data
//! says so. The procedure codes follow the national database's shape but must be checked
//! against the province's published list before real use.

use time::Date;
use time::macros::{date, time};

use crate::calendar::{Calendar, CalendarVersion, DayEntry, Period};
use crate::catalog::{Catalog, Level, OnlineLevel, Procedure, ProcessingTime};

/// Version number of the embedded sample catalog.
pub const SAMPLE_CATALOG_VERSION: u32 = 1;
/// Version number of the embedded sample calendar.
pub const SAMPLE_CALENDAR_VERSION: u32 = 1;

// A row of the sample table: one argument per column reads better than a struct literal here.
#[allow(clippy::too_many_arguments)]
fn procedure(
    code: &str,
    name: &str,
    agency: &str,
    level: Level,
    processing: ProcessingTime,
    fee_vnd: u64,
    online: OnlineLevel,
    papers: &[&str],
) -> Procedure {
    Procedure {
        code: code.to_owned(),
        name: name.to_owned(),
        agency: agency.to_owned(),
        level,
        processing,
        cutoff: None,
        fee_vnd,
        online,
        papers: papers.iter().map(|p| (*p).to_owned()).collect(),
    }
}

/// The sample catalog: common commune-level procedures and a few provincial ones.
pub fn sample_catalog() -> Catalog {
    use Level::{Commune, Province};
    use OnlineLevel::{Full, Partial};
    use ProcessingTime::{WorkingDays as Days, WorkingHours as Hours};
    let tp = "Tư pháp - Hộ tịch";
    let procedures = vec![
        procedure(
            "1.001193",
            "Đăng ký khai sinh",
            tp,
            Commune,
            Days(0),
            0,
            Full,
            &["Tờ khai đăng ký khai sinh", "Giấy chứng sinh"],
        ),
        procedure(
            "1.000894",
            "Đăng ký kết hôn",
            tp,
            Commune,
            Days(0),
            0,
            Partial,
            &["Tờ khai đăng ký kết hôn", "Giấy tờ tùy thân của hai bên"],
        ),
        procedure(
            "1.000656",
            "Đăng ký khai tử",
            tp,
            Commune,
            Days(0),
            0,
            Full,
            &["Tờ khai đăng ký khai tử", "Giấy báo tử"],
        ),
        procedure(
            "1.004873",
            "Cấp Giấy xác nhận tình trạng hôn nhân",
            tp,
            Commune,
            Days(3),
            0,
            Full,
            &["Tờ khai cấp Giấy xác nhận tình trạng hôn nhân"],
        ),
        procedure(
            "1.000689",
            "Đăng ký thay đổi, cải chính, bổ sung thông tin hộ tịch",
            tp,
            Commune,
            Days(3),
            15_000,
            Partial,
            &["Tờ khai", "Giấy tờ làm căn cứ"],
        ),
        procedure(
            "2.000815",
            "Chứng thực bản sao từ bản chính giấy tờ, văn bản",
            tp,
            Commune,
            Hours(2),
            2_000,
            Partial,
            &["Bản chính giấy tờ", "Bản sao cần chứng thực"],
        ),
        procedure(
            "2.000884",
            "Chứng thực chữ ký trong các giấy tờ, văn bản",
            tp,
            Commune,
            Hours(2),
            10_000,
            Partial,
            &["Giấy tờ tùy thân", "Giấy tờ cần chứng thực chữ ký"],
        ),
        procedure(
            "1.001776",
            "Chứng thực hợp đồng, giao dịch liên quan đến tài sản là động sản",
            tp,
            Commune,
            Days(2),
            50_000,
            Partial,
            &["Dự thảo hợp đồng", "Giấy tờ tùy thân"],
        ),
        procedure(
            "1.003608",
            "Đăng ký thường trú",
            "Công an xã",
            Commune,
            Days(7),
            20_000,
            Full,
            &[
                "Tờ khai thay đổi thông tin cư trú",
                "Giấy tờ chứng minh chỗ ở hợp pháp",
            ],
        ),
        procedure(
            "1.010941",
            "Xác nhận thông tin về cư trú",
            "Công an xã",
            Commune,
            Days(1),
            0,
            Full,
            &["Tờ khai thay đổi thông tin cư trú"],
        ),
        procedure(
            "1.001758",
            "Hỗ trợ chi phí mai táng cho đối tượng bảo trợ xã hội",
            "Văn hóa - Xã hội",
            Commune,
            Days(5),
            0,
            Partial,
            &["Tờ khai đề nghị hỗ trợ chi phí mai táng", "Giấy chứng tử"],
        ),
        procedure(
            "1.001653",
            "Trợ cấp xã hội hằng tháng đối với đối tượng bảo trợ xã hội",
            "Văn hóa - Xã hội",
            Commune,
            Days(15),
            0,
            Partial,
            &["Tờ khai của đối tượng", "Giấy xác nhận khuyết tật (nếu có)"],
        ),
        procedure(
            "1.004227",
            "Đăng ký biến động đất đai, tài sản gắn liền với đất",
            "Kinh tế - Địa chính",
            Commune,
            Days(10),
            0,
            Partial,
            &["Đơn đăng ký biến động", "Giấy chứng nhận đã cấp"],
        ),
        procedure(
            "2.001234",
            "Đăng ký hộ kinh doanh",
            "Kinh tế - Địa chính",
            Commune,
            Days(3),
            100_000,
            Full,
            &["Giấy đề nghị đăng ký hộ kinh doanh", "Giấy tờ tùy thân"],
        ),
        procedure(
            "2.000908",
            "Cấp giấy phép xây dựng nhà ở riêng lẻ",
            "Kinh tế - Địa chính",
            Commune,
            Days(15),
            75_000,
            Partial,
            &[
                "Đơn đề nghị cấp giấy phép xây dựng",
                "Bản vẽ thiết kế",
                "Giấy tờ về quyền sử dụng đất",
            ],
        ),
        procedure(
            "1.001612",
            "Đăng ký thành lập doanh nghiệp tư nhân",
            "Sở Tài chính",
            Province,
            Days(3),
            50_000,
            Full,
            &[
                "Giấy đề nghị đăng ký doanh nghiệp",
                "Bản sao giấy tờ pháp lý của chủ doanh nghiệp",
            ],
        ),
        procedure(
            "1.002128",
            "Cấp Phiếu lý lịch tư pháp cho công dân Việt Nam",
            "Sở Tư pháp",
            Province,
            Days(10),
            200_000,
            Full,
            &[
                "Tờ khai yêu cầu cấp Phiếu lý lịch tư pháp",
                "Bản chụp giấy tờ tùy thân",
            ],
        ),
        procedure(
            "1.000045",
            "Cấp đổi giấy phép lái xe do ngành Giao thông vận tải cấp",
            "Sở Xây dựng",
            Province,
            Days(5),
            135_000,
            Full,
            &["Đơn đề nghị đổi giấy phép lái xe", "Giấy khám sức khỏe"],
        ),
        procedure(
            "1.005417",
            "Cấp giấy phép thành lập cơ sở giáo dục mầm non tư thục",
            "Sở Giáo dục và Đào tạo",
            Province,
            Days(20),
            0,
            Partial,
            &["Tờ trình", "Đề án thành lập"],
        ),
        procedure(
            "2.002156",
            "Cấp giấy chứng nhận đủ điều kiện an toàn thực phẩm",
            "Sở Y tế",
            Province,
            Days(20),
            700_000,
            Partial,
            &["Đơn đề nghị", "Bản thuyết minh cơ sở vật chất"],
        ),
    ];
    Catalog {
        version: SAMPLE_CATALOG_VERSION,
        sample: true,
        procedures,
    }
}

fn days(list: &[(Date, &str)]) -> Vec<DayEntry> {
    list.iter()
        .map(|(date, name)| DayEntry {
            date: *date,
            name: (*name).to_owned(),
        })
        .collect()
}

/// The sample calendar for 2025-2027: weekends Saturday and Sunday, working periods
/// 07:30-11:30 and 13:00-17:00, cut-off 15:00, and the public holidays of the Labour Code with
/// the bridges and compensatory Saturdays announced (2025) or expected (2026-2027). To be
/// confirmed by the province each year.
pub fn sample_calendar() -> Calendar {
    let tet = "Tết Nguyên đán";
    let holidays = days(&[
        (date!(2025 - 01 - 01), "Tết Dương lịch"),
        (date!(2025 - 01 - 27), tet),
        (date!(2025 - 01 - 28), tet),
        (date!(2025 - 01 - 29), tet),
        (date!(2025 - 01 - 30), tet),
        (date!(2025 - 01 - 31), tet),
        (date!(2025 - 04 - 07), "Giỗ Tổ Hùng Vương (10/3 âm lịch)"),
        (
            date!(2025 - 04 - 30),
            "Ngày Giải phóng miền Nam, thống nhất đất nước",
        ),
        (date!(2025 - 05 - 01), "Ngày Quốc tế lao động"),
        (date!(2025 - 05 - 02), "Nghỉ hoán đổi (làm bù thứ Bảy 26/4)"),
        (date!(2025 - 09 - 01), "Quốc khánh"),
        (date!(2025 - 09 - 02), "Quốc khánh"),
        (date!(2026 - 01 - 01), "Tết Dương lịch"),
        (date!(2026 - 01 - 02), "Nghỉ hoán đổi (làm bù thứ Bảy 10/1)"),
        (date!(2026 - 02 - 16), tet),
        (date!(2026 - 02 - 17), tet),
        (date!(2026 - 02 - 18), tet),
        (date!(2026 - 02 - 19), tet),
        (date!(2026 - 02 - 20), tet),
        (
            date!(2026 - 04 - 27),
            "Giỗ Tổ Hùng Vương (nghỉ bù cho Chủ nhật 26/4)",
        ),
        (
            date!(2026 - 04 - 30),
            "Ngày Giải phóng miền Nam, thống nhất đất nước",
        ),
        (date!(2026 - 05 - 01), "Ngày Quốc tế lao động"),
        (date!(2026 - 09 - 01), "Quốc khánh"),
        (date!(2026 - 09 - 02), "Quốc khánh"),
        (date!(2027 - 01 - 01), "Tết Dương lịch"),
        (date!(2027 - 02 - 04), tet),
        (date!(2027 - 02 - 05), tet),
        (date!(2027 - 02 - 08), tet),
        (date!(2027 - 02 - 09), tet),
        (date!(2027 - 02 - 10), tet),
        (date!(2027 - 04 - 16), "Giỗ Tổ Hùng Vương (10/3 âm lịch)"),
        (
            date!(2027 - 04 - 30),
            "Ngày Giải phóng miền Nam, thống nhất đất nước",
        ),
        (
            date!(2027 - 05 - 03),
            "Ngày Quốc tế lao động (nghỉ bù cho thứ Bảy 1/5)",
        ),
        (date!(2027 - 09 - 02), "Quốc khánh"),
        (date!(2027 - 09 - 03), "Quốc khánh"),
    ]);
    let working_days = days(&[
        (date!(2025 - 04 - 26), "Làm bù cho ngày 02/5/2025"),
        (date!(2026 - 01 - 10), "Làm bù cho ngày 02/01/2026"),
    ]);
    Calendar {
        versions: vec![CalendarVersion {
            version: SAMPLE_CALENDAR_VERSION,
            effective_from: date!(2025 - 01 - 01),
            sample: true,
            note: "Lịch mẫu 2025-2027, cần được tỉnh xác nhận theo quyết định nghỉ lễ hằng năm"
                .to_owned(),
            weekend: vec![6, 7],
            holidays,
            working_days,
            periods: vec![
                Period {
                    start: time!(7:30),
                    end: time!(11:30),
                },
                Period {
                    start: time!(13:00),
                    end: time!(17:00),
                },
            ],
            cutoff: time!(15:00),
        }],
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn samples_are_valid_and_marked() {
        // Why: a node uses these from its first minute; they must pass the same checks as the
        // province's data and say they are samples.
        let c = sample_catalog();
        c.validate().unwrap();
        assert!(c.sample);
        assert!(c.procedures.iter().any(|p| p.level == Level::Commune));
        let cal = sample_calendar();
        cal.validate().unwrap();
        assert!(cal.versions.iter().all(|v| v.sample));
        assert!(!cal.is_working_day(date!(2026 - 02 - 17)));
        assert!(cal.is_working_day(date!(2025 - 04 - 26)));
        assert!(cal.is_working_day(date!(2027 - 11 - 24)));
    }
}
