use super::*;
use crate::graph::lookup::{Lookup, Subject, read_lookup};
use crate::graph::signals::Signals;
use std::collections::VecDeque;
use std::sync::Mutex;

#[test]
fn sporadic_failures_are_retried_soon_whatever_the_round() {
    for round in 1..=5 {
        let few = Failure::Parts { failed: 1, sent: 3 };
        assert!(retry_wait(None, few, false, round) <= Duration::from_secs(1));
        // A reset or hung request while Graph answers the rest is noise too.
        assert!(retry_wait(None, Failure::Whole, false, round) <= Duration::from_secs(1));
    }
}

#[test]
fn failing_graph_or_mostly_failed_batches_back_off_more_each_round() {
    assert!(retry_wait(None, Failure::Whole, true, 4) >= Duration::from_secs(4));
    let few = Failure::Parts { failed: 1, sent: 20 };
    assert!(retry_wait(None, few, true, 4) >= Duration::from_secs(4));
    let most = Failure::Parts { failed: 15, sent: 20 };
    assert!(retry_wait(None, most, false, 4) >= Duration::from_secs(4));
}

#[test]
fn a_named_wait_wins() {
    let named = Some(Duration::from_secs(7));
    let few = Failure::Parts { failed: 1, sent: 20 };
    assert_eq!(retry_wait(named, few, false, 1), Duration::from_secs(7));
    assert_eq!(retry_wait(named, Failure::Whole, true, 5), Duration::from_secs(7));
}

/// How the fake Graph answers one round, given the URLs sent.
type Script = Box<dyn Fn(&[SubRequest]) -> Result<Envelope, SendError> + Send>;

/// A Graph that answers each round from a script (then 200 for everything), and remembers what was sent.
struct Fake {
    limiter: Limiter,
    script: Mutex<VecDeque<Script>>,
    rounds: Mutex<Vec<(Instant, Vec<String>)>>,
    max_attempts: u32,
}

impl Fake {
    fn new(limiter: Limiter, script: Vec<Script>) -> Self {
        Self {
            limiter,
            script: Mutex::new(script.into()),
            rounds: Mutex::new(Vec::new()),
            max_attempts: 5,
        }
    }

    fn rounds(&self) -> Vec<(Duration, Vec<String>)> {
        let rounds = self.rounds.lock().unwrap();
        let start = rounds.first().map(|(at, _)| *at);
        rounds
            .iter()
            .map(|(at, urls)| (at.duration_since(start.unwrap()), urls.clone()))
            .collect()
    }
}

fn sub(position: usize, status: u16, headers: Value, body: Value) -> SubResponse {
    SubResponse {
        id: position.to_string(),
        status,
        headers: headers.as_object().cloned().unwrap_or_default(),
        body,
    }
}

/// Every sub-request answered `status` (the body names the URL, so reads can tell them apart).
fn all(status: u16) -> impl Fn(&[SubRequest]) -> Result<Envelope, SendError> {
    move |requests: &[SubRequest]| {
        let responses = requests
            .iter()
            .enumerate()
            .map(|(i, r)| sub(i + 1, status, json!({}), json!({ "url": r.url })))
            .collect();
        Ok(Envelope::Parts {
            request_id: Some("batch".into()),
            responses,
        })
    }
}

impl BatchSender for Fake {
    async fn send(&self, requests: &[SubRequest], _: &Guid, deadline: Instant) -> Result<Envelope, SendError> {
        let Some(_permit) = self.limiter.acquire(deadline, requests.len() as u32).await else {
            return Err(SendError::OutOfTime { gate_wait: None });
        };
        let urls = requests.iter().map(|r| r.url.clone()).collect();
        self.rounds.lock().unwrap().push((Instant::now(), urls));
        let step = self.script.lock().unwrap().pop_front();
        match step {
            Some(step) => step(requests),
            None => all(200)(requests),
        }
    }

    fn record(&self, _: &SubResponse) {}

    fn limiter(&self) -> &Limiter {
        &self.limiter
    }

    fn graph_in_trouble(&self) -> bool {
        false
    }

    fn max_attempts(&self) -> u32 {
        self.max_attempts
    }
}

fn posts(n: usize) -> Vec<SubRequest> {
    (0..n)
        .map(|i| SubRequest {
            method: Method::Post,
            url: format!("/r/{i}"),
        })
        .collect()
}

async fn reprocess(fake: &Fake, requests: &[SubRequest], deadline: Instant) -> Vec<Finished<Outcome>> {
    run(
        fake,
        requests,
        |_, sub| sub.classify(),
        &Guid::new_random(),
        deadline,
        "test",
    )
    .await
}

fn in_a_minute() -> Instant {
    Instant::now() + Duration::from_secs(60)
}

#[tokio::test(start_paused = true)]
async fn lookups_are_sent_no_more_than_a_burst_at_a_time() {
    use crate::domain::{AccessPackageId, CatalogId};
    const P: &str = "9a1d6e2c-3b4f-4c5d-8e6f-7a8b9c0d1e2f";
    const C: &str = "c0c0c0c0-1111-4111-8111-000000000001";
    // At 10 requests a second, half a second of pace is 5 reads.
    let fake = Fake::new(Limiter::with_rate(16, 10.0), Vec::new());
    let package = AccessPackageId::parse(P).unwrap();
    let subjects = vec![Subject::Package(package); 12];
    let requests: Vec<SubRequest> = (0..12)
        .map(|i| SubRequest {
            method: Method::Get,
            url: format!("/p/{i}"),
        })
        .collect();
    *fake.script.lock().unwrap() = (0..3)
        .map(|_| {
            Box::new(|requests: &[SubRequest]| {
                let responses = (1..=requests.len())
                    .map(|i| sub(i, 200, json!({}), json!({ "id": P, "catalog": { "id": C } })))
                    .collect();
                Ok(Envelope::Parts {
                    request_id: None,
                    responses,
                })
            }) as Script
        })
        .collect();
    let read = |i: usize, sub: &SubResponse| read_lookup(subjects[i], sub);
    let finished = run(&fake, &requests, read, &Guid::new_random(), in_a_minute(), "test").await;
    let sizes: Vec<usize> = fake.rounds().iter().map(|(_, urls)| urls.len()).collect();
    assert_eq!(sizes, [5, 5, 2]);
    for f in &finished {
        let Ok(Lookup::Found(m)) = &f.result else {
            panic!("{f:?}")
        };
        assert_eq!(m.catalog, Some(CatalogId::parse(C).unwrap()));
        assert_eq!((f.attempts, f.http_status), (1, Some(200)), "a split costs no attempt");
    }
}

#[tokio::test(start_paused = true)]
async fn a_whole_batch_failure_is_retried_as_a_whole() {
    let script: Vec<Script> = vec![Box::new(|_: &[SubRequest]| {
        Ok(Envelope::Whole {
            status: 503,
            retry_after: None,
            signals: Signals::default(),
            body: Bytes::new(),
        })
    })];
    let fake = Fake::new(Limiter::new(16), script);
    let finished = reprocess(&fake, &posts(3), in_a_minute()).await;
    let rounds = fake.rounds();
    assert_eq!(rounds.len(), 2);
    assert_eq!(rounds[1].1, ["/r/0", "/r/1", "/r/2"]);
    assert!(
        rounds[1].0 <= Duration::from_secs(1),
        "noise is retried soon: {:?}",
        rounds[1].0
    );
    for f in &finished {
        assert_eq!(
            (&f.result, f.attempts, f.http_status),
            (&Ok(Outcome::Accepted), 2, Some(200))
        );
    }
}

#[tokio::test(start_paused = true)]
async fn only_the_throttled_sub_request_is_sent_again_after_its_retry_after() {
    let script: Vec<Script> = vec![Box::new(|requests: &[SubRequest]| {
        let mut responses: Vec<SubResponse> = (1..=requests.len())
            .map(|i| sub(i, 202, json!({ "request-id": format!("rid-{i}") }), Value::Null))
            .collect();
        responses[1] = sub(
            2,
            429,
            json!({ "Retry-After": "3", "request-id": "throttled" }),
            Value::Null,
        );
        // Graph answers in any order.
        responses.reverse();
        Ok(Envelope::Parts {
            request_id: Some("batch".into()),
            responses,
        })
    })];
    let fake = Fake::new(Limiter::new(16), script);
    let finished = reprocess(&fake, &posts(3), in_a_minute()).await;
    let rounds = fake.rounds();
    assert_eq!(rounds.len(), 2);
    assert_eq!(rounds[1].1, ["/r/1"]);
    assert!(rounds[1].0 >= Duration::from_secs(3), "{:?}", rounds[1].0);
    let attempts: Vec<u32> = finished.iter().map(|f| f.attempts).collect();
    assert_eq!(attempts, [1, 2, 1]);
    assert!(finished.iter().all(|f| f.result == Ok(Outcome::Accepted)));
    assert_eq!(finished[0].graph_request_id.as_deref(), Some("rid-1"));
    assert_eq!(
        finished[1].graph_request_id.as_deref(),
        Some("batch"),
        "the last answer's id"
    );
}

#[tokio::test(start_paused = true)]
async fn a_wait_past_the_deadline_hands_the_sub_request_back_at_once() {
    let script: Vec<Script> = vec![Box::new(|requests: &[SubRequest]| {
        let mut responses: Vec<SubResponse> = (1..=requests.len())
            .map(|i| sub(i, 202, json!({}), Value::Null))
            .collect();
        responses[0] = sub(1, 429, json!({ "Retry-After": 30 }), Value::Null);
        Ok(Envelope::Parts {
            request_id: None,
            responses,
        })
    })];
    let fake = Fake::new(Limiter::new(16), script);
    let start = Instant::now();
    let finished = reprocess(&fake, &posts(2), start + Duration::from_secs(10)).await;
    assert_eq!(Instant::now(), start, "no sleep that cannot end in time");
    assert_eq!(fake.rounds().len(), 1);
    let Err(Outcome::Transient {
        retry_after_seconds, ..
    }) = &finished[0].result
    else {
        panic!("{:?}", finished[0])
    };
    assert_eq!((*retry_after_seconds, finished[0].http_status), (Some(30), Some(429)));
    assert_eq!(finished[1].result, Ok(Outcome::Accepted));
}

#[tokio::test(start_paused = true)]
async fn no_slot_before_the_deadline_is_out_of_time_without_an_attempt() {
    let limiter = Limiter::new(16);
    limiter.back_off(Duration::from_secs(30));
    let fake = Fake::new(limiter, Vec::new());
    let finished = reprocess(&fake, &posts(2), Instant::now() + Duration::from_secs(10)).await;
    assert!(fake.rounds().is_empty());
    for f in finished {
        assert!(matches!(f.result, Err(Outcome::Transient { .. })), "{f:?}");
        assert_eq!(f.attempts, 0);
    }
}

#[tokio::test(start_paused = true)]
async fn attempts_stop_at_the_cap() {
    let script: Vec<Script> = (0..10).map(|_| Box::new(all(503)) as Script).collect();
    let mut fake = Fake::new(Limiter::new(16), script);
    fake.max_attempts = 3;
    let finished = reprocess(&fake, &posts(2), in_a_minute()).await;
    assert_eq!(fake.rounds().len(), 3);
    for f in finished {
        assert!(matches!(f.result, Err(Outcome::Transient { .. })), "{f:?}");
        assert_eq!((f.attempts, f.http_status), (3, Some(503)));
    }
}

#[tokio::test(start_paused = true)]
async fn a_final_answer_for_the_whole_batch_ends_every_sub_request() {
    let script: Vec<Script> = vec![Box::new(|_: &[SubRequest]| {
        let body = Bytes::from_static(br#"{"error":{"code":"BadRequest","message":"Invalid batch payload."}}"#);
        Ok(Envelope::Whole {
            status: 400,
            retry_after: None,
            signals: Signals::default(),
            body,
        })
    })];
    let fake = Fake::new(Limiter::new(16), script);
    let finished = reprocess(&fake, &posts(2), in_a_minute()).await;
    assert_eq!(fake.rounds().len(), 1);
    for f in finished {
        assert!(matches!(f.result, Err(Outcome::Rejected { .. })), "{f:?}");
        assert_eq!((f.attempts, f.http_status), (1, Some(400)));
    }
}

#[tokio::test(start_paused = true)]
async fn a_whole_batch_429_without_information_does_not_delay_another_invocation() {
    let script: Vec<Script> = vec![Box::new(|_: &[SubRequest]| {
        Ok(Envelope::Whole {
            status: 429,
            retry_after: Some(Duration::from_secs(5)),
            signals: Signals::default(),
            body: Bytes::new(),
        })
    })];
    let fake = Fake::new(Limiter::new(16), script);
    let start = Instant::now();
    let first = reprocess(&fake, &posts(2), in_a_minute()).await;
    assert!(
        Instant::now() - start >= Duration::from_secs(5),
        "the throttled batch waited its Retry-After"
    );
    assert!(
        first
            .iter()
            .all(|f| f.result == Ok(Outcome::Accepted) && f.attempts == 2)
    );
    // Meanwhile (same instant as the 429), another invocation is not held back.
    let script: Vec<Script> = vec![Box::new(|_: &[SubRequest]| {
        Ok(Envelope::Whole {
            status: 429,
            retry_after: Some(Duration::from_secs(5)),
            signals: Signals::default(),
            body: Bytes::new(),
        })
    })];
    let fake = Fake::new(Limiter::new(16), script);
    let one = posts(1);
    let (throttled, other) = tokio::join!(reprocess(&fake, &one, in_a_minute()), async {
        tokio::task::yield_now().await;
        let at = Instant::now();
        let other = reprocess(&fake, &one, in_a_minute()).await;
        (other, Instant::now() - at)
    });
    assert_eq!(throttled[0].attempts, 2);
    let (other, took) = other;
    assert_eq!((other[0].attempts, &other[0].result), (1, &Ok(Outcome::Accepted)));
    assert!(took < Duration::from_secs(1), "held back {took:?}");
}

#[tokio::test(start_paused = true)]
async fn a_whole_batch_429_for_the_app_s_limit_holds_everyone_back() {
    let script: Vec<Script> = vec![Box::new(|_: &[SubRequest]| {
        let signals = Signals {
            information: Some("ResourceUnitLimitExceeded".into()),
            ..Signals::default()
        };
        Ok(Envelope::Whole {
            status: 429,
            retry_after: Some(Duration::from_secs(5)),
            signals,
            body: Bytes::new(),
        })
    })];
    let fake = Fake::new(Limiter::new(16), script);
    let one = posts(1);
    let (_, (other, took)) = tokio::join!(reprocess(&fake, &one, in_a_minute()), async {
        tokio::task::yield_now().await;
        let at = Instant::now();
        let other = reprocess(&fake, &one, in_a_minute()).await;
        (other, Instant::now() - at)
    });
    assert_eq!(other[0].result, Ok(Outcome::Accepted));
    assert!(took >= Duration::from_secs(5), "{took:?}");
}

#[tokio::test(start_paused = true)]
async fn each_sub_request_waits_its_own_wait() {
    let script: Vec<Script> = vec![Box::new(|_: &[SubRequest]| {
        let responses = vec![
            sub(1, 429, json!({ "Retry-After": "5" }), Value::Null),
            sub(2, 503, json!({}), Value::Null),
            sub(3, 202, json!({}), Value::Null),
        ];
        Ok(Envelope::Parts {
            request_id: None,
            responses,
        })
    })];
    let fake = Fake::new(Limiter::new(16), script);
    let finished = reprocess(&fake, &posts(3), in_a_minute()).await;
    let rounds = fake.rounds();
    let urls: Vec<&[String]> = rounds.iter().map(|(_, urls)| urls.as_slice()).collect();
    assert_eq!(urls, [&["/r/0", "/r/1", "/r/2"][..], &["/r/1"], &["/r/0"]]);
    assert!(
        rounds[1].0 <= Duration::from_secs(1),
        "the 503 is not held behind the 429: {:?}",
        rounds[1].0
    );
    assert!(rounds[2].0 >= Duration::from_secs(5), "{:?}", rounds[2].0);
    assert!(finished.iter().all(|f| f.result == Ok(Outcome::Accepted)));
}

#[tokio::test(start_paused = true)]
async fn retries_due_within_a_second_go_together() {
    let script: Vec<Script> = vec![Box::new(|_: &[SubRequest]| {
        let responses = vec![
            sub(1, 429, json!({ "Retry-After": "1" }), Value::Null),
            sub(2, 503, json!({}), Value::Null),
            sub(3, 202, json!({}), Value::Null),
        ];
        Ok(Envelope::Parts {
            request_id: None,
            responses,
        })
    })];
    let fake = Fake::new(Limiter::new(16), script);
    reprocess(&fake, &posts(3), in_a_minute()).await;
    let rounds = fake.rounds();
    assert_eq!(rounds.len(), 2);
    assert_eq!(rounds[1].1, ["/r/0", "/r/1"]);
    assert!(
        rounds[1].0 >= Duration::from_secs(1),
        "not before the Retry-After: {:?}",
        rounds[1].0
    );
}
