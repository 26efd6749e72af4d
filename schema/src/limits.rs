//! Every bound the domain and the wire formats enforce, in one place.
//!
//! Named after TigerBeetle's rule: put a limit on everything and say its unit in its name.
//! Going over a bound is a typed error at the place that checks it, never a panic.

/// Largest Automerge change (raw bytes) a signed envelope may carry.
pub const CHANGE_SIZE_BYTES_MAX: usize = 256 * 1024;
/// Largest document id, in bytes of UTF-8.
pub const DOC_ID_SIZE_BYTES_MAX: usize = 128;
/// Largest unit code (e.g. `000.00.12.H12`), in bytes.
pub const UNIT_CODE_SIZE_BYTES_MAX: usize = 32;
/// Largest free-text field in a command (names, addresses, notes), in characters.
pub const TEXT_FIELD_SIZE_CHARS_MAX: usize = 500;
/// Largest short identifier (procedure code, official id, device id), in characters.
pub const SHORT_ID_SIZE_CHARS_MAX: usize = 64;
/// Most events one dossier may accumulate; a dossier needs far fewer in practice.
pub const DOSSIER_EVENTS_COUNT_MAX: usize = 1_000;
/// Most dossiers one unit may number in one day (the `NNNN` part of the code).
pub const DOSSIERS_PER_UNIT_DAY_COUNT_MAX: u32 = 99_999;
/// Most criteria one rating can carry (the national evaluation has nine).
pub const RATING_CRITERIA_COUNT_MAX: usize = 9;
/// Most procedures in one catalog.
pub const CATALOG_PROCEDURES_COUNT_MAX: usize = 5_000;
/// Most records (enrolments and revocations) in one trust registry.
pub const REGISTRY_RECORDS_COUNT_MAX: usize = 10_000;
/// Most days a report period may span.
pub const REPORT_PERIOD_DAYS_MAX: i64 = 3_700;
