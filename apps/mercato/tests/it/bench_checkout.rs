//! `mercato bench checkout` against a real platform: set-up as the bootstrap admin, then
//! guest checkouts that all come back paid.

use crate::{Platform, spawn_mercato};

#[tokio::test]
async fn bench_checkout_runs_paid_checkouts_without_errors() {
    let dir = tempfile::tempdir().unwrap();
    let admin = vec![
        (
            "MERCATO_BOOTSTRAP_ADMIN_EMAIL".to_owned(),
            "admin@example.com".to_owned(),
        ),
        (
            "MERCATO_BOOTSTRAP_ADMIN_PASSWORD".to_owned(),
            "a long bench admin passphrase".to_owned(),
        ),
    ];
    let mut env = admin.clone();
    env.push(("GATEWAY_RATE_LIMIT_RPS".to_owned(), "0".to_owned()));
    let platform = Platform::start(&dir.path().join("data"), env).await;

    let url = platform.url("");
    let bench = spawn_mercato(
        &[
            "bench",
            "checkout",
            "--url",
            &url,
            "--duration",
            "2",
            "--concurrency",
            "2",
        ],
        &admin,
    );
    let output = tokio::task::spawn_blocking(move || bench.wait_with_output())
        .await
        .unwrap()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "{}: {stdout}", output.status);
    assert!(stdout.contains("checkouts/s"), "{stdout}");
    let errors: u64 = stdout
        .lines()
        .next()
        .and_then(|line| line.strip_suffix(" errors"))
        .and_then(|line| line.rsplit_once(", "))
        .map(|(_, n)| n.parse().unwrap())
        .unwrap_or_else(|| panic!("no error count in {stdout}"));
    assert_eq!(errors, 0, "{stdout}");
    let checkouts: u64 = stdout
        .split_once(": ")
        .and_then(|(_, rest)| rest.split_once(" checkouts"))
        .map(|(n, _)| n.parse().unwrap())
        .unwrap_or_else(|| panic!("no checkout count in {stdout}"));
    assert!(checkouts > 0, "{stdout}");
}
