//! Graph's throttling headers for identity and access (`concepts/throttling-limits.md`, "Identity and
//! access service limits"), read the same way for a response and a `$batch` sub-response:
//! - request `x-ms-throttle-priority`: `low` requests are throttled first, `normal` (or no header)
//!   next, `high` last; it does not change the limits ([`Priority`]);
//! - `x-ms-throttle-limit-percentage`: sent once the app has used 0.8 of its limit (0.8 to 1.8, or
//!   80 to 180 as a percentage), so the pacing can settle below the limit before the first 429;
//! - on a 429, `x-ms-throttle-information` (`ResourceUnitLimitExceeded`, `WriteLimitExceeded`:
//!   our own limit; `CPULimitExceeded`: the service is loaded) and `x-ms-throttle-scope`
//!   (`<Scope>/<Limit>/<ApplicationId>/<TenantId>`, scope `Tenant_Application`, `Application` or
//!   `Tenant`): only a 429 for our own limit says our pace is too fast ([`ThrottleCause`]).
//!
//! Graph may send none of them; everything then works as it did from status codes alone.

use reqwest::header::HeaderValue;

pub const PRIORITY: &str = "x-ms-throttle-priority";
pub const LIMIT_PERCENTAGE: &str = "x-ms-throttle-limit-percentage";
pub const INFORMATION: &str = "x-ms-throttle-information";
pub const SCOPE: &str = "x-ms-throttle-scope";

/// Which requests Graph throttles first when it must.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Priority {
    /// Work nobody waits on (queue messages, timers): throttled first, so synchronous calls are not.
    Low,
    /// A caller waits for the answer (an HTTP call): Graph's default, sent without the header.
    #[default]
    Normal,
}

impl Priority {
    /// The request header to send, if any (`normal` is Graph's default when it is absent).
    pub fn header(self) -> Option<HeaderValue> {
        match self {
            Priority::Low => Some(HeaderValue::from_static("low")),
            Priority::Normal => None,
        }
    }
}

/// Why Graph answered 429, as far as its headers say.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ThrottleCause {
    /// Our app's own limit (resource units, writes), named by `x-ms-throttle-information`.
    OurLimit,
    /// The service is loaded (`CPULimitExceeded`), or the limit is the tenant's for every app: slowing
    /// our pace would not help, and the 429 says nothing about it.
    ServiceLoad,
    /// No information: taken as our limit, as a 429 always was.
    Unknown,
}

impl ThrottleCause {
    /// Whether a 429 with this cause says our pace is too fast.
    pub fn is_our_limit(self) -> bool {
        !matches!(self, ThrottleCause::ServiceLoad)
    }
}

/// Graph's throttling headers on one answer.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Signals {
    /// `x-ms-throttle-limit-percentage`: the share of the app's limit used (0.8 to 1.8).
    pub limit_used: Option<f64>,
    pub information: Option<String>,
    pub scope: Option<String>,
}

impl Signals {
    /// From a header lookup (case-insensitive for the caller to provide).
    pub fn read(header: impl Fn(&str) -> Option<String>) -> Self {
        Self {
            limit_used: header(LIMIT_PERCENTAGE).and_then(|v| share_of_limit(&v)),
            information: header(INFORMATION)
                .map(|v| v.trim().to_owned())
                .filter(|v| !v.is_empty()),
            scope: header(SCOPE).map(|v| v.trim().to_owned()).filter(|v| !v.is_empty()),
        }
    }

    /// Why a 429 with these headers was sent. The information wins; a scope of `Tenant` (every app's
    /// requests to the tenant) is not our app's limit; anything else unknown is taken as ours.
    pub fn cause(&self) -> ThrottleCause {
        if let Some(info) = &self.information {
            let has = |word: &str| info.to_ascii_lowercase().contains(&word.to_ascii_lowercase());
            if has("ResourceUnitLimitExceeded") || has("WriteLimitExceeded") {
                return ThrottleCause::OurLimit;
            }
            if has("CPULimitExceeded") {
                return ThrottleCause::ServiceLoad;
            }
        }
        match self.scope.as_deref().and_then(|s| s.split('/').next()) {
            Some(scope) if scope.eq_ignore_ascii_case("Tenant") => ThrottleCause::ServiceLoad,
            Some(scope)
                if scope.eq_ignore_ascii_case("Tenant_Application") || scope.eq_ignore_ascii_case("Application") =>
            {
                ThrottleCause::OurLimit
            }
            _ => ThrottleCause::Unknown,
        }
    }
}

/// `x-ms-throttle-limit-percentage` as a share of the limit. The documentation says the value runs
/// from 0.8 to 1.8 and calls it a percentage: a value from 50 to 500 is read as a percentage, one up
/// to 2 as a share; anything else is no share we can read (and must not steer the pace).
fn share_of_limit(value: &str) -> Option<f64> {
    let v = value.trim().parse::<f64>().ok().filter(|v| v.is_finite() && *v > 0.0)?;
    match v {
        v if v <= 2.0 => Some(v),
        v if (50.0..=500.0).contains(&v) => Some(v / 100.0),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn signals(pairs: &[(&str, &str)]) -> Signals {
        let pairs: Vec<(String, String)> = pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        Signals::read(|name| {
            pairs
                .iter()
                .find(|(k, _)| k.eq_ignore_ascii_case(name))
                .map(|(_, v)| v.clone())
        })
    }

    #[test]
    fn no_headers_is_the_old_reading() {
        let s = signals(&[]);
        assert_eq!(s, Signals::default());
        assert_eq!(s.cause(), ThrottleCause::Unknown);
        assert!(s.cause().is_our_limit());
    }

    #[test]
    fn the_cause_of_a_429() {
        let app =
            "Tenant_Application/ReadWrite/9a3d526c-b3c1-4479-ba74-197b5c5751ae/0785ef7c-2d7a-4542-b048-95bcab406e0b";
        let tenant = "Tenant/ReadWrite/9a3d526c-b3c1-4479-ba74-197b5c5751ae/0785ef7c-2d7a-4542-b048-95bcab406e0b";
        let cases = [
            (
                vec![(INFORMATION, "ResourceUnitLimitExceeded")],
                ThrottleCause::OurLimit,
            ),
            (vec![(INFORMATION, "WriteLimitExceeded")], ThrottleCause::OurLimit),
            (vec![(INFORMATION, "CPULimitExceeded")], ThrottleCause::ServiceLoad),
            (
                vec![(INFORMATION, "CPULimitExceeded"), (SCOPE, app)],
                ThrottleCause::ServiceLoad,
            ),
            (vec![(SCOPE, app)], ThrottleCause::OurLimit),
            (vec![(SCOPE, tenant)], ThrottleCause::ServiceLoad),
            (vec![(INFORMATION, "SomethingNew")], ThrottleCause::Unknown),
        ];
        for (headers, cause) in cases {
            assert_eq!(signals(&headers).cause(), cause, "{headers:?}");
        }
    }

    #[test]
    fn the_share_of_the_limit_used() {
        // The documentation calls the value both a share (0.8 to 1.8) and a percentage.
        assert_eq!(signals(&[(LIMIT_PERCENTAGE, "93")]).limit_used, Some(0.93));
        assert_eq!(signals(&[(LIMIT_PERCENTAGE, "112.5")]).limit_used, Some(1.125));
        assert_eq!(signals(&[(LIMIT_PERCENTAGE, "1.2")]).limit_used, Some(1.2));
        assert_eq!(signals(&[(LIMIT_PERCENTAGE, "5")]).limit_used, None);
        assert_eq!(signals(&[(LIMIT_PERCENTAGE, "NaN")]).limit_used, None);
        assert_eq!(signals(&[(LIMIT_PERCENTAGE, "1e9")]).limit_used, None);
        assert_eq!(
            signals(&[("X-Ms-Throttle-Limit-Percentage", "0.93")]).limit_used,
            Some(0.93)
        );
        assert_eq!(signals(&[(LIMIT_PERCENTAGE, "soon")]).limit_used, None);
        assert_eq!(signals(&[(LIMIT_PERCENTAGE, "-1")]).limit_used, None);
    }

    #[test]
    fn only_low_priority_sends_the_header() {
        assert_eq!(Priority::Low.header().unwrap(), "low");
        assert_eq!(Priority::Normal.header(), None);
        assert_eq!(Priority::default(), Priority::Normal);
    }
}
