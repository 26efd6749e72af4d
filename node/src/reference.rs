//! The province's reference data a node computes with: the procedure catalog and the
//! working-day calendar.
//!
//! Both are replicated documents written by the province (`catalog`, `calendar`). Until a node
//! holds the province's versions (a commune before its first sync) it uses the sample data
//! embedded in `motcua-schema`, and says so in its status, so intake works from the first minute.

use std::sync::Arc;

use motcua_schema::calendar::Calendar;
use motcua_schema::catalog::Catalog;
use motcua_schema::ids::DocId;
use motcua_schema::layout::versioned;
use motcua_schema::sample;
use serde::Serialize;

use crate::store::{Store, StoreError};

/// The catalog and calendar in force on this node.
#[derive(Debug, Clone)]
pub struct Reference {
    /// The newest catalog version.
    pub catalog: Arc<Catalog>,
    /// Every calendar version (a due date uses the version in force on the day received).
    pub calendar: Arc<Calendar>,
    /// Whether the catalog is the embedded sample rather than the province's document.
    pub catalog_embedded: bool,
    /// Whether the calendar is the embedded sample rather than the province's document.
    pub calendar_embedded: bool,
}

/// What the status shows about the reference data.
#[derive(Debug, Clone, Serialize)]
pub struct ReferenceInfo {
    /// Catalog version.
    pub version: u32,
    /// Marked as sample data.
    pub sample: bool,
    /// Taken from the binary, not from the province's document.
    pub embedded: bool,
}

impl Reference {
    /// Loads the newest versions from the store, falling back to the embedded samples.
    pub fn load(store: &Store) -> Result<Reference, StoreError> {
        let catalog = match store.load_doc(&DocId::Catalog)? {
            Some(doc) => versioned::read_all(&doc, "catalog").ok().and_then(|all| {
                all.into_iter()
                    .filter_map(|(_, t)| serde_json::from_str::<Catalog>(&t).ok())
                    .max_by_key(|c| c.version)
            }),
            None => None,
        };
        let calendar = match store.load_doc(&DocId::Calendar)? {
            Some(doc) => versioned::read_all(&doc, "calendar").ok().map(|all| {
                let mut versions = Vec::new();
                for (_, text) in all {
                    if let Ok(c) = serde_json::from_str::<Calendar>(&text) {
                        versions.extend(c.versions);
                    }
                }
                Calendar { versions }
            }),
            None => None,
        }
        .filter(|c| !c.versions.is_empty());
        Ok(Reference {
            catalog_embedded: catalog.is_none(),
            calendar_embedded: calendar.is_none(),
            catalog: Arc::new(catalog.unwrap_or_else(sample::sample_catalog)),
            calendar: Arc::new(calendar.unwrap_or_else(sample::sample_calendar)),
        })
    }

    /// Status lines for the catalog and the calendar.
    pub fn info(&self) -> (ReferenceInfo, ReferenceInfo) {
        let newest = self
            .calendar
            .versions
            .iter()
            .max_by_key(|v| (v.effective_from, v.version));
        (
            ReferenceInfo {
                version: self.catalog.version,
                sample: self.catalog.sample,
                embedded: self.catalog_embedded,
            },
            ReferenceInfo {
                version: newest.map_or(0, |v| v.version),
                sample: newest.is_some_and(|v| v.sample),
                embedded: self.calendar_embedded,
            },
        )
    }
}
