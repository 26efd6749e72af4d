//! Migrations of a store written by an older motcua, run when the store is opened, inside the
//! opening transaction: a store is migrated whole or not at all.
//!
//! **Format 1 → 2.** `doc-changes-1` (document id → change hashes, a multimap) and `actor-seq-1`
//! ((actor, document id, seq) → hash) became one table, `doc-changes-2` ((document id, actor,
//! seq) → hash). The two held the same changes, and every change wrote a row in each at
//! unrelated places of two trees; the simulator's benchmark spent about a seventh of its time
//! there. `actor-seq-1` has every field of the new key, so its rows are re-keyed. Both were
//! written by one function in one transaction, so they hold as many rows; if they do not, every
//! change `doc-changes-1` lists is indexed again from its stored envelope.
//!
//! **Format 2 → 3.** `docs-1` (document id → stored state) and `doc-changes-2` became one table,
//! `doc-rows-3`, keyed (document id, actor, seq): a document's state at (document, no actor, 0),
//! its change rows after it. Every change wrote its document's new state and its own row at
//! unrelated places of two trees; side by side they share a path (BENCHMARKS.md (h)). Rows are
//! copied as they are.
//!
//! **Format 3 → 4.** `dossiers-1` (dossier code → JSON summary) moved into `doc-rows-3`, at
//! (the dossier's document id, no actor, 1), beside the document's state: every change to a
//! dossier wrote its new state and its new summary at unrelated places of two trees
//! (BENCHMARKS.md (i)). Summaries are copied as they are.

use motcua_schema::signed::SignedChange;
use redb::{
    MultimapTableDefinition, ReadableMultimapTable, ReadableTable, ReadableTableMetadata,
    TableDefinition, WriteTransaction,
};

use super::tables::{CHANGES, DOC_ROWS, doc_state_key, doc_summary_key};
use super::{StoreError, corrupt};

/// Format 1's index of each document's changes.
const DOC_CHANGES_V1: MultimapTableDefinition<'_, &str, &[u8; 32]> =
    MultimapTableDefinition::new("doc-changes-1");

/// Format 2's index of each document's changes (format 1's two merged).
const DOC_CHANGES_V2: TableDefinition<'_, (&str, &[u8], u64), &[u8; 32]> =
    TableDefinition::new("doc-changes-2");

/// Format 2's stored document states.
const DOCS_V2: TableDefinition<'_, &str, &[u8]> = TableDefinition::new("docs-1");

/// Format 3's dossier summaries, by code.
const DOSSIERS_V3: TableDefinition<'_, &str, &str> = TableDefinition::new("dossiers-1");

/// Format 1's index of changes by (actor, document, seq).
const ACTOR_SEQ_V1: TableDefinition<'_, (&[u8], &str, u64), &[u8; 32]> =
    TableDefinition::new("actor-seq-1");

/// Brings a store of format `from` to the current format inside `tx`.
pub(super) fn run(tx: &WriteTransaction, from: u32) -> Result<(), StoreError> {
    if from < 2 {
        tracing::info!(from, "migrating the store: merging its change indexes");
        merge_change_indexes(tx)?;
    }
    if from < 3 {
        tracing::info!(
            from,
            "migrating the store: keeping each document's rows together"
        );
        merge_doc_rows(tx)?;
    }
    if from < 4 {
        tracing::info!(
            from,
            "migrating the store: keeping each dossier's summary with its document"
        );
        move_summaries(tx)?;
    }
    Ok(())
}

fn move_summaries(tx: &WriteTransaction) -> Result<(), StoreError> {
    let mut summaries = 0u64;
    {
        let mut rows = tx.open_table(DOC_ROWS)?;
        for row in tx.open_table(DOSSIERS_V3)?.iter()? {
            let (code, json) = row?;
            let doc = motcua_schema::ids::dossier_doc_text(code.value());
            rows.insert(doc_summary_key(&doc), json.value().as_bytes())?;
            summaries += 1;
        }
    }
    tx.delete_table(DOSSIERS_V3)?;
    tracing::info!(summaries, "store migrated: dossier summaries moved");
    Ok(())
}

fn merge_doc_rows(tx: &WriteTransaction) -> Result<(), StoreError> {
    let (mut changes, mut states) = (0u64, 0u64);
    {
        let mut new = tx.open_table(DOC_ROWS)?;
        for row in tx.open_table(DOC_CHANGES_V2)?.iter()? {
            let (key, hash) = row?;
            new.insert(key.value(), hash.value().as_slice())?;
            changes += 1;
        }
        for row in tx.open_table(DOCS_V2)?.iter()? {
            let (doc, bytes) = row?;
            new.insert(doc_state_key(doc.value()), bytes.value())?;
            states += 1;
        }
    }
    tx.delete_table(DOC_CHANGES_V2)?;
    tx.delete_table(DOCS_V2)?;
    tracing::info!(
        changes,
        states,
        "store migrated: change rows and document states moved"
    );
    Ok(())
}

fn merge_change_indexes(tx: &WriteTransaction) -> Result<(), StoreError> {
    {
        let mut new = tx.open_table(DOC_CHANGES_V2)?;
        let old = tx.open_table(ACTOR_SEQ_V1)?;
        for row in old.iter()? {
            let (key, hash) = row?;
            let (actor, doc, seq) = key.value();
            new.insert((doc, actor, seq), hash.value())?;
        }
        let listed = tx.open_multimap_table(DOC_CHANGES_V1)?;
        if listed.len()? != old.len()? {
            // The two disagree (they should not): every listed change is indexed again from its
            // envelope; a row already there is written again with the same value.
            let changes = tx.open_table(CHANGES)?;
            for row in listed.iter()? {
                let (doc, hashes) = row?;
                for hash in hashes {
                    let hash = *hash?.value();
                    let Some(envelope) = changes.get(&hash)? else {
                        continue;
                    };
                    let signed = SignedChange::decode(envelope.value())
                        .map_err(|e| corrupt("stored change", e))?;
                    let actor = signed.actor().to_bytes().to_vec();
                    new.insert((doc.value(), actor.as_slice(), signed.seq()), &hash)?;
                }
            }
        }
    }
    tx.delete_table(ACTOR_SEQ_V1)?;
    tx.delete_multimap_table(DOC_CHANGES_V1)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::Store;
    use crate::store::tables::{META, STORE_FORMAT_VERSION};
    use motcua_schema::ids::DocId;
    use redb::{Database, MultimapTableHandle, ReadableDatabase, TableHandle};

    fn in_memory_db() -> Database {
        Database::builder()
            .create_with_backend(redb::backends::InMemoryBackend::new())
            .unwrap()
    }

    /// The write transaction that makes an empty store one of `format`; the caller adds rows.
    fn begin_format(db: &Database, format: u32) -> redb::WriteTransaction {
        let tx = db.begin_write().unwrap();
        {
            let mut meta = tx.open_table(META).unwrap();
            meta.insert("format", format.to_be_bytes().as_slice())
                .unwrap();
            meta.insert("store_id", [7u8; 16].as_slice()).unwrap();
        }
        tx
    }

    /// The names of every table of the store, multimap or not.
    fn table_names(tx: &redb::ReadTransaction) -> Vec<String> {
        tx.list_tables()
            .unwrap()
            .map(|t| t.name().to_owned())
            .chain(
                tx.list_multimap_tables()
                    .unwrap()
                    .map(|t| t.name().to_owned()),
            )
            .collect()
    }

    #[test]
    fn a_format_1_store_opens_with_its_change_indexes_merged() {
        // Why: a node upgraded in place must keep every change's index row (equivocation
        // detection and each document's history read them), in the new table, and lose the
        // old tables, whose rows would otherwise be kept forever.
        let db = in_memory_db();
        let doc = "dossier/000.00.01.H99-251124-0001";
        let tx = begin_format(&db, 1);
        {
            let mut seqs = tx.open_table(ACTOR_SEQ_V1).unwrap();
            let mut listed = tx.open_multimap_table(DOC_CHANGES_V1).unwrap();
            let mut changes = tx.open_table(CHANGES).unwrap();
            for seq in 1..=3u64 {
                let hash = [seq as u8; 32];
                seqs.insert((&[9u8; 16][..], doc, seq), &hash).unwrap();
                listed.insert(doc, &hash).unwrap();
                changes.insert(&hash, [seq as u8; 4].as_slice()).unwrap();
            }
        }
        tx.commit().unwrap();

        let store = Store::init(db).unwrap();
        let tx = store.db().begin_read().unwrap();
        let format = tx.open_table(META).unwrap().get("format").unwrap().unwrap();
        assert_eq!(format.value(), STORE_FORMAT_VERSION.to_be_bytes());
        let names = table_names(&tx);
        assert!(names.iter().any(|n| n == "doc-rows-3"), "{names:?}");
        assert!(
            !names
                .iter()
                .any(|n| n == "actor-seq-1" || n == "doc-changes-1" || n == "doc-changes-2"),
            "{names:?}"
        );
        let rows = tx.open_table(DOC_ROWS).unwrap();
        for seq in 1..=3u64 {
            let hash = rows.get((doc, &[9u8; 16][..], seq)).unwrap().unwrap();
            assert_eq!(hash.value(), [seq as u8; 32]);
        }
        let id = DocId::parse(doc).unwrap();
        let envelopes = store.doc_changes(&id).unwrap();
        assert_eq!(envelopes.len(), 3);
    }

    #[test]
    fn a_format_2_store_opens_with_each_documents_rows_together() {
        // Why: a node upgraded in place must keep every document's state (every read of a
        // document loads it) and every change's row (equivocation detection, a document's
        // history), now side by side in one table, and lose the two old tables.
        let db = in_memory_db();
        let mut doc = automerge::Automerge::new();
        let mut tx = doc.transaction();
        automerge::transaction::Transactable::put(&mut tx, automerge::ROOT, "k", 1).unwrap();
        tx.commit();
        let id = "dossier/000.00.01.H99-251124-0001";
        let saved = doc.save();
        let tx = begin_format(&db, 2);
        {
            let mut rows = tx.open_table(DOC_CHANGES_V2).unwrap();
            let mut changes = tx.open_table(CHANGES).unwrap();
            for seq in 1..=2u64 {
                let hash = [seq as u8; 32];
                rows.insert((id, &[9u8; 16][..], seq), &hash).unwrap();
                changes.insert(&hash, [seq as u8; 4].as_slice()).unwrap();
            }
            tx.open_table(DOCS_V2)
                .unwrap()
                .insert(id, saved.as_slice())
                .unwrap();
        }
        tx.commit().unwrap();

        let store = Store::init(db).unwrap();
        let doc_id = DocId::parse(id).unwrap();
        let loaded = store.load_doc(&doc_id).unwrap().expect("the state is kept");
        assert_eq!(loaded.get_heads(), doc.get_heads());
        assert_eq!(store.doc_changes(&doc_id).unwrap().len(), 2);
        let tx = store.db().begin_read().unwrap();
        let names = table_names(&tx);
        assert!(
            !names.iter().any(|n| n == "docs-1" || n == "doc-changes-2"),
            "{names:?}"
        );
        let rows = tx.open_table(DOC_ROWS).unwrap();
        assert_eq!(rows.len().unwrap(), 3, "one state row and two change rows");
    }

    #[test]
    fn a_format_3_store_opens_with_each_summary_beside_its_document() {
        // Why: a node upgraded in place must keep every dossier's summary (lists, reports and
        // the scope of a commune's changes read it), now in the document's rows, its change rows
        // still found after it, and lose the old table.
        let db = in_memory_db();
        let code = "000.00.01.H99-251124-0001";
        let id = format!("dossier/{code}");
        // Summaries are copied byte for byte; what they say does not matter here.
        let summary = r#"{"code":"000.00.01.H99-251124-0001","note":"bản tóm tắt"}"#;
        let tx = begin_format(&db, 3);
        {
            tx.open_table(DOSSIERS_V3)
                .unwrap()
                .insert(code, summary)
                .unwrap();
            let mut rows = tx.open_table(DOC_ROWS).unwrap();
            let mut changes = tx.open_table(CHANGES).unwrap();
            rows.insert(doc_state_key(&id), [1u8; 8].as_slice())
                .unwrap();
            for seq in 1..=2u64 {
                let hash = [seq as u8; 32];
                rows.insert((id.as_str(), &[9u8; 16][..], seq), hash.as_slice())
                    .unwrap();
                changes.insert(&hash, [seq as u8; 4].as_slice()).unwrap();
            }
        }
        tx.commit().unwrap();

        let store = Store::init(db).unwrap();
        let doc_id = DocId::parse(&id).unwrap();
        assert_eq!(store.doc_changes(&doc_id).unwrap().len(), 2);
        let tx = store.db().begin_read().unwrap();
        let rows = tx.open_table(DOC_ROWS).unwrap();
        let moved = rows.get(doc_summary_key(&id)).unwrap().unwrap();
        assert_eq!(moved.value(), summary.as_bytes());
        assert!(!table_names(&tx).iter().any(|n| n == "dossiers-1"));
        let format = tx.open_table(META).unwrap().get("format").unwrap().unwrap();
        assert_eq!(format.value(), 4u32.to_be_bytes());
    }
}
