//! The `motcua` command line: set up, run, demonstrate and report on a node.
//!
//! It lives in the library so that the `motcua` binary and the end-to-end tests' copy of it
//! (`motcua-tests`' `motcua-under-test`) run exactly the same code as real processes.

use std::io::Read;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use crate::auth::StaffRole;
use crate::config::{
    DEFAULT_LISTEN, DEFAULT_SYNC_LISTEN, DataDir, SyncConfig, generate_key, parse_public_key,
    read_key, write_key,
};
use crate::runtime::Node;
use crate::setup::{self, InitOptions, Trust};
use crate::writer::clock_now;
use anyhow::{Context, Result, bail};
use clap::{Parser, Subcommand, ValueEnum};
use motcua_schema::ids::UnitCode;
use motcua_schema::report::{Period, compute};
use motcua_schema::timestamp::{Timestamp, parse_date};
use motcua_schema::trust::Role;

#[derive(Parser)]
#[command(
    name = "motcua",
    version,
    about = "motcua: one-stop public administrative service node (một cửa)"
)]
struct Cli {
    #[command(subcommand)]
    command: Cmd,
}

#[derive(Clone, Copy, ValueEnum)]
enum RoleArg {
    Province,
    Commune,
    Auditor,
}

impl From<RoleArg> for Role {
    fn from(r: RoleArg) -> Role {
        match r {
            RoleArg::Province => Role::Province,
            RoleArg::Commune => Role::Commune,
            RoleArg::Auditor => Role::Auditor,
        }
    }
}

#[derive(Subcommand)]
enum Cmd {
    /// Create a node's data directory: key, config, store, admin account.
    Init {
        #[arg(long, env = "MOTCUA_DATA_DIR", default_value = "motcua-data")]
        data_dir: PathBuf,
        /// Unit code, e.g. 000.00.12.H12.
        #[arg(long)]
        unit: String,
        /// Unit name, e.g. "UBND xã An Bình".
        #[arg(long)]
        unit_name: String,
        #[arg(long, value_enum)]
        role: RoleArg,
        /// Create a new province root key here (DATA_DIR/root.key; move it offline) and enrol this node.
        #[arg(long, conflicts_with_all = ["root_key_pub", "records"])]
        new_root: bool,
        /// The province root public key (hex), when the root lives elsewhere.
        #[arg(long, required_unless_present = "new_root")]
        root_key_pub: Option<String>,
        /// Registry records to import (JSON), e.g. this node's enrolment made by `motcua enroll`.
        #[arg(long)]
        records: Vec<PathBuf>,
        #[arg(long, default_value = DEFAULT_LISTEN)]
        listen: SocketAddr,
        /// UDP address of the replication endpoint.
        #[arg(long, default_value = DEFAULT_SYNC_LISTEN)]
        sync_listen: SocketAddr,
        /// A relay run by the province, for nodes that cannot be dialled directly.
        #[arg(long)]
        relay_url: Option<String>,
        /// Password of the `admin` account (or MOTCUA_ADMIN_PASSWORD; asked on stdin otherwise).
        #[arg(long, env = "MOTCUA_ADMIN_PASSWORD", hide_env_values = true)]
        admin_password: Option<String>,
    },
    /// Serve the node's HTTP API and pages.
    Serve {
        #[arg(long, env = "MOTCUA_DATA_DIR", default_value = "motcua-data")]
        data_dir: PathBuf,
        /// Overrides the configured listen address.
        #[arg(long)]
        listen: Option<SocketAddr>,
    },
    /// Run a province and three communes on this machine with sample data.
    Demo {
        #[arg(long, default_value = "motcua-demo")]
        dir: PathBuf,
        /// The province listens here, the communes on the next ports.
        #[arg(long, default_value_t = 8080)]
        base_port: u16,
    },
    /// Print the report for a period (the node must not be serving).
    Report {
        #[arg(long, env = "MOTCUA_DATA_DIR", default_value = "motcua-data")]
        data_dir: PathBuf,
        /// First day, YYYY-MM-DD.
        #[arg(long)]
        from: String,
        /// Last day, YYYY-MM-DD (inclusive).
        #[arg(long)]
        to: String,
        /// Only this unit.
        #[arg(long)]
        unit: Option<String>,
        #[arg(long, default_value = "json")]
        format: String,
    },
    /// Create a province root key (keep the file offline).
    RootInit {
        #[arg(long)]
        out: PathBuf,
    },
    /// Sign an enrolment record for a node key with the root key.
    Enroll {
        #[arg(long)]
        root_key: PathBuf,
        /// The node's public key (hex; `motcua key` prints it).
        #[arg(long)]
        node_key: String,
        #[arg(long)]
        unit: String,
        #[arg(long)]
        unit_name: String,
        #[arg(long, value_enum)]
        role: RoleArg,
        #[arg(long)]
        out: PathBuf,
    },
    /// Sign a revocation record for a node key with the root key.
    Revoke {
        #[arg(long)]
        root_key: PathBuf,
        #[arg(long)]
        node_key: String,
        #[arg(long)]
        reason: String,
        /// Changes from this instant on are refused (RFC 3339; default now).
        #[arg(long)]
        at: Option<String>,
        #[arg(long)]
        out: PathBuf,
    },
    /// Import registry records (enrolments, revocations) into a node.
    TrustImport {
        #[arg(long, env = "MOTCUA_DATA_DIR", default_value = "motcua-data")]
        data_dir: PathBuf,
        files: Vec<PathBuf>,
    },
    /// Print the node's public key.
    Key {
        #[arg(long, env = "MOTCUA_DATA_DIR", default_value = "motcua-data")]
        data_dir: PathBuf,
    },
    /// Audit archives: export this node's records, verify an archive, show a dossier from one.
    #[command(subcommand)]
    Audit(crate::audit::cli::AuditCmd),
    /// The address book of replication peers (edit with the node stopped, then restart it).
    Peer {
        #[command(subcommand)]
        action: PeerCmd,
    },
    /// Carry changes on a USB stick when there is no link at all.
    Bundle {
        #[command(subcommand)]
        action: BundleCmd,
    },
    /// Add a staff account.
    UserAdd {
        #[arg(long, env = "MOTCUA_DATA_DIR", default_value = "motcua-data")]
        data_dir: PathBuf,
        #[arg(long)]
        username: String,
        #[arg(long)]
        full_name: String,
        /// intake, processing, leader or admin.
        #[arg(long)]
        role: String,
        /// Password (or MOTCUA_PASSWORD; read from stdin otherwise).
        #[arg(long, env = "MOTCUA_PASSWORD", hide_env_values = true)]
        password: Option<String>,
    },
}

#[derive(Subcommand)]
enum PeerCmd {
    /// Add or replace a peer: the node dials it at these addresses (none: it dials us).
    Add {
        #[arg(long, env = "MOTCUA_DATA_DIR", default_value = "motcua-data")]
        data_dir: PathBuf,
        /// A name for people, e.g. "Trung tâm tỉnh".
        #[arg(long)]
        name: String,
        /// The peer's node key (hex; `motcua key` prints it).
        #[arg(long)]
        node_key: String,
        /// UDP address to dial, e.g. 203.0.113.5:7300 (repeatable).
        #[arg(long)]
        addr: Vec<SocketAddr>,
    },
    /// List the address book and, when the node is stopped, what the store remembers of each peer.
    List {
        #[arg(long, env = "MOTCUA_DATA_DIR", default_value = "motcua-data")]
        data_dir: PathBuf,
    },
    /// Remove a peer from the address book.
    Remove {
        #[arg(long, env = "MOTCUA_DATA_DIR", default_value = "motcua-data")]
        data_dir: PathBuf,
        #[arg(long)]
        node_key: String,
    },
}

#[derive(Subcommand)]
enum BundleCmd {
    /// Write what a peer lacks to FILE (for the province: after its last acknowledgement; for a
    /// commune: everything in its scope); the node must be stopped.
    Export {
        #[arg(long, env = "MOTCUA_DATA_DIR", default_value = "motcua-data")]
        data_dir: PathBuf,
        /// The receiving peer's node key.
        #[arg(long = "for")]
        for_peer: String,
        /// Everything in the peer's scope, not only what it has not acknowledged.
        #[arg(long)]
        all: bool,
        file: PathBuf,
    },
    /// Verify and apply a bundle; the node must be stopped.
    Import {
        #[arg(long, env = "MOTCUA_DATA_DIR", default_value = "motcua-data")]
        data_dir: PathBuf,
        file: PathBuf,
    },
}

/// Parses the command line, runs it, prints the error chain and maps it to an exit code.
pub fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()),
        )
        .with_writer(std::io::stderr)
        .init();
    match run(Cli::parse()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("motcua: error: {e}");
            for cause in e.chain().skip(1) {
                eprintln!("  caused by: {cause}");
            }
            ExitCode::FAILURE
        }
    }
}

fn password_from_stdin(what: &str) -> Result<String> {
    eprintln!("{what} (read from standard input):");
    let mut s = String::new();
    std::io::stdin()
        .read_to_string(&mut s)
        .context("reading password from stdin")?;
    let s = s.lines().next().unwrap_or("").to_owned();
    if s.is_empty() {
        bail!("no password given");
    }
    Ok(s)
}

fn runtime() -> Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")
}

fn run(cli: Cli) -> Result<()> {
    match cli.command {
        Cmd::Init {
            data_dir,
            unit,
            unit_name,
            role,
            new_root,
            root_key_pub,
            records,
            listen,
            sync_listen,
            relay_url,
            admin_password,
        } => {
            let unit = UnitCode::new(&unit)?;
            let trust = if new_root {
                Trust::NewRoot
            } else {
                let root = parse_public_key(root_key_pub.as_deref().unwrap_or_default())
                    .context("--root-key-pub")?;
                let mut all = Vec::new();
                for f in &records {
                    all.extend(setup::read_records(f)?);
                }
                Trust::Existing { root, records: all }
            };
            let admin_password = match admin_password {
                Some(p) => p,
                None => password_from_stdin("Password for the admin account")?,
            };
            let dir = DataDir::new(&data_dir);
            let node = setup::init(InitOptions {
                dir,
                unit,
                unit_name,
                role: role.into(),
                listen,
                trust,
                admin_password,
                key: None,
                sync: SyncConfig {
                    enabled: true,
                    listen: sync_listen,
                    relay_url,
                },
            })?;
            println!("Initialised {} ({})", data_dir.display(), node.config.unit);
            println!(
                "node key: {}",
                hex::encode(node.shared.identity.key.verifying_key().as_bytes())
            );
            if new_root {
                println!(
                    "root key: {} (move {} offline)",
                    node.config.root_key,
                    data_dir.join("root.key").display()
                );
            }
            Ok(())
        }
        Cmd::Serve { data_dir, listen } => {
            let node = Node::open(&DataDir::new(data_dir))?;
            runtime()?.block_on(node.serve(listen))
        }
        Cmd::Demo { dir, base_port } => runtime()?.block_on(crate::demo::run(dir, base_port)),
        Cmd::Report {
            data_dir,
            from,
            to,
            unit,
            format,
        } => {
            let from = parse_date(&from).context("--from must be YYYY-MM-DD")?;
            let to = parse_date(&to).context("--to must be YYYY-MM-DD")?;
            let period = Period::new(from, to).map_err(|e| anyhow::anyhow!("{e}"))?;
            let node = Node::open(&DataDir::new(&data_dir))?;
            let units = unit.clone().map(|u| vec![u]);
            let (summaries, ratings) =
                node.shared.store.report_inputs(units.as_deref(), &period)?;
            let scope = unit.unwrap_or_else(|| node.config.unit_name.clone());
            let report = compute(&scope, &period, &summaries, &ratings);
            match format.as_str() {
                "json" => println!("{}", serde_json::to_string_pretty(&report)?),
                "csv" => print!("{}", report.to_csv()),
                other => bail!("unknown format {other}; use json or csv"),
            }
            Ok(())
        }
        Cmd::RootInit { out } => {
            let key = generate_key();
            write_key(&out, &key)?;
            println!(
                "root public key: {}",
                hex::encode(key.verifying_key().as_bytes())
            );
            Ok(())
        }
        Cmd::Enroll {
            root_key,
            node_key,
            unit,
            unit_name,
            role,
            out,
        } => {
            let root = read_key(&root_key)?;
            let node = parse_public_key(&node_key).context("--node-key")?;
            let now = clock_now();
            let record = setup::enrolment(
                &root,
                &node,
                &UnitCode::new(&unit)?,
                &unit_name,
                role.into(),
                now.plus_millis(-setup::ENROLMENT_BACKDATE_MS),
                now,
            );
            std::fs::write(&out, serde_json::to_string_pretty(&vec![record])?)
                .with_context(|| format!("writing {}", out.display()))?;
            println!("wrote enrolment of {node_key} to {}", out.display());
            Ok(())
        }
        Cmd::Revoke {
            root_key,
            node_key,
            reason,
            at,
            out,
        } => {
            let root = read_key(&root_key)?;
            let node = parse_public_key(&node_key).context("--node-key")?;
            let now = clock_now();
            let at = match at {
                Some(t) => Timestamp::parse_rfc3339(&t).context("--at must be RFC 3339")?,
                None => now,
            };
            let record = setup::revocation(&root, &node, at, &reason, now);
            std::fs::write(&out, serde_json::to_string_pretty(&vec![record])?)
                .with_context(|| format!("writing {}", out.display()))?;
            println!("wrote revocation of {node_key} to {}", out.display());
            Ok(())
        }
        Cmd::TrustImport { data_dir, files } => {
            let node = Node::open(&DataDir::new(data_dir))?;
            let mut all = Vec::new();
            for f in &files {
                all.extend(setup::read_records(f)?);
            }
            let n = all.len();
            setup::import_records(&node, all)?;
            println!("imported {n} records");
            Ok(())
        }
        Cmd::Audit(cmd) => crate::audit::cli::run(cmd),
        Cmd::Key { data_dir } => {
            let key = DataDir::new(data_dir).load_key()?;
            println!("{}", hex::encode(key.verifying_key().as_bytes()));
            Ok(())
        }
        Cmd::Peer { action } => peer_command(action),
        Cmd::Bundle { action } => match action {
            BundleCmd::Export {
                data_dir,
                for_peer,
                all,
                file,
            } => {
                let node = Node::open(&DataDir::new(data_dir))?;
                let r = crate::replication::bundle::export(&node, &for_peer, all, &file)?;
                println!(
                    "Đã ghi {} thay đổi ({} byte, vị trí {}..{}) vào {}",
                    r.changes,
                    r.bytes,
                    r.after,
                    r.upto,
                    file.display()
                );
                Ok(())
            }
            BundleCmd::Import { data_dir, file } => {
                let node = Node::open(&DataDir::new(data_dir))?;
                let r = crate::replication::bundle::import(&node, &file)?;
                let c = &r.changes;
                println!(
                    "Đã nhập {} khung: {} thay đổi mới, {} đã có, {} chờ thay đổi trước, {} bị từ chối, {} không hợp lệ",
                    r.frames, c.stored, c.duplicate, c.pending, c.rejected, c.invalid
                );
                if let Some((held, after)) = r.gap {
                    println!(
                        "Lưu ý: gói này bắt đầu sau vị trí {after} của nút gửi, nhưng nút này mới giữ đến vị trí {held}: \
                         có thể còn thiếu thay đổi ở giữa. Khi có mạng, hai nút sẽ tự bổ sung; nếu không có mạng, \
                         hãy nhờ nút gửi xuất một gói đầy đủ (motcua bundle export --all)."
                    );
                }
                match r.stopped {
                    Some(why) => bail!("{why}"),
                    None => Ok(()),
                }
            }
        },
        Cmd::UserAdd {
            data_dir,
            username,
            full_name,
            role,
            password,
        } => {
            let role = StaffRole::parse(&role)
                .context("--role must be intake, processing, leader or admin")?;
            let password = match password {
                Some(p) => p,
                None => password_from_stdin("Password")?,
            };
            let node = Node::open(&DataDir::new(data_dir))?;
            node.auth.add_user(
                node.shared.store.db(),
                &username,
                &password,
                &full_name,
                role,
            )?;
            println!("added {username}");
            Ok(())
        }
    }
}

fn peer_command(action: PeerCmd) -> Result<()> {
    match action {
        PeerCmd::Add {
            data_dir,
            name,
            node_key,
            addr,
        } => {
            let dir = DataDir::new(data_dir);
            let mut config = dir.load_config()?;
            parse_public_key(&node_key).context("--node-key")?;
            let key = node_key.trim().to_lowercase();
            config.peers.retain(|p| p.node_key.to_lowercase() != key);
            config.peers.push(crate::config::PeerConfig {
                name,
                node_key: key,
                addrs: addr,
            });
            dir.save_config(&config)?;
            println!(
                "Đã lưu {} mục trong sổ địa chỉ; khởi động lại nút để áp dụng",
                config.peers.len()
            );
            Ok(())
        }
        PeerCmd::Remove { data_dir, node_key } => {
            let dir = DataDir::new(data_dir);
            let mut config = dir.load_config()?;
            let before = config.peers.len();
            config
                .peers
                .retain(|p| !p.node_key.eq_ignore_ascii_case(node_key.trim()));
            if config.peers.len() == before {
                bail!("{node_key} is not in the address book");
            }
            dir.save_config(&config)?;
            println!("Đã xóa; khởi động lại nút để áp dụng");
            Ok(())
        }
        PeerCmd::List { data_dir } => {
            let dir = DataDir::new(data_dir);
            let config = dir.load_config()?;
            // The store can be opened only when the node is not serving; then show what it
            // remembers of each peer too.
            let states = Node::open(&dir)
                .ok()
                .and_then(|n| n.shared.store.peer_states().ok())
                .unwrap_or_default();
            for p in &config.peers {
                let addrs: Vec<String> = p.addrs.iter().map(|a| a.to_string()).collect();
                let seen = parse_public_key(&p.node_key)
                    .ok()
                    .and_then(|k| states.iter().find(|(s, _)| s == k.as_bytes()))
                    .and_then(|(_, st)| st.last_caught_up_at)
                    .map_or_else(|| "chưa đồng bộ / không rõ".to_owned(), |t| t.to_rfc3339());
                println!(
                    "{}  {}  [{}]  đồng bộ lần cuối: {seen}",
                    p.node_key,
                    p.name,
                    addrs.join(", ")
                );
            }
            if config.peers.is_empty() {
                println!("Sổ địa chỉ trống: nút chỉ nhận kết nối đến.");
            }
            Ok(())
        }
    }
}
