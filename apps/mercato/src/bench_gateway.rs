//! `mercato bench gateway`: the Mercato gateway beside nginx, both proxying one tiny upstream,
//! each driven by wrk. Self-contained: it starts the upstream, nginx and a gateway child, and
//! stops them on the way out (errors and Ctrl-C included).

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::Context as _;
use axum::Router;
use axum::http::header;
use axum::routing::get;

/// The proxied route; the catalog owns `/api/v1/products/…`, so the gateway sends it there.
const PRODUCT_PATH: &str = "/api/v1/products/bench";

/// A product-sized answer (about 300 bytes), fixed so that every proxy can be checked against it.
const PRODUCT_BODY: &str = concat!(
    r#"{"id":"prd_01HZBENCH0000000000000000","slug":"bench-espresso-cup","title":"Bench "#,
    r#"espresso cup","status":"active","brand":"Mercato","variants":[{"sku":"BENCH-CUP-1","#,
    r#""prices":[{"amount":1999,"currency":"EUR"}],"weight_grams":300,"available":42}],"#,
    r#""created_at":"2024-01-01T00:00:00Z","updated_at":"2024-01-01T00:00:00Z"}"#
);

const STATUS_BODY: &str = r#"{"status":"ok"}"#;

/// Load before each measured run, so pools are filled and caches warm.
const WARM_UP: Duration = Duration::from_secs(2);

/// How long nginx and the gateway get to answer their first request.
const START_TIMEOUT: Duration = Duration::from_secs(20);

const INSTALL_HINT: &str = "install them with `apt-get install nginx-light wrk`";

/// One measured wrk run.
#[derive(Debug, Clone, Default, PartialEq)]
struct WrkResult {
    requests_per_sec: f64,
    p50_us: f64,
    p99_us: f64,
    non_2xx: u64,
    /// connect, read, write, timeout.
    socket_errors: [u64; 4],
}

impl WrkResult {
    fn errors(&self) -> u64 {
        self.non_2xx + self.socket_errors.iter().sum::<u64>()
    }
}

/// Runs the comparison for each connection count and prints one table.
pub async fn run(duration_secs: u64, connections: &[usize]) -> anyhow::Result<()> {
    tokio::select! {
        result = compare(duration_secs.max(1), connections) => result,
        // Dropping `compare` drops its guards, which stop nginx, the gateway and wrk.
        _ = tokio::signal::ctrl_c() => anyhow::bail!("interrupted"),
    }
}

async fn compare(duration_secs: u64, connections: &[usize]) -> anyhow::Result<()> {
    anyhow::ensure!(
        !connections.is_empty(),
        "--connections needs at least one count"
    );
    if let Some(c) = connections.iter().find(|&&c| c < 2) {
        anyhow::bail!("--connections {c}: wrk runs 2 threads, so at least 2 connections");
    }
    let nginx_bin = find_tool("nginx")?;
    let wrk_bin = find_tool("wrk")?;
    // Declared first so that it is removed last, after the children that use it stopped.
    let scratch = Scratch::new()?;

    // The upstream runs in this process: while wrk drives load this process does nothing
    // else, so a child process would isolate nothing more on the same cores.
    let upstream = start_upstream().await?;
    let nginx = start_nginx(&nginx_bin, &scratch.0, upstream)?;
    let gateway = start_gateway(&scratch.0, upstream)?;
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(5))
        .build()?;
    let direct_url = format!("http://{upstream}");
    let mut targets = [
        ("direct", direct_url, None),
        ("nginx", nginx.url.clone(), Some(nginx)),
        ("gateway", gateway.url.clone(), Some(gateway)),
    ];
    for (name, url, child) in &mut targets {
        wait_until_up(&client, name, url, child.as_mut()).await?;
        check_proxies(&client, name, url).await?;
    }

    let duration = Duration::from_secs(duration_secs);
    println!(
        "mercato bench gateway: GET {PRODUCT_PATH} ({} byte JSON body), wrk -t2, {}s warm-up \
         then {duration_secs}s measured per run, {} CPU cores",
        PRODUCT_BODY.len(),
        WARM_UP.as_secs(),
        std::thread::available_parallelism().map_or(0, |n| n.get()),
    );
    println!("  direct:  the upstream (axum, in the bench process)");
    println!("  nginx:   worker_processes auto, access_log off, upstream keepalive 512");
    println!(
        "  gateway: mercato serve gateway, RUST_LOG=warn (no access log), rate limit and \
         response cache off, GATEWAY_MAX_FREE_SOCKETS=512"
    );
    let mut rows = Vec::new();
    for &c in connections {
        for (name, url, _) in &targets {
            let url = format!("{url}{PRODUCT_PATH}");
            wrk(&wrk_bin, &url, c, WARM_UP).await?;
            let output = wrk(&wrk_bin, &url, c, duration).await?;
            let result = parse_wrk(&output)
                .with_context(|| format!("reading wrk's output for {name}:\n{output}"))?;
            rows.push((c, *name, result));
        }
    }
    print!("{}", render(&rows));
    Ok(())
}

/// The table: one line per connection count and target, then the comparisons, then errors.
fn render(rows: &[(usize, &str, WrkResult)]) -> String {
    let mut out = format!(
        "\n{:>6}  {:<8} {:>10} {:>10} {:>10} {:>8}\n",
        "conns", "target", "req/s", "p50", "p99", "errors"
    );
    let mut counts: Vec<usize> = rows.iter().map(|(c, _, _)| *c).collect();
    counts.dedup();
    for c in counts {
        let find = |name: &str| {
            rows.iter()
                .find(|(rc, n, _)| *rc == c && *n == name)
                .map(|(_, _, r)| r)
        };
        for (_, name, r) in rows.iter().filter(|(rc, _, _)| *rc == c) {
            out.push_str(&format!(
                "{c:>6}  {name:<8} {:>10.0} {:>10} {:>10} {:>8}\n",
                r.requests_per_sec,
                millis(r.p50_us),
                millis(r.p99_us),
                r.errors(),
            ));
        }
        if let (Some(direct), Some(nginx), Some(gateway)) =
            (find("direct"), find("nginx"), find("gateway"))
        {
            let ratio = if nginx.requests_per_sec > 0.0 {
                gateway.requests_per_sec / nginx.requests_per_sec
            } else {
                0.0
            };
            out.push_str(&format!(
                "{:>6}  gateway/nginx throughput {ratio:.2}x; p99 added over direct: nginx {}, \
                 gateway {}\n",
                "",
                signed_millis(nginx.p99_us - direct.p99_us),
                signed_millis(gateway.p99_us - direct.p99_us),
            ));
        }
    }
    for (c, name, r) in rows.iter().filter(|(_, _, r)| r.errors() > 0) {
        let [connect, read, write, timeout] = r.socket_errors;
        out.push_str(&format!(
            "!!! ERRORS {name} at {c} connections: {} non-2xx/3xx responses; socket errors \
             connect {connect}, read {read}, write {write}, timeout {timeout}\n",
            r.non_2xx
        ));
    }
    out
}

fn millis(us: f64) -> String {
    format!("{:.2}ms", us / 1000.0)
}

fn signed_millis(us: f64) -> String {
    format!("{:+.2}ms", us / 1000.0)
}

/// The tool's path, looked up in `PATH` and the sbin directories a non-root `PATH` lacks.
fn find_tool(name: &str) -> anyhow::Result<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain(["/usr/sbin", "/usr/local/sbin", "/sbin"].map(PathBuf::from))
        .map(|dir| dir.join(name))
        .find(|candidate| candidate.is_file())
        .ok_or_else(|| anyhow::anyhow!("`{name}` is not installed (nor in PATH); {INSTALL_HINT}"))
}

/// A directory of this run (configs, logs, the gateway's data), removed at the end.
struct Scratch(PathBuf);

impl Scratch {
    fn new() -> anyhow::Result<Self> {
        let dir =
            std::env::temp_dir().join(format!("mercato-bench-gateway-{}", std::process::id()));
        // A leftover of an earlier run with the same pid holds nothing worth keeping.
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir)
            .with_context(|| format!("creating the scratch directory {}", dir.display()))?;
        Ok(Self(dir))
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A child server, stopped when dropped.
struct Server {
    name: &'static str,
    url: String,
    child: Child,
    log: PathBuf,
}

impl Server {
    /// Why the child is gone, when it is.
    fn exited(&mut self) -> Option<String> {
        let status = self.child.try_wait().ok().flatten()?;
        let log = std::fs::read_to_string(&self.log).unwrap_or_default();
        let tail: Vec<&str> = log.lines().rev().take(20).collect();
        let tail: Vec<&str> = tail.into_iter().rev().collect();
        Some(format!(
            "{} exited ({status}); {}:\n{}",
            self.name,
            self.log.display(),
            tail.join("\n")
        ))
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if matches!(self.child.try_wait(), Ok(Some(_))) {
            return;
        }
        // SIGTERM first: nginx's workers outlive a SIGKILLed master and keep its port.
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .stderr(Stdio::null())
            .status();
        let deadline = Instant::now() + Duration::from_secs(5);
        while Instant::now() < deadline {
            if matches!(self.child.try_wait(), Ok(Some(_))) {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A port free now; the race with another process binding it before the child does is
/// accepted in a benchmark.
fn free_port() -> anyhow::Result<u16> {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").context("finding a free port")?;
    Ok(listener.local_addr()?.port())
}

/// Serves the fixed answers on a random port of 127.0.0.1, in this process.
async fn start_upstream() -> anyhow::Result<SocketAddr> {
    use axum::serve::ListenerExt as _;
    let status = || async { ([(header::CONTENT_TYPE, "application/json")], STATUS_BODY) };
    let app = Router::new()
        .route(
            PRODUCT_PATH,
            get(|| async { ([(header::CONTENT_TYPE, "application/json")], PRODUCT_BODY) }),
        )
        .route("/health", get(status))
        .route("/ready", get(status));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .context("binding the upstream")?;
    let addr = listener.local_addr()?;
    let listener = listener.tap_io(|tcp| {
        let _ = tcp.set_nodelay(true);
    });
    tokio::spawn(async move {
        if let Err(e) = axum::serve(listener, app).await {
            eprintln!("the bench upstream stopped: {e}");
        }
    });
    Ok(addr)
}

/// The nginx configuration: everything nginx writes lives in `dir`.
fn nginx_config(dir: &Path, port: u16, upstream: SocketAddr) -> String {
    let d = dir.display();
    format!(
        "worker_processes auto;
pid {d}/nginx.pid;
error_log {d}/nginx-error.log warn;
events {{
    worker_connections 4096;
}}
http {{
    access_log off;
    client_body_temp_path {d}/client_body;
    proxy_temp_path {d}/proxy;
    fastcgi_temp_path {d}/fastcgi;
    uwsgi_temp_path {d}/uwsgi;
    scgi_temp_path {d}/scgi;
    upstream mercato_bench {{
        server {upstream};
        keepalive 512;
    }}
    server {{
        listen 127.0.0.1:{port};
        location / {{
            proxy_pass http://mercato_bench;
            proxy_http_version 1.1;
            proxy_set_header Connection \"\";
        }}
    }}
}}
"
    )
}

fn start_nginx(nginx: &Path, dir: &Path, upstream: SocketAddr) -> anyhow::Result<Server> {
    let port = free_port()?;
    let config = dir.join("nginx.conf");
    std::fs::write(&config, nginx_config(dir, port, upstream)).context("writing nginx.conf")?;
    let log = dir.join("nginx-error.log");
    let child = Command::new(nginx)
        .arg("-p")
        .arg(dir)
        .arg("-c")
        .arg(&config)
        // Before reading its config nginx logs to its built-in path; `-e` keeps that here too.
        .arg("-e")
        .arg(&log)
        .args(["-g", "daemon off;"])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .with_context(|| format!("starting {}", nginx.display()))?;
    Ok(Server {
        name: "nginx",
        url: format!("http://127.0.0.1:{port}"),
        child,
        log,
    })
}

fn start_gateway(dir: &Path, upstream: SocketAddr) -> anyhow::Result<Server> {
    let port = free_port()?;
    let exe = std::env::current_exe().context("finding the mercato binary")?;
    let log = dir.join("gateway.log");
    let stderr = std::fs::File::create(&log).context("creating the gateway log")?;
    let child = Command::new(&exe)
        .args(["serve", "gateway", "--host", "127.0.0.1", "--port"])
        .arg(port.to_string())
        // Only the settings below: no NATS_URL, other upstreams or mercato.toml of the caller.
        .env_clear()
        .env("MERCATO_CONFIG", dir.join("absent.toml"))
        .env("MERCATO_DATA_DIR", dir.join("gateway-data"))
        .env("CATALOG_SERVICE_URL", format!("http://{upstream}"))
        .env("GATEWAY_RATE_LIMIT_RPS", "0")
        // The default config limits `/api/v1/auth/*` (an empty value would keep that
        // default); nginx has no limits at all.
        .env("GATEWAY_RATE_LIMITS", "auth=0")
        // A TTL of 0 would also turn the cache off but makes `/openapi.json` refetch each time.
        .env("GATEWAY_CACHE_MAX_ENTRIES", "0")
        // As many idle upstream connections as nginx's `keepalive 512`.
        .env("GATEWAY_MAX_FREE_SOCKETS", "512")
        // The access log is at info on `mercato::access`; nginx runs with `access_log off`.
        .env("RUST_LOG", "warn")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(stderr)
        .spawn()
        .with_context(|| format!("starting {} serve gateway", exe.display()))?;
    Ok(Server {
        name: "gateway",
        url: format!("http://127.0.0.1:{port}"),
        child,
        log,
    })
}

/// Waits until `url` answers `/health`, failing early when the child exits.
async fn wait_until_up(
    client: &reqwest::Client,
    name: &str,
    url: &str,
    mut child: Option<&mut Server>,
) -> anyhow::Result<()> {
    let started = Instant::now();
    loop {
        if let Some(reason) = child.as_deref_mut().and_then(Server::exited) {
            anyhow::bail!("{reason}");
        }
        let last = match client.get(format!("{url}/health")).send().await {
            Ok(r) if r.status().is_success() => return Ok(()),
            Ok(r) => format!("status {}", r.status()),
            Err(e) => e.to_string(),
        };
        if started.elapsed() > START_TIMEOUT {
            anyhow::bail!(
                "{name} did not answer {url}/health within {}s: {last}",
                START_TIMEOUT.as_secs()
            );
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// One GET of the bench route must come back 200 with the upstream's body.
async fn check_proxies(client: &reqwest::Client, name: &str, url: &str) -> anyhow::Result<()> {
    let response = client
        .get(format!("{url}{PRODUCT_PATH}"))
        .send()
        .await
        .with_context(|| format!("{name}: GET {PRODUCT_PATH} failed"))?;
    let status = response.status();
    let body = response
        .text()
        .await
        .with_context(|| format!("{name}: reading GET {PRODUCT_PATH}"))?;
    if status != reqwest::StatusCode::OK || body != PRODUCT_BODY {
        let body: String = body.chars().take(300).collect();
        anyhow::bail!(
            "{name}: GET {PRODUCT_PATH} should answer 200 with the upstream's body, got \
             {status}: {body}"
        );
    }
    Ok(())
}

/// Runs wrk and answers its output; the process is killed if this future is dropped.
async fn wrk(
    wrk: &Path,
    url: &str,
    connections: usize,
    duration: Duration,
) -> anyhow::Result<String> {
    let output = tokio::process::Command::new(wrk)
        .arg("-t2")
        .arg(format!("-c{connections}"))
        .arg(format!("-d{}s", duration.as_secs()))
        .arg("--latency")
        .arg(url)
        .stdin(Stdio::null())
        .kill_on_drop(true)
        .output()
        .await
        .with_context(|| format!("running {}", wrk.display()))?;
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    if !output.status.success() {
        anyhow::bail!(
            "wrk failed ({}): {}{}",
            output.status,
            stdout,
            String::from_utf8_lossy(&output.stderr)
        );
    }
    Ok(stdout)
}

/// Reads requests/s, the 50% and 99% latencies and the errors from `wrk --latency` output.
fn parse_wrk(output: &str) -> anyhow::Result<WrkResult> {
    let mut result = WrkResult::default();
    let (mut rate, mut p50, mut p99) = (None, None, None);
    for line in output.lines().map(str::trim) {
        if let Some(value) = line.strip_prefix("Requests/sec:") {
            rate = value.trim().parse::<f64>().ok();
        } else if let Some(value) = line.strip_prefix("Non-2xx or 3xx responses:") {
            result.non_2xx = value.trim().parse().context("non-2xx count")?;
        } else if let Some(value) = line.strip_prefix("Socket errors:") {
            // "connect 0, read 0, write 0, timeout 0"
            for (slot, part) in result.socket_errors.iter_mut().zip(value.split(',')) {
                *slot = part
                    .split_whitespace()
                    .nth(1)
                    .and_then(|n| n.parse().ok())
                    .with_context(|| format!("socket errors `{value}`"))?;
            }
        } else {
            let mut words = line.split_whitespace();
            match (words.next(), words.next()) {
                (Some("50%"), Some(value)) => p50 = Some(parse_wrk_time(value)?),
                (Some("99%"), Some(value)) => p99 = Some(parse_wrk_time(value)?),
                _ => {}
            }
        }
    }
    result.requests_per_sec = rate.context("no Requests/sec line")?;
    result.p50_us = p50.context("no 50% latency line (was --latency given?)")?;
    result.p99_us = p99.context("no 99% latency line")?;
    Ok(result)
}

/// A wrk duration (`512.00us`, `1.20ms`, `2.00s`, `1.50m`) in microseconds.
fn parse_wrk_time(value: &str) -> anyhow::Result<f64> {
    let split = value
        .find(|c: char| c.is_ascii_alphabetic())
        .with_context(|| format!("latency `{value}` has no unit"))?;
    let (number, unit) = value.split_at(split);
    let number: f64 = number
        .parse()
        .with_context(|| format!("latency `{value}`"))?;
    let scale = match unit {
        "us" => 1.0,
        "ms" => 1e3,
        "s" => 1e6,
        "m" => 60e6,
        "h" => 3600e6,
        _ => anyhow::bail!("latency `{value}`: unknown unit"),
    };
    Ok(number * scale)
}

#[cfg(test)]
mod tests {
    use super::*;

    const WRK_OUTPUT: &str = "Running 10s test @ http://127.0.0.1:8080/api/v1/products/bench
  2 threads and 64 connections
  Thread Stats   Avg      Stdev     Max   +/- Stdev
    Latency     1.10ms  450.00us  12.30ms   80.00%
    Req/Sec    29.10k     2.00k   33.00k    70.00%
  Latency Distribution
     50%  812.00us
     75%    1.20ms
     90%    1.80ms
     99%    2.50s
  579001 requests in 10.00s, 260.00MB read
  Socket errors: connect 0, read 3, write 0, timeout 7
  Non-2xx or 3xx responses: 12
Requests/sec:  57890.12
Transfer/sec:     26.00MB
";

    #[test]
    fn reads_rate_percentiles_and_errors_from_wrk_output() {
        let result = parse_wrk(WRK_OUTPUT).unwrap();
        assert_eq!(result.requests_per_sec, 57890.12);
        assert_eq!(result.p50_us, 812.0);
        assert_eq!(result.p99_us, 2_500_000.0);
        assert_eq!(result.non_2xx, 12);
        assert_eq!(result.socket_errors, [0, 3, 0, 7]);
        assert_eq!(result.errors(), 22);
    }

    #[test]
    fn refuses_wrk_output_without_a_latency_distribution() {
        let output = "Requests/sec:  100.00\n";
        assert!(parse_wrk(output).is_err());
    }

    #[test]
    fn converts_every_wrk_time_unit_to_microseconds() {
        assert_eq!(parse_wrk_time("512.00us").unwrap(), 512.0);
        assert_eq!(parse_wrk_time("1.20ms").unwrap(), 1200.0);
        assert_eq!(parse_wrk_time("2.00s").unwrap(), 2_000_000.0);
        assert_eq!(parse_wrk_time("1.50m").unwrap(), 90_000_000.0);
        assert!(parse_wrk_time("3.0").is_err());
    }

    #[test]
    fn the_product_body_is_about_300_bytes_of_json() {
        assert!(
            (250..=350).contains(&PRODUCT_BODY.len()),
            "{}",
            PRODUCT_BODY.len()
        );
        serde_json::from_str::<serde_json::Value>(PRODUCT_BODY).unwrap();
    }

    #[test]
    fn nginx_writes_only_inside_its_directory() {
        let addr: SocketAddr = "127.0.0.1:9000".parse().unwrap();
        let config = nginx_config(Path::new("/tmp/x"), 8081, addr);
        for path in [
            "pid /tmp/x/",
            "error_log /tmp/x/",
            "proxy_temp_path /tmp/x/",
        ] {
            assert!(config.contains(path), "{path}");
        }
        assert!(config.contains("keepalive 512;"));
        assert!(config.contains("access_log off;"));
    }
}
