//! Reads the web pages need beyond the JSON API's: the counter's list of what one unit received
//! between two instants, newest first, straight from the `(unit, received, code)` index.
//!
//! Kept apart from `store/mod.rs` so the web room can add reads without touching the store's
//! core; every method here only reads, on its own read transaction.

use motcua_schema::summary::DossierSummary;
use motcua_schema::timestamp::Timestamp;
use redb::ReadableDatabase;

use super::tables::{DOC_ROWS, IDX_UNIT};
use super::{LIST_ROWS_COUNT_MAX, Store, StoreError, stored_summary};

impl Store {
    /// Dossiers of `unit` received in `[from, to)`, newest first, at most `limit`
    /// (and never more than [`LIST_ROWS_COUNT_MAX`]).
    pub fn received_between(
        &self,
        unit: &str,
        from: Timestamp,
        to: Timestamp,
        limit: usize,
    ) -> Result<Vec<DossierSummary>, StoreError> {
        let limit = limit.clamp(1, LIST_ROWS_COUNT_MAX);
        let tx = self.db.begin_read()?;
        let idx = tx.open_table(IDX_UNIT)?;
        let rows = tx.open_table(DOC_ROWS)?;
        let mut out = Vec::new();
        for row in idx.range((unit, from.0, "")..(unit, to.0, ""))?.rev() {
            let (k, _) = row?;
            let code = k.value().2;
            if let Some(s) = stored_summary(&rows, &motcua_schema::ids::dossier_doc_text(code))? {
                out.push(s);
            }
            if out.len() >= limit {
                break;
            }
        }
        Ok(out)
    }
}
