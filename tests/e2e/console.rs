//! The console in a real headless Chromium (Debian's `chromium` and
//! `chromium-driver`, driven over WebDriver by fantoccini), against the
//! real intake and casework binaries and nats-server: the walk the users
//! make. Screenshots of each page go to `<target>/console-screenshots/`.

use std::io::{Read as _, Write as _};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use fantoccini::{Client, ClientBuilder, Locator};

use baove_proto::v1::case_service_client::CaseServiceClient;
use baove_proto::v1::{AssignOfficerRequest, CommandHeader, GetCaseRequest};

use crate::Service;
use crate::intake::System;

/// chromedriver on a free port, killed when dropped.
struct Driver {
    child: Child,
    url: String,
}

impl Driver {
    fn start() -> Self {
        let binary = ["/usr/bin/chromedriver", "/usr/lib/chromium/chromedriver"]
            .into_iter()
            .map(PathBuf::from)
            .find(|p| p.is_file())
            .expect(
                "chromedriver is missing: run deploy/local/ensure-browser.sh \
                 (Debian's chromium and chromium-driver)",
            );
        let port = baove_testkit::free_port().unwrap();
        let child = Command::new(binary)
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        baove_testkit::wait_for_port(port, Duration::from_secs(20)).unwrap();
        Self {
            child,
            url: format!("http://127.0.0.1:{port}"),
        }
    }

    /// A headless Chromium with no background networking.
    async fn browser(&self, width: u32, height: u32) -> Client {
        let mut caps = serde_json::Map::new();
        caps.insert(
            "goog:chromeOptions".into(),
            serde_json::json!({
                "binary": "/usr/bin/chromium",
                "args": [
                    "--headless=new", "--no-sandbox", "--disable-gpu",
                    "--disable-dev-shm-usage", "--disable-background-networking",
                    "--disable-component-update", "--disable-sync",
                    "--disable-default-apps", "--no-first-run",
                    "--lang=vi", format!("--window-size={width},{height}"),
                ],
            }),
        );
        ClientBuilder::new(hyper_util::client::legacy::connect::HttpConnector::new())
            .capabilities(caps)
            .connect(&self.url)
            .await
            .unwrap()
    }
}

impl Drop for Driver {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn screenshots() -> PathBuf {
    let dir = crate::bin_dir().join("console-screenshots");
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// Writes a screenshot of the page, and checks the page with axe-core
/// (WCAG 2 A and AA: labels, contrast, names of controls...): any
/// violation fails the test, naming the rule and the elements.
async fn shot(browser: &Client, name: &str) {
    let png = browser.screenshot().await.unwrap();
    std::fs::write(screenshots().join(format!("{name}.png")), png).unwrap();
    let violations = axe_violations(browser).await;
    assert!(violations.is_empty(), "{name}: {violations:#?}");
}

/// What axe-core finds wrong on the current page, one line per rule.
async fn axe_violations(browser: &Client) -> Vec<String> {
    let axe = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../.ci/node/node_modules/axe-core/axe.min.js"
    ))
    .expect("axe-core is missing: run deploy/local/ensure-browser.sh");
    browser.execute(&axe, vec![]).await.unwrap();
    let found = browser
        .execute_async(
            "const done = arguments[arguments.length - 1];
             axe.run(document, { runOnly: { type: 'tag', values: ['wcag2a', 'wcag2aa', 'wcag21aa'] } })
               .then((r) => done(r.violations.map((v) => v.id + ': ' + v.nodes.map((n) => n.target.join(' ')).join(', '))))
               .catch((e) => done(['axe failed: ' + e]));",
            vec![],
        )
        .await
        .unwrap();
    serde_json::from_value(found).unwrap()
}

/// The text of the element `css`, once it is there (20 s at most; then
/// the test fails showing the page it was on).
async fn text_of(browser: &Client, css: &str) -> String {
    wait_text(browser, css, "").await
}

/// The text of the element `css` once it contains `expected`: after a
/// click the page may still be the old one, or be replaced while it is
/// read (a live update), so this looks again until it holds (20 s at
/// most; then the test fails showing the page it was on).
async fn wait_text(browser: &Client, css: &str, expected: &str) -> String {
    wait_until(browser, css, Duration::from_secs(20), expected, |text| {
        text.contains(expected)
    })
    .await
}

/// The text of the element `css` once `holds` says yes of it, looked at
/// every 100 ms (the page may reload itself meanwhile) for at most
/// `within`; then the test fails showing the page, saying it wanted `what`.
async fn wait_until(
    browser: &Client,
    css: &str,
    within: Duration,
    what: &str,
    holds: impl Fn(&str) -> bool,
) -> String {
    let deadline = Instant::now() + within;
    let mut last = String::new();
    while Instant::now() < deadline {
        if let Ok(found) = browser.find(Locator::Css(css)).await
            && let Ok(text) = found.text().await
        {
            if holds(&text) {
                return text;
            }
            last = text;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let url = browser.current_url().await.map(|u| u.to_string());
    let page = browser.source().await.unwrap_or_default();
    panic!("{css}: no {what:?} within {within:?} (last {last:?}) on {url:?}:\n{page}")
}

async fn fill(browser: &Client, id: &str, value: &str) {
    let input = browser.find(Locator::Id(id)).await.unwrap();
    input.clear().await.unwrap();
    input.send_keys(value).await.unwrap();
}

/// Chooses `value` in the select `id`.
async fn choose(browser: &Client, id: &str, value: &str) {
    browser
        .find(Locator::Id(id))
        .await
        .unwrap()
        .select_by_value(value)
        .await
        .unwrap();
}

/// What the input `id` holds now.
async fn value_of(browser: &Client, id: &str) -> Option<String> {
    browser
        .find(Locator::Id(id))
        .await
        .unwrap()
        .prop("value")
        .await
        .unwrap()
}

/// The request id the form on the page carries.
async fn request_id_on(browser: &Client) -> Option<String> {
    browser
        .find(Locator::Css("input[name=request_id]"))
        .await
        .unwrap()
        .attr("value")
        .await
        .unwrap()
}

/// Clicks `css`. A live page (the inbox) may replace the element between
/// finding and clicking it: then it is found again, for up to 10 s.
async fn click(browser: &Client, css: &str) {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let clicked = match browser.find(Locator::Css(css)).await {
            Ok(element) => element.click().await,
            Err(e) => panic!("{css}: {e}"),
        };
        match clicked {
            Ok(()) => return,
            Err(fantoccini::error::CmdError::Standard(e))
                if e.error == fantoccini::error::ErrorStatus::StaleElementReference
                    && Instant::now() < deadline => {}
            Err(e) => panic!("clicking {css}: {e}"),
        }
    }
}

/// Signs in on the development sign-in form.
async fn sign_in(browser: &Client, console: &str, user: &str, role: &str, agency: &str) {
    browser.goto(&format!("{console}/dang-nhap")).await.unwrap();
    sign_in_here(browser, user, role, agency).await;
}

/// Signs in on the development sign-in form of the page the browser is on.
async fn sign_in_here(browser: &Client, user: &str, role: &str, agency: &str) {
    fill(browser, "user", user).await;
    choose(browser, "role", role).await;
    fill(browser, "agency", agency).await;
    click(browser, "#dev-sign-in button[type=submit]").await;
    let who = text_of(browser, "#who .user").await;
    assert_eq!(who, user);
}

async fn sign_out(browser: &Client) {
    click(browser, "#who form button").await;
    browser
        .wait()
        .at_most(Duration::from_secs(20))
        .for_element(Locator::Id("dev-sign-in"))
        .await
        .unwrap();
}

/// One raw HTTP/1.1 exchange with the console: what a forged request or a
/// non-browser client gets. Returns the status line, headers and body.
fn raw_http(console: &str, request: &str) -> String {
    let addr = console.trim_start_matches("http://");
    let mut stream = std::net::TcpStream::connect(addr).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    stream.write_all(request.as_bytes()).unwrap();
    let mut answer = String::new();
    stream.read_to_string(&mut answer).unwrap();
    answer
}

/// The browser's session id (HttpOnly: read through WebDriver), to make
/// requests outside the browser as that user.
async fn session_of(browser: &Client) -> String {
    browser
        .get_named_cookie("baove_session")
        .await
        .unwrap()
        .value()
        .to_owned()
}

/// `GET path` with the session `session`, outside the browser: what a
/// download gets (the browser would save it).
fn get_as(console: &str, path: &str, session: &str) -> String {
    let host = console.trim_start_matches("http://");
    raw_http(
        console,
        &format!(
            "GET {path} HTTP/1.1\r\nHost: {host}\r\nCookie: baove_session={session}\r\nConnection: close\r\n\r\n"
        ),
    )
}

fn start_console(system: &System, referral: &Service) -> Service {
    Service::start_with(
        "console",
        &system.nats.url(),
        tempfile::tempdir().unwrap(),
        &console_env(
            &system.intake.addr,
            &system.casework.addr,
            &referral.addr,
            "",
        ),
    )
}

/// Fills the Mẫu 01 form on the console at `base` with a call about
/// `child` in commune `unit` (the fewest fields a report needs), and sends it.
async fn report_by_phone(browser: &Client, base: &str, child: &str, unit: &str) {
    browser.goto(&format!("{base}/bao-cao/moi")).await.unwrap();
    choose(browser, "channel", "1").await;
    fill(browser, "child_name", child).await;
    fill(browser, "child_age", "8").await;
    choose(browser, "child_sex", "3").await;
    fill(browser, "incident_unit", unit).await;
    fill(browser, "narrative", "Hàng xóm báo trẻ bị đánh nhiều lần.").await;
    click(browser, "button.primary").await;
}

/// A console's settings: the services' addresses (each `a,b` when
/// several), the province it serves (empty: none), the test issuer.
fn console_env(
    intake: &str,
    casework: &str,
    referral: &str,
    province: &str,
) -> Vec<(&'static str, String)> {
    vec![
        ("BAOVE_CONSOLE_LISTEN", "127.0.0.1:0".into()),
        ("BAOVE_CONSOLE_INTAKE", intake.to_owned()),
        ("BAOVE_CONSOLE_CASEWORK", casework.to_owned()),
        ("BAOVE_CONSOLE_REFERRAL", referral.to_owned()),
        ("BAOVE_CONSOLE_PROVINCE", province.to_owned()),
        (
            "BAOVE_CONSOLE_DEV_ISSUER_KEY",
            crate::keys().dir.join("issuer.pem").display().to_string(),
        ),
    ]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn given_the_console_when_an_operator_reports_and_an_officer_assesses_then_each_sees_it_in_a_browser()
 {
    let system = System::start().await;
    let referral = Service::start("referral", &system.nats.url());
    let console = start_console(&system, &referral);
    let base = console.addr.clone();
    let driver = Driver::start();
    let browser = driver.browser(1280, 1100).await;
    // The checker finds what it should: an image without a text.
    browser
        .goto(
            "data:text/html,<html lang='vi'><title>t</title><main><img src='x.png'></main></html>",
        )
        .await
        .unwrap();
    let found = axe_violations(&browser).await;
    assert!(
        found.iter().any(|v| v.starts_with("image-alt")),
        "{found:?}"
    );

    // The hotline operator at 3 a.m.: two wrong fields, both shown at once.
    sign_in(
        &browser,
        &base,
        "op-17",
        "hotline_operator",
        "vn/tong-dai-111",
    )
    .await;
    assert!(
        text_of(&browser, "#who .role")
            .await
            .contains("Tổng đài 111")
    );
    browser.goto(&format!("{base}/bao-cao/moi")).await.unwrap();
    shot(&browser, "01-mau-01-empty").await;
    choose(&browser, "channel", "1").await;
    fill(&browser, "child_name", "Lê Thị Mai").await;
    fill(&browser, "child_age", "21").await;
    choose(&browser, "child_sex", "2").await;
    fill(&browser, "incident_unit", "vn:31135").await;
    click(&browser, "input[name=abuse][value='1']").await;
    click(&browser, "#immediate_danger").await;
    fill(
        &browser,
        "narrative",
        "Hàng xóm nghe tiếng trẻ khóc lúc 2 giờ sáng.",
    )
    .await;
    fill(&browser, "informant_phone", "0903 111 222").await;
    let request_id = request_id_on(&browser).await.unwrap();
    click(&browser, "button.primary").await;
    let age_error = text_of(&browser, "#child_age-error").await;
    let consent_error = text_of(&browser, "#informant_consent-error").await;
    assert!(age_error.contains("0 đến 17"), "{age_error}");
    assert!(consent_error.contains("đồng ý"), "{consent_error}");
    assert!(text_of(&browser, "#errors").await.contains("chưa được ghi"));
    // What she typed is still there, and the same request id.
    let kept = value_of(&browser, "child_name").await;
    assert_eq!(kept.as_deref(), Some("Lê Thị Mai"));
    let same_id = request_id_on(&browser).await;
    assert_eq!(same_id.as_deref(), Some(request_id.as_str()));
    shot(&browser, "02-mau-01-two-errors").await;

    // She fixes both and submits: the receipt, then the case number.
    fill(&browser, "child_age", "9").await;
    click(&browser, "#informant_consent").await;
    click(&browser, "button.primary").await;
    let intake_id = text_of(&browser, "#intake-id").await;
    assert!(!intake_id.is_empty());
    // The receipt reloads itself until casework has opened the case.
    let case_id = wait_until(
        &browser,
        "#case-id",
        Duration::from_secs(60),
        "a case number",
        |shown| !shown.is_empty() && !shown.contains("đang chuyển"),
    )
    .await;
    shot(&browser, "03-receipt-with-case").await;
    browser.goto(&format!("{base}/bao-cao")).await.unwrap();
    assert!(text_of(&browser, "#intakes").await.contains(&intake_id));

    // A forged post (the operator's own session, no CSRF token) and a
    // cross-site one are refused; nothing is recorded by them.
    let session = session_of(&browser).await;
    let host = base.trim_start_matches("http://");
    let body = "request_id=forged-1&channel=1&child_age=9&child_sex=2&incident_unit=vn%3A31135&narrative=x";
    let forged = raw_http(
        &base,
        &format!(
            "POST /bao-cao/moi HTTP/1.1\r\nHost: {host}\r\nCookie: baove_session={session}\r\n\
             Content-Type: application/x-www-form-urlencoded\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
            body.len()
        ),
    );
    assert!(forged.starts_with("HTTP/1.1 403"), "{forged}");
    assert!(forged.contains("CSRF"));
    let cross_site = raw_http(
        &base,
        &format!(
            "POST /dang-xuat HTTP/1.1\r\nHost: {host}\r\nOrigin: http://evil.example\r\nCookie: baove_session={session}\r\n\
             Content-Type: application/x-www-form-urlencoded\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
        ),
    );
    assert!(cross_site.starts_with("HTTP/1.1 403"), "{cross_site}");
    let page = raw_http(
        &base,
        &format!("GET /dang-nhap HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n"),
    )
    .to_ascii_lowercase();
    assert!(page.contains("content-security-policy: default-src 'self'; script-src 'self'"));
    assert!(page.contains("x-frame-options: deny"));
    assert!(page.contains("httponly") && page.contains("samesite=strict"));
    browser.goto(&format!("{base}/bao-cao")).await.unwrap();
    let listed = browser
        .find_all(Locator::Css("#intakes tbody tr"))
        .await
        .unwrap();
    assert_eq!(listed.len(), 1, "the forged post recorded nothing");

    // A second call about the same child: the operator is warned before
    // anything is recorded, asks the caller, confirms.
    browser.goto(&format!("{base}/bao-cao/moi")).await.unwrap();
    choose(&browser, "channel", "1").await;
    fill(&browser, "child_name", "Le Thi Mai").await;
    fill(&browser, "child_age", "9").await;
    choose(&browser, "child_sex", "2").await;
    fill(&browser, "incident_unit", "vn:31135").await;
    fill(&browser, "narrative", "Cô giáo thấy trẻ có vết bầm mới.").await;
    click(&browser, "button.primary").await;
    let warning = text_of(&browser, "#duplicate-warning").await;
    assert!(warning.contains(&case_id), "{warning}");
    shot(&browser, "03b-duplicate-warning").await;
    click(&browser, "#confirm_duplicate").await;
    click(&browser, "button.primary").await;
    let second = text_of(&browser, "#intake-id").await;
    assert_ne!(second, intake_id);
    browser.goto(&format!("{base}/bao-cao")).await.unwrap();
    let listed = browser
        .find_all(Locator::Css("#intakes tbody tr"))
        .await
        .unwrap();
    assert_eq!(
        listed.len(),
        2,
        "the warning recorded nothing; the confirmed report did"
    );

    // Her session ends while she types a report: nothing she typed is lost.
    browser.goto(&format!("{base}/bao-cao/moi")).await.unwrap();
    let request_id = request_id_on(&browser).await.unwrap();
    choose(&browser, "channel", "1").await;
    fill(&browser, "child_name", "Phan Văn Tú").await;
    fill(&browser, "child_age", "7").await;
    choose(&browser, "child_sex", "1").await;
    fill(&browser, "incident_unit", "vn:31135").await;
    fill(&browser, "narrative", "Trẻ bị bỏ đói nhiều ngày.").await;
    // (The session ends on the server: signed out from elsewhere, as
    // when it expires.)
    let session = session_of(&browser).await;
    let csrf = browser
        .find(Locator::Css("#who form input[name=csrf]"))
        .await
        .unwrap()
        .attr("value")
        .await
        .unwrap()
        .unwrap();
    let body = format!("csrf={csrf}");
    let ended = raw_http(
        &base,
        &format!(
            "POST /dang-xuat HTTP/1.1\r\nHost: {host}\r\nCookie: baove_session={session}\r\n\
             Content-Type: application/x-www-form-urlencoded\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
            body.len()
        ),
    );
    assert!(ended.starts_with("HTTP/1.1 303"), "{ended}");
    click(&browser, "button.primary").await;
    assert!(text_of(&browser, "#expired").await.contains("hết hạn"));
    assert!(text_of(&browser, "#resume").await.contains("không bị mất"));
    shot(&browser, "03c-session-ended-resume").await;
    sign_in_here(&browser, "op-17", "hotline_operator", "vn/tong-dai-111").await;
    assert!(
        text_of(&browser, "#resumed")
            .await
            .contains("chưa được ghi")
    );
    let kept = value_of(&browser, "child_name").await;
    assert_eq!(kept.as_deref(), Some("Phan Văn Tú"));
    let same_id = request_id_on(&browser).await;
    assert_eq!(same_id.as_deref(), Some(request_id.as_str()));
    click(&browser, "button.primary").await;
    text_of(&browser, "#intake-id").await;
    sign_out(&browser).await;

    // The province's officer: the case with its 12-hour clock.
    sign_in(
        &browser,
        &base,
        "cb-tinh-1",
        "province_officer",
        "vn:92/so-y-te",
    )
    .await;
    browser.goto(&format!("{base}/ho-so")).await.unwrap();
    let row = text_of(
        &browser,
        &format!("#cases tr:has(a[href='/ho-so/{case_id}'])"),
    )
    .await;
    assert!(row.contains("nguy hiểm ngay"), "{row}");
    assert!(
        row.contains("còn 11 giờ"),
        "a 12-hour clock from the report: {row}"
    );
    shot(&browser, "04-cases").await;
    // Filtered to her own cases: none is assigned to her yet.
    click(&browser, "#cua-toi").await;
    click(&browser, "form.filters button").await;
    wait_text(&browser, "#cases", "Không có hồ sơ nào khớp").await;
    browser
        .goto(&format!("{base}/ho-so/{case_id}"))
        .await
        .unwrap();
    assert!(text_of(&browser, "#phase").await.contains("Mẫu 02"));
    assert!(text_of(&browser, "#deadlines").await.contains("12 giờ"));
    assert!(text_of(&browser, "#timeline").await.contains("Mở hồ sơ"));
    // Meanwhile another officer assigns the case: the page shows it live.
    let mut other = CaseServiceClient::new(
        system
            .casework
            .channel_as(&crate::province_officer("cb-tinh-2"))
            .await,
    );
    let seen = other
        .get_case(GetCaseRequest {
            case_id: case_id.clone(),
        })
        .await
        .unwrap()
        .into_inner()
        .case
        .unwrap()
        .version;
    other
        .assign_officer(AssignOfficerRequest {
            header: Some(CommandHeader {
                request_id: "assign-1".into(),
                case_id: case_id.clone(),
                expected_version: seen,
                officer_id: String::new(),
            }),
            assignee_id: "cb-tinh-2".into(),
        })
        .await
        .unwrap();
    wait_text(&browser, "#timeline", "Phân công cán bộ").await;
    // Her form was decided on the old version: refused, the change marked,
    // what she typed kept; she resubmits.
    fill(&browser, "factor", "Bị cha dượng đánh nhiều lần").await;
    choose(&browser, "level", "1").await;
    fill(&browser, "summary", "Nguy cơ cao, cần can thiệp khẩn cấp.").await;
    click(&browser, "#assessment button.primary").await;
    let stale = text_of(&browser, "#stale").await;
    assert!(stale.contains(&format!("phiên bản {seen}")), "{stale}");
    assert!(
        text_of(&browser, "#errors")
            .await
            .contains("người khác cập nhật")
    );
    assert!(
        text_of(&browser, "#timeline li.new")
            .await
            .contains("Phân công cán bộ")
    );
    shot(&browser, "05-case-stale").await;
    let kept = value_of(&browser, "factor").await;
    assert_eq!(kept.as_deref(), Some("Bị cha dượng đánh nhiều lần"));
    click(&browser, "#assessment button.primary").await;
    browser
        .wait()
        .at_most(Duration::from_secs(20))
        .for_element(Locator::XPath(
            "//ol[@id='timeline']//strong[contains(., 'Mẫu 02')]",
        ))
        .await
        .unwrap();
    assert!(text_of(&browser, "#phase").await.contains("Mẫu 03"));
    shot(&browser, "05-case-assessed-after-resubmit").await;

    // The police officer of Ninh Kiều has the inbox open, empty.
    let police = driver.browser(1280, 1100).await;
    sign_in(&police, &base, "ca-301", "police", "vn:31135/cong-an").await;
    police.goto(&format!("{base}/hop-thu")).await.unwrap();
    assert!(text_of(&police, "#inbox").await.contains("trống"));

    // The officer records an emergency measure (a safe shelter, on the
    // assessment's finding), then asks the police to investigate.
    choose(&browser, "measure_kind", "2").await;
    fill(&browser, "measure_description", "Đưa trẻ đến nhà bà ngoại").await;
    fill(&browser, "decision_ref", "QĐ 12/2026/QĐ-UBND").await;
    click(&browser, "#emergency button.primary").await;
    browser
        .wait()
        .at_most(Duration::from_secs(20))
        .for_element(Locator::XPath(
            "//ol[@id='timeline']//strong[contains(., 'Biện pháp khẩn cấp')]",
        ))
        .await
        .unwrap();
    assert!(
        text_of(&browser, "#deadlines")
            .await
            .contains("đã thực hiện đúng hạn")
    );
    // The timeline says which measure, on whose decision.
    wait_text(
        &browser,
        "#timeline",
        "Bố trí nơi tạm trú an toàn, quyết định QĐ 12/2026/QĐ-UBND",
    )
    .await;
    assert!(
        text_of(&browser, "#consent-rule")
            .await
            .contains("đủ 7 tuổi")
    );
    fill(&browser, "reason", "Nghi cha dượng bạo hành trẻ").await;
    click(&browser, "#urgent").await;
    click(&browser, "#shares_identifying_information").await;
    choose(&browser, "legal_basis", "1").await;
    click(&browser, "#referral button.primary").await;
    // The page before the click has #referrals too ("Chưa có."): wait for
    // the one after it (read at once, a loaded machine saw the old one).
    wait_text(&browser, "#referrals", "vn:31135/cong-an").await;
    shot(&browser, "06-case-referred").await;

    // Mẫu 03, then the plan (Mẫu 04); approving her own plan is refused
    // beside the form (the chair, not the drafter, approves).
    fill(
        &browser,
        "mau-03-summary",
        "Trẻ bị bạo lực thể chất kéo dài",
    )
    .await;
    fill(&browser, "mau-03-needs", "An toàn, tâm lý, học tập").await;
    fill(&browser, "mau-03-minutes_ref", "BB 03/2026").await;
    fill(
        &browser,
        "mau-03-meeting_participants",
        "cb-tinh-1, bà ngoại, giáo viên chủ nhiệm",
    )
    .await;
    click(&browser, "#step-mau-03 button.primary").await;
    wait_text(&browser, "#phase", "Mẫu 04").await;
    fill(
        &browser,
        "mau-04-measure1_description",
        "Tư vấn tâm lý cho trẻ",
    )
    .await;
    fill(
        &browser,
        "mau-04-measure1_responsible",
        "Trung tâm công tác xã hội",
    )
    .await;
    fill(&browser, "mau-04-measure1_due_date", "2026-12-31").await;
    click(&browser, "#step-mau-04 button.primary").await;
    wait_text(&browser, "#phase", "Mẫu 05").await;
    fill(&browser, "mau-05-duyet-decision_ref", "QĐ 15/2026/QĐ-UBND").await;
    click(&browser, "#step-mau-05-duyet button.primary").await;
    let refused = text_of(&browser, "#step-mau-05-duyet .errors").await;
    assert!(!refused.is_empty());
    assert!(
        text_of(&browser, "#refused")
            .await
            .contains("chưa được ghi")
    );
    assert!(
        text_of(&browser, "#phase").await.contains("Mẫu 05"),
        "nothing approved"
    );
    shot(&browser, "06b-plan-approval-refused").await;

    // It arrives in the police inbox live, without a reload.
    let row = wait_text(&police, "#inbox tr[id^='ref-']", &case_id).await;
    assert!(row.contains("chờ xác nhận"), "{row}");
    assert!(
        row.contains("còn 2 giờ 0 phút") || row.contains("còn 1 giờ 59 phút"),
        "urgent: acknowledge within 2 hours: {row}"
    );
    shot(&police, "07-inbox-live").await;
    // She starts typing a decline reason; meanwhile a colleague of her unit
    // acknowledges the referral. The row updates live, and what she typed
    // stays, where she was typing.
    let referral_id = police
        .find(Locator::Css("#inbox tr[id^='ref-']"))
        .await
        .unwrap()
        .attr("id")
        .await
        .unwrap()
        .unwrap()
        .trim_start_matches("ref-")
        .to_owned();
    let reason_field = format!("reason-{referral_id}");
    let typing = police.find(Locator::Id(&reason_field)).await.unwrap();
    typing.click().await.unwrap();
    typing.send_keys("Chưa đủ căn cứ").await.unwrap();
    let version: u64 = police
        .find(Locator::Css(&format!(
            "form[action='/hop-thu/{referral_id}/tu-choi'] input[name=expected_version]"
        )))
        .await
        .unwrap()
        .attr("value")
        .await
        .unwrap()
        .unwrap()
        .parse()
        .unwrap();
    baove_proto::v1::referral_service_client::ReferralServiceClient::new(
        referral
            .channel_as(&crate::police("ca-302", "vn:31135/cong-an"))
            .await,
    )
    .acknowledge(baove_proto::v1::AcknowledgeRequest {
        header: Some(baove_proto::v1::ReferralHeader {
            request_id: uuid::Uuid::now_v7().to_string(),
            referral_id: referral_id.clone(),
            expected_version: version,
            ..Default::default()
        }),
    })
    .await
    .unwrap();
    wait_text(&police, "#inbox td.status", "đã xác nhận").await;
    assert_eq!(
        value_of(&police, &reason_field).await.as_deref(),
        Some("Chưa đủ căn cứ"),
        "the live update kept what she typed"
    );
    let focused = police
        .active_element()
        .await
        .unwrap()
        .attr("id")
        .await
        .unwrap();
    assert_eq!(focused.as_deref(), Some(reason_field.as_str()));
    click(&police, "#inbox form[action$='/nhan'] button").await;
    wait_text(&police, "#inbox td.status", "đã nhận xử lý").await;
    shot(&police, "08-inbox-accepted").await;
    police.close().await.unwrap();

    // The department's indicators for this year, with the CSV.
    browser.goto(&format!("{base}/thong-ke")).await.unwrap();
    let indicators = text_of(&browser, "#indicators").await;
    assert!(indicators.contains("Kỳ này"), "{indicators}");
    text_of(&browser, "#chart").await;
    shot(&browser, "09-statistics").await;
    let officer = session_of(&browser).await;
    let csv_path = browser
        .find(Locator::Id("csv"))
        .await
        .unwrap()
        .attr("href")
        .await
        .unwrap()
        .unwrap();
    let csv = get_as(&base, &csv_path, &officer);
    assert!(csv.starts_with("HTTP/1.1 200"), "{csv}");
    assert!(csv.to_ascii_lowercase().contains("content-type: text/csv"));
    sign_out(&browser).await;

    // The auditor replays the case to the moment before the emergency
    // measure: the 12-hour clock still running then.
    sign_in(&browser, &base, "kiem-tra-1", "auditor", "vn:92/thanh-tra").await;
    browser
        .goto(&format!("{base}/ho-so/{case_id}"))
        .await
        .unwrap();
    assert!(text_of(&browser, "#chain").await.contains("nguyên vẹn"));
    let before = browser
        .find(Locator::XPath(
            "//ol[@id='timeline']/li[strong[contains(., 'Biện pháp khẩn cấp')]]//a[@class='replay-before']",
        ))
        .await
        .unwrap();
    before.click().await.unwrap();
    assert!(text_of(&browser, "#as-of").await.contains("sự kiện #"));
    assert!(text_of(&browser, "#phase").await.contains("Mẫu 03"));
    let then = text_of(&browser, "#deadlines").await;
    assert!(
        then.contains("còn 11 giờ") && !then.contains("đúng hạn"),
        "{then}"
    );
    shot(&browser, "10-auditor-replay").await;
    browser
        .goto(&format!("{base}/ho-so/{case_id}"))
        .await
        .unwrap();
    assert!(text_of(&browser, "#access").await.contains("cb-tinh-1"));
    shot(&browser, "11-auditor-access").await;

    // The same page in English, by the switch in the header, and back.
    let lang = |b: &Client| {
        let b = b.clone();
        async move {
            b.find(Locator::Css("html"))
                .await
                .unwrap()
                .attr("lang")
                .await
                .unwrap()
                .unwrap_or_default()
        }
    };
    assert_eq!(lang(&browser).await, "vi");
    click(&browser, "#lang-switch").await;
    wait_text(&browser, "#chain", "Hash chain intact").await;
    assert_eq!(lang(&browser).await, "en");
    assert!(
        browser
            .current_url()
            .await
            .unwrap()
            .path()
            .ends_with(&format!("/ho-so/{case_id}")),
        "the switch comes back to the page it was on"
    );
    assert_eq!(text_of(&browser, "#who .role").await, "Inspector, auditor");
    let menu = text_of(&browser, "nav").await;
    assert!(
        menu.contains("Case file") && menu.contains("Circular 13"),
        "{menu}"
    );
    assert!(
        text_of(&browser, "#timeline")
            .await
            .contains("Emergency measure")
    );
    assert_eq!(text_of(&browser, "#lang-switch").await, "Tiếng Việt");
    shot(&browser, "11-auditor-access-english").await;
    click(&browser, "#lang-switch").await;
    wait_text(&browser, "#chain", "nguyên vẹn").await;
    assert_eq!(lang(&browser).await, "vi");
    let auditor = session_of(&browser).await;
    let away = get_as(&base, "/ngon-ngu?chon=en&ve=//example.org/x", &auditor);
    assert!(
        away.starts_with("HTTP/1.1 303") && away.contains("\r\nlocation: /\r\n"),
        "the switch goes back only to this console's own pages: {away}"
    );
    let unknown = get_as(&base, "/ngon-ngu?chon=fr", &auditor);
    assert!(
        unknown.starts_with("HTTP/1.1 400") && unknown.contains("chọn vi hoặc en"),
        "{unknown}"
    );
    let export = get_as(&base, &format!("/ho-so/{case_id}/xuat"), &auditor);
    assert!(export.starts_with("HTTP/1.1 200"), "{export}");
    assert!(
        export
            .to_ascii_lowercase()
            .contains("content-disposition: attachment")
    );
    assert!(export.contains("baove-export/2"));
    let garbled = get_as(&base, &format!("/ho-so/{case_id}?tai=abc"), &auditor);
    assert!(garbled.starts_with("HTTP/1.1 400"), "{garbled}");
    assert!(
        garbled.contains("tham số không hợp lệ") && garbled.contains("tai"),
        "{garbled}"
    );

    // On a phone-sized screen the case page still reads.
    let phone = driver.browser(390, 844).await;
    sign_in(
        &phone,
        &base,
        "cb-tinh-1",
        "province_officer",
        "vn:92/so-y-te",
    )
    .await;
    phone
        .goto(&format!("{base}/ho-so/{case_id}"))
        .await
        .unwrap();
    assert!(text_of(&phone, "#deadlines").await.contains("12 giờ"));
    shot(&phone, "12-case-phone").await;

    // The case list open when the plan's approval is missed: casework's
    // alert (WatchDeadlines, server-sent) reloads it, and the case's row
    // says the deadline was missed.
    phone.goto(&format!("{base}/ho-so")).await.unwrap();
    let row = format!("#case-{case_id}");
    assert!(!text_of(&phone, &row).await.contains("trễ hạn"));
    system.casework.move_clock(13 * 24 * 3_600_000);
    wait_text(&phone, &row, "trễ hạn").await;
    shot(&phone, "13-cases-deadline-missed").await;
    phone.close().await.unwrap();
    browser.close().await.unwrap();
    drop(console);
    drop(referral);
    drop(system);
}

/// The notes on the case page the browser shows.
async fn notes_on(browser: &Client) -> usize {
    wait_text(browser, "#timeline", "")
        .await
        .matches("Ghi chú")
        .count()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn given_two_casework_processes_the_console_writes_to_the_active_and_follows_a_failover() {
    // Two casework processes take turns only in a cluster: the keys that
    // seal a case's text are kept by the cluster for the standby.
    let cluster = baove_testkit::NatsCluster::start().unwrap();
    let url = cluster.urls();
    let r3 = ("BAOVE_STREAM_REPLICAS", "3".to_owned());
    let auto = [("BAOVE_ROLE", "auto".to_owned()), r3.clone()];
    let start = |name: &'static str| {
        Service::start_with(
            name,
            &url,
            tempfile::tempdir().unwrap(),
            std::slice::from_ref(&r3),
        )
    };
    let intake = start("intake");
    let referral = start("referral");
    let mut first = Service::start_with("casework", &url, tempfile::tempdir().unwrap(), &auto);
    crate::standby::becomes(&first, true).await;
    let second = Service::start_with("casework", &url, tempfile::tempdir().unwrap(), &auto);
    crate::standby::becomes(&second, false).await;
    // As a client of a cluster does: the same request id again until the
    // cluster, just started, acknowledges it.
    let intake_id = crate::cluster::submit(&intake, "fo-1").await;
    let case_id = crate::intake::case_of(&intake, &intake_id).await;
    // The console is given both processes, the standby first.
    let console = Service::start_with(
        "console",
        &url,
        tempfile::tempdir().unwrap(),
        &console_env(
            &intake.addr,
            &format!("{},{}", second.addr, first.addr),
            &referral.addr,
            "",
        ),
    );
    let base = console.addr.clone();
    let driver = Driver::start();
    let browser = driver.browser(1280, 1100).await;
    sign_in(
        &browser,
        &base,
        "cb-tinh-1",
        "province_officer",
        "vn:92/so-y-te",
    )
    .await;
    // Opens the case and adds a note; false when the page did not come
    // (a process down: the page says to try again).
    let note = async |text: &str| -> bool {
        browser
            .goto(&format!("{base}/ho-so/{case_id}"))
            .await
            .unwrap();
        if browser.find(Locator::Id("ghi-chu-text")).await.is_err() {
            return false;
        }
        fill(&browser, "ghi-chu-text", text).await;
        click(&browser, "#step-ghi-chu button.primary").await;
        browser.find(Locator::Id("timeline")).await.is_ok()
    };
    // A step goes to the active, not to the standby named first (which
    // refuses every write): it is taken once the console has asked which
    // is active (at once, or within seconds on a loaded machine).
    let deadline = Instant::now() + Duration::from_secs(60);
    while !(note("Gọi điện cho nhà trường").await && notes_on(&browser).await >= 1) {
        assert!(
            Instant::now() < deadline,
            "the console never wrote to the active"
        );
    }
    // The active dies; the standby takes the lease; the console follows.
    first.kill();
    crate::standby::becomes(&second, true).await;
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if note("Đã gặp bà ngoại").await && notes_on(&browser).await >= 2 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the console never wrote to the new active"
        );
    }
    // The note the old active sealed opens on the new one: the case's key
    // was kept by the cluster.
    wait_text(&browser, "#timeline", "Gọi điện cho nhà trường").await;
    wait_text(&browser, "#timeline", "Đã gặp bà ngoại").await;
    browser.close().await.unwrap();
    drop(console);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn given_a_national_console_and_two_provinces_then_a_report_is_recorded_in_the_province_of_its_commune()
 {
    // Two partitions on one NATS server: Hà Nội's intake, casework and
    // referral service (given to the console first, so the ones it calls
    // first) and Cần Thơ's. The console serves no one province: the
    // national hotline 111, and every province's officers' and police's
    // console.
    let nats = baove_testkit::NatsServer::start().unwrap();
    let url = nats.url();
    let start = |name: &'static str, province: &str| {
        Service::start_with(
            name,
            &url,
            tempfile::tempdir().unwrap(),
            &[("BAOVE_PARTITION", province.to_owned())],
        )
    };
    let ha_noi = start("intake", "vn:01");
    let can_tho = start("intake", "vn:92");
    let casework_can_tho = start("casework", "vn:92");
    let casework_ha_noi = start("casework", "vn:01");
    let referral_can_tho = start("referral", "vn:92");
    let referral_ha_noi = start("referral", "vn:01");
    for s in [
        &ha_noi,
        &can_tho,
        &casework_can_tho,
        &casework_ha_noi,
        &referral_can_tho,
        &referral_ha_noi,
    ] {
        s.wait_health(
            "",
            tonic_health::pb::health_check_response::ServingStatus::Serving,
        )
        .await;
    }
    // A console of both partitions (Hà Nội's first), serving `province`.
    let console_of = |province: &str| {
        Service::start_with(
            "console",
            &url,
            tempfile::tempdir().unwrap(),
            &console_env(
                &format!("{},{}", ha_noi.addr, can_tho.addr),
                &format!("{},{}", casework_ha_noi.addr, casework_can_tho.addr),
                &format!("{},{}", referral_ha_noi.addr, referral_can_tho.addr),
                province,
            ),
        )
    };
    let console = console_of("");
    let base = console.addr.clone();
    let driver = Driver::start();
    let browser = driver.browser(1280, 1100).await;
    sign_in(
        &browser,
        &base,
        "op-17",
        "hotline_operator",
        "vn/tong-dai-111",
    )
    .await;
    // A call from Ninh Kiều, Cần Thơ: the operator types the commune, not
    // the province.
    report_by_phone(&browser, &base, "Trần Thị Hoa", "vn:31135").await;
    let intake_id = text_of(&browser, "#intake-id").await;
    assert!(!intake_id.is_empty(), "no receipt");
    // The receipt is read from Cần Thơ's intake, and reloads itself until
    // Cần Thơ's casework opened the case.
    let case_id = wait_until(
        &browser,
        "#case-id",
        Duration::from_secs(60),
        "a case number",
        |shown| !shown.is_empty() && !shown.contains("đang chuyển"),
    )
    .await;
    shot(&browser, "20-national-console-receipt").await;
    let case = CaseServiceClient::new(casework_can_tho.channel_as(&crate::auditor()).await)
        .get_case(GetCaseRequest {
            case_id: case_id.clone(),
        })
        .await;
    assert!(
        case.is_ok(),
        "case {case_id} not in Cần Thơ's casework: {case:?}"
    );
    // Recorded in Cần Thơ only: Hà Nội's intake does not know it.
    let in_ha_noi = crate::intake::intake_client(&ha_noi)
        .await
        .get_intake(baove_proto::v1::GetIntakeRequest {
            intake_id: intake_id.clone(),
        })
        .await
        .unwrap_err();
    assert_eq!(in_ha_noi.code(), tonic::Code::NotFound, "{in_ha_noi:?}");
    // A call from Hà Nội, on the same console: recorded in Hà Nội.
    report_by_phone(&browser, &base, "Lê Văn Nam", "vn:00070").await;
    let ha_noi_intake = text_of(&browser, "#intake-id").await;
    crate::intake::intake_client(&ha_noi)
        .await
        .get_intake(baove_proto::v1::GetIntakeRequest {
            intake_id: ha_noi_intake.clone(),
        })
        .await
        .unwrap();
    let ha_noi_case = wait_until(
        &browser,
        "#case-id",
        Duration::from_secs(60),
        "a case number",
        |shown| !shown.is_empty() && !shown.contains("đang chuyển"),
    )
    .await;
    // Her list has both provinces' reports, and each opens from it.
    browser.goto(&format!("{base}/bao-cao")).await.unwrap();
    let listed = text_of(&browser, "#intakes").await;
    assert!(
        listed.contains(&intake_id) && listed.contains(&ha_noi_intake),
        "{listed}"
    );
    browser
        .goto(&format!("{base}/bao-cao/{intake_id}"))
        .await
        .unwrap();
    assert_eq!(text_of(&browser, "#intake-id").await, intake_id);
    sign_out(&browser).await;

    // An officer on the same console, whose token names no province: the
    // open cases of both provinces in one list, and the Cần Thơ case
    // (whose casework is given second) opens and takes a step there.
    sign_in(
        &browser,
        &base,
        "cb-tinh-1",
        "province_officer",
        "vn:92/so-y-te",
    )
    .await;
    browser.goto(&format!("{base}/ho-so")).await.unwrap();
    for case in [&case_id, &ha_noi_case] {
        text_of(&browser, &format!("#cases tr:has(a[href='/ho-so/{case}'])")).await;
    }
    let version_in_can_tho = async || {
        CaseServiceClient::new(casework_can_tho.channel_as(&crate::auditor()).await)
            .get_case(GetCaseRequest {
                case_id: case_id.clone(),
            })
            .await
            .unwrap()
            .into_inner()
            .case
            .unwrap()
            .version
    };
    let before = version_in_can_tho().await;
    browser
        .goto(&format!("{base}/ho-so/{case_id}"))
        .await
        .unwrap();
    fill(&browser, "ghi-chu-text", "Đã gọi công an phường Ninh Kiều").await;
    click(&browser, "#step-ghi-chu button.primary").await;
    wait_text(&browser, "#timeline", "Đã gọi công an phường Ninh Kiều").await;
    shot(&browser, "22-national-console-case-of-another-partition").await;
    let after = version_in_can_tho().await;
    assert!(
        after > before,
        "the note is not in Cần Thơ's casework: {before} then {after}"
    );
    // Her statistics are the country's: each province's reports added up
    // (one each), with each province's CSV.
    let reports_total = |table: &str| {
        table.lines().find_map(|line| {
            line.strip_prefix("reports Số tin báo tiếp nhận Tổng số ")
                .and_then(|rest| rest.split_whitespace().next())
                .map(str::to_owned)
        })
    };
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        browser.goto(&format!("{base}/thong-ke")).await.unwrap();
        let table = text_of(&browser, "#indicators").await;
        if reports_total(&table).as_deref() == Some("2") {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the country's reports are not both provinces': {table}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let provinces = text_of(&browser, "#provinces").await;
    assert!(
        provinces.contains("2 tỉnh") && provinces.contains("vn:01") && provinces.contains("vn:92"),
        "{provinces}"
    );
    shot(&browser, "24-national-console-statistics").await;
    let officer = session_of(&browser).await;
    let year = crate::vietnam_today().0;
    let csv = get_as(
        &base,
        &format!("/thong-ke/csv?ky={year}&don-vi=&tinh=vn%3A92"),
        &officer,
    );
    assert!(
        csv.starts_with("HTTP/1.1 200") && csv.contains("text/csv"),
        "{csv}"
    );
    let unnamed = get_as(&base, &format!("/thong-ke/csv?ky={year}"), &officer);
    assert!(
        unnamed.starts_with("HTTP/1.1 400") && unnamed.contains("chọn tỉnh"),
        "{unnamed}"
    );
    sign_out(&browser).await;

    // The Ninh Kiều police have their inbox open on the same console. The
    // Cần Thơ case's officer asks them to investigate: the referral, kept
    // by Cần Thơ's referral service (given second), arrives live, and
    // their acknowledgement is recorded there.
    const POLICE: &str = "vn:31135/cong-an";
    sign_in(&browser, &base, "ca-301", "police", POLICE).await;
    browser.goto(&format!("{base}/hop-thu")).await.unwrap();
    assert!(text_of(&browser, "#inbox").await.contains("trống"));
    let mut officer = crate::casework::Officer::of(&casework_can_tho, &case_id).await;
    let referral_id = crate::referral::request_reloading(&mut officer)
        .await
        .referral_id;
    let row = wait_text(&browser, &format!("#ref-{referral_id}"), &case_id).await;
    assert!(row.contains("chờ xác nhận"), "{row}");
    click(
        &browser,
        &format!("form[action='/hop-thu/{referral_id}/xac-nhan'] button"),
    )
    .await;
    wait_text(
        &browser,
        &format!("#ref-{referral_id} td.status"),
        "đã xác nhận",
    )
    .await;
    shot(&browser, "23-national-console-inbox-of-another-partition").await;
    let mut police = baove_proto::v1::referral_service_client::ReferralServiceClient::new(
        referral_can_tho
            .channel_as(&crate::police("ca-302", POLICE))
            .await,
    );
    let deadline = Instant::now() + Duration::from_secs(20);
    while crate::referral::in_inbox(&mut police, POLICE, &referral_id)
        .await
        .status()
        != baove_proto::v1::ReferralStatus::Acknowledged
    {
        assert!(
            Instant::now() < deadline,
            "the acknowledgement is not in Cần Thơ's referral service"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    sign_out(&browser).await;

    // Hà Nội's own console (BAOVE_CONSOLE_PROVINCE), given the same
    // intakes, records Hà Nội's reports only: the Cần Thơ report is
    // refused, not sent on as the national console does, the form kept,
    // and the page says which province it is for.
    let ha_noi_console = console_of("vn:01");
    let ha_noi_base = ha_noi_console.addr.clone();
    sign_in(
        &browser,
        &ha_noi_base,
        "op-18",
        "hotline_operator",
        "vn/tong-dai-111",
    )
    .await;
    report_by_phone(&browser, &ha_noi_base, "Trần Thị Hoa", "vn:31135").await;
    let said = text_of(&browser, "#incident_unit-error").await;
    assert!(
        said.contains("thuộc Thành phố Cần Thơ (vn:92)")
            && said.contains("chỉ ghi thông báo của tỉnh mình"),
        "{said}"
    );
    assert_eq!(
        value_of(&browser, "child_name").await.as_deref(),
        Some("Trần Thị Hoa")
    );
    shot(&browser, "21-province-console-refuses-another-province").await;
    browser.close().await.unwrap();
    drop(console);
    drop(ha_noi_console);
}
