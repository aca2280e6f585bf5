//! The Table Storage client (`reprocess_handler::storage`) against real Azurite: every operation the
//! handler uses, Shared Key Lite signing, continuation, 409/404 meanings, and refusals.

use crate::azurite::{ACCOUNT, azurite};
use reprocess_handler::storage::{
    Entity, Filter, Inserted, StorageError, StorageSettings, TableClient, TableKey, TableName, UpsertMode,
};
use serde_json::json;

fn client_with(connection: &str) -> TableClient {
    let vars = vec![("AzureWebJobsStorage".to_owned(), connection.to_owned())];
    let settings = StorageSettings::from_vars(&vars).unwrap().expect("storage configured");
    TableClient::new(&settings, None).unwrap()
}

fn client() -> TableClient {
    client_with(&azurite().connection_string())
}

/// A fresh table per test (tests share one Azurite).
fn table(prefix: &str) -> TableName {
    TableName::parse(&format!("{prefix}{}", fastrand::u32(..))).unwrap()
}

fn key(text: &str) -> TableKey {
    TableKey::parse(text).unwrap()
}

#[tokio::test]
async fn create_table_is_idempotent() {
    let client = client();
    let t = table("create");
    assert!(client.create_table(&t).await.unwrap(), "created");
    assert!(
        !client.create_table(&t).await.unwrap(),
        "409 TableAlreadyExists is not an error"
    );
}

#[tokio::test]
async fn insert_refuses_to_overwrite_and_get_reads_back() {
    let client = client();
    let t = table("insert");
    client.create_table(&t).await.unwrap();
    let entity = Entity::new(key("op-1"), key("r|a"))
        .with("outcome", "accepted")
        .with("attempts", 2)
        .with("final", true);
    assert_eq!(client.insert(&t, &entity).await.unwrap(), Inserted::Inserted);
    let other = Entity::new(key("op-1"), key("r|a")).with("outcome", "transient");
    assert_eq!(client.insert(&t, &other).await.unwrap(), Inserted::AlreadyExists);
    let read = client
        .get(&t, &key("op-1"), &key("r|a"))
        .await
        .unwrap()
        .expect("exists");
    assert_eq!(read.str("outcome"), Some("accepted"));
    assert_eq!(read.u64("attempts"), Some(2));
    assert_eq!(read.properties["final"], json!(true));
    assert!(client.get(&t, &key("op-1"), &key("r|b")).await.unwrap().is_none());
}

#[tokio::test]
async fn upsert_replaces_or_merges() {
    let client = client();
    let t = table("upsert");
    client.create_table(&t).await.unwrap();
    let first = Entity::new(key("p"), key("r")).with("a", "1").with("b", "1");
    client.upsert(&t, &first, UpsertMode::Replace).await.unwrap();
    client
        .upsert(&t, &Entity::new(key("p"), key("r")).with("b", "2"), UpsertMode::Merge)
        .await
        .unwrap();
    let merged = client.get(&t, &key("p"), &key("r")).await.unwrap().unwrap();
    assert_eq!((merged.str("a"), merged.str("b")), (Some("1"), Some("2")));
    client
        .upsert(&t, &Entity::new(key("p"), key("r")).with("c", "3"), UpsertMode::Replace)
        .await
        .unwrap();
    let replaced = client.get(&t, &key("p"), &key("r")).await.unwrap().unwrap();
    assert_eq!((replaced.str("a"), replaced.str("c")), (None, Some("3")));
}

#[tokio::test]
async fn queries_filter_page_and_continue() {
    let client = client();
    let t = table("query");
    client.create_table(&t).await.unwrap();
    for i in 0..25 {
        let state = if i % 5 == 0 { "pending" } else { "done" };
        let e = Entity::new(key("op"), key(&format!("m|{i:03}"))).with("state", state);
        client.upsert(&t, &e, UpsertMode::Replace).await.unwrap();
    }
    for other in [("op", "r|x"), ("op2", "m|000")] {
        let e = Entity::new(key(other.0), key(other.1)).with("state", "pending");
        client.upsert(&t, &e, UpsertMode::Replace).await.unwrap();
    }
    let filter = Filter::partition(&key("op")).row_prefix(&key("m|"));
    let first = client.query(&t, &filter, Some(10), None).await.unwrap();
    assert_eq!(first.entities.len(), 10);
    let continuation = first.continuation.expect("more rows: a continuation");
    let mut rows: Vec<String> = first.entities.iter().map(|e| e.row_key.to_string()).collect();
    let mut next = Some(continuation);
    while let Some(c) = next {
        let page = client.query(&t, &filter, Some(10), Some(&c)).await.unwrap();
        rows.extend(page.entities.iter().map(|e| e.row_key.to_string()));
        next = page.continuation;
    }
    let want: Vec<String> = (0..25).map(|i| format!("m|{i:03}")).collect();
    assert_eq!(rows, want, "every row of the prefix, in key order, once");

    let pending = filter.clone().and_eq("state", "pending").unwrap();
    let all = client.query_all(&t, &pending).await.unwrap();
    assert_eq!(all.len(), 5);
    let after = Filter::partition(&key("op")).rows_after(&key("m|020"));
    let rest = client.query_all(&t, &after).await.unwrap();
    let rest: Vec<&str> = rest.iter().map(|e| e.row_key.as_str()).collect();
    assert_eq!(rest, ["m|021", "m|022", "m|023", "m|024", "r|x"]);
    // A literal with a quote is escaped, not injected.
    let quoted = filter.and_eq("state", "x' or state eq 'done").unwrap();
    assert!(client.query_all(&t, &quoted).await.unwrap().is_empty());
}

#[tokio::test]
async fn delete_reports_whether_there_was_one() {
    let client = client();
    let t = table("delete");
    client.create_table(&t).await.unwrap();
    let e = Entity::new(key("p"), key("r")).with("x", 1);
    client.insert(&t, &e).await.unwrap();
    assert!(client.delete(&t, &key("p"), &key("r")).await.unwrap());
    assert!(!client.delete(&t, &key("p"), &key("r")).await.unwrap());
    assert!(client.get(&t, &key("p"), &key("r")).await.unwrap().is_none());
}

#[tokio::test]
async fn a_wrong_key_is_refused_by_the_service() {
    let wrong = format!(
        "AccountName={ACCOUNT};AccountKey=d3Jvbmcga2V5;TableEndpoint={}",
        azurite().table_endpoint()
    );
    let err = client_with(&wrong).create_table(&table("wrong")).await.unwrap_err();
    assert!(
        matches!(err, StorageError::Service { status: 403, .. }),
        "Azurite checks the Shared Key Lite signature: {err}"
    );
}

#[tokio::test]
async fn a_missing_table_is_a_404_with_its_code() {
    let err = client()
        .insert(&table("missing"), &Entity::new(key("p"), key("r")))
        .await
        .unwrap_err();
    match err {
        StorageError::Service { status, code, .. } => assert_eq!((status, code.as_str()), (404, "TableNotFound")),
        other => panic!("{other}"),
    }
}
