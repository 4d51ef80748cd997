//! `dtredis dashboard` in a real browser: headless Chromium driven over WebDriver
//! (chromedriver) with fantoccini. Screenshots of each page go to
//! `target/dashboard-screenshots/`.

mod dashboard_support;

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use dashboard_support::{Dashboard, add_dead_letter, seed_orders};
use dtrsfw_test_support::{Server, free_port};
use fantoccini::{Client, ClientBuilder, Locator};

/// chromedriver on a free port and the WebDriver session it runs. On drop (a panic
/// included) the session is deleted first, so that chromedriver ends Chromium, its child;
/// then chromedriver is killed. Killing chromedriver alone would leave Chromium running.
struct Driver {
    child: Child,
    port: u16,
    session: Option<String>,
}

impl Driver {
    /// `DELETE /session/<id>`: chromedriver quits the browser before it answers.
    fn delete_session(&self, id: &str) -> std::io::Result<()> {
        use std::io::{Read, Write};
        let mut stream = std::net::TcpStream::connect(("127.0.0.1", self.port))?;
        stream.set_read_timeout(Some(Duration::from_secs(10)))?;
        write!(
            stream,
            "DELETE /session/{id} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
        )?;
        // The reply comes once the browser has quit.
        stream.read_to_end(&mut Vec::new()).map(drop)
    }
}

impl Drop for Driver {
    fn drop(&mut self) {
        if let Some(id) = self.session.take() {
            let _ = self.delete_session(&id);
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn which(binary: &str) -> Option<PathBuf> {
    std::env::var_os("PATH").and_then(|path| {
        std::env::split_paths(&path)
            .map(|d| d.join(binary))
            .find(|p| p.is_file())
    })
}

fn start_driver() -> Driver {
    let chromium = which("chromium");
    let driver = which("chromedriver");
    let (Some(_), Some(driver)) = (chromium, driver) else {
        panic!(
            "the browser test needs Debian's `chromium` and `chromium-driver` packages \
             (scripts/ensure-servers.sh installs them): chromium or chromedriver is not on PATH"
        );
    };
    let port = free_port();
    let child = Command::new(driver)
        .arg(format!("--port={port}"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start chromedriver");
    let driver = Driver {
        child,
        port,
        session: None,
    };
    let start = Instant::now();
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(
            start.elapsed() < Duration::from_secs(20),
            "chromedriver did not listen within 20 s"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    driver
}

async fn browser(port: u16) -> Client {
    let mut caps = serde_json::Map::new();
    caps.insert(
        "goog:chromeOptions".into(),
        serde_json::json!({
            "binary": which("chromium").unwrap(),
            "args": ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--window-size=1280,800"],
        }),
    );
    ClientBuilder::new(hyper_util::client::legacy::connect::HttpConnector::new())
        .capabilities(caps)
        .connect(&format!("http://127.0.0.1:{port}"))
        .await
        .expect("a WebDriver session with headless Chromium")
}

fn shots() -> PathBuf {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../target/dashboard-screenshots");
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

async fn screenshot(client: &Client, name: &str) {
    let png = client.screenshot().await.expect("screenshot");
    std::fs::write(shots().join(format!("{name}.png")), png).unwrap();
}

/// The text of `css`, waiting up to 10 s for it to appear: after a click the next page
/// may still be loading (a loaded machine showed it), and WebDriver's `find` does not wait.
async fn text_of(client: &Client, css: &str) -> String {
    let element = client
        .wait()
        .at_most(Duration::from_secs(10))
        .for_element(Locator::Css(css))
        .await
        .unwrap_or_else(|e| panic!("{css}: {e}"));
    element.text().await.unwrap()
}

/// Waits (up to `limit`) for `css`'s text to become `want`; returns the last text seen.
async fn wait_text(client: &Client, css: &str, want: &str, limit: Duration) -> String {
    let start = Instant::now();
    loop {
        let text = text_of(client, css).await;
        if text == want || start.elapsed() > limit {
            return text;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn seed(conn: &mut redis::Connection) {
    seed_orders(conn, 1);
    add_dead_letter(
        conn,
        "orders",
        "order.created",
        "{\"order\":41}",
        "max_deliveries",
        "billing",
    );
    add_dead_letter(
        conn,
        "orders",
        "order.created",
        "{\"order\":42,\"tag\":\"needle\"}",
        "max_deliveries",
        "billing",
    );
    add_dead_letter(conn, "orders", "order.refunded", "{\"order\":43}", "malformed", "audit");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_operator_sees_streams_live_searches_dead_letters_and_replays_one() {
    let server = Server::start();
    let mut conn = server.connection();
    seed(&mut conn);
    let dashboard = Dashboard::start(&server.url(), &[]);
    let mut driver = start_driver();
    let client = browser(driver.port).await;
    driver.session = client.session_id().await.expect("the WebDriver session's id");
    run(&client, &dashboard, &mut conn)
        .await
        .unwrap_or_else(|e: String| panic!("{e}"));
    // The session is deleted when `driver` drops, whether or not `run` panicked.
}

async fn run(client: &Client, d: &Dashboard, conn: &mut redis::Connection) -> Result<(), String> {
    // The printed URL: the token becomes a cookie and leaves the address bar.
    client
        .goto(&format!("{}/?token={}", d.base, d.token))
        .await
        .map_err(|e| e.to_string())?;
    let url = client.current_url().await.map_err(|e| e.to_string())?;
    assert_eq!(url.as_str(), format!("{}/", d.base), "the token is gone from the URL");
    let lag = "td[data-stream='orders'][data-field='lag']";
    assert_eq!(text_of(client, lag).await, "2", "lag: 3 entries, 1 delivered");
    assert_eq!(
        text_of(client, "td[data-stream='orders'][data-field='dead_letters']").await,
        "3"
    );

    // Live update: new messages change the counts without a reload.
    client
        .execute("window.__not_reloaded = true;", vec![])
        .await
        .map_err(|e| e.to_string())?;
    for _ in 0..5 {
        redis::cmd("XADD")
            .arg(&["orders", "*", "name", "order.created", "body", "{}"])
            .exec(conn)
            .unwrap();
    }
    let length = wait_text(
        client,
        "td[data-stream='orders'][data-field='length']",
        "8",
        Duration::from_secs(3),
    )
    .await;
    assert_eq!(length, "8", "the length follows within about a second");
    assert_eq!(wait_text(client, lag, "7", Duration::from_secs(3)).await, "7");
    let same_page = client
        .execute("return window.__not_reloaded === true;", vec![])
        .await
        .map_err(|e| e.to_string())?;
    assert_eq!(same_page, serde_json::json!(true), "updated in place, not reloaded");
    tokio::time::sleep(Duration::from_millis(1500)).await; // a few chart points
    screenshot(client, "overview").await;

    client
        .find(Locator::LinkText("orders"))
        .await
        .map_err(|e| e.to_string())?
        .click()
        .await
        .map_err(|e| e.to_string())?;
    client
        .wait()
        .for_element(Locator::Css("table.entries"))
        .await
        .map_err(|e| e.to_string())?;
    screenshot(client, "stream").await;

    // Dead letters: search, replay one, confirm.
    client
        .goto(&format!("{}/dlq?stream=orders", d.base))
        .await
        .map_err(|e| e.to_string())?;
    assert_eq!(
        client
            .find_all(Locator::Css("tr.letter"))
            .await
            .map_err(|e| e.to_string())?
            .len(),
        3
    );
    client
        .find(Locator::Css("input[name='q']"))
        .await
        .map_err(|e| e.to_string())?
        .send_keys("needle")
        .await
        .map_err(|e| e.to_string())?;
    client
        .find(Locator::Id("search"))
        .await
        .map_err(|e| e.to_string())?
        .click()
        .await
        .map_err(|e| e.to_string())?;
    let start = Instant::now();
    while !client
        .current_url()
        .await
        .map_err(|e| e.to_string())?
        .as_str()
        .contains("q=needle")
    {
        assert!(start.elapsed() < Duration::from_secs(10), "the search did not load");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let rows = client
        .find_all(Locator::Css("tr.letter"))
        .await
        .map_err(|e| e.to_string())?;
    assert_eq!(rows.len(), 1, "the search finds the one letter with the text");
    let dlq_id = rows[0].attr("data-id").await.map_err(|e| e.to_string())?.unwrap();
    screenshot(client, "dead-letters").await;
    client
        .find(Locator::Css("button.replay-one"))
        .await
        .map_err(|e| e.to_string())?
        .click()
        .await
        .map_err(|e| e.to_string())?;
    let question = text_of(client, "p.confirm").await;
    assert!(question.contains(&dlq_id), "{question}");
    screenshot(client, "confirm").await;
    client
        .find(Locator::Id("confirm"))
        .await
        .map_err(|e| e.to_string())?
        .click()
        .await
        .map_err(|e| e.to_string())?;
    let report = text_of(client, "#report").await;
    assert!(report.starts_with("Replayed 1;"), "{report}");
    screenshot(client, "replayed").await;

    // In Redis: re-published to the stream and gone from the dead-letter stream.
    let left: Vec<(String, Vec<(String, String)>)> = redis::cmd("XRANGE")
        .arg("orders:dlq")
        .arg("-")
        .arg("+")
        .query(conn)
        .unwrap();
    assert_eq!(left.len(), 2);
    assert!(left.iter().all(|(id, _)| *id != dlq_id));
    let last: Vec<(String, Vec<(String, String)>)> = redis::cmd("XREVRANGE")
        .arg("orders")
        .arg("+")
        .arg("-")
        .arg("COUNT")
        .arg(1)
        .query(conn)
        .unwrap();
    let body = &last[0].1.iter().find(|(k, _)| k == "body").unwrap().1;
    assert!(body.contains("needle"), "{body}");

    client
        .goto(&format!("{}/caches", d.base))
        .await
        .map_err(|e| e.to_string())?;
    screenshot(client, "caches").await;
    Ok(())
}
