//! Domain types: IDs that can only hold GUIDs, what a caller asked for, and what happened to each ID.

pub mod alert;
pub mod ids;
pub mod outcome;
pub mod scope;
pub mod targets;

pub use ids::{AccessPackageId, AssignmentId, AssignmentRequestId, Guid, GuidError, UserId};
pub use outcome::{ItemResult, Outcome, Report, Summary};
pub use targets::{
    FieldError, ReprocessRequest, RequestError, Scope, Target, TargetKind, Targets, parse_json_request,
    parse_queue_message,
};
