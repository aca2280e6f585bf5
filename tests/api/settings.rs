//! Settings as the Function App passes them: clouds/versions, user-assigned identity, credential
//! failures, and start-up errors that name the variable.

use crate::helpers::*;
use reprocess_emulator::{EmulatorState, sample};
use std::process::Command;

#[test]
fn beta_uses_the_beta_paths() {
    let app = spawn_app_env(&[("GRAPH_API_VERSION", "beta")]);
    let body = format!(
        r#"{{"assignmentId":"{}","assignmentRequestId":"{}"}}"#,
        sample::DELIVERED_1,
        sample::REQUEST_FAILED
    );
    let (status, _, reply) = app.post_ids(&body).res();
    assert_eq!(status, 200);
    assert_eq!(reply["summary"]["accepted"], 2);
    let mut paths: Vec<_> = app.graph_posts().into_iter().map(|p| p.path_and_query).collect();
    paths.sort();
    assert_eq!(
        paths,
        [
            format!(
                "/beta/identityGovernance/entitlementManagement/accessPackageAssignmentRequests/{}/reprocess",
                sample::REQUEST_FAILED
            ),
            format!(
                "/beta/identityGovernance/entitlementManagement/accessPackageAssignments/{}/reprocess",
                sample::DELIVERED_1
            ),
        ]
    );
}

#[test]
fn user_assigned_identity_and_one_token_fetch_shared_by_concurrent_calls() {
    let app = spawn_app_env(&[("AZURE_CLIENT_ID", sample::USER_ASSIGNED_CLIENT_ID)]);
    let body = format!(
        r#"{{"assignmentIds":["{}","{}","{}"]}}"#,
        sample::DELIVERED_1,
        sample::DELIVERED_2,
        sample::DELIVERED_3
    );
    std::thread::scope(|s| {
        for _ in 0..4 {
            s.spawn(|| assert_eq!(app.post_ids(&body).res().0, 200));
        }
    });
    assert_eq!(
        app.emulator.state.token_fetches(),
        1,
        "tokens are cached and concurrent invocations share one fetch"
    );
    app.assert_no_secrets_logged();
}

#[test]
fn an_identity_not_assigned_to_the_app_is_a_transient_error_with_a_clear_reason() {
    let app = spawn_app_env(&[
        ("AZURE_CLIENT_ID", "11111111-2222-4333-8444-555555555555"),
        ("GRAPH_MAX_ATTEMPTS", "1"),
    ]);
    let (status, _, reply) = app
        .post_ids(&format!(r#"{{"assignmentId":"{}"}}"#, sample::DELIVERED_1))
        .res();
    assert_eq!(status, 503);
    assert_eq!(reply["results"][0]["outcome"], "transient");
    assert!(
        reply["results"][0]["reason"]
            .as_str()
            .unwrap()
            .contains("managed identity"),
        "{reply}"
    );
    assert!(app.graph_posts().is_empty());
    app.assert_no_secrets_logged();
}

#[test]
fn a_wrong_identity_header_never_yields_a_graph_call() {
    let mut state = EmulatorState::new(sample::tenant());
    state.identity_header = "the-real-one".into();
    let app = spawn_app_with(
        state,
        &[("IDENTITY_HEADER", "a-stale-one"), ("GRAPH_MAX_ATTEMPTS", "1")],
    );
    let (status, _, _) = app
        .post_ids(&format!(r#"{{"assignmentId":"{}"}}"#, sample::DELIVERED_1))
        .res();
    assert_eq!(status, 503);
    assert!(app.graph_posts().is_empty());
    assert!(!app.stdout().contains("a-stale-one"));
}

#[test]
fn bad_settings_stop_start_up_naming_the_variable() {
    let cases = [
        ("GRAPH_BASE_URL", "https://graph.evil.example"),
        ("GRAPH_BASE_URL", "http://graph.microsoft.com"),
        ("GRAPH_API_VERSION", "v2.0"),
        ("AZURE_CLIENT_ID", "not-a-guid"),
        ("REPROCESS_QUEUE_NAME", "UPPER"),
        ("FUNCTIONS_CUSTOMHANDLER_PORT", "http"),
    ];
    for (variable, value) in cases {
        let output = Command::new(binary())
            .env_clear()
            .env(variable, value)
            .output()
            .unwrap();
        assert!(!output.status.success(), "{variable}={value} should stop start-up");
        let stderr = String::from_utf8_lossy(&output.stderr).to_uppercase();
        assert!(stderr.contains(variable), "{variable}: {stderr}");
    }
}

#[test]
fn azure_cli_credential_for_local_runs() {
    // A stand-in `az` on PATH: azure_identity runs `az account get-access-token -o json --scope <scope>`.
    let dir = std::env::temp_dir().join(format!("fake-az-{}", reprocess_handler::domain::Guid::new_random()));
    std::fs::create_dir_all(&dir).unwrap();
    let script = format!(
        "#!/bin/sh\necho \"$@\" >> '{0}/args'\ncat '{0}/token.json'\n",
        dir.display()
    );
    let az = dir.join("az");
    std::fs::write(&az, script).unwrap();
    std::fs::set_permissions(&az, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    let path = format!("{}:{}", dir.display(), std::env::var("PATH").unwrap_or_default());
    let app = spawn_app_env(&[("CREDENTIAL_SOURCE", "azure_cli"), ("PATH", &path)]);
    let token = app.emulator.state.issue_token(&app.emulator.base_url);
    let expires = time::OffsetDateTime::now_utc().unix_timestamp() + 3600;
    std::fs::write(
        dir.join("token.json"),
        format!(r#"{{"accessToken":"{token}","expires_on":{expires},"tokenType":"Bearer"}}"#),
    )
    .unwrap();

    let (status, _, reply) = app
        .post_ids(&format!(r#"{{"assignmentId":"{}"}}"#, sample::DELIVERED_1))
        .res();
    assert_eq!(status, 200, "{reply}");
    assert_eq!(reply["results"][0]["outcome"], "accepted");
    let args = std::fs::read_to_string(dir.join("args")).unwrap();
    assert!(
        args.contains(&format!("--scope {}/.default", app.emulator.base_url)),
        "{args}"
    );
    assert_eq!(
        app.emulator.state.token_fetches(),
        0,
        "the managed-identity endpoint was not used"
    );
    app.assert_no_secrets_logged();
    let _ = std::fs::remove_dir_all(&dir);
}
