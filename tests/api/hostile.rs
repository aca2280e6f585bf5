//! Hostile and careless input. Every input yields every ID it names or is refused as a whole
//! with a reason; memory, time and queue-message size stay bounded whatever arrives.

use crate::helpers::*;
use reprocess_emulator::host::HttpCall;
use reprocess_emulator::sample;
use serde_json::{Value, json};

#[test]
fn duplicate_keys_refuse_the_whole_body_or_message_naming_the_key() {
    let app = spawn_app();
    let body = format!(
        r#"{{"assignmentIds":["{}"],"assignmentIds":["{}"]}}"#,
        sample::DELIVERED_1,
        sample::DELIVERED_2
    );
    // main answered 200 and reprocessed only the second list.
    let (status, _, reply) = app.post_ids(&body).res();
    assert_eq!(status, 400, "{reply}");
    assert_eq!(reply["error"]["code"], "duplicate_key");
    assert_eq!(reply["error"]["fields"][0]["field"], "$.assignmentIds");
    assert!(app.graph_posts().is_empty());

    let reply = app.queue_message(&body);
    assert_eq!(reply.status, 200);
    let dead = reply.output_messages("deadLetter");
    assert_eq!(dead.len(), 1, "the whole message is dead-lettered");
    assert!(
        dead[0]["reason"]
            .as_str()
            .unwrap()
            .contains("duplicate key $.assignmentIds")
    );
    assert_eq!(dead[0]["originalMessage"], body.as_str());
    assert!(reply.output_messages("enqueue").is_empty());
    assert!(app.graph_posts().is_empty());
}

#[test]
fn the_invalid_field_count_is_the_true_one() {
    let app = spawn_app();
    let values: Vec<String> = (0..80).map(|i| format!("\"bad-{i}\"")).collect();
    let (status, _, body) = app
        .post_ids(&format!(r#"{{"assignmentIds":[{}]}}"#, values.join(",")))
        .res();
    assert_eq!(status, 400);
    assert_eq!(body["error"]["fields"].as_array().unwrap().len(), 50);
    assert_eq!(body["error"]["invalidFields"], 80);
    let message = body["error"]["message"].as_str().unwrap();
    assert!(message.starts_with("80 invalid fields (first 50 listed)"), "{message}");
}

fn call_with_content_type(content_type: Option<&str>) -> HttpCall {
    let mut call = HttpCall::post_json("reprocess", &format!(r#"{{"assignmentId":"{}"}}"#, sample::DELIVERED_1));
    call.headers.retain(|(k, _)| !k.eq_ignore_ascii_case("content-type"));
    if let Some(value) = content_type {
        call.headers.push(("Content-Type".into(), value.into()));
    }
    call
}

#[test]
fn bodies_not_declared_json_get_415_naming_what_to_send() {
    let app = spawn_app();
    for refused in ["text/plain", "application/xml", "application/x-www-form-urlencoded"] {
        let (status, _, body) = app.invoke_http(&call_with_content_type(Some(refused))).res();
        assert_eq!(status, 415, "{refused}: {body}");
        assert!(body["error"]["message"].as_str().unwrap().contains("application/json"));
    }
    assert!(app.graph_posts().is_empty());
    for accepted in [Some("application/json; charset=utf-8"), Some("Application/JSON"), None] {
        let (status, _, body) = app.invoke_http(&call_with_content_type(accepted)).res();
        assert_eq!(status, 200, "{accepted:?}: {body}");
    }
    let mut alert = HttpCall::post_json("alert", "{}");
    alert.headers = call_with_content_type(Some("text/xml")).headers;
    assert_eq!(app.post_alert_call(&alert).res().0, 415);
}

#[test]
fn query_values_repeated_by_the_host_are_refused() {
    // The host joins ?dryRun=true&dryRun=false into "true,false": neither true nor false.
    let app = spawn_app();
    let body = format!(r#"{{"assignmentId":"{}"}}"#, sample::DELIVERED_1);
    let call = TestApp::call_with_query("reprocess", &body, &[("dryRun", "true,false")]);
    let (status, _, reply) = app.invoke_http(&call).res();
    assert_eq!(status, 400, "{reply}");
    assert!(app.graph_posts().is_empty());
}

#[test]
fn a_continuation_cannot_widen_its_listing() {
    let app = spawn_app();
    let base = app.emulator.graph_base_url();
    // Right host and path, valid skip token, but the filter of every delivered assignment in the tenant.
    let widened = format!(
        "{base}/v1.0/identityGovernance/entitlementManagement/assignments?$filter=state%20eq%20%27delivered%27\
         &$expand=target,accessPackage%28%24expand%3Dcatalog%29&$select=id,state,status&$skiptoken=RFNwdF64x2"
    );
    let message = json!({ "accessPackageIds": [sample::PACKAGE_BULK], "nextLink": widened });
    let reply = app.queue_message(&message.to_string());
    assert_eq!(reply.status, 200);
    assert!(
        reply.output_messages("enqueue").is_empty(),
        "main listed and enqueued the tenant"
    );
    let dead = reply.output_messages("deadLetter");
    assert_eq!(dead.len(), 1);
    let reason = dead[0]["reason"].as_str().unwrap();
    assert!(reason.contains("$filter"), "{reason}");
    assert!(
        app.emulator.state.graph_requests().is_empty(),
        "nothing was sent to Graph"
    );
    assert!(app.stdout_contains("listing dead-lettered"));
}

#[test]
fn continuations_are_rebuilt_from_the_scope_and_logged_with_their_query() {
    let app = spawn_app();
    app.emulator.state.set_page_size(100);
    let start = json!({ "accessPackageIds": [sample::PACKAGE_BULK] });
    let reply = app.queue_message(&start.to_string());
    let messages = reply.output_messages("enqueue");
    let continuation = messages.iter().find(|m| m.get("nextLink").is_some()).unwrap();
    let link = continuation["nextLink"].as_str().unwrap();
    assert!(link.contains("$skiptoken="), "{link}");
    let reply = app.queue_message(&continuation.to_string());
    assert!(reply.output_messages("deadLetter").is_empty());
    // Every Graph GET is logged with its query, so a widened filter could not go unseen.
    assert!(app.stdout_contains("$skiptoken") || app.stdout_contains("%24skiptoken"));
    assert!(
        app.stdout()
            .lines()
            .filter(|l| l.contains("\"Graph GET\""))
            .all(|l| l.contains("\"query\":\""))
    );
    let _: Option<Value> = None;
}

#[test]
fn a_token_endpoint_that_never_answers_is_bounded_by_the_invocation_budget() {
    let app = spawn_app_env(&[("HTTP_BUDGET_SECONDS", "5")]);
    app.emulator.state.set_token_hangs(true);
    let started = std::time::Instant::now();
    let (status, headers, body) = app
        .post_ids(&format!(r#"{{"assignmentId":"{}"}}"#, sample::DELIVERED_1))
        .res();
    let took = started.elapsed();
    // Not a timing benchmark: the point is that the answer comes back instead of waiting on the token.
    assert!(took < std::time::Duration::from_secs(30), "took {took:?}");
    assert_eq!(status, 503, "{body}");
    assert!(headers["Retry-After"].is_string());
    assert_eq!(body["results"][0]["outcome"], "transient");
    assert!(app.graph_posts().is_empty());
}

#[test]
fn dead_letters_for_a_thousand_denied_ids_fit_the_queue_and_keep_every_id() {
    let app = spawn_app();
    app.emulator.state.set_app_role_granted(false);
    let ids: Vec<String> = (0..1_000)
        .map(|i| format!("b0b0b0b0-0000-4000-8000-{:012x}", i + 1))
        .collect();
    let reply = app.queue_message(&json!({ "assignmentIds": ids }).to_string());
    assert_eq!(reply.status, 200);
    let texts = reply.queue_output("deadLetter").unwrap();
    let mut seen = Vec::new();
    for text in &texts {
        // 64 KiB per queue message, base64-encoded by the host: 48 KiB of text.
        assert!(
            text.len() <= 48 * 1024,
            "a dead letter of {} bytes cannot be written",
            text.len()
        );
        let record: Value = serde_json::from_str(text).unwrap();
        assert!(
            record["reason"]
                .as_str()
                .unwrap()
                .contains("EntitlementManagement.ReadWrite.All")
        );
        seen.extend(
            record["assignmentIds"]
                .as_array()
                .unwrap()
                .iter()
                .map(|v| v.as_str().unwrap().to_owned()),
        );
    }
    seen.sort();
    let mut want = ids.clone();
    want.sort();
    assert_eq!(seen, want, "every ID in exactly one record");
}

fn peak_rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let line = status.lines().find(|l| l.starts_with("VmHWM:")).unwrap();
    line.split_whitespace().nth(1).unwrap().parse().unwrap()
}

/// Sends an HTTP-function envelope whose `Body` is `body_mib` MiB, piece by piece (the test never
/// holds it), framed with Content-Length or chunked, and returns the handler's raw answer.
fn send_huge_envelope(port: u16, body_mib: usize, chunked: bool) -> String {
    use std::io::{Read, Write};
    let head = br#"{"Data":{"req":{"Url":"https://localhost/api/reprocess","Method":"POST","Query":{},"Headers":{"Content-Type":["application/json"]},"Params":{},"Identities":[],"Body":""#;
    let tail = br#""}},"Metadata":{}}"#;
    let piece = vec![b'a'; 1 << 20];
    let length = head.len() + body_mib * piece.len() + tail.len();
    let mut stream = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    let framing = if chunked {
        "Transfer-Encoding: chunked".to_owned()
    } else {
        format!("Content-Length: {length}")
    };
    write!(
        stream,
        "POST /{HTTP_FUNCTION} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json; charset=utf-8\r\n{framing}\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut send = |bytes: &[u8]| {
        if chunked {
            write!(stream, "{:x}\r\n", bytes.len()).unwrap();
            stream.write_all(bytes).unwrap();
            stream.write_all(b"\r\n").unwrap();
        } else {
            stream.write_all(bytes).unwrap();
        }
    };
    send(head);
    for _ in 0..body_mib {
        send(&piece);
    }
    send(tail);
    if chunked {
        stream.write_all(b"0\r\n\r\n").unwrap();
    }
    let mut answer = String::new();
    stream.read_to_string(&mut answer).unwrap();
    answer
}

#[test]
fn memory_stays_bounded_under_huge_envelopes() {
    let app = spawn_app();
    // One ordinary call first, so the baseline includes the Graph client and TLS roots.
    assert_eq!(
        app.post_ids(&format!(r#"{{"assignmentId":"{}"}}"#, sample::DELIVERED_1))
            .res()
            .0,
        200
    );
    let before = peak_rss_kib(app.handler.pid());
    for (mib, chunked) in [(50, false), (300, true)] {
        let answer = send_huge_envelope(app.handler.port, mib, chunked);
        eprintln!(
            "after a {mib} MiB body (chunked: {chunked}): peak RSS {} KiB",
            peak_rss_kib(app.handler.pid())
        );
        assert!(
            answer.starts_with("HTTP/1.1 200"),
            "{}",
            &answer[..answer.len().min(300)]
        );
        // The caller gets a proper 413 naming the setting, through Outputs.res.
        assert!(
            answer.contains(r#"\"statusCode\":\"413\""#) || answer.contains(r#""statusCode":"413""#),
            "{answer}"
        );
        assert!(answer.contains("MAX_BODY_BYTES"));
    }
    let after = peak_rss_kib(app.handler.pid());
    eprintln!("handler peak RSS: {before} KiB after an ordinary call, {after} KiB after 50 MiB and 300 MiB envelopes");
    assert!(
        after < 40 * 1024,
        "peak RSS {after} KiB is over the 40 MB the benchmark allows"
    );
}

#[test]
fn a_stalled_envelope_is_given_up_on() {
    use std::io::{Read, Write};
    let app = spawn_app();
    let mut stream = std::net::TcpStream::connect(("127.0.0.1", app.handler.port)).unwrap();
    stream
        .set_read_timeout(Some(std::time::Duration::from_secs(40)))
        .unwrap();
    write!(
        stream,
        "POST /{HTTP_FUNCTION} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 1000\r\nConnection: close\r\n\r\n{{\"Data\":"
    )
    .unwrap();
    let started = std::time::Instant::now();
    let mut answer = String::new();
    let _ = stream.read_to_string(&mut answer);
    // Generous: the point is that a slow sender cannot hold the worker forever.
    assert!(
        started.elapsed() < std::time::Duration::from_secs(30),
        "{:?}",
        started.elapsed()
    );
    assert!(answer.is_empty() || answer.starts_with("HTTP/1.1 500"), "{answer}");
}
