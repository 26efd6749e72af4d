//! Real nodes for the crate's own tests: initialised in temporary directories as `motcua init`
//! does, with replication off, so a test moves records between them by bundle or by hand.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use ed25519_dalek::SigningKey;
use motcua_schema::dossier::{Applicant, Channel};
use motcua_schema::ids::UnitCode;
use motcua_schema::trust::{Role, SignedRecord};

use crate::commands::NewDossier;
use crate::config::{DataDir, SyncConfig};
use crate::runtime::Node;
use crate::setup::{ENROLMENT_BACKDATE_MS, InitOptions, Trust, enrolment, init};
use crate::writer::{Command, clock_now};

/// A temporary directory, removed when dropped.
pub(crate) struct Dir(pub(crate) PathBuf);

impl Drop for Dir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A fresh temporary directory named after `name`.
pub(crate) fn temp(name: &str) -> Dir {
    Dir(std::env::temp_dir().join(format!(
        "motcua-test-{name}-{}-{}",
        std::process::id(),
        crate::auth::random_secret()
    )))
}

/// A node of `unit` in `dir`, initialised as `motcua init` does, with sync off.
pub(crate) fn node(
    dir: &Path,
    unit: &str,
    role: Role,
    trust: Trust,
    key: Option<SigningKey>,
) -> Node {
    init(InitOptions {
        dir: DataDir::new(dir),
        unit: UnitCode::new(unit).unwrap(),
        unit_name: format!("Đơn vị {unit}"),
        role,
        listen: SocketAddr::from(([127, 0, 0, 1], 0)),
        trust,
        admin_password: "mat-khau-kiem-toan".into(),
        key,
        sync: SyncConfig {
            enabled: false,
            ..SyncConfig::default()
        },
    })
    .unwrap()
}

/// Receives dossier number `n` at the counter of `node`.
pub(crate) fn receive(node: &Node, n: u64) {
    node.writer
        .submit_blocking(
            Command::CreateDossier {
                req: NewDossier {
                    procedure_code: "1.004873".into(),
                    channel: Channel::Direct,
                    applicant: Applicant {
                        name: format!("Người thử {n}"),
                        id_number: format!("{:012}", 1_000 + n),
                        phone: String::new(),
                        address: String::new(),
                    },
                    digitised: false,
                    registered_only: false,
                },
                by: "tiepnhan".into(),
            },
            None,
        )
        .unwrap();
}

/// A commune node for unit X1 with `key`, enrolled by the province's root.
pub(crate) fn commune(
    dir: &Path,
    root: &SigningKey,
    key: &SigningKey,
    province_records: Vec<SignedRecord>,
) -> (Node, SignedRecord) {
    let now = clock_now();
    let enrol = enrolment(
        root,
        &key.verifying_key(),
        &UnitCode::new("X1").unwrap(),
        "Xã X1",
        Role::Commune,
        now.plus_millis(-ENROLMENT_BACKDATE_MS),
        now,
    );
    let mut records = province_records;
    records.push(enrol.clone());
    let trust = Trust::Existing {
        root: root.verifying_key(),
        records,
    };
    (
        node(dir, "X1", Role::Commune, trust, Some(key.clone())),
        enrol,
    )
}
