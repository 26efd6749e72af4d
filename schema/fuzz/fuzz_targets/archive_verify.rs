//! Fuzzes the whole audit verifier on arbitrary bytes: an archive comes from whoever exported
//! it, so verifying one must never panic, and must cost in proportion to its size.
#![no_main]

use libfuzzer_sys::fuzz_target;
use motcua_schema::audit::sig::{KeyCache, Mode};
use motcua_schema::audit::verify::{Options, check_signatures, verify};

fuzz_target!(|data: &[u8]| {
    let mut cache = KeyCache::new();
    let report = verify(data, &Options::default(), &mut |inputs| {
        check_signatures(inputs, &mut cache, Mode::Batch)
    });
    let _ = report.to_text();
    let _ = motcua_schema::audit::show::dossier_history(data, "X1-250101-0001");
});
