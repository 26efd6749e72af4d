//! motcua-tests: what the end-to-end tests share: starting real `motcua` processes on loopback
//! in temporary data directories, killing them, and talking to their HTTP API.
//!
//! Tests never depend on how fast this machine is: every wait is a wait for a condition (a file
//! appearing, a request succeeding) with a generous bound that only catches hangs.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use anyhow::{Context, Result, bail};
use serde_json::{Value, json};

/// Password given to every account the tests create.
pub const TEST_PASSWORD: &str = "mat-khau-thu-nghiem";
/// Longest wait for a node to start listening; only a hung or crashed node takes this long.
pub const START_WAIT_MS_MAX: u64 = 120_000;

/// A node's data directory and, while it runs, its process.
pub struct TestNode {
    bin: PathBuf,
    dir: PathBuf,
    child: Option<Child>,
    /// `http://127.0.0.1:PORT` once started.
    pub base: String,
}

/// Runs the `motcua` binary with `args` to completion and returns its standard output.
pub fn run_motcua(bin: &Path, args: &[&str]) -> Result<String> {
    let out = Command::new(bin)
        .args(args)
        .env("RUST_LOG", "warn")
        .output()
        .with_context(|| format!("running {} {args:?}", bin.display()))?;
    if !out.status.success() {
        bail!(
            "motcua {args:?} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

impl TestNode {
    /// `motcua init --new-root` of a node for `unit` in `dir` (listening on an ephemeral
    /// loopback port), plus staff accounts `tiepnhan` (intake) and `lanhdao` (leader).
    pub fn init(bin: &Path, dir: &Path, unit: &str, role: &str) -> Result<TestNode> {
        TestNode::init_with(bin, dir, unit, role, None, "127.0.0.1:0")
    }

    /// `motcua init` with the root given by its public key (`None`: a new root in `dir`) and the
    /// replication endpoint on `sync_listen` (always a loopback address in tests).
    pub fn init_with(
        bin: &Path,
        dir: &Path,
        unit: &str,
        role: &str,
        root_pub: Option<&str>,
        sync_listen: &str,
    ) -> Result<TestNode> {
        let d = dir.to_str().context("utf-8 temp dir")?;
        let mut args = vec![
            "init",
            "--data-dir",
            d,
            "--unit",
            unit,
            "--unit-name",
            "Đơn vị thử nghiệm",
            "--role",
            role,
            "--listen",
            "127.0.0.1:0",
            "--sync-listen",
            sync_listen,
            "--admin-password",
            TEST_PASSWORD,
        ];
        match root_pub {
            Some(root) => args.extend(["--root-key-pub", root]),
            None => args.push("--new-root"),
        }
        run_motcua(bin, &args)?;
        for (user, role) in [("tiepnhan", "intake"), ("lanhdao", "leader")] {
            run_motcua(
                bin,
                &[
                    "user-add",
                    "--data-dir",
                    d,
                    "--username",
                    user,
                    "--full-name",
                    "Cán bộ thử nghiệm",
                    "--role",
                    role,
                    "--password",
                    TEST_PASSWORD,
                ],
            )?;
        }
        Ok(TestNode {
            bin: bin.to_owned(),
            dir: dir.to_owned(),
            child: None,
            base: String::new(),
        })
    }

    /// The data directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The data directory as text, for command arguments.
    pub fn dir_str(&self) -> &str {
        self.dir.to_str().expect("utf-8 temp dir")
    }

    /// The node's public key, hex.
    pub fn key(&self) -> Result<String> {
        Ok(
            run_motcua(&self.bin, &["key", "--data-dir", self.dir_str()])?
                .trim()
                .to_owned(),
        )
    }

    /// Runs another `motcua` subcommand against this node's data directory (the node must be
    /// stopped for commands that open the store).
    pub fn motcua(&self, args: &[&str]) -> Result<String> {
        let mut all: Vec<&str> = args.to_vec();
        all.extend(["--data-dir", self.dir_str()]);
        run_motcua(&self.bin, &all)
    }

    /// Whether the process is running.
    pub fn is_running(&self) -> bool {
        self.child.is_some()
    }

    /// Starts `motcua serve` and waits until it listens.
    pub fn start(&mut self) -> Result<()> {
        let addr_file = self.dir.join("http.addr");
        let _ = std::fs::remove_file(&addr_file);
        let child = Command::new(&self.bin)
            .args([
                "serve",
                "--data-dir",
                self.dir.to_str().context("utf-8 dir")?,
            ])
            .env("RUST_LOG", node_log_filter())
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .context("starting motcua serve")?;
        self.child = Some(child);
        let mut waited = 0;
        loop {
            if let Ok(text) = std::fs::read_to_string(&addr_file)
                && let Ok(addr) = text.trim().parse::<std::net::SocketAddr>()
            {
                self.base = format!("http://{addr}");
                return Ok(());
            }
            if let Some(status) = self
                .child
                .as_mut()
                .and_then(|c| c.try_wait().ok().flatten())
            {
                bail!("motcua serve exited during start-up: {status}");
            }
            if waited > START_WAIT_MS_MAX {
                bail!("motcua serve did not start listening within {START_WAIT_MS_MAX} ms");
            }
            std::thread::sleep(Duration::from_millis(20));
            waited += 20;
        }
    }

    /// Kills the process with SIGKILL (no chance to flush anything) and reaps it.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Signs in as `user` and returns a client.
    pub async fn client(&self, user: &str) -> Result<Client> {
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(120))
            .build()?;
        let resp = http
            .post(format!("{}/api/v1/session", self.base))
            .json(&json!({ "username": user, "password": TEST_PASSWORD }))
            .send()
            .await?;
        let status = resp.status();
        let body: Value = resp.json().await?;
        if !status.is_success() {
            bail!("sign-in as {user} failed: {status} {body}");
        }
        let token = body["token"]
            .as_str()
            .context("token in sign-in answer")?
            .to_owned();
        Ok(Client {
            base: self.base.clone(),
            token,
            http,
        })
    }
}

impl Drop for TestNode {
    fn drop(&mut self) {
        self.kill();
    }
}

/// A signed-in API client.
#[derive(Clone)]
pub struct Client {
    /// Base URL.
    pub base: String,
    token: String,
    /// The HTTP client.
    pub http: reqwest::Client,
}

impl Client {
    /// `POST path` with a JSON body; returns the status code and the JSON answer.
    pub async fn post(&self, path: &str, body: &Value) -> Result<(u16, Value)> {
        let resp = self
            .http
            .post(format!("{}{path}", self.base))
            .bearer_auth(&self.token)
            .json(body)
            .send()
            .await?;
        let status = resp.status().as_u16();
        Ok((status, resp.json().await.unwrap_or(Value::Null)))
    }

    /// `GET path`; returns the status code and the JSON answer.
    pub async fn get(&self, path: &str) -> Result<(u16, Value)> {
        let resp = self
            .http
            .get(format!("{}{path}", self.base))
            .bearer_auth(&self.token)
            .send()
            .await?;
        let status = resp.status().as_u16();
        Ok((status, resp.json().await.unwrap_or(Value::Null)))
    }

    /// `GET path`; returns the status code and the body as text (CSV, HTML).
    pub async fn get_text(&self, path: &str) -> Result<(u16, String)> {
        let resp = self
            .http
            .get(format!("{}{path}", self.base))
            .bearer_auth(&self.token)
            .send()
            .await?;
        Ok((resp.status().as_u16(), resp.text().await?))
    }

    /// `GET path` without credentials, as a citizen would; returns status and body text.
    pub async fn get_public(&self, path: &str) -> Result<(u16, String)> {
        let resp = self.http.get(format!("{}{path}", self.base)).send().await?;
        Ok((resp.status().as_u16(), resp.text().await?))
    }
}

/// A new dossier request for `procedure` with a made-up applicant number `n`.
pub fn new_dossier(procedure: &str, channel: &str, n: u64) -> Value {
    json!({
        "procedure_code": procedure,
        "channel": channel,
        "applicant": {
            "name": format!("Nguyễn Văn Thử {n}"),
            "id_number": format!("{:012}", 1_000_000_000 + n),
            "phone": "0912345678",
            "address": "Thôn Thử Nghiệm",
        },
        "digitised": !n.is_multiple_of(3),
    })
}

/// The log filter of the nodes a test starts: warnings, or `MOTCUA_TEST_LOG` when set (e.g.
/// `motcua_node=debug` to see every dial and link of a failing replication test).
pub fn node_log_filter() -> String {
    std::env::var("MOTCUA_TEST_LOG").unwrap_or_else(|_| "warn".to_owned())
}

/// A free UDP port on loopback, for a node whose address others must know before it starts.
pub fn free_udp_port() -> u16 {
    let socket = std::net::UdpSocket::bind("127.0.0.1:0").expect("binding a probe socket");
    socket.local_addr().expect("probe address").port()
}

/// A province and its communes on loopback, enrolled by one root key, each commune dialling
/// the province.
pub struct Network {
    /// The province's node.
    pub province: TestNode,
    /// The communes' nodes, in the order of their unit codes.
    pub communes: Vec<TestNode>,
    /// The root key file.
    pub root_key: PathBuf,
    /// The province's node key, hex.
    pub province_key: String,
    /// The province's replication address.
    pub province_sync: String,
}

impl Network {
    /// Creates (but does not start) a province and one commune per unit code in `units`.
    pub fn create(bin: &Path, dir: &Path, units: &[&str]) -> Result<Network> {
        let root_key = dir.join("root.key");
        let out = run_motcua(
            bin,
            &["root-init", "--out", root_key.to_str().context("utf-8")?],
        )?;
        let root_pub = out
            .split_whitespace()
            .last()
            .context("root public key")?
            .to_owned();
        let province_port = free_udp_port();
        let province_sync = format!("127.0.0.1:{province_port}");
        let province = TestNode::init_with(
            bin,
            &dir.join("province"),
            "000.00.00.H99",
            "province",
            Some(&root_pub),
            &province_sync,
        )?;
        let mut communes = Vec::new();
        for unit in units {
            communes.push(TestNode::init_with(
                bin,
                &dir.join(unit),
                unit,
                "commune",
                Some(&root_pub),
                "127.0.0.1:0",
            )?);
        }
        let mut enrolments = Vec::new();
        let all: Vec<(&TestNode, &str, &str)> =
            std::iter::once((&province, "000.00.00.H99", "province"))
                .chain(communes.iter().zip(units).map(|(n, u)| (n, *u, "commune")))
                .collect();
        for (i, (node, unit, role)) in all.iter().enumerate() {
            let file = dir.join(format!("enrol-{i}.json"));
            let key = node.key()?;
            run_motcua(
                bin,
                &[
                    "enroll",
                    "--root-key",
                    root_key.to_str().context("utf-8")?,
                    "--node-key",
                    &key,
                    "--unit",
                    unit,
                    "--unit-name",
                    &format!("Đơn vị {unit}"),
                    "--role",
                    role,
                    "--out",
                    file.to_str().context("utf-8")?,
                ],
            )?;
            enrolments.push(file);
        }
        let files: Vec<&str> = enrolments
            .iter()
            .map(|f| f.to_str().expect("utf-8"))
            .collect();
        let province_key = province.key()?;
        for (node, _, _) in &all {
            let mut args = vec!["trust-import"];
            args.extend(files.iter().copied());
            node.motcua(&args)?;
        }
        for node in &communes {
            node.motcua(&[
                "peer",
                "add",
                "--name",
                "Trung tâm tỉnh",
                "--node-key",
                &province_key,
                "--addr",
                &province_sync,
            ])?;
        }
        Ok(Network {
            province,
            communes,
            root_key,
            province_key,
            province_sync,
        })
    }

    /// Starts every node.
    pub fn start(&mut self) -> Result<()> {
        self.province.start()?;
        for c in &mut self.communes {
            c.start()?;
        }
        Ok(())
    }
}

/// Polls `check` every 50 ms until it returns true; fails after `wait_ms` (a hang, not slowness:
/// callers give generous bounds).
pub async fn wait_until<F, Fut>(what: &str, wait_ms: u64, mut check: F) -> Result<()>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<bool>>,
{
    let mut waited = 0;
    loop {
        if check().await.unwrap_or(false) {
            return Ok(());
        }
        if waited > wait_ms {
            bail!("{what}: not reached within {wait_ms} ms");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
        waited += 50;
    }
}
