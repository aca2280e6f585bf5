//! The Storage queue and the host's queue listener, played for the integration tests and the bench: one
//! queue drained by one or more handler processes, each with its own pool of concurrent invocations (the
//! host runs up to `batchSize` + `newBatchThreshold` per instance), `enqueue` outputs put back on the
//! queue, `deadLetter` outputs kept.

use super::functions::{Function, poison_queue};
use super::host::{QueueMessageMeta, queue_envelope};
use super::host_client::HandlerProcess;
use anyhow::{Context, bail};
use serde_json::Value;
use std::collections::VecDeque;
use std::sync::Mutex;
use std::time::Duration;

/// The queue function's bindings, as in `function-reprocess-queue/function.json`.
/// How often idle queue workers look for new messages.
const IDLE_POLL: Duration = Duration::from_millis(5);

/// How the emulated queue runs the queue function.
#[derive(Debug, Clone, Copy)]
pub struct QueueDrain {
    /// Invocations at once per handler process (the host runs up to `batchSize` + `newBatchThreshold`
    /// per instance).
    pub workers: usize,
    /// Drop `notBefore` from re-enqueued messages so retries run at once; otherwise the handler waits
    /// for it, as in production.
    pub skip_not_before: bool,
}

/// What draining the queue produced.
#[derive(Debug, Default)]
pub struct QueueRun {
    /// Invocations answered 200.
    pub invocations: usize,
    /// Of those, how many each handler process answered (in the order given).
    pub invocations_per_handler: Vec<usize>,
    /// `deadLetter` outputs.
    pub dead_letters: Vec<Value>,
    /// Messages whose invocation failed (no answer, not 200, unreadable outputs), with the reason. The
    /// host would retry them; here they are only reported.
    pub failures: Vec<(String, String)>,
}

impl HandlerProcess {
    /// Plays the Storage queue for this one process: see [`drain_shared_queue`].
    pub fn drain_queue(&self, messages: impl IntoIterator<Item = String>, options: QueueDrain) -> QueueRun {
        drain_shared_queue(&[self], messages, options)
    }
}

/// Plays one Storage queue for several handler instances: `options.workers` threads per process each pop
/// a message, invoke the queue function with it (dequeue count 1), put its `enqueue` outputs back on the
/// queue and keep its `deadLetter` outputs, until the queue is empty and no invocation is in flight.
pub fn drain_shared_queue(
    handlers: &[&HandlerProcess],
    messages: impl IntoIterator<Item = String>,
    options: QueueDrain,
) -> QueueRun {
    // Pending messages, and invocations in flight (their outputs may still add messages).
    let queue = Mutex::new((messages.into_iter().collect::<VecDeque<_>>(), 0usize));
    let run = Mutex::new(QueueRun {
        invocations_per_handler: vec![0; handlers.len()],
        ..QueueRun::default()
    });
    std::thread::scope(|s| {
        for (index, handler) in handlers.iter().enumerate() {
            for _ in 0..options.workers {
                let (queue, run) = (&queue, &run);
                s.spawn(move || {
                    loop {
                        let text = {
                            let mut q = queue.lock().expect("queue lock");
                            match q.0.pop_front() {
                                Some(text) => {
                                    q.1 += 1;
                                    text
                                }
                                None if q.1 == 0 => return,
                                None => {
                                    drop(q);
                                    std::thread::sleep(IDLE_POLL);
                                    continue;
                                }
                            }
                        };
                        let outcome = invoke_queue(handler, &text, options.skip_not_before);
                        let mut q = queue.lock().expect("queue lock");
                        let mut run = run.lock().expect("run lock");
                        match outcome {
                            Ok((enqueued, dead)) => {
                                run.invocations += 1;
                                run.invocations_per_handler[index] += 1;
                                q.0.extend(enqueued);
                                run.dead_letters.extend(dead);
                            }
                            Err(e) => run.failures.push((text, format!("{e:#}"))),
                        }
                        q.1 -= 1;
                    }
                });
            }
        }
    });
    run.into_inner().expect("run lock")
}

/// One queue invocation: the messages it enqueues (as the queue will hold them) and its dead letters.
fn invoke_queue(
    handler: &HandlerProcess,
    text: &str,
    skip_not_before: bool,
) -> anyhow::Result<(Vec<String>, Vec<Value>)> {
    let (function, queue) = Function::queue_triggered();
    let message = function.trigger().name;
    let envelope = queue_envelope(function.name, message, text, &QueueMessageMeta::now(1));
    let reply = handler.invoke(function.name, envelope.as_bytes())?;
    if reply.status != 200 {
        bail!("the handler answered {}: {}", reply.status, reply.json);
    }
    let mut enqueued = Vec::new();
    for binding in function.outputs_to(queue) {
        enqueued.extend(reply.queue_output(binding)?);
    }
    if skip_not_before {
        enqueued = enqueued
            .iter()
            .map(|text| {
                let mut message: Value = serde_json::from_str(text).context("enqueued message is not JSON")?;
                message
                    .as_object_mut()
                    .context("enqueued message is not an object")?
                    .remove("notBefore");
                Ok(message.to_string())
            })
            .collect::<anyhow::Result<_>>()?;
    }
    let mut dead_letters = Vec::new();
    for binding in function.outputs_to(&poison_queue(queue)) {
        dead_letters.extend(reply.queue_output(binding)?);
    }
    let dead = dead_letters
        .iter()
        .map(|text| serde_json::from_str(text).context("dead letter is not JSON"))
        .collect::<anyhow::Result<_>>()?;
    Ok((enqueued, dead))
}
