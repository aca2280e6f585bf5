//! `reprocess-handler sandbox`: as strict as the real host, so it teaches what production does; its
//! command line refuses what it does not know and it stops on SIGTERM.

use crate::helpers::binary;
use std::io::{BufRead, BufReader, Read, Write};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

fn free_port() -> u16 {
    std::net::TcpListener::bind(("127.0.0.1", 0))
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn run_to_end(args: &[&str]) -> (Option<i32>, String) {
    let mut child = Command::new(binary())
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let started = Instant::now();
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            let mut out = String::new();
            child.stdout.take().unwrap().read_to_string(&mut out).unwrap();
            child.stderr.take().unwrap().read_to_string(&mut out).unwrap();
            return (status.code(), out);
        }
        if started.elapsed() > Duration::from_secs(20) {
            let _ = child.kill();
            let _ = child.wait();
            return (None, "still running after 20 s".into());
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn help_prints_usage_without_starting_and_unknown_flags_are_errors() {
    let (code, out) = run_to_end(&["sandbox", "--help"]);
    assert_eq!(code, Some(0), "{out}");
    assert!(out.contains("usage: reprocess-handler sandbox"), "{out}");
    assert!(!out.contains("emulated tenant at"), "it started: {out}");
    let port = free_port().to_string();
    let (code, out) = run_to_end(&["sandbox", "--port", &port, "--verbose"]);
    assert!(matches!(code, Some(c) if c != 0), "{code:?} {out}");
    assert!(out.contains("unknown argument \"--verbose\""), "{out}");
}

/// One raw request to the sandbox's emulated host: status line and body.
fn request(port: u16, head: &str, body: &[u8]) -> (String, String) {
    let mut stream = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    stream.set_read_timeout(Some(Duration::from_secs(60))).unwrap();
    stream.write_all(head.as_bytes()).unwrap();
    stream.write_all(body).unwrap();
    let mut raw = String::new();
    stream.read_to_string(&mut raw).unwrap();
    let status = raw.lines().next().unwrap_or("").to_owned();
    let body = raw
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_owned())
        .unwrap_or_default();
    (status, body)
}

/// One raw request: the whole response head (status line and headers) and the body.
fn request_with_head(port: u16, head: &str, body: &[u8]) -> (String, String) {
    let mut stream = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    stream.set_read_timeout(Some(Duration::from_secs(60))).unwrap();
    stream.write_all(head.as_bytes()).unwrap();
    stream.write_all(body).unwrap();
    let mut raw = String::new();
    stream.read_to_string(&mut raw).unwrap();
    let (head, body) = raw.split_once("\r\n\r\n").unwrap_or((&raw, ""));
    (head.to_owned(), body.to_owned())
}

fn post(port: u16, path: &str, content_type: &str, body: &str) -> (String, String) {
    let head = format!(
        "POST {path} HTTP/1.1\r\nHost: localhost\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    request(port, &head, body.as_bytes())
}

/// `GET /audit` (its text and records) once a record with `client_tracking_id` is there: the durable
/// sink is written in the background (`audit::Recorder::record`), so the record may land just after
/// the answer.
fn audit_once_recorded(port: u16, tracking_id: &str) -> (String, Vec<serde_json::Value>) {
    let head = "GET /audit HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n";
    let mut looks = 0;
    loop {
        let (status, body) = request(port, head, b"");
        assert!(status.contains(" 200 "), "{status}");
        let records: Vec<serde_json::Value> = serde_json::from_str(&body).unwrap();
        looks += 1;
        if looks == 100 || records.iter().any(|r| r["client_tracking_id"] == tracking_id) {
            return (body, records);
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// A POST of JSON to `/api/reprocess` with `extra` header lines (each ending in `\r\n`).
fn reprocess_with(port: u16, extra: &str, body: &str) -> (String, serde_json::Value) {
    let head = format!(
        "POST /api/reprocess HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\n{extra}Content-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    let (status, body) = request(port, &head, body.as_bytes());
    let parsed = serde_json::from_str(&body).unwrap_or_else(|_| serde_json::json!(body));
    (status, parsed)
}

const PAYROLL_CARLOS: &str = "8e2d3c4b-5a69-4786-9766-554433221100";
const PAYROLL_TEAM_OID: &str = "5a0e0003-0000-4000-8000-00000000ad03";

/// The front stands in for App Service authentication: it strips the principal headers a caller types
/// and injects the chosen sample caller's, whose roles narrow the call's scope.
fn sample_callers_stand_in_for_app_service_authentication(host: u16) {
    use base64::Engine;
    let payroll = format!(r#"{{"assignmentIds":["{PAYROLL_CARLOS}"]}}"#);
    let outcome = |reply: &serde_json::Value| reply["results"][0]["outcome"].as_str().unwrap_or("").to_owned();
    // A principal the caller forged, claiming the role that grants everything.
    let forged = base64::engine::general_purpose::STANDARD.encode(
        r#"{"auth_typ":"aad","claims":[{"typ":"roles","val":"Reprocess.All"},{"typ":"oid","val":"forged-oid"}],"role_typ":"roles"}"#,
    );
    let forged_headers = format!("X-MS-CLIENT-PRINCIPAL: {forged}\r\nX-MS-CLIENT-PRINCIPAL-ID: forged-oid\r\n");

    // The General caller is refused Payroll (catalog Human resources), and a forged Reprocess.All
    // principal sent along does not widen it: the front replaced it with the caller's own.
    let (status, reply) = reprocess_with(
        host,
        &format!("x-sandbox-caller: helpdesk-sales\r\n{forged_headers}"),
        &payroll,
    );
    assert!(status.contains(" 200 "), "{status} {reply}");
    assert_eq!(outcome(&reply), "out_of_scope", "{reply}");
    // The HR caller's roles allow the same ID.
    let (status, reply) = reprocess_with(
        host,
        "x-sandbox-caller: payroll-team\r\nx-ms-client-tracking-id: payroll-1\r\n",
        &payroll,
    );
    assert!(status.contains(" 200 "), "{status} {reply}");
    assert_eq!(outcome(&reply), "accepted", "{reply}");
    // A forged principal alone never reaches the handler: the call has no principal at all.
    let (status, reply) = reprocess_with(
        host,
        &format!("x-ms-client-tracking-id: forged-1\r\n{forged_headers}"),
        &payroll,
    );
    assert!(status.contains(" 200 "), "{status} {reply}");
    let (body, records) = audit_once_recorded(host, "forged-1");
    let record = |tracking: &str| {
        records
            .iter()
            .rev()
            .find(|r| r["client_tracking_id"] == tracking)
            .unwrap_or_else(|| panic!("no audit record for {tracking}"))
    };
    assert_eq!(record("payroll-1")["verified_principal_id"], PAYROLL_TEAM_OID);
    assert_eq!(
        record("payroll-1")["verified_roles"],
        "Reprocess.Catalog.HumanResources"
    );
    assert_ne!(record("forged-1")["verified_principal_id"], "forged-oid");
    assert!(!body.contains("forged-oid"), "a forged principal reached the handler");

    // A verified caller without any configured app role: the handler's 403.
    let (status, reply) = reprocess_with(host, "x-sandbox-caller: guest\r\n", &payroll);
    assert!(status.contains(" 403 "), "{status} {reply}");
    // An unknown caller name: the front's own 400, naming the sample callers.
    let (status, reply) = reprocess_with(host, "x-sandbox-caller: mallory\r\n", &payroll);
    assert!(status.contains(" 400 "), "{status} {reply}");
    assert_eq!(reply["error"]["code"], "unknown_sandbox_caller", "{reply}");
    let message = reply["error"]["message"].as_str().unwrap_or("");
    for name in ["admin", "helpdesk-sales", "payroll-team", "guest"] {
        assert!(message.contains(name), "{message}");
    }
    // GET /callers lists them with their roles.
    let (status, body) = request(
        host,
        "GET /callers HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n",
        b"",
    );
    assert!(status.contains(" 200 "), "{status} {body}");
    let listed: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(listed["websiteAuthEnabled"], true, "{listed}");
    let sales = listed["callers"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == "helpdesk-sales")
        .expect("helpdesk-sales listed");
    assert_eq!(sales["roles"], serde_json::json!(["Reprocess.Catalog.General"]));
}

#[test]
fn the_sandbox_host_behaves_like_the_real_one_and_stops_on_sigterm() {
    let (host, handler) = (free_port(), free_port());
    let storage = crate::azurite::azurite().connection_string();
    let mut child = Command::new(binary())
        .args([
            "sandbox",
            "--port",
            &host.to_string(),
            "--handler-port",
            &handler.to_string(),
            "--storage",
            &storage,
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let started = Instant::now();
    let mut tour = Vec::new();
    loop {
        let line = lines.next().expect("the sandbox ended early").unwrap();
        if line.contains("serving until") {
            break;
        }
        tour.push(line);
        assert!(
            started.elapsed() < Duration::from_secs(120),
            "the sandbox did not come up"
        );
    }
    std::thread::spawn(move || for _ in lines {});
    // The tour shows audit records naming the Logic App run, and the catalog scope refusing Payroll to
    // the General caller.
    let tour = tour.join("\n");
    assert!(tour.contains("workflow=sandbox-demo run=sandbox-run-1"), "{tour}");
    assert!(
        tour.contains("8e2d3c4b-5a69-4786-9766-554433221100  out_of_scope"),
        "{tour}"
    );
    assert!(tour.contains("-> out_of_scope 200"), "{tour}");
    // ... for the General caller; the HR caller's roles allow it, and its record names the principal.
    assert!(tour.contains(&format!("{PAYROLL_CARLOS}  accepted")), "{tour}");
    assert!(
        tour.contains(&format!(
            "principal={PAYROLL_TEAM_OID} (payroll-team) roles=Reprocess.Catalog.HumanResources"
        )),
        "{tour}"
    );
    assert!(
        tour.contains("HTTP 400") && tour.contains("outside the catalog scope this call may touch"),
        "{tour}"
    );
    // Step 6: member removed by hand → drift found → reprocessed → membership back.
    assert!(
        tour.contains("drift found: assignment 0c1d2e3f-4a5b-4c6d-8e7f-8a9b0c1d2e3f"),
        "{tour}"
    );
    assert!(tour.contains("not checked: \"SharePointOnline\""), "{tour}");
    assert!(tour.contains("1 drifted, 1 reprocessed here"), "{tour}");
    assert!(tour.contains("Diego is a member of Engineering again"), "{tour}");
    let one = r#"{"assignmentIds":["0b6c2f8e-4c1a-4a43-9a55-7f0d1f6a2b10"]}"#;

    // Your own call is audited with your headers' caller hints, and never with a secret.
    let head = format!(
        "POST /api/reprocess?code=SECRET-code HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\nx-ms-client-tracking-id: try-1\r\nAuthorization: Bearer SECRET-token\r\nx-functions-key: SECRET-key\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        one.len()
    );
    let (status, _) = request(host, &head, one.as_bytes());
    assert!(status.contains(" 200 "), "{status}");
    let (body, records) = audit_once_recorded(host, "try-1");
    assert!(records.iter().any(|r| r["outcome"] == "out_of_scope"));
    let mine = records
        .iter()
        .rev()
        .find(|r| r["client_tracking_id"] == "try-1")
        .expect("my call's record");
    assert_eq!(mine["assignment_ids"], "0b6c2f8e-4c1a-4a43-9a55-7f0d1f6a2b10");
    assert!(!body.contains("SECRET"), "a secret reached the audit records");

    sample_callers_stand_in_for_app_service_authentication(host);

    // Repeated query keys reach the handler joined, as the host passes them: refused, not last-wins.
    let (status, body) = post(host, "/api/reprocess?dryRun=true&dryRun=false", "application/json", one);
    assert!(status.contains(" 400 "), "{status} {body}");
    // The caller's Content-Type passes through: text/plain is not silently treated as JSON.
    let (status, body) = post(host, "/api/reprocess", "text/plain", one);
    assert!(status.contains(" 415 "), "{status} {body}");
    // A chunked body is dropped, as the host drops it.
    let chunked = format!("{:x}\r\n{one}\r\n0\r\n\r\n", one.len());
    let head = "POST /api/reprocess HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n";
    let (status, body) = request(host, head, chunked.as_bytes());
    assert!(
        status.contains(" 400 ") && body.contains("empty_body"),
        "{status} {body}"
    );
    // Bodies over 256 KiB reach the handler, which answers them (no plain-text 413 of the sandbox's own).
    let big = format!(r#"{{"assignmentIds":["{}"]}}"#, "a".repeat(300 * 1024));
    let (status, body) = post(host, "/api/reprocess", "application/json", &big);
    assert!(
        status.contains(" 400 ") && body.contains("invalid_field"),
        "{status} {}",
        &body[..body.len().min(200)]
    );
    // The OpenAPI document names the address the caller reached (the Host header, as the host's Url).
    let head = format!("GET /api/openapi HTTP/1.1\r\nHost: 127.0.0.1:{host}\r\nConnection: close\r\n\r\n");
    let (status, body) = request(host, &head, b"");
    assert!(status.contains(" 200 "), "{status} {body}");
    let document: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(document["host"], format!("127.0.0.1:{host}"));
    assert_eq!(document["schemes"], serde_json::json!(["http"]));

    // The async pattern end to end: a fan-out's 202 carries Location (the sandbox's own address, from
    // the Host header as the host builds Data.req.Url); polling it ends in 200 with every ID.
    let fan_out = r#"{"accessPackageIds":["e7c1a2b3-4d5e-4f60-8a7b-9c0d1e2f3a4b"]}"#;
    let head = format!(
        "POST /api/reprocess?code=KEY HTTP/1.1\r\nHost: localhost:{host}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        fan_out.len()
    );
    let (raw_head, body) = request_with_head(host, &head, fan_out.as_bytes());
    assert!(raw_head.starts_with("HTTP/1.1 202"), "{raw_head} {body}");
    let location = raw_head
        .lines()
        .find_map(|l| l.strip_prefix("location: ").or_else(|| l.strip_prefix("Location: ")))
        .expect("a Location header")
        .trim()
        .to_owned();
    assert!(
        location.starts_with(&format!("http://localhost:{host}/api/operations/")),
        "{location}"
    );
    assert!(!location.contains("KEY"), "{location}");
    let path = location.split_once(&format!(":{host}")).unwrap().1.to_owned();
    let polling = Instant::now();
    let done = loop {
        let head = format!("GET {path} HTTP/1.1\r\nHost: localhost:{host}\r\nConnection: close\r\n\r\n");
        let (status, body) = request(host, &head, b"");
        if status.contains(" 200 ") {
            break body;
        }
        assert!(status.contains(" 202 "), "{status} {body}");
        assert!(polling.elapsed() < Duration::from_secs(120), "still running: {body}");
        std::thread::sleep(Duration::from_millis(200));
    };
    let done: serde_json::Value = serde_json::from_str(&done).unwrap();
    assert_eq!(done["status"], "succeeded", "{done}");
    assert_eq!(done["summary"]["accepted"], 260);
    assert_eq!(done["results"].as_array().unwrap().len(), 260);

    let term = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(term.success());
    let stopping = Instant::now();
    while child.try_wait().unwrap().is_none() {
        if stopping.elapsed() > Duration::from_secs(15) {
            let _ = child.kill();
            panic!("the sandbox kept running after SIGTERM");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Whether a process still runs with `FUNCTIONS_CUSTOMHANDLER_PORT=<port>`: the sandbox's handler,
/// whoever its parent is now.
#[cfg(target_os = "linux")]
fn handler_process_left(port: u16) -> Option<String> {
    let wanted = format!("FUNCTIONS_CUSTOMHANDLER_PORT={port}");
    std::fs::read_dir("/proc")
        .unwrap()
        .filter_map(Result::ok)
        .filter(|e| e.file_name().to_string_lossy().bytes().all(|b| b.is_ascii_digit()))
        .find_map(|e| {
            let environ = std::fs::read(e.path().join("environ")).ok()?;
            environ
                .split(|b| *b == 0)
                .any(|var| var == wanted.as_bytes())
                .then(|| e.file_name().to_string_lossy().into_owned())
        })
}

#[cfg(not(target_os = "linux"))]
fn handler_process_left(_port: u16) -> Option<String> {
    None
}

/// A signal during the start-up tour stops the whole sandbox at once: the front, and the handler
/// process it started.
fn stops_during_the_tour(signal: &str) {
    let (host, handler) = (free_port(), free_port());
    let storage = crate::azurite::azurite().connection_string();
    let mut child = Command::new(binary())
        .args([
            "sandbox",
            "--port",
            &host.to_string(),
            "--handler-port",
            &handler.to_string(),
            "--storage",
            &storage,
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let started = Instant::now();
    let (tour_tx, tour_rx) = std::sync::mpsc::channel();
    let stdout = child.stdout.take().unwrap();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if line.contains("1) HTTP trigger") {
                let _ = tour_tx.send(());
            }
        }
    });
    tour_rx
        .recv_timeout(Duration::from_secs(60))
        .expect("the tour did not begin");
    // Step 1 waits out a throttled answer (1 s), so this lands in the middle of the tour.
    std::thread::sleep(Duration::from_millis(300));
    let sent = Command::new("kill")
        .args([&format!("-{signal}"), &child.id().to_string()])
        .status()
        .unwrap();
    assert!(sent.success());
    let stopping = Instant::now();
    while child.try_wait().unwrap().is_none() {
        if stopping.elapsed() > Duration::from_secs(5) {
            let _ = child.kill();
            let _ = child.wait();
            panic!(
                "the sandbox kept running 5 s after SIG{signal} (sent {:?} after start)",
                stopping - started
            );
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(
        std::net::TcpStream::connect(("127.0.0.1", handler)).is_err(),
        "the handler still listens on {handler} after SIG{signal}"
    );
    assert_eq!(
        handler_process_left(handler),
        None,
        "a handler process was left running"
    );
}

#[test]
fn sigterm_during_the_tour_stops_the_sandbox_and_its_handler() {
    stops_during_the_tour("TERM");
}

#[test]
fn sigint_during_the_tour_stops_the_sandbox_and_its_handler() {
    stops_during_the_tour("INT");
}
