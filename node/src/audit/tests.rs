//! Witnessing between real nodes: a commune's checkpoints reach the province through the
//! ordinary change flow (here a bundle), the province keeps them, and a commune that later
//! presents a different history is caught by the province's archive.

use std::path::Path;

use motcua_schema::audit::archive;
use motcua_schema::audit::report::Report;
use motcua_schema::audit::sig::{KeyCache, Mode};
use motcua_schema::audit::verify::{Options, check_signatures, verify};
use motcua_schema::trust::Role;

use super::export::{ExportOptions, export};
use crate::config::{generate_key, read_key};
use crate::runtime::Node;
use crate::setup::{Trust, import_records};
use crate::test_nodes::{commune, node, receive, temp};
use crate::writer::Command;

fn archive_of(node: &Node, dir: &Path) -> Vec<u8> {
    let path = dir.join("archive.bin");
    export(node, &path, &ExportOptions::default()).unwrap();
    std::fs::read(path).unwrap()
}

fn check(bytes: &[u8], options: &Options) -> Report {
    let mut cache = KeyCache::new();
    verify(bytes, options, &mut |i| {
        check_signatures(i, &mut cache, Mode::Batch)
    })
}

#[test]
fn the_province_witnesses_a_commune_and_catches_its_rewritten_history() {
    // Why: witnessing is only worth something if a node that drops or rewrites history after a
    // peer kept its checkpoint is caught, with nothing but the two archives.
    let (pdir, xdir, ydir) = (temp("p"), temp("x"), temp("y"));
    let province = node(&pdir.0, "P", Role::Province, Trust::NewRoot, None);
    let root = read_key(&pdir.0.join("root.key")).unwrap();
    let province_records = province.shared.store.trust_records().unwrap();
    let x1_key = generate_key();
    let (x1, enrol) = commune(&xdir.0, &root, &x1_key, province_records.clone());
    import_records(&province, vec![enrol]).unwrap();
    for n in 0..3 {
        receive(&x1, n);
    }
    x1.writer
        .submit_blocking(Command::AuditCheckpoint { seal: false }, None)
        .unwrap();
    // The commune's records, its checkpoint among them, travel to the province by bundle.
    let bundle = xdir.0.join("to-province.bundle");
    let province_key = hex::encode(province.shared.identity.key.verifying_key().as_bytes());
    crate::replication::bundle::export(&x1, &province_key, true, &bundle).unwrap();
    crate::replication::bundle::import(&province, &bundle).unwrap();

    let commune_archive = archive_of(&x1, &xdir.0);
    let r = check(&commune_archive, &Options::default());
    assert!(r.ok, "{}", r.to_text());
    assert_eq!(r.units["X1"].kinds["dossier"], 3);
    let province_archive = archive_of(&province, &pdir.0);
    let r = check(&province_archive, &Options::default());
    assert!(r.ok, "{}", r.to_text());
    assert_eq!(r.checks.witnessed_logs, 1, "the province witnessed X1");
    assert!(
        r.units["X1"].kinds.contains_key("log"),
        "X1's checkpoint is one of the province's records"
    );

    // The commune's node is rebuilt with the same key but another history (lost disk, restored
    // from nothing, or a deliberate rewrite). Alone, its archive is consistent …
    let (x1b, _) = commune(&ydir.0, &root, &x1_key, province_records);
    for n in 10..12 {
        receive(&x1b, n);
    }
    let rewritten = archive_of(&x1b, &ydir.0);
    assert!(check(&rewritten, &Options::default()).ok);
    // … but not with the checkpoints the province witnessed.
    let p = archive::parse(&province_archive);
    let options = Options {
        witnesses: p.witness.logs.clone(),
        ..Options::default()
    };
    let r = check(&rewritten, &options);
    assert!(r.has_failure("log_fork"), "{}", r.to_text());
}
