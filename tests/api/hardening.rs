//! What a hostile caller tried: writing into another caller's operation by naming its correlation ID
//! (real Azurite), audit records too large for one Table property, and caller text carrying Unicode
//! format characters (bidirectional overrides, zero-width characters) into the audit records and logs.

use crate::helpers::{ReplyExt, TestApp, delivered_tenant, spawn_app_env};
use crate::operations::{
    finished, header, ids_of, location_of, spawn_tracked_in, storage_client, table_name, tokio_run,
};
use reprocess_emulator::host::HttpCall;
use reprocess_emulator::sample;
use reprocess_handler::storage::{Entity, Filter, TableKey, TableName};
use serde_json::{Value, json};
use std::time::{Duration, Instant};

fn guids(from: usize, n: usize) -> Vec<String> {
    (from..from + n)
        .map(|i| format!("5eed0000-0000-4000-8000-{i:012x}"))
        .collect()
}

/// The `op` row of an operation, as stored.
fn op_row(table: &str, op: &str) -> reprocess_handler::storage::Entity {
    let table = TableName::parse(table).unwrap();
    tokio_run(storage_client().get(&table, &TableKey::parse(op).unwrap(), &TableKey::parse("op").unwrap()))
        .unwrap()
        .expect("the operation's row")
}

#[test]
fn a_call_naming_an_existing_operation_is_refused_and_the_operation_is_untouched() {
    let (state, ids) = delivered_tenant(75, 12);
    let table = table_name();
    let app = spawn_tracked_in(state, &[("HTTP_SYNC_MAX_IDS", "10")], &table);

    // The victim's operation, finished.
    let reply = app.post_ids(&json!({ "assignmentIds": ids }).to_string());
    let (status, headers, queued) = reply.res();
    let location = location_of(status, &headers, &queued);
    let victim = queued["correlationId"].as_str().unwrap().to_owned();
    app.drain(reply.output_messages("enqueue"), true);
    let (before, results) = finished(&app, &location);
    assert_eq!(before["status"], "succeeded", "{before}");
    assert_eq!(ids_of(&results), ids.iter().cloned().collect());
    let row_before = op_row(&table, &victim);

    // The hostile calls: 150 other IDs (split into queue messages), a fan-out, and a drift request, each
    // naming the victim's operation. Each is refused with 409 naming the field; nothing is enqueued.
    let hostile = [
        json!({ "assignmentIds": guids(0, 150), "correlationId": victim }),
        json!({ "accessPackageIds": [sample::PACKAGE_SALES], "correlationId": victim }),
    ];
    for body in &hostile {
        let reply = app.post_ids(&body.to_string());
        let (status, _, answer) = reply.res();
        assert_eq!(status, 409, "{answer}");
        assert_eq!(answer["error"]["code"], "operation_exists");
        assert_eq!(answer["error"]["fields"][0]["field"], "correlationId");
        assert!(
            reply.output_messages("enqueue").is_empty(),
            "nothing enqueued for {body}"
        );
    }

    // The victim's operation is as it was: same status, results, counts and expiry.
    let (after, after_results) = finished(&app, &location);
    assert_eq!(after["status"], "succeeded", "{after}");
    assert_eq!(after["summary"], before["summary"]);
    assert_eq!(after["pendingMessages"], 0);
    assert_eq!(ids_of(&after_results), ids_of(&results));
    let row_after = op_row(&table, &victim);
    assert_eq!(row_after.str("expiresAt"), row_before.str("expiresAt"));
    assert_eq!(row_after.u64("scopes"), row_before.u64("scopes"));
}

#[test]
fn a_new_correlation_id_of_the_callers_own_is_kept_and_claimed_once() {
    let (state, ids) = delivered_tenant(76, 12);
    let table = table_name();
    let app = spawn_tracked_in(state, &[("HTTP_SYNC_MAX_IDS", "10")], &table);
    let own = format!("incident-{}", fastrand::u32(..));
    let body = json!({ "assignmentIds": ids, "correlationId": own }).to_string();

    // Two calls racing for the same new ID: exactly one gets it.
    let answers: Vec<(u16, Value, Value, Vec<Value>)> = std::thread::scope(|s| {
        let calls: Vec<_> = (0..2)
            .map(|_| {
                s.spawn(|| {
                    let reply = app.post_ids(&body);
                    let (status, headers, answer) = reply.res();
                    (status, headers, answer, reply.output_messages("enqueue"))
                })
            })
            .collect();
        calls.into_iter().map(|c| c.join().unwrap()).collect()
    });
    let mut statuses: Vec<u16> = answers.iter().map(|a| a.0).collect();
    statuses.sort();
    assert_eq!(statuses, [202, 409], "{answers:?}");
    let (status, headers, accepted, messages) = answers.into_iter().find(|a| a.0 == 202).unwrap();
    let location = location_of(status, &headers, &accepted);
    assert_eq!(
        accepted["correlationId"],
        own.as_str(),
        "the caller's new ID is the operation's"
    );
    assert!(messages.iter().all(|m| m["correlationId"] == own.as_str()));
    assert_eq!(header(&headers, "Retry-After"), Some("10"));

    // The handler's own messages, delivered twice (a redelivery), still record into the operation.
    let mut twice = messages.clone();
    twice.extend(messages);
    app.drain(twice, true);
    let (done, results) = finished(&app, &location);
    assert_eq!(done["status"], "succeeded", "{done}");
    assert_eq!(done["summary"]["accepted"], 12);
    assert_eq!(ids_of(&results), ids.iter().cloned().collect());

    // Once finished, the ID stays taken.
    let (status, _, answer) = app.post_ids(&body).res();
    assert_eq!(status, 409, "{answer}");
}

/// An app whose audit table (in Azurite) is its own.
fn spawn_audited(extra: &[(&str, &str)]) -> (TestApp, TableName) {
    let table = TableName::parse(&format!("hardaudit{}", fastrand::u32(..))).unwrap();
    let storage = crate::azurite::azurite().connection_string();
    let mut env = vec![
        ("AzureWebJobsStorage", storage.as_str()),
        ("AUDIT_TABLE_NAME", table.as_str()),
    ];
    env.extend_from_slice(extra);
    (spawn_app_env(&env), table)
}

/// The entities of `partition`, waiting (up to 20 s) until there are `count`: the handler writes the
/// durable records in the background after answering.
fn partition_rows(table: &TableName, partition: &str, count: usize) -> Vec<Entity> {
    let client = storage_client();
    let filter = Filter::partition(&TableKey::parse(partition).unwrap());
    let started = Instant::now();
    loop {
        let rows = tokio_run(client.query_all(table, &filter)).unwrap_or_default();
        if rows.len() >= count || started.elapsed() > Duration::from_secs(20) {
            return rows;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// One record's field read back from its row and continuation rows, pieces joined in order.
fn reassembled(own: &Entity, parts: &[Entity], field: &str) -> String {
    let Some(count) = own.u64(&format!("{field}_parts")) else {
        return own.str(field).unwrap_or_default().to_owned();
    };
    let mut whole = own.str(field).unwrap().to_owned();
    for i in 1..count {
        let name = format!("{field}_{i}");
        let piece = std::iter::once(own)
            .chain(parts.iter())
            .find_map(|row| row.str(&name))
            .unwrap_or_else(|| panic!("{name} is stored nowhere"));
        whole.push_str(piece);
    }
    whole
}

/// A dry run of `assignments` assignment IDs and `users` user IDs: its one audit record reaches the
/// table whole, every ID in order. Returns how many continuation rows it took.
fn a_dry_run_of(assignments: usize, users: usize, extra: &[(&str, &str)]) -> usize {
    let (app, table) = spawn_audited(extra);
    let ids = guids(0x10_0000, assignments);
    let user_ids = guids(0x20_0000, users);
    let body = json!({ "assignmentIds": ids, "userIds": user_ids, "dryRun": true }).to_string();
    let reply = app.post_ids(&body);
    assert_eq!(reply.res().0, 200, "{}", reply.json);
    let day = time::OffsetDateTime::now_utc().date().to_string();
    let records = partition_rows(&table, &day, 1);
    assert_eq!(records.len(), 1, "one row per record in the day's partition");
    let own = &records[0];
    assert_eq!(own.str("audit"), Some("dry_run"));
    let part_rows = own.u64("audit_part_rows").unwrap_or(0) as usize;
    let parts: Vec<Entity> = partition_rows(&table, &format!("{day}~parts"), part_rows)
        .into_iter()
        .filter(|p| p.str("audit_part_of") == Some(own.row_key.as_str()))
        .collect();
    assert_eq!(parts.len(), part_rows);
    assert_eq!(
        reassembled(own, &parts, "assignment_ids"),
        ids.join(","),
        "every ID, in order"
    );
    assert_eq!(reassembled(own, &parts, "user_ids"), user_ids.join(","));
    assert!(
        !app.stdout().contains("not written to the durable sink"),
        "{}",
        app.stdout()
    );
    part_rows
}

#[test]
fn a_dry_run_of_the_default_limit_reaches_the_audit_table_whole() {
    assert_eq!(a_dry_run_of(999, 1, &[]), 0, "split across properties of its own row");
}

#[test]
fn a_dry_run_of_the_largest_call_the_settings_allow_reaches_the_audit_table_whole() {
    // MAX_IDS_PER_CALL's maximum. The assignments use up the dry run's read budget, so the users are
    // not listed (this stays quick); the record still names every ID, across continuation rows.
    let part_rows = a_dry_run_of(
        1_000,
        99_000,
        &[("MAX_IDS_PER_CALL", "100000"), ("MAX_BODY_BYTES", "8388608")],
    );
    assert!(part_rows > 1, "{part_rows} continuation rows");
}

#[test]
fn format_characters_from_headers_and_field_names_reach_neither_records_nor_logs() {
    let (app, table) = spawn_audited(&[]);
    let body = json!({ "assignmentIds": [sample::DELIVERED_1] }).to_string();
    let mut call = HttpCall::post_json("reprocess", &body);
    call.headers.extend(
        [
            ("x-ms-workflow-name", "pay\u{202E}txt.exe"),
            ("x-ms-client-tracking-id", "\u{2066}ticket\u{200B}-1\u{2069}\u{FEFF}"),
            ("x-ms-client-principal-name", "adele\u{E0041}\u{00AD}@contoso.example"),
        ]
        .map(|(k, v)| (k.to_owned(), v.to_owned())),
    );
    let (status, _, _) = app.invoke_http(&call).res();
    assert_eq!(status, 200);
    // A field name carrying an override, refused: the error and its log line show it without.
    let (status, _, refused) = app
        .post_ids(&format!(r#"{{"assignment\u202eIds":["{}"]}}"#, sample::DELIVERED_1))
        .res();
    assert_eq!(status, 400);
    assert_eq!(refused["error"]["fields"][0]["field"], "assignmentIds");

    let day = time::OffsetDateTime::now_utc().date().to_string();
    let stored = partition_rows(&table, &day, 1);
    assert_eq!(stored.len(), 1);
    assert_eq!(stored[0].str("workflow_name"), Some("paytxt.exe"));
    assert_eq!(stored[0].str("client_tracking_id"), Some("ticket-1"));
    assert_eq!(stored[0].str("principal_name"), Some("adele@contoso.example"));
    std::thread::sleep(Duration::from_millis(100));
    let logs = format!("{}\n{}", app.stdout(), app.stderr());
    assert!(logs.contains("paytxt.exe"), "the audit line is there");
    assert!(logs.contains("rejected HTTP request"));
    for hidden in [
        '\u{202E}',
        '\u{2066}',
        '\u{2069}',
        '\u{200B}',
        '\u{FEFF}',
        '\u{E0041}',
        '\u{00AD}',
    ] {
        assert!(!logs.contains(hidden), "U+{:04X} reached the logs", hidden as u32);
        let records = serde_json::to_string(&stored[0].properties).unwrap();
        assert!(!records.contains(hidden), "U+{:04X} reached the record", hidden as u32);
    }
}
