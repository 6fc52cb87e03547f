//! The JavaScript transform sandbox: QuickJS (through `rquickjs`) with a memory limit, a time limit and no way
//! out, on a small pool of dedicated threads so async code never blocks on a script.
//!
//! # What a transform is
//!
//! A transform is a script whose last expression is a function; it is called with the rule's document as JSON
//! and returns what to deliver:
//!
//! ```js
//! const money = (text) => Number(text || 0).toFixed(2);
//! (input) => ({ job: input.record.generated_job_id, total: money(input.record.total_invoice_amount) })
//! ```
//!
//! `null` or `undefined` drops the message; an array sends each of its elements as a message of its own (`null`
//! elements are left out); any other value is one message. The script runs in strict mode with the language's
//! built-ins (`JSON`, `Math`, `Date`, `RegExp`, `Map`, `Set`, …) and nothing else: no `fetch`, `require`,
//! `process`, timers, `console` or modules, so it can reach no file, network or clock beyond `Date`. A transform
//! runs synchronously: one that returns a promise (an `async` function) is refused.
//!
//! # Limits
//!
//! Each call has a time limit ([`SandboxLimits::time_limit`], 100 ms by default) enforced by QuickJS's
//! interrupt handler, which stops even `while (true) {}` and runaway regular expressions, and each transform a
//! memory limit ([`SandboxLimits::memory_bytes`], 16 MiB) enforced by QuickJS's allocator; deep recursion stops
//! at a 1 MiB JavaScript stack. A timeout, running out of memory, a stack overflow, a thrown error and an output that
//! is not JSON are each a distinct [`TransformError`]; the worker throws away that transform's runtime after any
//! of the first three and goes on with the next call.
//!
//! # Isolation and speed
//!
//! Every transform gets a QuickJS runtime of its own on each worker thread, so nothing a script does is seen by
//! another rule or account. A worker keeps the runtimes of the transforms it ran last (at most
//! [`SandboxLimits::cached_transforms`]) with the script already evaluated, so a call costs one function call and
//! the JSON in and out (about 0.1 ms for a 20-line script); creating a runtime and evaluating the script costs
//! about a millisecond and happens once per transform and worker, and each kept runtime holds about 100 KB.
//! Calls of the same transform may therefore see the top-level variables an earlier call left behind, as in a
//! warm serverless function: a transform should keep no state between calls. A rule saved again compiles to a
//! new [`Transform`], which never shares a runtime with the one before.

use std::collections::VecDeque;
use std::ffi::CString;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use rquickjs::context::intrinsic;
use rquickjs::context::EvalOptions;
use rquickjs::{qjs, CatchResultExt, CaughtError, Context, Ctx, Function, Persistent, Runtime, Type};
use serde_json::Value;
use tokio::sync::oneshot;

/// The longest transform source accepted.
pub const MAX_SOURCE_BYTES: usize = 64 * 1024;
/// The smallest memory limit: a runtime with the built-ins alone takes about a tenth of it.
pub const MIN_MEMORY_BYTES: usize = 1024 * 1024;
/// The script name in positions and stack traces.
const SCRIPT_NAME: &str = "transform";
/// The JavaScript stack of one call; the worker threads have room for it and more.
const JS_STACK_BYTES: usize = 1024 * 1024;
const WORKER_STACK_BYTES: usize = 8 * 1024 * 1024;

/// The built-ins a transform sees: the language's own objects, without weak references and finalizers (which
/// run code after a call), the performance clock and DOM exceptions. Promises stay because `async` functions
/// need them (a call of one fails half-made without them); a transform that returns one is refused.
type Intrinsics = (
    intrinsic::Date,
    intrinsic::Eval,
    intrinsic::RegExpCompiler,
    intrinsic::RegExp,
    intrinsic::Json,
    intrinsic::Proxy,
    intrinsic::MapSet,
    intrinsic::TypedArrays,
    intrinsic::Promise,
);

/// How transforms are run and bounded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SandboxLimits {
    /// The most memory one transform's runtime may hold; values under [`MIN_MEMORY_BYTES`] (0 among them, which
    /// QuickJS would read as no limit at all) count as that minimum.
    pub memory_bytes: usize,
    /// The longest one call may run, including reading its input and writing its output.
    pub time_limit: Duration,
    /// Threads that run transforms.
    pub workers: usize,
    /// Hand-offs (one transform and its documents) waiting for a thread; `run` waits for room beyond this.
    pub queue: usize,
    /// Transforms each thread keeps ready.
    pub cached_transforms: usize,
    /// The largest output, as JSON.
    pub max_output_bytes: usize,
    /// The most messages one call may return.
    pub max_messages: usize,
}

impl Default for SandboxLimits {
    fn default() -> Self {
        SandboxLimits {
            memory_bytes: 16 * 1024 * 1024,
            time_limit: Duration::from_millis(100),
            workers: 2,
            queue: 256,
            cached_transforms: 32,
            max_output_bytes: 1024 * 1024,
            max_messages: 100,
        }
    }
}

/// Why a transform was refused or failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TransformError {
    #[error("syntax error at line {line}, column {column}: {message}")]
    Syntax { line: u32, column: u32, message: String },
    #[error("the transform is {size} bytes long; at most {MAX_SOURCE_BYTES} are allowed")]
    TooLong { size: usize },
    #[error("the transform must end with a function such as (input) => ({{ ... }}), but it ends with {found}")]
    NotAFunction { found: String },
    #[error("the transform threw {message}")]
    Thrown { message: String },
    #[error("the transform ran longer than its time limit of {limit_ms} ms")]
    Timeout { limit_ms: u128 },
    #[error("the transform ran out of memory (limit {limit_bytes} bytes)")]
    OutOfMemory { limit_bytes: usize },
    #[error("the transform exceeded the maximum call stack size (runaway recursion)")]
    StackOverflow,
    #[error("the transform's output is not JSON: {reason}")]
    InvalidOutput { reason: String },
    #[error("the transform's output is {size} bytes of JSON; at most {limit} are allowed")]
    OutputTooLarge { size: usize, limit: usize },
    #[error("the transform returned {count} messages; at most {limit} are allowed")]
    TooManyMessages { count: usize, limit: usize },
    #[error("the transform sandbox is not running")]
    Unavailable,
    #[error("the transform sandbox failed unexpectedly while running the transform")]
    Crashed,
}

/// A transform whose syntax has been checked, ready to run. Each compilation is a new transform: two rules, or
/// two versions of one rule, never share a runtime.
#[derive(Debug, Clone)]
pub struct Transform {
    id: u64,
    source: Arc<str>,
}

impl Transform {
    /// Checks the script's syntax without running any of it, and refuses one that is too long.
    pub fn compile(source: &str) -> Result<Transform, TransformError> {
        static NEXT_ID: AtomicU64 = AtomicU64::new(0);
        if source.len() > MAX_SOURCE_BYTES {
            return Err(TransformError::TooLong { size: source.len() });
        }
        check_syntax(source)?;
        Ok(Transform {
            id: NEXT_ID.fetch_add(1, Ordering::Relaxed),
            source: source.into(),
        })
    }

    pub fn source(&self) -> &str {
        &self.source
    }
}

/// Parses the script in a throwaway runtime, as the workers will, but only compiles it.
fn check_syntax(source: &str) -> Result<(), TransformError> {
    let text = CString::new(source).map_err(|error| TransformError::Syntax {
        line: line_of(source, error.nul_position()),
        column: 1,
        message: "the script holds a NUL character".into(),
    })?;
    let runtime = Runtime::new().map_err(|_| TransformError::Crashed)?;
    runtime.set_memory_limit(SandboxLimits::default().memory_bytes);
    // The parser recurses on the caller's stack, which may be a small async worker's.
    runtime.set_max_stack_size(256 * 1024);
    let context = Context::custom::<Intrinsics>(&runtime).map_err(|_| TransformError::Crashed)?;
    let name = CString::new(SCRIPT_NAME).expect("the script name has no NUL");
    let flags = (qjs::JS_EVAL_TYPE_GLOBAL | qjs::JS_EVAL_FLAG_STRICT | qjs::JS_EVAL_FLAG_COMPILE_ONLY) as i32;
    context.with(|ctx| {
        let raw = ctx.as_raw().as_ptr();
        // SAFETY: `raw` is the live context of this closure; `text` and `name` are NUL-terminated and outlive
        // the call, and `JS_Eval` reads `len` bytes before the NUL. With COMPILE_ONLY it runs nothing and returns
        // either the compiled script, which is freed at once, or the exception marker, whose exception `catch`
        // takes.
        let compiled = unsafe {
            qjs::JS_Eval(
                raw,
                text.as_ptr(),
                text.as_bytes().len() as qjs::size_t,
                name.as_ptr(),
                flags,
            )
        };
        if unsafe { qjs::JS_IsException(compiled) } {
            return Err(syntax_error(&ctx));
        }
        // SAFETY: `compiled` is a value this context owns and nothing else refers to.
        unsafe { qjs::JS_FreeValue(raw, compiled) };
        Ok(())
    })
}

fn syntax_error(ctx: &Ctx<'_>) -> TransformError {
    let exception = ctx.catch();
    let (message, stack) = match exception.as_exception() {
        Some(exception) => (
            exception.message().unwrap_or_default(),
            exception.stack().unwrap_or_default(),
        ),
        None => ("unreadable syntax error".to_owned(), String::new()),
    };
    let (line, column) = position(&stack).unwrap_or((1, 1));
    TransformError::Syntax { line, column, message }
}

fn line_of(source: &str, offset: usize) -> u32 {
    let newlines = source.as_bytes()[..offset]
        .iter()
        .filter(|byte| **byte == b'\n')
        .count();
    u32::try_from(newlines + 1).unwrap_or(u32::MAX)
}

/// The first `transform:LINE:COLUMN` in a QuickJS stack trace.
fn position(stack: &str) -> Option<(u32, u32)> {
    let marker = format!("{SCRIPT_NAME}:");
    let start = stack.find(&marker)? + marker.len();
    let mut numbers = stack[start..].split(|c: char| !c.is_ascii_digit());
    let line = numbers.next()?.parse().ok()?;
    let column = numbers.next()?.parse().ok()?;
    Some((line, column))
}

/// Runs transforms on dedicated threads. Cloning shares the same threads; they stop when the last clone is
/// dropped and the queue is empty.
#[derive(Clone)]
pub struct Sandbox {
    jobs: flume::Sender<Job>,
}

/// One hand-off to a thread: a transform and the documents to call it on, one call each.
struct Job {
    transform: Transform,
    inputs: Vec<String>,
    reply: oneshot::Sender<Vec<Result<Vec<Value>, TransformError>>>,
}

impl Sandbox {
    /// Starts the worker threads.
    pub fn start(limits: SandboxLimits) -> std::io::Result<Sandbox> {
        let (jobs, queue) = flume::bounded(limits.queue.max(1));
        let limits = Arc::new(SandboxLimits {
            memory_bytes: limits.memory_bytes.max(MIN_MEMORY_BYTES),
            ..limits
        });
        for index in 0..limits.workers.max(1) {
            let queue = queue.clone();
            let limits = Arc::clone(&limits);
            thread::Builder::new()
                .name(format!("transform-{index}"))
                .stack_size(WORKER_STACK_BYTES)
                .spawn(move || Worker::new(limits).serve(&queue))?;
        }
        Ok(Sandbox { jobs })
    }

    /// Runs a transform on a document: the messages it returns, none when it dropped the document.
    pub async fn run(&self, transform: &Transform, input: &Value) -> Result<Vec<Value>, TransformError> {
        let mut results = self.run_each(transform, &[input]).await;
        results.pop().unwrap_or(Err(TransformError::Unavailable))
    }

    /// Runs a transform on each of several documents, in one hand-off to a thread: a batch of events costs one
    /// trip to the sandbox, not one per event. Each call is bounded and fails on its own, as with [`run`]; the
    /// results are in the documents' order.
    ///
    /// [`run`]: Sandbox::run
    pub async fn run_each(&self, transform: &Transform, inputs: &[&Value]) -> Vec<Result<Vec<Value>, TransformError>> {
        if inputs.is_empty() {
            return Vec::new();
        }
        let unavailable = || vec![Err(TransformError::Unavailable); inputs.len()];
        let (reply, answer) = oneshot::channel();
        let job = Job {
            transform: transform.clone(),
            inputs: inputs.iter().map(|input| input.to_string()).collect(),
            reply,
        };
        if self.jobs.send_async(job).await.is_err() {
            return unavailable();
        }
        answer.await.unwrap_or_else(|_| unavailable())
    }
}

/// When the running call must stop, shared by a worker and the interrupt handlers of its runtimes.
struct Clock {
    epoch: Instant,
    deadline_nanos: AtomicU64,
    expired: AtomicBool,
}

impl Clock {
    fn arm(&self, limit: Duration) {
        let deadline = self.epoch.elapsed().saturating_add(limit).as_nanos();
        self.deadline_nanos
            .store(u64::try_from(deadline).unwrap_or(u64::MAX), Ordering::Relaxed);
        self.expired.store(false, Ordering::Relaxed);
    }

    /// Called by QuickJS every few thousand instructions.
    fn interrupt(&self) -> bool {
        let now = u64::try_from(self.epoch.elapsed().as_nanos()).unwrap_or(u64::MAX);
        let expired = now >= self.deadline_nanos.load(Ordering::Relaxed);
        if expired {
            self.expired.store(true, Ordering::Relaxed);
        }
        expired
    }

    fn expired(&self) -> bool {
        self.expired.load(Ordering::Relaxed)
    }
}

/// A transform's runtime with its script evaluated. Fields drop in order: the function and the context before
/// the runtime that holds them.
struct Loaded {
    transform_id: u64,
    function: Persistent<Function<'static>>,
    context: Context,
    runtime: Runtime,
}

struct Worker {
    limits: Arc<SandboxLimits>,
    clock: Arc<Clock>,
    /// Most recently used last.
    loaded: VecDeque<Loaded>,
}

impl Worker {
    fn new(limits: Arc<SandboxLimits>) -> Worker {
        let clock = Clock {
            epoch: Instant::now(),
            deadline_nanos: AtomicU64::new(0),
            expired: AtomicBool::new(false),
        };
        Worker {
            limits,
            clock: Arc::new(clock),
            loaded: VecDeque::new(),
        }
    }

    fn serve(mut self, queue: &flume::Receiver<Job>) {
        while let Ok(job) = queue.recv() {
            let results = job
                .inputs
                .iter()
                .map(|input| {
                    catch_unwind(AssertUnwindSafe(|| self.run(&job.transform, input))).unwrap_or_else(|_| {
                        self.loaded.clear();
                        Err(TransformError::Crashed)
                    })
                })
                .collect();
            // The caller may have stopped waiting; the results are then of no use to anyone.
            let _ = job.reply.send(results);
        }
    }

    fn run(&mut self, transform: &Transform, input: &str) -> Result<Vec<Value>, TransformError> {
        self.clock.arm(self.limits.time_limit);
        let result = load(&mut self.loaded, transform, &self.limits, &self.clock)
            .and_then(|loaded| call(loaded, input, &self.limits, &self.clock));
        // A runtime stopped mid-way may hold half-made state, and one with promise jobs still queued would pile
        // them up call after call: the next call starts afresh.
        let stopped = matches!(
            result,
            Err(TransformError::Timeout { .. } | TransformError::OutOfMemory { .. } | TransformError::StackOverflow)
        );
        self.loaded
            .retain(|loaded| loaded.transform_id != transform.id || !(stopped || loaded.runtime.is_job_pending()));
        result
    }
}

/// The transform's runtime, created and its script evaluated if the worker has not kept it.
fn load<'a>(
    loaded: &'a mut VecDeque<Loaded>,
    transform: &Transform,
    limits: &SandboxLimits,
    clock: &Arc<Clock>,
) -> Result<&'a Loaded, TransformError> {
    if let Some(index) = loaded.iter().position(|kept| kept.transform_id == transform.id) {
        let kept = loaded.remove(index).expect("the position is in range");
        loaded.push_back(kept);
    } else {
        let fresh = evaluate(transform, limits, clock)?;
        if loaded.len() >= limits.cached_transforms.max(1) {
            loaded.pop_front();
        }
        loaded.push_back(fresh);
    }
    Ok(loaded.back().expect("a transform was just placed last"))
}

/// Creates a runtime for the transform and evaluates its script, which must end with a function.
fn evaluate(transform: &Transform, limits: &SandboxLimits, clock: &Arc<Clock>) -> Result<Loaded, TransformError> {
    let runtime = Runtime::new().map_err(|_| TransformError::Crashed)?;
    runtime.set_memory_limit(limits.memory_bytes);
    runtime.set_max_stack_size(JS_STACK_BYTES);
    let handler_clock = Arc::clone(clock);
    runtime.set_interrupt_handler(Some(Box::new(move || handler_clock.interrupt())));
    let context = Context::custom::<Intrinsics>(&runtime).map_err(|_| TransformError::OutOfMemory {
        limit_bytes: limits.memory_bytes,
    })?;
    let function = context.with(|ctx| {
        let mut options = EvalOptions::default();
        options.strict = true;
        options.filename = Some(SCRIPT_NAME.to_owned());
        let value: rquickjs::Value = ctx
            .eval_with_options(transform.source.as_bytes(), options)
            .catch(&ctx)
            .map_err(|caught| failure(caught, limits, clock))?;
        let found = describe_non_function(&value);
        match value.into_function() {
            Some(function) => Ok(Persistent::save(&ctx, function)),
            None => Err(TransformError::NotAFunction { found }),
        }
    })?;
    Ok(Loaded {
        transform_id: transform.id,
        function,
        context,
        runtime,
    })
}

/// What the script's last expression is, for the message that it is not a function.
fn describe_non_function(value: &rquickjs::Value<'_>) -> String {
    if value.is_undefined() {
        // The usual slip: a declaration (`function f() {}`, `const f = …`) evaluates to nothing.
        "nothing (a declaration such as `function f() {}` or `const f = …` is not an expression: end with `f`)".into()
    } else {
        format!("a value of type {}", kind_of(value))
    }
}

/// A value's kind in JavaScript's words (`typeof`, with arrays and `null` told apart).
fn kind_of(value: &rquickjs::Value<'_>) -> &'static str {
    match value.type_of() {
        Type::Int | Type::Float => "number",
        Type::Bool => "boolean",
        Type::String => "string",
        Type::Symbol => "symbol",
        Type::BigInt => "bigint",
        Type::Null => "null",
        Type::Undefined | Type::Uninitialized => "undefined",
        Type::Array => "array",
        Type::Function | Type::Constructor => "function",
        _ => "object",
    }
}

/// Calls a loaded transform with the input JSON and reads its output back.
fn call(loaded: &Loaded, input: &str, limits: &SandboxLimits, clock: &Clock) -> Result<Vec<Value>, TransformError> {
    let output = loaded.context.with(|ctx| {
        let fail = |caught: CaughtError<'_>| failure(caught, limits, clock);
        let function = loaded.function.clone().restore(&ctx).catch(&ctx).map_err(fail)?;
        let input = ctx.json_parse(input).catch(&ctx).map_err(fail)?;
        let output: rquickjs::Value = function.call((input,)).catch(&ctx).map_err(fail)?;
        if output.is_undefined() || output.is_null() {
            return Ok(None);
        }
        if output.is_promise() {
            return Err(TransformError::InvalidOutput {
                reason: "it returned a Promise; a transform runs synchronously, so it must not be async".into(),
            });
        }
        if output.is_function() || output.is_symbol() {
            return Err(TransformError::InvalidOutput {
                reason: format!("it returned a {}", kind_of(&output)),
            });
        }
        // Writing JSON runs `toJSON` methods, so it can still time out or run out of memory.
        let text = ctx
            .json_stringify(output)
            .catch(&ctx)
            .map_err(|caught| match fail(caught) {
                TransformError::Thrown { message } => TransformError::InvalidOutput { reason: message },
                other => other,
            })?;
        text.map(|text| text.to_string()).transpose().catch(&ctx).map_err(fail)
    })?;
    let Some(output) = output else {
        return Ok(Vec::new());
    };
    if output.len() > limits.max_output_bytes {
        return Err(TransformError::OutputTooLarge {
            size: output.len(),
            limit: limits.max_output_bytes,
        });
    }
    let messages = match serde_json::from_str(&output) {
        Ok(Value::Array(items)) => items.into_iter().filter(|item| !item.is_null()).collect(),
        Ok(Value::Null) => Vec::new(),
        Ok(value) => vec![value],
        Err(error) => {
            return Err(TransformError::InvalidOutput {
                reason: error.to_string(),
            })
        }
    };
    if messages.len() > limits.max_messages {
        return Err(TransformError::TooManyMessages {
            count: messages.len(),
            limit: limits.max_messages,
        });
    }
    Ok(messages)
}

/// Names what stopped a script: the clock, the memory limit, the stack, or an error it threw.
fn failure(caught: CaughtError<'_>, limits: &SandboxLimits, clock: &Clock) -> TransformError {
    if clock.expired() {
        return TransformError::Timeout {
            limit_ms: limits.time_limit.as_millis(),
        };
    }
    let out_of_memory = TransformError::OutOfMemory {
        limit_bytes: limits.memory_bytes,
    };
    match caught {
        CaughtError::Error(rquickjs::Error::Allocation) => out_of_memory,
        CaughtError::Error(error) => TransformError::Thrown {
            message: error.to_string(),
        },
        CaughtError::Exception(exception) => {
            let message = exception.message().unwrap_or_default();
            let name: String = exception.get("name").unwrap_or_else(|_| "Error".to_owned());
            match message.as_str() {
                "out of memory" => out_of_memory,
                "Maximum call stack size exceeded" | "stack overflow" => TransformError::StackOverflow,
                _ => {
                    let place = exception
                        .stack()
                        .as_deref()
                        .and_then(position)
                        .map(|(line, column)| format!(" at line {line}, column {column}"))
                        .unwrap_or_default();
                    TransformError::Thrown {
                        message: format!("{name}: {message}{place}"),
                    }
                }
            }
        }
        CaughtError::Value(value) => {
            let shown = value
                .as_string()
                .and_then(|text| text.to_string().ok())
                .or_else(|| {
                    value
                        .ctx()
                        .json_stringify(value.clone())
                        .ok()
                        .flatten()
                        .and_then(|text| text.to_string().ok())
                })
                .unwrap_or_else(|| format!("a {}", kind_of(&value)));
            TransformError::Thrown { message: shown }
        }
    }
}

#[cfg(test)]
mod tests;
