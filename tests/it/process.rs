//! A real `gatepass serve` process, for what only a process shows: its
//! memory under load, what it writes to its log, how it dies to SIGKILL and
//! stops on SIGTERM.

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tempfile::TempDir;

pub struct Process {
    child: Child,
    pub issuer: String,
    pub port: u16,
    pub dir: PathBuf,
    config: PathBuf,
    output: Arc<Mutex<String>>,
    /// Keeps the directory alive when this process made it.
    _temp: Option<TempDir>,
}

/// A loopback port nobody listens on right now.
pub fn free_port() -> u16 {
    // The kernel may hand the same free port to two callers in a row (the
    // first has not bound it yet): never give out a port twice in this
    // test binary, or a test using two ports may get one twice.
    static GIVEN: std::sync::Mutex<Vec<u16>> = std::sync::Mutex::new(Vec::new());
    let mut given = GIVEN
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    loop {
        let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        let port = l.local_addr().expect("addr").port();
        if !given.contains(&port) {
            given.push(port);
            return port;
        }
    }
}

/// The config of a process test: the embedded store and keys in `dir`,
/// default argon2id cost (the point of most process tests), plus `extra`.
pub fn config_text(issuer: &str, port: u16, dir: &Path, extra: &str) -> String {
    format!(
        r#"
issuer = "{issuer}"
listen = "127.0.0.1:{port}"
[store]
backend = "embedded"
path = "{store}"
[keys]
dir = "{keys}"
{extra}
[[clients]]
client_id = "rp"
client_secret = "rp-secret-0123456789"
redirect_uris = ["http://127.0.0.1:9000/callback"]
grant_types = ["authorization_code", "refresh_token"]

[[clients]]
client_id = "automation"
client_secret = "automation-secret-0123456789"
grant_types = ["client_credentials"]
app_permissions = ["User.ReadWrite.All"]
"#,
        store = dir.join("gatepass.redb").display(),
        keys = dir.join("keys").display(),
    )
}

impl Process {
    /// Starts `gatepass serve` with [`config_text`] in a new directory and
    /// waits until `/healthz` answers.
    pub async fn start(extra_config: &str, env: &[(&str, &str)]) -> Process {
        let temp = tempfile::tempdir().expect("tempdir");
        let dir = temp.path().to_owned();
        let port = free_port();
        let issuer = format!("http://localhost:{port}");
        let config = dir.join("gatepass.toml");
        std::fs::write(&config, config_text(&issuer, port, &dir, extra_config)).expect("config");
        let mut p = Self::spawn(&config, &dir, port, env);
        p._temp = Some(temp);
        p.wait_healthy().await;
        p
    }

    /// Starts again on the same directory and config (after a stop or kill).
    pub async fn restart(mut self, env: &[(&str, &str)]) -> Process {
        let temp = self._temp.take();
        let mut p = Self::spawn(&self.config, &self.dir, self.port, env);
        p._temp = temp;
        p.wait_healthy().await;
        p
    }

    fn spawn(config: &Path, dir: &Path, port: u16, env: &[(&str, &str)]) -> Process {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_gatepass"));
        cmd.arg("serve")
            .arg("--config")
            .arg(config)
            .current_dir(dir)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        // The test's own GATEPASS_* variables are not the child's config.
        for (k, _) in std::env::vars() {
            if k.starts_with("GATEPASS_") {
                cmd.env_remove(k);
            }
        }
        for (k, v) in env {
            cmd.env(k, v);
        }
        let mut child = cmd.spawn().expect("spawn gatepass");
        let output = Arc::new(Mutex::new(String::new()));
        for stream in [
            child
                .stdout
                .take()
                .map(|s| Box::new(s) as Box<dyn Read + Send>),
            child
                .stderr
                .take()
                .map(|s| Box::new(s) as Box<dyn Read + Send>),
        ]
        .into_iter()
        .flatten()
        {
            let output = output.clone();
            std::thread::spawn(move || {
                let mut stream = stream;
                let mut buf = [0u8; 8192];
                while let Ok(n) = stream.read(&mut buf) {
                    if n == 0 {
                        break;
                    }
                    output
                        .lock()
                        .expect("output lock")
                        .push_str(&String::from_utf8_lossy(&buf[..n]));
                }
            });
        }
        Process {
            child,
            issuer: format!("http://localhost:{port}"),
            port,
            dir: dir.to_owned(),
            config: config.to_owned(),
            output,
            _temp: None,
        }
    }

    async fn wait_healthy(&mut self) {
        let http = reqwest::Client::new();
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if let Ok(r) = http.get(self.url("/healthz")).send().await {
                if r.status().is_success() {
                    return;
                }
            }
            if let Ok(Some(status)) = self.child.try_wait() {
                panic!("gatepass exited with {status}:\n{}", self.output());
            }
            assert!(
                Instant::now() < deadline,
                "gatepass did not become healthy:\n{}",
                self.output()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Everything the process wrote to stdout and stderr so far.
    pub fn output(&self) -> String {
        self.output.lock().expect("output lock").clone()
    }

    /// A field of `/proc/<pid>/status` in KiB (`VmRSS`, `VmHWM`).
    pub fn memory_kib(&self, field: &str) -> u64 {
        let status =
            std::fs::read_to_string(format!("/proc/{}/status", self.pid())).expect("proc status");
        status
            .lines()
            .find_map(|l| l.strip_prefix(&format!("{field}:")))
            .and_then(|v| v.trim().trim_end_matches(" kB").trim().parse().ok())
            .unwrap_or_else(|| panic!("no {field} in /proc status"))
    }

    pub fn signal(&self, signal: &str) {
        let status = Command::new("kill")
            .arg(format!("-{signal}"))
            .arg(self.pid().to_string())
            .status()
            .expect("kill");
        assert!(status.success(), "kill -{signal} failed");
    }

    /// Waits for the process to exit; `None` if it is still running.
    pub async fn wait_exit(&mut self, within: Duration) -> Option<std::process::ExitStatus> {
        let deadline = Instant::now() + within;
        loop {
            if let Ok(Some(status)) = self.child.try_wait() {
                return Some(status);
            }
            if Instant::now() >= deadline {
                return None;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// What a new operator meets on the first run of `gatepass serve`: token
/// refusals are logged with the client and the reason (never the secret),
/// logs written to a pipe carry no colour codes, and a second instance on
/// the taken port stops with the address and the setting before it
/// creates anything.
#[tokio::test]
async fn first_run_logs_token_refusals_plainly_and_a_taken_port_stops_before_setup() {
    let server = Process::start("", &[]).await;
    let first_start = server.output();
    assert!(
        first_start.contains(&format!("{}/admin", server.issuer)),
        "{first_start}"
    );
    let wrong_secret = "not-the-secret-4815162342";
    let r = reqwest::Client::new()
        .post(server.url("/token"))
        .basic_auth("rp", Some(wrong_secret))
        .form(&[("grant_type", "authorization_code"), ("code", "x")])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), reqwest::StatusCode::UNAUTHORIZED);
    let mut logged = String::new();
    for _ in 0..50 {
        logged = server.output();
        if logged.contains("token request refused") {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(logged.contains("token request refused"), "{logged}");
    assert!(
        logged.contains("client=rp") || logged.contains("client=\"rp\""),
        "{logged}"
    );
    assert!(logged.contains("invalid_client"), "{logged}");
    assert!(!logged.contains(wrong_secret), "the secret reached the log");
    assert!(
        !logged.contains('\u{1b}'),
        "colour codes in a piped log: {logged:?}"
    );

    // A second instance on the same port: no keys, no admin, no pass.
    let temp = tempfile::tempdir().unwrap();
    let config = temp.path().join("gatepass.toml");
    std::fs::write(
        &config,
        config_text(&server.issuer, server.port, temp.path(), ""),
    )
    .unwrap();
    let second = Command::new(env!("CARGO_BIN_EXE_gatepass"))
        .arg("serve")
        .arg("--config")
        .arg(&config)
        .current_dir(temp.path())
        .output()
        .unwrap();
    assert!(!second.status.success());
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&second.stdout),
        String::from_utf8_lossy(&second.stderr)
    );
    assert!(
        said.contains(&format!("127.0.0.1:{}", server.port)),
        "{said}"
    );
    assert!(said.contains("`listen`"), "{said}");
    assert!(!said.contains("Temporary Access Pass"), "{said}");
    assert!(!temp.path().join("keys").exists(), "keys were created");
    assert!(
        !temp.path().join("gatepass.redb").exists(),
        "a store was created"
    );
}
