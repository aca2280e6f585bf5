//! What the sandbox shows at start: an HTTP call with one throttled answer and its audit records, queue
//! messages (one malformed), a package fan-out run to the end, a scoped caller refused an ID and a
//! package outside its catalog while another caller's roles allow them, and drift; then the curl lines
//! to try.

use super::front::http_function;
use super::views::line;
use super::{HttpOutcome, Shim, callers, invoke_http, run_queue_message};
use crate::host::HttpCall;
use crate::{Fault, sample};
use serde_json::json;

/// A JSON POST to `/api/reprocess` as if sent to the sandbox's front (`localhost:<port>`), so the URLs the
/// handler builds from it (a 202's `Location`) are ones you can curl. It carries no principal, like a
/// Logic App calling with the function key, unless `REQUIRE_AUTHENTICATED_CALLER` is on: then it goes
/// as `admin`, so the tour still shows what it is about instead of a row of 401s.
fn reprocess_call(shim: &Shim, port: u16, query: &str, body: &str) -> HttpCall {
    let mut call = HttpCall::post_json("reprocess", body);
    call.url = format!("http://localhost:{port}/api/reprocess{query}");
    call.query = url::form_urlencoded::parse(query.trim_start_matches('?').as_bytes())
        .into_owned()
        .collect();
    for (name, value) in &mut call.headers {
        if name.eq_ignore_ascii_case("Host") {
            *value = format!("localhost:{port}");
        }
    }
    if shim.auth.require_authenticated_caller {
        call = as_caller(call, "admin");
    }
    call
}

pub(super) async fn run(shim: &Shim, port: u16) {
    let reprocess = http_function("reprocess");
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
    println!("sandbox: 1) HTTP trigger  POST /api/reprocess {body}  (as Logic App run 'sandbox-run-1')");
    let mut call = reprocess_call(shim, port, "", &body);
    call.headers.extend([
        ("x-ms-workflow-name".into(), "sandbox-demo".into()),
        ("x-ms-workflow-run-id".into(), "sandbox-run-1".into()),
    ]);
    let HttpOutcome {
        status, body: reply, ..
    } = invoke_http(shim, reprocess, &call).await;
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
    print_audit_since(shim, 0).await;

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
    let outcome = invoke_http(shim, reprocess, &reprocess_call(shim, port, "", &body)).await;
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
    let lists = shim.emulator.state.unbatched_gets();
    println!("   -> {done} assignments of the package reprocessed once each, after {lists} list pages");
    let location = outcome
        .headers
        .iter()
        .find(|(name, _)| name.eq_ignore_ascii_case("Location"))
        .map(|(_, value)| value.clone());
    match location.as_deref().and_then(HttpCall::get_status_url) {
        None => println!("   -> no Location: {}", outcome.body["statusUnavailable"]),
        Some(call) => {
            let status = invoke_http(shim, http_function("operations/{correlationId}"), &call).await;
            println!(
                "   -> GET {} : HTTP {} {}",
                location.unwrap_or_default(),
                status.status,
                json!({ "status": status.body["status"], "summary": status.body["summary"], "listing": status.body["listing"],
                        "results": status.body["results"].as_array().map_or(0, Vec::len), "nextLink": status.body["nextLink"] })
            );
        }
    }

    catalog_scope(shim, port).await;
    println!(
        "\nsandbox: {} audit records so far (GET /audit lists them; in Azure they go to the log and the table reprocessaudit)",
        shim.audit.len()
    );
    drift(shim, port).await;
}

/// `call` as the sample caller `name`: what the front does with `x-sandbox-caller: <name>`.
fn as_caller(mut call: HttpCall, name: &str) -> HttpCall {
    call.headers.push((callers::CALLER_HEADER.into(), name.into()));
    callers::authenticate(&mut call.headers).expect("a sample caller");
    call
}

/// Step 5: the deployment's scope (both catalogs) narrowed by each caller's app roles: the General
/// caller is refused Payroll (catalog Human resources), by ID and by package; the HR caller is not.
async fn catalog_scope(shim: &Shim, port: u16) {
    let reprocess = http_function("reprocess");
    println!(
        "\nsandbox: 5) catalog scope per caller  ALLOWED_CATALOG_IDS={},{} (General, Human resources); \
         each caller's app roles narrow it (CALLER_SCOPES; GET /callers lists the sample callers)",
        sample::CATALOG_GENERAL,
        sample::CATALOG_HR
    );
    if !shim.auth.platform_auth {
        println!(
            "   (WEBSITE_AUTH_ENABLED is not true in your environment: the handler ignores these principals, as it would in Azure)"
        );
    }
    let print_results = |outcome: &HttpOutcome| {
        for r in outcome.body["results"].as_array().into_iter().flatten() {
            println!(
                "      {}  {:<13} {}",
                r["id"].as_str().unwrap_or(""),
                r["outcome"].as_str().unwrap_or(""),
                r["catalogId"]
                    .as_str()
                    .map(|c| format!("catalog {c}"))
                    .unwrap_or_default()
            );
        }
    };
    let sales = "helpdesk-sales";
    let seen = shim.audit.len();
    let body = json!({ "assignmentIds": [sample::VISITORS_CARLOS, sample::PAYROLL_CARLOS] }).to_string();
    println!(
        "   as {sales} (role {}: catalog General only)  POST /api/reprocess {body}",
        callers::ROLE_GENERAL
    );
    let outcome = invoke_http(
        shim,
        reprocess,
        &as_caller(reprocess_call(shim, port, "", &body), sales),
    )
    .await;
    print_results(&outcome);
    print_audit_since(shim, seen).await;
    let body = json!({ "accessPackageIds": [sample::PACKAGE_PAYROLL] }).to_string();
    println!("   as {sales}  POST /api/reprocess {body}");
    let outcome = invoke_http(
        shim,
        reprocess,
        &as_caller(reprocess_call(shim, port, "", &body), sales),
    )
    .await;
    println!("   -> HTTP {} {}", outcome.status, outcome.body["error"]["message"]);
    let payroll = "payroll-team";
    let seen = shim.audit.len();
    let body = json!({ "assignmentIds": [sample::PAYROLL_CARLOS] }).to_string();
    println!(
        "   as {payroll} (role {}: catalog Human resources only)  POST /api/reprocess {body}",
        callers::ROLE_HR
    );
    let outcome = invoke_http(
        shim,
        reprocess,
        &as_caller(reprocess_call(shim, port, "", &body), payroll),
    )
    .await;
    print_results(&outcome);
    print_audit_since(shim, seen).await;
}

/// The audit records written since the first `seen`, one line each.
async fn print_audit_since(shim: &Shim, seen: usize) {
    // The handler hands records to the sink in the background, just after answering.
    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    println!("      audit records:");
    for record in shim.audit.records().iter().skip(seen) {
        println!("        {}", line(record));
    }
}

/// Step 6: a member removed by hand → drift found (dry run) → reprocessed (queue) → membership back.
async fn drift(shim: &Shim, port: u16) {
    let reprocess = http_function("reprocess");
    let (group, user) = (sample::GROUP_ENGINEERING, sample::USER_DIEGO);
    println!(
        "\nsandbox: 6) drift  an admin removes Diego ({user}) from the Engineering group by hand \
         (DELETE /v1.0/groups/{group}/members/{user}/$ref); his assignment {} still says Delivered",
        sample::ENG_DIEGO
    );
    shim.emulator
        .state
        .tenant
        .lock()
        .expect("tenant lock")
        .directory
        .remove_member(group, user);
    let body = json!({ "detectDriftFor": { "accessPackageIds": [sample::PACKAGE_ENGINEERING] } }).to_string();
    println!("   POST /api/reprocess?dryRun=true {body}");
    let call = reprocess_call(shim, port, "?dryRun=true", &body);
    let outcome = invoke_http(shim, reprocess, &call).await;
    let package = &outcome.body["drift"][0];
    for d in package["drifted"].as_array().into_iter().flatten() {
        for role in d["missing"].as_array().into_iter().flatten() {
            println!(
                "   -> drift found: assignment {} (user {}) lacks {} \"{}\" of {} \"{}\"",
                d["assignmentId"].as_str().unwrap_or(""),
                d["userId"].as_str().unwrap_or(""),
                role["originSystem"].as_str().unwrap_or(""),
                role["role"].as_str().unwrap_or(""),
                role["resource"].as_str().unwrap_or(""),
                role["resourceOriginId"].as_str().unwrap_or("")
            );
        }
    }
    for n in package["notChecked"].as_array().into_iter().flatten() {
        println!(
            "   -> not checked: {} {}: {}",
            n["originSystem"], n["resource"], n["reason"]
        );
    }
    println!("   POST /api/reprocess {body}");
    let outcome = invoke_http(shim, reprocess, &reprocess_call(shim, port, "", &body)).await;
    println!("   -> HTTP {} {}", outcome.status, outcome.body["enqueued"]);
    for message in outcome.enqueued {
        run_queue_message(shim, &message, 1).await;
    }
    let back = shim
        .emulator
        .state
        .tenant
        .lock()
        .expect("tenant lock")
        .directory
        .is_member(group, user);
    println!(
        "   -> Diego {} a member of Engineering again",
        if back { "is" } else { "is NOT" }
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
    println!(
        "  curl -s 'localhost:{port}/api/reprocess?dryRun=true' -H 'Content-Type: application/json' \\\n    -d '{{\"detectDriftFor\":{{\"accessPackageIds\":[\"{}\"]}}}}'",
        sample::PACKAGE_ENGINEERING
    );
    println!(
        "  curl -s localhost:{port}/api/reprocess -H 'x-sandbox-caller: helpdesk-sales' -H 'Content-Type: application/json' \\\n    -d '{{\"assignmentIds\":[\"{}\"]}}'   # out_of_scope: Payroll is not in General",
        sample::PAYROLL_CARLOS
    );
    println!("  curl -s localhost:{port}/callers   # the sample callers (x-sandbox-caller) and their roles");
    println!("  curl -s localhost:{port}/queue/reprocess-requests-poison");
    println!("  curl -s localhost:{port}/tenant");
    println!("  curl -s localhost:{port}/audit");
}
