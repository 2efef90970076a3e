//! End-to-end tests of the `mercato` binary: real processes on real ports.
#![allow(clippy::unwrap_used, clippy::expect_used)] // helpers outside #[test] fns panic on purpose

mod bench_checkout;
mod browser;
mod checkout;
mod crash;
mod distributed;
mod gateway_redis;
mod up;

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use mercato_kernel::auth::testing::TestKeys;

/// A free port on loopback (bound then released; good enough for tests).
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A running `mercato up` process and what it was started with.
pub struct Platform {
    pub child: Child,
    pub port: u16,
    pub data_dir: PathBuf,
    pub env: Vec<(String, String)>,
    pub client: reqwest::Client,
}

impl Platform {
    /// Starts `mercato up` on a free port with `data_dir` and extra variables; waits for
    /// `/health` to answer 200.
    pub async fn start(data_dir: &Path, env: Vec<(String, String)>) -> Self {
        let port = free_port();
        let mut platform = Self {
            child: spawn_up(port, data_dir, &env),
            port,
            data_dir: data_dir.to_path_buf(),
            env,
            client: reqwest::Client::new(),
        };
        platform.wait_healthy().await;
        platform
    }

    /// Base URL.
    pub fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }

    async fn wait_healthy(&mut self) {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                panic!("mercato up exited early with {status}");
            }
            let health = self.client.get(self.url("/health")).send().await;
            if health.is_ok_and(|r| r.status() == 200) {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "mercato up not healthy within 60 s"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// SIGKILL, no chance to flush or drain anything.
    pub fn kill(&mut self) {
        self.child.kill().unwrap();
        self.child.wait().unwrap();
    }

    /// Starts the same platform again on the same port and data dir.
    pub async fn restart(&mut self) {
        self.child = spawn_up(self.port, &self.data_dir, &self.env);
        self.wait_healthy().await;
    }
}

impl Drop for Platform {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Runs `mercato up --port P --data-dir D`.
pub fn spawn_up(port: u16, data_dir: &Path, env: &[(String, String)]) -> Child {
    let port = port.to_string();
    let data_dir = data_dir.display().to_string();
    spawn_mercato(&["up", "--port", &port, "--data-dir", &data_dir], env)
}

/// Runs `mercato <args>` with a clean environment for the platform's variables, so the
/// test's own `NATS_URL` or `DATABASE_URL` leak in only when passed in `env`.
pub fn spawn_mercato(args: &[&str], env: &[(String, String)]) -> Child {
    let mut command = Command::new(env!("CARGO_BIN_EXE_mercato"));
    command
        .args(args)
        .env_remove("NATS_URL")
        .env_remove("DATABASE_URL")
        .env("LOG_FORMAT", "json")
        .env("RUST_LOG", "warn")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit());
    for (k, v) in env {
        command.env(k, v);
    }
    command.spawn().expect("spawn mercato")
}

/// Waits until `url` answers 200, or panics after 60 s or when `child` exits.
pub async fn wait_ok(child: &mut Child, url: &str) {
    let client = reqwest::Client::new();
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            panic!("mercato exited early with {status} while waiting for {url}");
        }
        if client
            .get(url)
            .send()
            .await
            .is_ok_and(|r| r.status() == 200)
        {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{url} not answering 200 within 60 s"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Sends SIGTERM, as an orchestrator stopping the process would.
pub fn terminate(child: &Child) {
    let status = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
}

/// Keys whose JWKS the platform trusts, written to `dir/jwks.json`, and the variable that
/// points the platform at it.
pub fn trusted_keys(dir: &Path) -> (TestKeys, (String, String)) {
    let keys = TestKeys::generate();
    let path = dir.join("jwks.json");
    std::fs::write(&path, keys.jwks_json()).unwrap();
    (
        keys,
        ("MERCATO_JWKS_FILE".into(), path.display().to_string()),
    )
}

/// Deletes a test's JetStream stream so test runs leave nothing on a shared server.
pub async fn delete_stream(nats_url: &str, stream: &str) {
    let client = async_nats::connect(nats_url).await.unwrap();
    let jetstream = async_nats::jetstream::new(client);
    jetstream.delete_stream(stream).await.unwrap();
}
