//! `motcua demo`: a province and three communes on this machine, with a month of sample work.
//!
//! Everything is real: each node has its own data directory, key, store and HTTP server, all
//! enrolled by one demo root key. The sample history is made through the same commands the
//! counter uses, run at past instants so that reports have a month of figures.

use std::net::{Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::sync::Arc;

use anyhow::{Context, Result};
use motcua_schema::dossier::{Applicant, Channel, ReturnMethod};
use motcua_schema::ids::UnitCode;
use motcua_schema::rating::{Criterion, Score};
use motcua_schema::timestamp::Timestamp;
use motcua_schema::trust::{Role, SignedRecord};

use crate::auth::StaffRole;
use crate::commands::{EventRequest, NewDossier, NewRating};
use crate::config::{DataDir, PeerConfig, SyncConfig, generate_key, write_key};
use crate::replication::Replication;
use crate::runtime::Node;
use crate::setup::{InitOptions, Trust, enrolment, init};
use crate::store::Store;
use crate::writer::{Command, Reply, clock_now};

/// Password of every demo account (printed at start).
pub const DEMO_PASSWORD: &str = "motcua-demo";
/// Days of sample history.
pub const DEMO_HISTORY_DAYS: i64 = 30;

struct DemoUnit {
    code: &'static str,
    name: &'static str,
    role: Role,
    dossiers_per_day: u32,
}

const UNITS: [DemoUnit; 4] = [
    DemoUnit {
        code: "000.00.00.H99",
        name: "Trung tâm Phục vụ hành chính công tỉnh (mẫu)",
        role: Role::Province,
        dossiers_per_day: 0,
    },
    DemoUnit {
        code: "000.01.01.H99",
        name: "UBND xã An Bình (mẫu)",
        role: Role::Commune,
        dossiers_per_day: 8,
    },
    DemoUnit {
        code: "000.01.02.H99",
        name: "UBND xã Tân Phú (mẫu)",
        role: Role::Commune,
        dossiers_per_day: 5,
    },
    DemoUnit {
        code: "000.01.03.H99",
        name: "UBND phường Hòa Thuận (mẫu)",
        role: Role::Commune,
        dossiers_per_day: 12,
    },
];

/// A small deterministic generator for sample data (xorshift64*): the demo is the same every time.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }

    fn chance(&mut self, percent: u64) -> bool {
        self.below(100) < percent
    }
}

const FAMILY: [&str; 8] = [
    "Nguyễn", "Trần", "Lê", "Phạm", "Hoàng", "Huỳnh", "Võ", "Đặng",
];
const MIDDLE: [&str; 5] = ["Văn", "Thị", "Minh", "Thu", "Đức"];
const GIVEN: [&str; 8] = ["An", "Bình", "Cường", "Dung", "Hà", "Lan", "Nam", "Tâm"];

/// Offset of the replication (UDP) ports from the HTTP ports.
pub const DEMO_SYNC_PORT_OFFSET: u16 = 100;

/// Runs the demo: creates and seeds `dir` the first time (reuses it after), wires the four
/// nodes into one replicating network on loopback, serves them, and takes commands on standard
/// input to cut and restore a commune's link.
pub async fn run(dir: PathBuf, base_port: u16) -> Result<()> {
    let dir2 = dir.clone();
    let mut nodes = tokio::task::spawn_blocking(move || open_or_create(&dir2))
        .await
        .context("demo setup")??;
    wire_network(&mut nodes, base_port)?;
    println!();
    println!(
        "motcua demo: một tỉnh và ba xã trên máy này (dữ liệu mẫu), thư mục {}",
        dir.display()
    );
    println!(
        "Tài khoản: admin (quản trị), tiepnhan (tiếp nhận), xuly (lãnh đạo); mật khẩu {DEMO_PASSWORD}"
    );
    let mut tasks = Vec::new();
    let mut links = Vec::new();
    let mut stores = Vec::new();
    let province_key = *nodes[0].shared.identity.key.verifying_key().as_bytes();
    for (i, (unit, mut node)) in UNITS.iter().zip(nodes).enumerate() {
        let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, base_port + i as u16));
        println!("  {:<48} http://{addr}/", unit.name);
        node.start_replication()
            .await
            .with_context(|| format!("starting replication of {}", unit.name))?;
        links.push(node.replication.clone());
        stores.push(node.shared.store.clone());
        tasks.push(tokio::spawn(node.serve(Some(addr))));
    }
    println!();
    println!("Các xã đồng bộ với tỉnh qua iroh trên máy này. Gõ lệnh rồi Enter:");
    println!(
        "  ngat 1|2|3   ngắt kết nối của xã 1, 2 hoặc 3 (xã vẫn tiếp nhận hồ sơ khi mất mạng)"
    );
    println!("  noi 1|2|3    nối lại: dữ liệu tự đồng bộ");
    println!("  xem          số hồ sơ tại từng nút");
    println!("Nhấn Ctrl+C để dừng.");
    tokio::spawn(report_convergence(stores.clone()));
    tokio::spawn(commands(links, stores, province_key));
    for t in tasks {
        t.await.context("node task")??;
    }
    Ok(())
}

/// Gives every node its replication port and address book: each commune dials the province;
/// the province knows the communes by key (they dial it, as communes behind NAT would).
fn wire_network(nodes: &mut [Node], base_port: u16) -> Result<()> {
    let sync_addr = |i: usize| {
        SocketAddr::from((
            Ipv4Addr::LOCALHOST,
            base_port + DEMO_SYNC_PORT_OFFSET + i as u16,
        ))
    };
    let keys: Vec<String> = nodes
        .iter()
        .map(|n| hex::encode(n.shared.identity.key.verifying_key().as_bytes()))
        .collect();
    for (i, node) in nodes.iter_mut().enumerate() {
        node.config.sync.enabled = true;
        node.config.sync.listen = sync_addr(i);
        node.config.peers = if i == 0 {
            (1..UNITS.len())
                .map(|j| PeerConfig {
                    name: UNITS[j].name.to_owned(),
                    node_key: keys[j].clone(),
                    addrs: Vec::new(),
                })
                .collect()
        } else {
            vec![PeerConfig {
                name: UNITS[0].name.to_owned(),
                node_key: keys[0].clone(),
                addrs: vec![sync_addr(0)],
            }]
        };
        node.dir.save_config(&node.config)?;
    }
    Ok(())
}

fn dossier_counts(stores: &[Arc<Store>]) -> Vec<u64> {
    stores
        .iter()
        .map(|s| s.counts().map_or(0, |c| c.dossiers))
        .collect()
}

/// Prints the province's progress until it holds every commune's dossiers.
async fn report_convergence(stores: Vec<Arc<Store>>) {
    let mut last = u64::MAX;
    loop {
        tokio::time::sleep(std::time::Duration::from_millis(1000)).await;
        let s = stores.clone();
        let Ok(counts) = tokio::task::spawn_blocking(move || dossier_counts(&s)).await else {
            return;
        };
        let communes: u64 = counts[1..].iter().sum();
        if counts[0] != last {
            println!("Tỉnh đang giữ {}/{} hồ sơ của các xã", counts[0], communes);
            last = counts[0];
        }
        if counts[0] >= communes && communes > 0 {
            println!("Đã đồng bộ: tỉnh giữ đủ {} hồ sơ của ba xã.", counts[0]);
            return;
        }
    }
}

/// Reads demo commands from standard input.
async fn commands(
    links: Vec<Option<Replication>>,
    stores: Vec<Arc<Store>>,
    province_key: [u8; 32],
) {
    use tokio::io::AsyncBufReadExt;
    let mut lines = tokio::io::BufReader::new(tokio::io::stdin()).lines();
    while let Ok(Some(line)) = lines.next_line().await {
        let words: Vec<&str> = line.split_whitespace().collect();
        let commune = words
            .get(1)
            .and_then(|w| w.parse::<usize>().ok())
            .filter(|n| (1..UNITS.len()).contains(n));
        match (words.first().copied(), commune) {
            (Some("ngat"), Some(n)) | (Some("noi"), Some(n)) => {
                let enable = words[0] == "noi";
                if let Some(repl) = &links[n] {
                    repl.set_link(province_key, enable);
                }
                let verb = if enable {
                    "Đã nối lại"
                } else {
                    "Đã ngắt"
                };
                println!("{verb} kết nối của {}", UNITS[n].name);
                if enable {
                    tokio::spawn(report_convergence(stores.clone()));
                }
            }
            (Some("xem"), _) => {
                let s = stores.clone();
                if let Ok(counts) = tokio::task::spawn_blocking(move || dossier_counts(&s)).await {
                    for (unit, n) in UNITS.iter().zip(counts) {
                        println!("  {:<48} {n} hồ sơ", unit.name);
                    }
                }
            }
            _ => println!("Lệnh: ngat N, noi N (N = 1, 2, 3) hoặc xem"),
        }
    }
}

fn slug(code: &str) -> String {
    code.replace('.', "-")
}

fn open_or_create(dir: &std::path::Path) -> Result<Vec<Node>> {
    let root_path = dir.join("root.key");
    if root_path.exists() {
        return UNITS
            .iter()
            .map(|u| Node::open(&DataDir::new(dir.join(slug(u.code)))))
            .collect();
    }
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let root = generate_key();
    write_key(&root_path, &root)?;
    let now = clock_now();
    let valid_from = now.plus_millis(-(DEMO_HISTORY_DAYS + 5) * 24 * 3600 * 1000);
    // Keys first, so that every node can be given every enrolment.
    let keys: Vec<_> = UNITS.iter().map(|_| generate_key()).collect();
    let records: Vec<SignedRecord> = UNITS
        .iter()
        .zip(&keys)
        .map(|(u, k)| {
            enrolment(
                &root,
                &k.verifying_key(),
                &UnitCode::new(u.code).expect("demo unit code"),
                u.name,
                u.role,
                valid_from,
                now,
            )
        })
        .collect();
    let mut nodes = Vec::new();
    for (unit, key) in UNITS.iter().zip(keys) {
        println!("Tạo nút {} ...", unit.name);
        let node = init(InitOptions {
            dir: DataDir::new(dir.join(slug(unit.code))),
            unit: UnitCode::new(unit.code).expect("demo unit code"),
            unit_name: unit.name.to_owned(),
            role: unit.role,
            listen: SocketAddr::from((Ipv4Addr::LOCALHOST, 0)),
            trust: Trust::Existing {
                root: root.verifying_key(),
                records: records.clone(),
            },
            admin_password: DEMO_PASSWORD.to_owned(),
            key: Some(key),
            // Set for real by `wire_network` once every node's key is known.
            sync: SyncConfig {
                enabled: false,
                ..SyncConfig::default()
            },
        })?;
        for (user, name, role) in [
            ("tiepnhan", "Nguyễn Thị Tiếp Nhận", StaffRole::Intake),
            ("xuly", "Trần Văn Xử Lý", StaffRole::Leader),
        ] {
            node.auth
                .add_user(node.shared.store.db(), user, DEMO_PASSWORD, name, role)?;
        }
        seed(&node, unit, now, nodes.len() as u64 + 1)?;
        nodes.push(node);
    }
    Ok(nodes)
}

/// Makes `DEMO_HISTORY_DAYS` of intake, processing and ratings at a commune.
fn seed(node: &Node, unit: &DemoUnit, now: Timestamp, seed: u64) -> Result<()> {
    if unit.dossiers_per_day == 0 {
        return Ok(());
    }
    let mut rng = Rng(0x9E37_79B9_7F4A_7C15 ^ seed);
    let catalog = node
        .shared
        .reference
        .read()
        .expect("reference lock")
        .catalog
        .clone();
    let procedures: Vec<_> = catalog
        .procedures
        .iter()
        .filter(|p| p.level == motcua_schema::catalog::Level::Commune)
        .cloned()
        .collect();
    let day_ms = 24 * 3600 * 1000;
    let mut made = 0;
    for back in (1..=DEMO_HISTORY_DAYS).rev() {
        let day = now.plus_millis(-back * day_ms).local_date();
        if matches!(
            day.weekday(),
            time::Weekday::Saturday | time::Weekday::Sunday
        ) {
            continue;
        }
        for _ in 0..unit.dossiers_per_day {
            let minute = 7 * 60 + 30 + rng.below(8 * 60) as i64;
            let at = Timestamp::start_of_local_day(day).plus_millis(minute * 60_000);
            let procedure = &procedures[rng.below(procedures.len() as u64) as usize];
            let channel = match rng.below(100) {
                0..=69 => Channel::Online,
                70..=72 => Channel::Postal,
                _ => Channel::Direct,
            };
            let applicant = Applicant {
                name: format!(
                    "{} {} {}",
                    FAMILY[rng.below(8) as usize],
                    MIDDLE[rng.below(5) as usize],
                    GIVEN[rng.below(8) as usize]
                ),
                id_number: format!("{:012}", 1_000_000_000 + rng.below(8_999_999_999)),
                phone: format!("09{:08}", rng.below(100_000_000)),
                address: format!(
                    "Thôn {}, {}",
                    1 + rng.below(9),
                    unit.name.trim_end_matches(" (mẫu)")
                ),
            };
            let req = NewDossier {
                procedure_code: procedure.code.clone(),
                channel,
                applicant,
                digitised: rng.chance(80),
                registered_only: false,
            };
            let Reply::Dossier(summary) = node.writer.submit_blocking(
                Command::CreateDossier {
                    req,
                    by: "tiepnhan".into(),
                },
                Some(at),
            )?
            else {
                continue;
            };
            made += 1;
            let code = summary.code.to_string();
            let due = summary.due_at.unwrap_or(at);
            // Most dossiers finish early or on time; a few need a supplement; very few run late.
            let mut t = at;
            let step = |req: EventRequest, when: Timestamp| -> Result<bool> {
                if when > now {
                    return Ok(false);
                }
                let r = node.writer.submit_blocking(
                    Command::AddEvent {
                        code: code.clone(),
                        req,
                        by: "xuly".into(),
                    },
                    Some(when),
                );
                Ok(r.is_ok())
            };
            if rng.chance(2) {
                step(
                    EventRequest::Refused {
                        reason: "Hồ sơ không thuộc thẩm quyền".into(),
                    },
                    t.plus_millis(600_000),
                )?;
                continue;
            }
            if rng.chance(6) {
                t = t.plus_millis(3_600_000);
                step(
                    EventRequest::SupplementRequested {
                        reason: "Thiếu bản sao giấy tờ".into(),
                    },
                    t,
                )?;
                t = t.plus_millis(day_ms);
                step(EventRequest::Supplemented, t)?;
            }
            let span = (due.0 - at.0).max(3_600_000);
            let late = rng.chance(1);
            let resolve_at = if late {
                due.plus_millis(day_ms)
            } else {
                Timestamp(
                    at.0 + (span as f64 * (0.3 + 0.6 * (rng.below(100) as f64 / 100.0))) as i64,
                )
                .max(t.plus_millis(60_000))
            };
            if !step(
                EventRequest::Resolved {
                    note: String::new(),
                },
                resolve_at,
            )? {
                continue;
            }
            let method = if rng.chance(18) {
                ReturnMethod::Postal
            } else if channel == Channel::Online && rng.chance(30) {
                ReturnMethod::Online
            } else {
                ReturnMethod::Counter
            };
            step(
                EventRequest::Returned { method },
                resolve_at.plus_millis(2 * 3_600_000),
            )?;
            if rng.chance(25) {
                let score = match rng.below(200) {
                    0 => Score::Dissatisfied,
                    1..=2 => Score::Neutral,
                    _ => Score::Satisfied,
                };
                let rating = NewRating {
                    score,
                    official: Some(if rng.chance(50) { "tiepnhan" } else { "xuly" }.into()),
                    dossier: Some(code.clone()),
                    criteria: if rng.chance(30) {
                        vec![Criterion::Attitude, Criterion::OneStop]
                    } else {
                        Vec::new()
                    },
                    comment: String::new(),
                    device: "may-danh-gia-1".into(),
                };
                let when = resolve_at.plus_millis(2 * 3_600_000 + 60_000);
                if when <= now {
                    node.writer
                        .submit_blocking(Command::Rate(rating), Some(when))?;
                }
            }
        }
    }
    println!("  {made} hồ sơ mẫu trong {DEMO_HISTORY_DAYS} ngày");
    Ok(())
}
