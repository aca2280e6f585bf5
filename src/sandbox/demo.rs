//! What the sandbox shows at start: an HTTP call with one throttled answer, queue messages (one
//! malformed), and a package fan-out run to the end; then the curl lines to try.

use super::{HttpOutcome, Shim, invoke_http, run_queue_message};
use crate::emulator::host::HttpCall;
use crate::emulator::host_client::{HTTP_FUNCTION, OPERATIONS_FUNCTION};
use crate::emulator::{Fault, sample};
use serde_json::json;

pub(super) async fn run(shim: &Shim, port: u16) {
    println!(
        "sandbox: emulated tenant at {} (Graph + managed-identity endpoint)",
        shim.emulator.base_url
    );
    println!(
        "sandbox: handler at {}, emulated Functions host at http://127.0.0.1:{port}\n",
        shim.handler
    );
    // One throttled answer so the demo shows a Retry-After being honoured.
    shim.emulator
        .state
        .faults
        .script(sample::DELIVERED_2, [Fault::throttled(1)]);
    let body = json!({
        "assignmentIds": [sample::DELIVERED_1, sample::DELIVERED_2, sample::EXPIRED, sample::UNKNOWN],
        "assignmentRequestIds": [sample::REQUEST_FAILED],
    })
    .to_string();
    println!("sandbox: 1) HTTP trigger  POST /api/reprocess {body}");
    let HttpOutcome {
        status, body: reply, ..
    } = invoke_http(shim, HTTP_FUNCTION, &HttpCall::post_json("reprocess", &body)).await;
    println!("   -> HTTP {status}");
    for r in reply["results"].as_array().into_iter().flatten() {
        let detail = r["error"]["message"].as_str().or(r["reason"].as_str()).unwrap_or("");
        println!(
            "      {:<18} {}  {:<17} graph {} after {} attempt(s)  {}",
            r["kind"].as_str().unwrap_or(""),
            r["id"].as_str().unwrap_or(""),
            r["outcome"].as_str().unwrap_or(""),
            r["httpStatus"],
            r["attempts"],
            detail
        );
    }
    println!("      summary: {}", reply["summary"]);

    let message = json!({ "assignmentIds": [sample::DELIVERED_3] }).to_string();
    println!("\nsandbox: 2) queue trigger  message {message}");
    run_queue_message(shim, &message, 1).await;
    println!("\nsandbox: 3) queue trigger  malformed message \"not-a-guid\"");
    run_queue_message(shim, "not-a-guid", 1).await;
    if let Some(dead) = shim.poison.lock().expect("poison lock").last() {
        println!("   -> dead-lettered to reprocess-requests-poison: {}", dead["reason"]);
    }

    let body = json!({ "accessPackageIds": [sample::PACKAGE_BULK] }).to_string();
    println!(
        "\nsandbox: 4) package fan-out  POST /api/reprocess {body}  ({} delivered + {} other assignments)",
        sample::BULK_DELIVERED,
        sample::BULK_OTHER
    );
    let outcome = invoke_http(shim, HTTP_FUNCTION, &HttpCall::post_json("reprocess", &body)).await;
    println!(
        "   -> HTTP {} {}",
        outcome.status,
        json!({ "correlationId": outcome.body["correlationId"], "enqueued": outcome.body["enqueued"] })
    );
    for message in outcome.enqueued {
        run_queue_message(shim, &message, 1).await;
    }
    let done = {
        let tenant = shim.emulator.state.tenant.lock().expect("tenant lock");
        (0..sample::BULK_DELIVERED + sample::BULK_OTHER)
            .filter(|i| tenant.reprocess_count(&sample::bulk_assignment(*i)) == 1)
            .count()
    };
    let lists = shim.emulator.state.graph_requests_with("GET").len();
    println!("   -> {done} assignments of the package reprocessed once each, after {lists} list pages");
    let location = outcome
        .headers
        .iter()
        .find(|(name, _)| name.eq_ignore_ascii_case("Location"))
        .map(|(_, value)| value.clone());
    let Some(call) = location.as_deref().and_then(HttpCall::get_status_url) else {
        println!("   -> no Location: {}", outcome.body["statusUnavailable"]);
        return;
    };
    let status = invoke_http(shim, OPERATIONS_FUNCTION, &call).await;
    println!(
        "   -> GET {} : HTTP {} {}",
        location.unwrap_or_default(),
        status.status,
        json!({ "status": status.body["status"], "summary": status.body["summary"], "listing": status.body["listing"],
                "results": status.body["results"].as_array().map_or(0, Vec::len), "nextLink": status.body["nextLink"] })
    );
}

pub(super) fn print_curl_lines(port: u16) {
    println!(
        "  curl -s localhost:{port}/api/reprocess -H 'Content-Type: application/json' \\\n    -d '{{\"assignmentIds\":[\"{}\",\"{}\"]}}'",
        sample::DELIVERED_1,
        sample::EXPIRED
    );
    println!(
        "  curl -s localhost:{port}/queue/reprocess-requests -d '{}'",
        sample::DELIVERED_2
    );
    println!(
        "  curl -s localhost:{port}/api/reprocess -H 'Content-Type: application/json' \\\n    -d '{{\"accessPackageIds\":[\"{}\"]}}'",
        sample::PACKAGE_BULK
    );
    println!(
        "  curl -s 'localhost:{port}/api/reprocess?dryRun=true' -H 'Content-Type: application/json' \\\n    -d '{{\"userIds\":[\"{}\"]}}'",
        sample::USER_ADELE
    );
    println!("  curl -s localhost:{port}/api/operations/<correlationId>   # the Location of a 202 (curl -i shows it)");
    println!("  curl -s localhost:{port}/queue/reprocess-requests-poison");
    println!("  curl -s localhost:{port}/tenant");
}
