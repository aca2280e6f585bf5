//! What the scheduled heal lists: requests or assignments in a failed state. Only requests can be
//! healed (reprocessed) from a failed state; failed assignments are reported, since Graph reprocesses
//! an assignment only when it is Delivered (`accesspackageassignment-reprocess.md`).

/// Graph refuses to reprocess a request completed longer ago than this
/// (`accesspackageassignmentrequest-reprocess.md`: "within 14 days from the time the original request
/// was completed").
pub const REPROCESS_WINDOW: time::Duration = time::Duration::days(14);

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum FailedState {
    DeliveryFailed,
    PartiallyDelivered,
}

impl FailedState {
    pub const ALL: [FailedState; 2] = [FailedState::DeliveryFailed, FailedState::PartiallyDelivered];

    /// The wire name in our messages (v1.0's spelling).
    pub fn name(self) -> &'static str {
        match self {
            FailedState::DeliveryFailed => "deliveryFailed",
            FailedState::PartiallyDelivered => "partiallyDelivered",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|s| s.name().eq_ignore_ascii_case(text))
    }
}

/// One listing of the heal run, resumed page by page through the queue like a fan-out scope.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum HealListing {
    /// Requests in this state; those completed inside [`REPROCESS_WINDOW`] are reprocessed.
    Requests(FailedState),
    /// Assignments in this state: reported, never reprocessed.
    Assignments(FailedState),
}

impl HealListing {
    pub const ALL: [HealListing; 4] = [
        HealListing::Requests(FailedState::DeliveryFailed),
        HealListing::Requests(FailedState::PartiallyDelivered),
        HealListing::Assignments(FailedState::DeliveryFailed),
        HealListing::Assignments(FailedState::PartiallyDelivered),
    ];

    /// `requests:deliveryFailed`, `assignments:partiallyDelivered`: the form a heal message carries.
    pub fn name(&self) -> String {
        match self {
            HealListing::Requests(s) => format!("requests:{}", s.name()),
            HealListing::Assignments(s) => format!("assignments:{}", s.name()),
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        let (kind, state) = text.split_once(':')?;
        let state = FailedState::parse(state)?;
        match kind {
            "requests" => Some(HealListing::Requests(state)),
            "assignments" => Some(HealListing::Assignments(state)),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip() {
        for listing in HealListing::ALL {
            assert_eq!(HealListing::parse(&listing.name()), Some(listing));
        }
        assert_eq!(HealListing::parse("requests:delivered"), None);
        assert_eq!(HealListing::parse("users:deliveryFailed"), None);
    }
}
