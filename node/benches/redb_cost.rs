//! Benchmark: what a redb write transaction costs by the number of tables it touches, the
//! figure behind the store's design (each change is one transaction at the node that makes it
//! and one at every node that imports it; see BENCHMARKS.md, "Network simulator").
//!
//! On redb's in-memory backend, `TABLES_COUNT` tables of `ROWS_COUNT` rows (random `u64` keys,
//! `VALUE_SIZE_BYTES`-byte values, about a province's month of dossiers), it times durable
//! transactions that insert one row into each of k tables, and ones that insert k rows into one
//! table at random places. Run with:
//!
//! ```text
//! cargo bench -p motcua-node --bench redb_cost
//! ```

use std::time::Instant;

use redb::{Database, TableDefinition, backends::InMemoryBackend};

const TABLES: [&str; 12] = [
    "t0", "t1", "t2", "t3", "t4", "t5", "t6", "t7", "t8", "t9", "t10", "t11",
];
/// Rows in each table before timing.
const ROWS_COUNT: u64 = 50_000;
/// Size of each value, in bytes (a signed change envelope is a few hundred).
const VALUE_SIZE_BYTES: usize = 300;
/// Transactions timed per configuration.
const TRANSACTIONS_COUNT: u64 = 5_000;

/// Spreads consecutive numbers over the key space, as hashes and dossier codes are.
fn scatter(i: u64) -> u64 {
    i.wrapping_mul(0x9E37_79B9_7F4A_7C15)
}

fn table(name: &str) -> TableDefinition<'_, u64, &'static [u8]> {
    TableDefinition::new(name)
}

#[allow(clippy::disallowed_methods)] // a benchmark measures wall-clock time
fn main() {
    let db = Database::builder()
        .create_with_backend(InMemoryBackend::new())
        .expect("in-memory database");
    let value = vec![7u8; VALUE_SIZE_BYTES];
    for batch in 0..ROWS_COUNT / 1000 {
        let tx = db.begin_write().expect("write");
        for name in TABLES {
            let mut t = tx.open_table(table(name)).expect("table");
            for i in 0..1000 {
                t.insert(scatter(batch * 1000 + i), value.as_slice())
                    .expect("insert");
            }
        }
        tx.commit().expect("commit");
    }
    println!(
        "{} tables of {ROWS_COUNT} rows, {VALUE_SIZE_BYTES}-byte values; µs per durable transaction",
        TABLES.len()
    );
    println!("  k | one row in each of k tables | k rows in one table");
    let mut next = ROWS_COUNT;
    for k in [0usize, 1, 2, 4, 8, 12] {
        let started = Instant::now();
        for _ in 0..TRANSACTIONS_COUNT {
            let tx = db.begin_write().expect("write");
            for name in &TABLES[..k] {
                next += 1;
                tx.open_table(table(name))
                    .expect("table")
                    .insert(scatter(next), value.as_slice())
                    .expect("insert");
            }
            tx.commit().expect("commit");
        }
        let spread = started.elapsed().as_secs_f64() / TRANSACTIONS_COUNT as f64 * 1e6;
        let started = Instant::now();
        for _ in 0..TRANSACTIONS_COUNT {
            let tx = db.begin_write().expect("write");
            {
                let mut t = tx.open_table(table(TABLES[0])).expect("table");
                for _ in 0..k {
                    next += 1;
                    t.insert(scatter(next), value.as_slice()).expect("insert");
                }
            }
            tx.commit().expect("commit");
        }
        let one = started.elapsed().as_secs_f64() / TRANSACTIONS_COUNT as f64 * 1e6;
        println!("{k:3} | {spread:27.1} | {one:19.1}");
    }
}
