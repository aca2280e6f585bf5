//! `function-operations-cleanup`: a timer trigger (hourly, at minute 17) that deletes the rows of
//! operations past their retention (`OPERATIONS_RETENTION_DAYS`), within `QUEUE_BUDGET_SECONDS`; what is
//! left over is deleted by the next run (`crate::operations` sweep). The timer's own data is not read.
//! A failure fails the invocation, so it shows in the function's history; the next run retries.

use crate::host::{EnvelopeError, InvokeResponse};
use crate::state::AppState;
use tokio::time::Instant;

pub async fn handle(state: &AppState) -> Result<InvokeResponse, EnvelopeError> {
    let mut response = InvokeResponse::default();
    let Some(store) = &state.services().await.operations else {
        response.log("no storage configured: no operation state to clean up");
        return Ok(response);
    };
    let deadline = Instant::now() + state.settings.queue_budget;
    match store.sweep(deadline).await {
        Ok(swept) => {
            tracing::info!(
                operations = swept.operations,
                rows = swept.rows,
                unfinished = swept.unfinished,
                "expired operations deleted"
            );
            response.log(format!(
                "deleted {} expired operations ({} rows){}",
                swept.operations,
                swept.rows,
                if swept.unfinished {
                    "; more left for the next run"
                } else {
                    ""
                }
            ));
            Ok(response)
        }
        Err(e) => {
            tracing::error!(error = %e, "cleaning up expired operations failed");
            Err(EnvelopeError::State(e.to_string()))
        }
    }
}
