//! The Azure Functions custom-handler wire protocol, and nothing else: the invocation envelope the
//! host POSTs to `/{function}`, the trigger payloads inside it, and the reply it reads back.
//! Sources are cited per item; see `tests/fixtures/host/README.md` for byte-level captures.

pub mod envelope;
pub mod http_trigger;
pub mod queue_trigger;
pub mod response;
pub mod timer_trigger;

pub use envelope::{Envelope, EnvelopeError, INVOCATION_ID_HEADER};
pub use http_trigger::HttpTrigger;
pub use queue_trigger::QueueTrigger;
pub use response::{HttpReply, InvokeResponse};
pub use timer_trigger::TimerTrigger;
