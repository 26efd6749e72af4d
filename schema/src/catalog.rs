//! The procedure catalog (danh mục thủ tục hành chính), published by the province.
//!
//! A procedure's national code (e.g. `2.000815`) is opaque: it is compared, never parsed. The
//! catalog is configuration that changes by decree, so it is versioned data replicated from the
//! province (the `catalog` document), never constants in code. A dossier copies the name, agency
//! and processing time of its procedure when it is received, so a later catalog version does not
//! rewrite the history of dossiers already taken in.

use serde::{Deserialize, Serialize};

use crate::limits::{
    CATALOG_PROCEDURES_COUNT_MAX, SHORT_ID_SIZE_CHARS_MAX, TEXT_FIELD_SIZE_CHARS_MAX,
};

/// The statutory processing time of a procedure.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(tag = "unit", content = "value", rename_all = "snake_case")]
pub enum ProcessingTime {
    /// Working days; `0` means the same working day.
    WorkingDays(u32),
    /// Working hours (counted inside the calendar's working periods).
    WorkingHours(u32),
}

impl ProcessingTime {
    /// The Vietnamese reading, e.g. `3 ngày làm việc`, `Trong ngày`.
    pub fn label_vi(self) -> String {
        match self {
            ProcessingTime::WorkingDays(0) => "Trong ngày làm việc".to_owned(),
            ProcessingTime::WorkingDays(n) => format!("{n} ngày làm việc"),
            ProcessingTime::WorkingHours(n) => format!("{n} giờ làm việc"),
        }
    }
}

/// Whether the province or the commune handles a procedure.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Level {
    /// Provincial level (received at the provincial centre).
    Province,
    /// Commune level (received at the commune's one-stop counter).
    Commune,
}

/// How far a procedure can be done online.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OnlineLevel {
    /// Fully online (toàn trình).
    Full,
    /// Partly online (một phần).
    Partial,
    /// Not offered online.
    None,
}

/// One administrative procedure.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Procedure {
    /// National procedure code, opaque.
    pub code: String,
    /// Name.
    pub name: String,
    /// Responsible agency (sở, ngành, or the commune's office).
    pub agency: String,
    /// Level.
    pub level: Level,
    /// Statutory processing time.
    pub processing: ProcessingTime,
    /// A cut-off that overrides the calendar's for this procedure (after it, counting starts on
    /// the next working day).
    #[serde(default, skip_serializing_if = "Option::is_none", with = "opt_time")]
    pub cutoff: Option<time::Time>,
    /// Fee in đồng (0 when free).
    #[serde(default)]
    pub fee_vnd: u64,
    /// Online service level.
    pub online: OnlineLevel,
    /// Required papers.
    #[serde(default)]
    pub papers: Vec<String>,
}

/// `HH:MM` text for an optional time of day.
mod opt_time {
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(t: &Option<time::Time>, s: S) -> Result<S::Ok, S::Error> {
        match t {
            Some(t) => s.serialize_str(&format!("{:02}:{:02}", t.hour(), t.minute())),
            None => s.serialize_none(),
        }
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<time::Time>, D::Error> {
        let text: Option<String> = Option::deserialize(d)?;
        text.map(|t| {
            crate::calendar::parse_hhmm(&t).ok_or_else(|| {
                serde::de::Error::custom(format!("invalid time {t:?}, expected HH:MM"))
            })
        })
        .transpose()
    }
}

/// Why a catalog was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CatalogError {
    /// Too many procedures.
    #[error("catalog has more than {CATALOG_PROCEDURES_COUNT_MAX} procedures")]
    TooMany,
    /// Two procedures share a code.
    #[error("procedure code {0} appears twice")]
    Duplicate(String),
    /// A field is empty or too long.
    #[error("procedure {code}: field {field} is empty or too long")]
    Field {
        /// The procedure.
        code: String,
        /// The field.
        field: &'static str,
    },
}

/// One version of the province's catalog.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Catalog {
    /// Version number; higher replaces lower.
    pub version: u32,
    /// Marked as sample data that the province has not confirmed.
    #[serde(default)]
    pub sample: bool,
    /// The procedures.
    pub procedures: Vec<Procedure>,
}

impl Catalog {
    /// Checks bounds, uniqueness of codes and required fields.
    pub fn validate(&self) -> Result<(), CatalogError> {
        if self.procedures.len() > CATALOG_PROCEDURES_COUNT_MAX {
            return Err(CatalogError::TooMany);
        }
        let mut codes = std::collections::BTreeSet::new();
        for p in &self.procedures {
            let field = |field| CatalogError::Field {
                code: p.code.clone(),
                field,
            };
            if p.code.is_empty() || p.code.chars().count() > SHORT_ID_SIZE_CHARS_MAX {
                return Err(field("code"));
            }
            if p.name.trim().is_empty() || p.name.chars().count() > TEXT_FIELD_SIZE_CHARS_MAX {
                return Err(field("name"));
            }
            if p.agency.chars().count() > TEXT_FIELD_SIZE_CHARS_MAX {
                return Err(field("agency"));
            }
            if !codes.insert(p.code.as_str()) {
                return Err(CatalogError::Duplicate(p.code.clone()));
            }
        }
        Ok(())
    }

    /// The procedure with this code.
    pub fn get(&self, code: &str) -> Option<&Procedure> {
        self.procedures.iter().find(|p| p.code == code)
    }

    /// Procedures whose code starts with `query` or whose name contains every word of it,
    /// ignoring case and Vietnamese diacritics (officials type "khai sinh" for "Khai sinh"
    /// and "dang ky" for "Đăng ký"). Code matches come first, then name matches, in catalog order.
    pub fn search(&self, query: &str, limit: usize) -> Vec<&Procedure> {
        let q = fold_diacritics(query.trim());
        let words: Vec<&str> = q.split_whitespace().collect();
        if words.is_empty() {
            return self.procedures.iter().take(limit).collect();
        }
        let by_code = self
            .procedures
            .iter()
            .filter(|p| p.code.starts_with(query.trim()));
        let by_name = self.procedures.iter().filter(|p| {
            let name = fold_diacritics(&p.name);
            !p.code.starts_with(query.trim()) && words.iter().all(|w| name.contains(w))
        });
        by_code.chain(by_name).take(limit).collect()
    }
}

/// Lower-cases `text` and removes Vietnamese diacritics (`Đăng ký` → `dang ky`), so that
/// searches match whatever keyboard an official or a citizen uses.
pub fn fold_diacritics(text: &str) -> String {
    // Combining marks (U+0300-U+036F) come from keyboards that type decomposed text; the base
    // letter before them is what matters.
    text.chars()
        .flat_map(char::to_lowercase)
        .filter(|c| !('\u{300}'..='\u{36f}').contains(c))
        .map(fold_char)
        .collect()
}

fn fold_char(c: char) -> char {
    const GROUPS: [(&str, char); 7] = [
        ("àáảãạăằắẳẵặâầấẩẫậ", 'a'),
        ("èéẻẽẹêềếểễệ", 'e'),
        ("ìíỉĩị", 'i'),
        ("òóỏõọôồốổỗộơờớởỡợ", 'o'),
        ("ùúủũụưừứửữự", 'u'),
        ("ỳýỷỹỵ", 'y'),
        ("đ", 'd'),
    ];
    if c.is_ascii() {
        return c;
    }
    GROUPS
        .iter()
        .find(|(set, _)| set.contains(c))
        .map_or(c, |(_, base)| *base)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn catalog() -> Catalog {
        let p = |code: &str, name: &str| Procedure {
            code: code.into(),
            name: name.into(),
            agency: "Tư pháp".into(),
            level: Level::Commune,
            processing: ProcessingTime::WorkingDays(3),
            cutoff: None,
            fee_vnd: 0,
            online: OnlineLevel::Full,
            papers: vec![],
        };
        Catalog {
            version: 1,
            sample: true,
            procedures: vec![
                p("1.001193", "Đăng ký khai sinh"),
                p("1.000894", "Đăng ký kết hôn"),
            ],
        }
    }

    #[test]
    fn search_ignores_case_and_diacritics() {
        // Why: officials type procedure names without diacritics on old keyboards.
        let c = catalog();
        assert_eq!(c.search("khai sinh", 10)[0].code, "1.001193");
        assert_eq!(c.search("DANG KY KET", 10)[0].code, "1.000894");
        assert_eq!(c.search("1.0011", 10)[0].code, "1.001193");
        assert!(c.search("khai tử", 10).is_empty());
        assert_eq!(fold_diacritics("Đăng Ký Hộ Tịch"), "dang ky ho tich");
    }

    #[test]
    fn validation_catches_duplicates_and_empty_names() {
        // Why: a catalog with two entries for one code would make due dates ambiguous.
        let mut c = catalog();
        c.validate().unwrap();
        c.procedures[1].code = "1.001193".into();
        assert_eq!(
            c.validate(),
            Err(CatalogError::Duplicate("1.001193".into()))
        );
        let mut c = catalog();
        c.procedures[0].name = " ".into();
        assert!(c.validate().is_err());
    }

    #[test]
    fn catalog_json_round_trips_with_cutoff() {
        // Why: the catalog travels as JSON text inside its Automerge document.
        let mut c = catalog();
        c.procedures[0].cutoff = crate::calendar::parse_hhmm("15:30");
        let text = serde_json::to_string(&c).unwrap();
        assert!(text.contains("\"cutoff\":\"15:30\""));
        assert_eq!(serde_json::from_str::<Catalog>(&text).unwrap(), c);
    }
}
