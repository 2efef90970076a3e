//! The storefront and the admin in a headless chromium: every `e2e/*.mjs` (playwright-core
//! driving the system `/usr/bin/chromium`) against `mercato up --demo`. Screenshots land in
//! `target/screenshots`. Without node or chromium the test is skipped, unless `CI` is set.

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::Platform;

const ADMIN_EMAIL: &str = "ops@example.com";
const ADMIN_PASSWORD: &str = "a long admin passphrase";

fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .canonicalize()
        .unwrap()
}

fn chromium() -> PathBuf {
    std::env::var_os("CHROMIUM").map_or_else(|| PathBuf::from("/usr/bin/chromium"), PathBuf::from)
}

/// Why the browser tests cannot run here, if they cannot.
fn missing_tools() -> Option<String> {
    let node = Command::new("node").arg("--version").output();
    if !node.is_ok_and(|o| o.status.success()) {
        return Some("node is not installed".into());
    }
    let chromium = chromium();
    if !chromium.is_file() {
        return Some(format!(
            "{} is missing (apt-get install chromium, or set CHROMIUM)",
            chromium.display()
        ));
    }
    None
}

#[tokio::test]
async fn storefront_and_admin_work_in_a_browser() {
    if let Some(why) = missing_tools() {
        assert!(
            std::env::var_os("CI").is_none(),
            "browser tests cannot run: {why}"
        );
        eprintln!("skipping the browser tests: {why}");
        return;
    }
    let root = workspace_root();
    let e2e = root.join("e2e");
    if !e2e.join("node_modules").is_dir() {
        let status = Command::new("npm")
            .args(["ci", "--no-audit", "--no-fund"])
            .current_dir(&e2e)
            .status()
            .expect("run npm ci");
        assert!(status.success(), "npm ci in e2e/ failed with {status}");
    }

    let dir = tempfile::tempdir().unwrap();
    let port = crate::free_port();
    let env = vec![
        (
            "MERCATO_BOOTSTRAP_ADMIN_EMAIL".to_owned(),
            ADMIN_EMAIL.to_owned(),
        ),
        (
            "MERCATO_BOOTSTRAP_ADMIN_PASSWORD".to_owned(),
            ADMIN_PASSWORD.to_owned(),
        ),
        ("GATEWAY_RATE_LIMIT_RPS".to_owned(), "0".to_owned()),
    ];
    let (port_arg, data_arg) = (port.to_string(), dir.path().display().to_string());
    let mut child = crate::spawn_mercato(
        &["up", "--demo", "--port", &port_arg, "--data-dir", &data_arg],
        &env,
    );
    let base = format!("http://127.0.0.1:{port}");
    crate::wait_ok(&mut child, &format!("{base}/health")).await;
    // Killed on drop, also when an assertion below fails.
    let _platform = Platform {
        child,
        port,
        data_dir: dir.path().to_path_buf(),
        env,
        client: reqwest::Client::new(),
    };

    let screenshots = root.join("target/screenshots");
    // Every script of e2e/ (one per area of the shop), in name order, against this platform.
    let mut scripts: Vec<PathBuf> = std::fs::read_dir(&e2e)
        .unwrap()
        .filter_map(|entry| entry.ok().map(|e| e.path()))
        .filter(|path| path.extension().is_some_and(|ext| ext == "mjs"))
        .collect();
    scripts.sort();
    assert!(!scripts.is_empty(), "no e2e/*.mjs script");
    for script in scripts {
        let (root, base, screenshots) = (root.clone(), base.clone(), screenshots.clone());
        let name = script.display().to_string();
        let output = tokio::task::spawn_blocking(move || {
            Command::new("node")
                .arg(&script)
                .current_dir(&root)
                .env("MERCATO_URL", &base)
                .env("ADMIN_EMAIL", ADMIN_EMAIL)
                .env("ADMIN_PASSWORD", ADMIN_PASSWORD)
                .env("SCREENSHOTS", &screenshots)
                .env("CHROMIUM", chromium())
                .output()
                .expect("run node")
        })
        .await
        .unwrap();
        let stdout = String::from_utf8_lossy(&output.stdout);
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(
            output.status.success(),
            "{name} failed ({}):\n{stdout}\n{stderr}",
            output.status
        );
        println!("{name}\n{stdout}");
    }
}
