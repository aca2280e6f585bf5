//! The functions the deployment has, read at build time from its `function-*/function.json` folders (as
//! the Functions host reads them): the emulated host routes and invokes from this table, and the tests
//! name functions by the constants below, which are the folder names.

/// One binding of a `function.json`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Binding {
    /// `httpTrigger`, `http`, `queueTrigger`, `queue`, `timerTrigger`, …
    pub kind: &'static str,
    /// `in` or `out`.
    pub direction: &'static str,
    /// The key in the envelope's `Data` (triggers) or the reply's `Outputs`.
    pub name: &'static str,
    /// An HTTP trigger's route under `/api/`, with `{name}` route values.
    pub route: Option<&'static str>,
    /// An HTTP trigger's methods, upper case.
    pub methods: &'static [&'static str],
    /// A queue binding's queue, `%SETTING%` references unresolved.
    pub queue_name: Option<&'static str>,
}

/// One function folder: its name (the host POSTs to `/{name}`) and bindings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Function {
    pub name: &'static str,
    pub bindings: &'static [Binding],
}

impl Function {
    /// The trigger (the one `in` binding whose type ends in `Trigger`).
    pub fn trigger(&self) -> &'static Binding {
        self.bindings
            .iter()
            .find(|b| b.direction == "in" && b.kind.ends_with("Trigger"))
            .expect("every function.json has a trigger")
    }

    /// The output bindings of this type.
    pub fn outputs(&self, kind: &str) -> impl Iterator<Item = &'static Binding> + use<'_> {
        let kind = kind.to_owned();
        self.bindings
            .iter()
            .filter(move |b| b.direction == "out" && b.kind == kind)
    }

    /// The functions with a trigger of this type (`httpTrigger`, `queueTrigger`, `timerTrigger`).
    pub fn triggered_by(kind: &str) -> impl Iterator<Item = &'static Function> + use<'_> {
        FUNCTIONS.iter().filter(move |f| f.trigger().kind == kind)
    }

    /// Names of this function's queue outputs that write to `queue` (a `queueName` as written, settings
    /// unresolved).
    pub fn outputs_to(&self, queue: &str) -> Vec<&'static str> {
        self.outputs("queue")
            .filter(|b| b.queue_name == Some(queue))
            .map(|b| b.name)
            .collect()
    }

    /// The queue-triggered function (the host's queue listener) and the queue it reads.
    pub fn queue_triggered() -> (&'static Function, &'static str) {
        let function = Self::triggered_by("queueTrigger")
            .next()
            .expect("a function.json with a queueTrigger");
        let queue = function.trigger().queue_name.expect("a queueTrigger names its queue");
        (function, queue)
    }

    /// The HTTP-triggered function whose route is `route` (as written, e.g. `operations/{correlationId}`).
    pub fn with_route(route: &str) -> Option<&'static Function> {
        Self::triggered_by("httpTrigger").find(|f| f.trigger().route == Some(route))
    }
}

/// Where the host moves a message that failed `maxDequeueCount` times, and where the handler's dead
/// letters go: `<queue>-poison`.
pub fn poison_queue(queue: &str) -> String {
    format!("{queue}-poison")
}

include!(concat!(env!("OUT_DIR"), "/functions.rs"));

#[cfg(test)]
mod tests {
    use super::*;

    /// The build script cannot watch the repository root for new folders (that would scan target/), so
    /// a folder added since the last build shows up here.
    #[test]
    fn table_lists_every_function_folder() {
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
        let mut folders: Vec<String> = std::fs::read_dir(root)
            .unwrap()
            .filter_map(Result::ok)
            .filter(|e| e.path().join("function.json").is_file())
            .filter_map(|e| e.file_name().into_string().ok())
            .filter(|name| name.starts_with("function-"))
            .collect();
        folders.sort();
        let table: Vec<&str> = FUNCTIONS.iter().map(|f| f.name).collect();
        assert_eq!(
            table, folders,
            "the function table is stale: touch crates/emulator/build.rs and rebuild"
        );
    }

    #[test]
    fn routes_and_bindings_come_from_function_json() {
        let reprocess = Function::with_route("reprocess").unwrap();
        assert_eq!(reprocess.name, FUNCTION_REPROCESS);
        assert_eq!(reprocess.trigger().name, "req");
        assert_eq!(reprocess.trigger().methods, ["POST"]);
        assert_eq!(reprocess.outputs("http").next().unwrap().name, "res");
        let queue = Function::triggered_by("queueTrigger").next().unwrap();
        assert_eq!(queue.name, FUNCTION_REPROCESS_QUEUE);
        assert_eq!(queue.trigger().name, "message");
        let outputs: Vec<&str> = queue.outputs("queue").map(|b| b.name).collect();
        assert_eq!(outputs, ["enqueue", "deadLetter"]);
        let (function, name) = Function::queue_triggered();
        assert_eq!(function, queue);
        assert_eq!(function.outputs_to(name), ["enqueue"]);
        assert_eq!(function.outputs_to(&poison_queue(name)), ["deadLetter"]);
        assert_eq!(reprocess.outputs_to(name), ["enqueue"]);
        assert_eq!(
            Function::with_route("operations/{correlationId}").unwrap().name,
            FUNCTION_OPERATIONS
        );
    }
}
