//! Identifiers of the domain: unit codes, dossier codes and document ids.
//!
//! A dossier code follows Circular 01/2018/TT-VPCP: `<unit code>-<YYMMDD>-<NNNN>`, e.g.
//! `000.00.12.H12-231116-0001`. The unit that receives a dossier allocates its number, which is
//! why a commune can number dossiers while offline: one node owns each unit's sequence.

use std::fmt;

use serde::{Deserialize, Serialize};
use time::Date;

use crate::limits::{
    DOC_ID_SIZE_BYTES_MAX, DOSSIERS_PER_UNIT_DAY_COUNT_MAX, UNIT_CODE_SIZE_BYTES_MAX,
};

/// Why an identifier was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IdError {
    /// The unit code is empty, too long or has characters outside `[0-9A-Za-z.]`.
    #[error("invalid unit code {0:?}: expected letters, digits and dots, at most 32 bytes")]
    UnitCode(String),
    /// The dossier code is not `<unit>-<YYMMDD>-<NNNN>`.
    #[error("invalid dossier code {0:?}: expected <unit code>-<YYMMDD>-<NNNN>")]
    DossierCode(String),
    /// The document id is not one of the known kinds.
    #[error("invalid document id {0:?}")]
    DocId(String),
}

/// The code of an administrative unit (a commune office or a provincial agency/centre).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct UnitCode(String);

impl UnitCode {
    /// Validates a unit code.
    pub fn new(code: &str) -> Result<UnitCode, IdError> {
        let ok = !code.is_empty()
            && code.len() <= UNIT_CODE_SIZE_BYTES_MAX
            && code.chars().all(|c| c.is_ascii_alphanumeric() || c == '.');
        if ok {
            Ok(UnitCode(code.to_owned()))
        } else {
            Err(IdError::UnitCode(code.to_owned()))
        }
    }

    /// The code as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for UnitCode {
    type Error = IdError;
    fn try_from(s: String) -> Result<Self, IdError> {
        UnitCode::new(&s)
    }
}

impl From<UnitCode> for String {
    fn from(u: UnitCode) -> String {
        u.0
    }
}

impl fmt::Display for UnitCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A dossier code `<unit code>-<YYMMDD>-<NNNN>`.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct DossierCode {
    text: String,
    unit_len: usize,
}

impl DossierCode {
    /// Builds the code for the `number`-th dossier received by `unit` on `date`.
    pub fn new(unit: &UnitCode, date: Date, number: u32) -> Result<DossierCode, IdError> {
        if number == 0
            || number > DOSSIERS_PER_UNIT_DAY_COUNT_MAX
            || !(2000..2100).contains(&date.year())
        {
            return Err(IdError::DossierCode(format!("{unit}-?-{number}")));
        }
        let text = format!(
            "{}-{:02}{:02}{:02}-{:04}",
            unit,
            date.year() % 100,
            u8::from(date.month()),
            date.day(),
            number
        );
        Ok(DossierCode {
            unit_len: unit.as_str().len(),
            text,
        })
    }

    /// Parses and validates a code.
    pub fn parse(text: &str) -> Result<DossierCode, IdError> {
        let err = || IdError::DossierCode(text.to_owned());
        let mut parts = text.rsplitn(3, '-');
        let number = parts.next().ok_or_else(err)?;
        let date = parts.next().ok_or_else(err)?;
        let unit = parts.next().ok_or_else(err)?;
        UnitCode::new(unit).map_err(|_| err())?;
        let digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
        if date.len() != 6
            || !digits(date)
            || number.len() < 4
            || number.len() > 5
            || !digits(number)
        {
            return Err(err());
        }
        let code = DossierCode {
            text: text.to_owned(),
            unit_len: unit.len(),
        };
        code.date().ok_or_else(err)?;
        Ok(code)
    }

    /// The receiving unit.
    pub fn unit(&self) -> UnitCode {
        UnitCode(self.text[..self.unit_len].to_owned())
    }

    /// The date received, from the `YYMMDD` part.
    pub fn date(&self) -> Option<Date> {
        let d = &self.text[self.unit_len + 1..self.unit_len + 7];
        let n = |r: std::ops::Range<usize>| d[r].parse::<u8>().ok();
        let month = time::Month::try_from(n(2..4)?).ok()?;
        Date::from_calendar_date(2000 + i32::from(n(0..2)?), month, n(4..6)?).ok()
    }

    /// The day's sequence number.
    pub fn number(&self) -> u32 {
        self.text[self.unit_len + 8..].parse().unwrap_or(0)
    }

    /// The code as text.
    pub fn as_str(&self) -> &str {
        &self.text
    }
}

impl TryFrom<String> for DossierCode {
    type Error = IdError;
    fn try_from(s: String) -> Result<Self, IdError> {
        DossierCode::parse(&s)
    }
}

impl From<DossierCode> for String {
    fn from(c: DossierCode) -> String {
        c.text
    }
}

impl fmt::Display for DossierCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

/// What a dossier's document id starts with, before its code.
const DOSSIER_DOC_PREFIX: &str = "dossier/";

/// The text of a dossier's document id (what `DocId::Dossier` prints) for a code already
/// known to be one: store rows of a dossier are keyed by its document id.
pub fn dossier_doc_text(code: &str) -> String {
    format!("{DOSSIER_DOC_PREFIX}{code}")
}

/// The id of one replicated Automerge document. Its text form is what signatures cover.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum DocId {
    /// One dossier: `dossier/<code>`.
    Dossier(DossierCode),
    /// One unit's ratings of one local day: `ratings/<unit>/<YYYYMMDD>`.
    Ratings(UnitCode, u32),
    /// The audit-log checkpoints one unit's node published on one local day:
    /// `log/<unit>/<YYYYMMDD>` (see `crate::audit`).
    Log(UnitCode, u32),
    /// The province's procedure catalog: `catalog`.
    Catalog,
    /// The province's working-day calendar: `calendar`.
    Calendar,
    /// The trust registry of enrolments and revocations: `registry`.
    Registry,
}

impl DocId {
    /// The unit whose records this document holds, if it belongs to one unit.
    pub fn unit(&self) -> Option<UnitCode> {
        match self {
            DocId::Dossier(code) => Some(code.unit()),
            DocId::Ratings(unit, _) | DocId::Log(unit, _) => Some(unit.clone()),
            DocId::Catalog | DocId::Calendar | DocId::Registry => None,
        }
    }

    /// Parses the text form.
    pub fn parse(text: &str) -> Result<DocId, IdError> {
        let err = || IdError::DocId(text.to_owned());
        if text.len() > DOC_ID_SIZE_BYTES_MAX {
            return Err(err());
        }
        match text {
            "catalog" => return Ok(DocId::Catalog),
            "calendar" => return Ok(DocId::Calendar),
            "registry" => return Ok(DocId::Registry),
            _ => {}
        }
        if let Some(code) = text.strip_prefix(DOSSIER_DOC_PREFIX) {
            return DossierCode::parse(code)
                .map(DocId::Dossier)
                .map_err(|_| err());
        }
        for (prefix, make) in [
            ("ratings/", DocId::Ratings as fn(UnitCode, u32) -> DocId),
            ("log/", DocId::Log),
        ] {
            if let Some(rest) = text.strip_prefix(prefix) {
                let (unit, day) = rest.split_once('/').ok_or_else(err)?;
                let unit = UnitCode::new(unit).map_err(|_| err())?;
                if day.len() != 8 || !day.bytes().all(|b| b.is_ascii_digit()) {
                    return Err(err());
                }
                let day: u32 = day.parse().map_err(|_| err())?;
                crate::timestamp::date_from_key(day).ok_or_else(err)?;
                return Ok(make(unit, day));
            }
        }
        Err(err())
    }
}

impl fmt::Display for DocId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DocId::Dossier(code) => write!(f, "{DOSSIER_DOC_PREFIX}{code}"),
            DocId::Ratings(unit, day) => write!(f, "ratings/{unit}/{day:08}"),
            DocId::Log(unit, day) => write!(f, "log/{unit}/{day:08}"),
            DocId::Catalog => f.write_str("catalog"),
            DocId::Calendar => f.write_str("calendar"),
            DocId::Registry => f.write_str("registry"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::date;

    #[test]
    fn dossier_code_matches_circular_01_2018() {
        // Why: the code is printed on slips and read back from QR codes; its shape is fixed by law.
        let unit = UnitCode::new("000.00.12.H12").unwrap();
        let code = DossierCode::new(&unit, date!(2023 - 11 - 16), 1).unwrap();
        assert_eq!(code.as_str(), "000.00.12.H12-231116-0001");
        let parsed = DossierCode::parse("000.00.12.H12-231116-0001").unwrap();
        assert_eq!(parsed, code);
        assert_eq!(parsed.unit(), unit);
        assert_eq!(parsed.date(), Some(date!(2023 - 11 - 16)));
        assert_eq!(parsed.number(), 1);
    }

    #[test]
    fn malformed_codes_are_refused() {
        // Why: a code typed at the counter or scanned from a bad QR must fail clearly.
        for bad in [
            "",
            "abc",
            "X-231116-01",
            "X-231332-0001",
            "X-2311-0001",
            "a b-231116-0001",
            "X-231116-00a1",
        ] {
            assert!(DossierCode::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn doc_ids_round_trip() {
        // Why: the text form of a document id is covered by every signature.
        for text in [
            "catalog",
            "calendar",
            "registry",
            "dossier/X1-250101-0002",
            "ratings/X1/20250101",
            "log/X1/20250101",
        ] {
            assert_eq!(DocId::parse(text).unwrap().to_string(), text);
        }
        assert!(DocId::parse("ratings/X1/20251301").is_err());
        assert!(DocId::parse("log/X1/+2025010").is_err());
        assert!(DocId::parse("other").is_err());
    }
}
