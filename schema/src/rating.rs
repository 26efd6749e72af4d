//! Citizens' satisfaction ratings (đánh giá mức độ hài lòng), taken at the counter's tablet.
//!
//! A rating names the unit, optionally the official who served and the dossier, a score of three
//! levels, and optionally any of the nine national criteria (each worth 2 points in the national
//! evaluation). Ratings live in one document per unit per local day, one key per rating, so that
//! concurrent ratings merge without conflict.

use serde::{Deserialize, Serialize};

use crate::ids::{DossierCode, UnitCode};
use crate::limits::{
    RATING_CRITERIA_COUNT_MAX, SHORT_ID_SIZE_CHARS_MAX, TEXT_FIELD_SIZE_CHARS_MAX,
};
use crate::timestamp::Timestamp;

/// The three levels of satisfaction.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Score {
    /// Hài lòng.
    Satisfied,
    /// Bình thường.
    Neutral,
    /// Không hài lòng.
    Dissatisfied,
}

impl Score {
    /// All scores in report order.
    pub const ALL: [Score; 3] = [Score::Satisfied, Score::Neutral, Score::Dissatisfied];

    /// The Vietnamese label.
    pub fn label_vi(self) -> &'static str {
        match self {
            Score::Satisfied => "Hài lòng",
            Score::Neutral => "Bình thường",
            Score::Dissatisfied => "Không hài lòng",
        }
    }
}

/// The nine criteria of the national evaluation of service quality.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Criterion {
    /// Total time against the legal deadline.
    TotalTime,
    /// Time at each agency.
    TimePerAgency,
    /// Number of contacts needed.
    Contacts,
    /// Number of agencies contacted.
    Agencies,
    /// Done at the one-stop counter.
    OneStop,
    /// Publicity of the procedure.
    Publicity,
    /// Officials' attitude.
    Attitude,
    /// Handling of feedback.
    Feedback,
    /// Online service quality.
    OnlineQuality,
}

impl Criterion {
    /// The Vietnamese label.
    pub fn label_vi(self) -> &'static str {
        match self {
            Criterion::TotalTime => "Tổng thời gian giải quyết so với quy định",
            Criterion::TimePerAgency => "Thời gian tại từng cơ quan",
            Criterion::Contacts => "Số lần phải liên hệ",
            Criterion::Agencies => "Số cơ quan phải liên hệ",
            Criterion::OneStop => "Thực hiện tại bộ phận một cửa",
            Criterion::Publicity => "Công khai thủ tục hành chính",
            Criterion::Attitude => "Thái độ của công chức",
            Criterion::Feedback => "Tiếp nhận, xử lý phản ánh",
            Criterion::OnlineQuality => "Chất lượng dịch vụ trực tuyến",
        }
    }
}

/// One rating.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Rating {
    /// Unique id allocated by the recording node (`<unit>-<YYMMDD>-R<NNNN>-<epoch hex>`, the
    /// last part from the recording process so that a restored node never reuses an id).
    pub id: String,
    /// The unit rated.
    pub unit: UnitCode,
    /// The official who served, if chosen.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub official: Option<String>,
    /// The dossier, if given.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dossier: Option<DossierCode>,
    /// The score.
    pub score: Score,
    /// Criteria the citizen marked as met.
    #[serde(default)]
    pub criteria: Vec<Criterion>,
    /// Free comment.
    #[serde(default)]
    pub comment: String,
    /// When, by the recording node's clock.
    pub at: Timestamp,
    /// The tablet or machine that took it.
    #[serde(default)]
    pub device: String,
}

/// Why a rating was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RatingError {
    /// A field is over its bound.
    #[error("field {0} is too long")]
    TooLong(&'static str),
    /// The same criterion is named twice, or too many.
    #[error("criteria must be distinct, at most {RATING_CRITERIA_COUNT_MAX}")]
    Criteria,
}

impl Rating {
    /// Checks bounds.
    pub fn validate(&self) -> Result<(), RatingError> {
        if self.official.as_deref().unwrap_or("").chars().count() > SHORT_ID_SIZE_CHARS_MAX {
            return Err(RatingError::TooLong("official"));
        }
        if self.device.chars().count() > SHORT_ID_SIZE_CHARS_MAX {
            return Err(RatingError::TooLong("device"));
        }
        if self.comment.chars().count() > TEXT_FIELD_SIZE_CHARS_MAX {
            return Err(RatingError::TooLong("comment"));
        }
        let mut seen = self.criteria.clone();
        seen.sort();
        seen.dedup();
        if seen.len() != self.criteria.len() || seen.len() > RATING_CRITERIA_COUNT_MAX {
            return Err(RatingError::Criteria);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn duplicate_criteria_are_refused() {
        // Why: a criterion counted twice would inflate the national evaluation.
        let mut r = Rating {
            id: "X1-250101-R0001".into(),
            unit: UnitCode::new("X1").unwrap(),
            official: Some("cb1".into()),
            dossier: None,
            score: Score::Satisfied,
            criteria: vec![Criterion::Attitude, Criterion::OneStop],
            comment: String::new(),
            at: Timestamp(0),
            device: "tablet-1".into(),
        };
        r.validate().unwrap();
        r.criteria.push(Criterion::Attitude);
        assert_eq!(r.validate(), Err(RatingError::Criteria));
    }
}
