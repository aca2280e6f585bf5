//! Time series from the Graph log, for the throughput bench's charts and tuning output: reprocess calls
//! (direct or `$batch` sub-requests) per second since a start instant, split into those the throttle let
//! through and those answered 429.

use super::LoggedRequest;
use std::collections::BTreeMap;
use std::time::Instant;

/// Reprocess calls in one time bucket.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Tally {
    /// Answered anything but 429: the throttle took a token for each (injected 503/504 included).
    pub accepted: usize,
    /// Answered 429 (by the token bucket or an injected fault).
    pub throttled: usize,
}

impl Tally {
    fn add(&mut self, request: &LoggedRequest) {
        if request.status == 429 {
            self.throttled += 1;
        } else {
            self.accepted += 1;
        }
    }
}

impl LoggedRequest {
    /// A reprocess call (direct, or a `$batch` sub-request); the `$batch` envelope itself is not one.
    pub fn is_reprocess(&self) -> bool {
        self.path_and_query.ends_with("/reprocess")
    }
}

/// One bucket per whole second from `start` for `seconds` seconds (later calls go in the last one).
pub fn per_second(log: &[LoggedRequest], start: Instant, seconds: usize) -> Vec<Tally> {
    bucket(log.iter().filter(|r| r.is_reprocess()), start, seconds)
}

/// [`per_second`] for each caller, keyed by the serial of the token it used ([`LoggedRequest::token`]);
/// calls without a known token are left out.
pub fn per_second_by_token(log: &[LoggedRequest], start: Instant, seconds: usize) -> BTreeMap<usize, Vec<Tally>> {
    let mut callers: BTreeMap<usize, Vec<&LoggedRequest>> = BTreeMap::new();
    for request in log.iter().filter(|r| r.is_reprocess()) {
        if let Some(token) = request.token {
            callers.entry(token).or_default().push(request);
        }
    }
    callers
        .into_iter()
        .map(|(token, requests)| (token, bucket(requests.into_iter(), start, seconds)))
        .collect()
}

fn bucket<'a>(requests: impl Iterator<Item = &'a LoggedRequest>, start: Instant, seconds: usize) -> Vec<Tally> {
    let mut series = vec![Tally::default(); seconds.max(1)];
    let last = series.len() - 1;
    for request in requests {
        let second = usize::try_from(request.at.saturating_duration_since(start).as_secs()).unwrap_or(usize::MAX);
        series[second.min(last)].add(request);
    }
    series
}

/// Sums of `width` consecutive buckets (the last one may be shorter).
pub fn coarsen(series: &[Tally], width: usize) -> Vec<Tally> {
    series
        .chunks(width.max(1))
        .map(|chunk| {
            chunk.iter().fold(Tally::default(), |sum, t| Tally {
                accepted: sum.accepted + t.accepted,
                throttled: sum.throttled + t.throttled,
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn logged(path: &str, status: u16, at: Instant, token: Option<usize>) -> LoggedRequest {
        LoggedRequest {
            priority: None,
            retry_after: None,
            batched: false,
            method: "POST".into(),
            path_and_query: path.into(),
            client_request_id: None,
            had_authorization: true,
            content_length: None,
            status,
            at,
            token,
        }
    }

    #[test]
    fn buckets_reprocess_calls_by_second_and_caller() {
        let start = Instant::now();
        let at = |ms| start + Duration::from_millis(ms);
        let call = "/v1.0/identityGovernance/entitlementManagement/assignments/x/reprocess";
        let log = vec![
            logged(call, 202, at(10), Some(0)),
            logged(call, 429, at(900), Some(1)),
            logged("/v1.0/$batch", 200, at(950), Some(0)),
            logged(call, 503, at(1_500), Some(1)),
            logged(call, 202, at(9_000), None),
        ];
        let series = per_second(&log, start, 3);
        assert_eq!(
            series,
            [
                Tally {
                    accepted: 1,
                    throttled: 1
                },
                Tally {
                    accepted: 1,
                    throttled: 0
                },
                Tally {
                    accepted: 1,
                    throttled: 0
                },
            ]
        );
        let by_token = per_second_by_token(&log, start, 2);
        assert_eq!(by_token.len(), 2);
        assert_eq!(
            by_token[&1][0],
            Tally {
                accepted: 0,
                throttled: 1
            }
        );
        assert_eq!(
            by_token[&1][1],
            Tally {
                accepted: 1,
                throttled: 0
            }
        );
        assert_eq!(
            coarsen(&series, 2),
            [
                Tally {
                    accepted: 2,
                    throttled: 1
                },
                Tally {
                    accepted: 1,
                    throttled: 0
                }
            ]
        );
    }
}
