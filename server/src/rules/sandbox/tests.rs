use std::time::{Duration, Instant};

use serde_json::{json, Value};

use super::{Sandbox, SandboxLimits, Transform, TransformError, MAX_SOURCE_BYTES};

fn sandbox() -> Sandbox {
    Sandbox::start(SandboxLimits {
        workers: 1,
        ..SandboxLimits::default()
    })
    .unwrap()
}

/// Time enough for the memory and stack limits to stop a script first, even in an unoptimised build.
fn generous_sandbox() -> Sandbox {
    Sandbox::start(SandboxLimits {
        workers: 1,
        time_limit: Duration::from_secs(20),
        ..SandboxLimits::default()
    })
    .unwrap()
}

fn input() -> Value {
    json!({"record": {"status": "Completed", "generated_job_id": "1042", "total_invoice_amount": "1234.5"}})
}

async fn run(sandbox: &Sandbox, source: &str) -> Result<Vec<Value>, TransformError> {
    sandbox.run(&Transform::compile(source).unwrap(), &input()).await
}

/// After a failure, the same worker must still run an ordinary transform.
async fn assert_still_works(sandbox: &Sandbox) {
    let messages = run(sandbox, "(input) => ({ job: input.record.generated_job_id })")
        .await
        .unwrap();
    assert_eq!(messages, vec![json!({"job": "1042"})]);
}

#[tokio::test]
async fn a_transform_maps_the_input_to_one_message() {
    let sandbox = sandbox();
    let source = "const money = (text) => Number(text).toFixed(2);\n\
                  (input) => ({ status: input.record.status, total: money(input.record.total_invoice_amount) })";
    assert_eq!(
        run(&sandbox, source).await.unwrap(),
        vec![json!({"status": "Completed", "total": "1234.50"})]
    );
}

#[tokio::test]
async fn null_and_undefined_drop_the_message() {
    let sandbox = sandbox();
    assert_eq!(run(&sandbox, "(input) => null").await.unwrap(), Vec::<Value>::new());
    assert_eq!(
        run(&sandbox, "(input) => undefined").await.unwrap(),
        Vec::<Value>::new()
    );
    assert_eq!(
        run(&sandbox, "(input) => { if (input.record.status !== 'Quote') return; }")
            .await
            .unwrap(),
        Vec::<Value>::new()
    );
}

#[tokio::test]
async fn an_array_sends_each_element_as_a_message_leaving_out_nulls() {
    let sandbox = sandbox();
    let messages = run(&sandbox, "(input) => [{ n: 1 }, null, { n: 2 }, 'three']")
        .await
        .unwrap();
    assert_eq!(messages, vec![json!({"n": 1}), json!({"n": 2}), json!("three")]);
    assert_eq!(run(&sandbox, "(input) => []").await.unwrap(), Vec::<Value>::new());
}

#[tokio::test]
async fn an_infinite_loop_times_out_and_the_worker_carries_on() {
    let sandbox = Sandbox::start(SandboxLimits {
        workers: 1,
        time_limit: Duration::from_millis(50),
        ..SandboxLimits::default()
    })
    .unwrap();
    let started = Instant::now();
    let error = run(
        &sandbox,
        "(input) => { try { while (true) {} } catch (e) { return 'caught'; } }",
    )
    .await;
    assert_eq!(error, Err(TransformError::Timeout { limit_ms: 50 }));
    assert!(
        started.elapsed() >= Duration::from_millis(50),
        "{:?}",
        started.elapsed()
    );
    assert!(started.elapsed() < Duration::from_secs(5), "{:?}", started.elapsed());
    assert_eq!(
        error.unwrap_err().to_string(),
        "the transform ran longer than its time limit of 50 ms"
    );
    assert_still_works(&sandbox).await;
}

#[tokio::test]
async fn a_batch_runs_each_document_on_its_own_clock_and_answers_in_order() {
    let sandbox = Sandbox::start(SandboxLimits {
        workers: 1,
        time_limit: Duration::from_millis(50),
        ..SandboxLimits::default()
    })
    .unwrap();
    let transform =
        Transform::compile("(input) => { if (input.spin) { while (true) {} } return input.n === 2 ? null : input.n; }")
            .unwrap();
    let documents = [json!({"n": 1}), json!({"n": 2}), json!({"spin": true}), json!({"n": 4})];
    let inputs: Vec<&Value> = documents.iter().collect();
    let results = sandbox.run_each(&transform, &inputs).await;
    assert_eq!(
        results,
        vec![
            Ok(vec![json!(1)]),
            Ok(vec![]),
            Err(TransformError::Timeout { limit_ms: 50 }),
            Ok(vec![json!(4)]),
        ]
    );
    assert_eq!(sandbox.run_each(&transform, &[]).await, vec![]);
}

#[tokio::test]
async fn a_catastrophic_regular_expression_times_out() {
    let sandbox = sandbox();
    let error = run(&sandbox, "(input) => /^(a+)+$/.test('a'.repeat(40) + '!')").await;
    assert_eq!(error, Err(TransformError::Timeout { limit_ms: 100 }));
    assert_still_works(&sandbox).await;
}

#[tokio::test]
async fn a_memory_limit_of_zero_still_limits_memory() {
    let sandbox = Sandbox::start(SandboxLimits {
        workers: 1,
        memory_bytes: 0,
        ..SandboxLimits::default()
    })
    .unwrap();
    let error = run(&sandbox, "(input) => 'x'.repeat(2 ** 29).length").await;
    assert_eq!(
        error,
        Err(TransformError::OutOfMemory {
            limit_bytes: super::MIN_MEMORY_BYTES
        })
    );
    assert_still_works(&sandbox).await;
}

#[tokio::test]
async fn a_loop_at_the_top_of_the_script_times_out_too() {
    let sandbox = sandbox();
    let error = run(&sandbox, "for (;;) {}\n(input) => input").await.unwrap_err();
    assert_eq!(error, TransformError::Timeout { limit_ms: 100 });
    assert_still_works(&sandbox).await;
}

#[tokio::test]
async fn a_gigabyte_allocation_runs_out_of_memory_and_the_worker_carries_on() {
    let sandbox = generous_sandbox();
    let out_of_memory = TransformError::OutOfMemory {
        limit_bytes: 16 * 1024 * 1024,
    };
    assert_eq!(
        run(&sandbox, "(input) => new Array(1 << 28).fill(1).length").await,
        Err(out_of_memory.clone())
    );
    assert_still_works(&sandbox).await;
    assert_eq!(
        run(&sandbox, "(input) => 'x'.repeat(2 ** 29).length").await,
        Err(out_of_memory.clone())
    );
    assert_still_works(&sandbox).await;
    let growing = "(input) => { const kept = []; for (;;) kept.push('x'.repeat(4096) + kept.length); }";
    assert_eq!(run(&sandbox, growing).await, Err(out_of_memory));
    assert_still_works(&sandbox).await;
}

#[tokio::test]
async fn a_thrown_error_is_reported_with_its_message_and_place() {
    let sandbox = sandbox();
    let source = "(input) => {\n  if (input.record.status === 'Completed') {\n    throw new TypeError('no completed jobs');\n  }\n}";
    let error = run(&sandbox, source).await.unwrap_err();
    assert_eq!(
        error,
        TransformError::Thrown {
            message: "TypeError: no completed jobs at line 3, column 15".into()
        },
        "{error}"
    );
    assert_still_works(&sandbox).await;
}

#[tokio::test]
async fn a_mistake_in_the_script_is_reported_as_what_javascript_throws() {
    let sandbox = sandbox();
    let error = run(&sandbox, "(input) => input.record.missing.deeper")
        .await
        .unwrap_err();
    let TransformError::Thrown { message } = &error else {
        panic!("{error:?}")
    };
    assert!(message.starts_with("TypeError: "), "{message}");
    assert!(
        message.contains("'deeper' of undefined at line 1, column "),
        "{message}"
    );
}

#[tokio::test]
async fn a_thrown_value_that_is_not_an_error_is_shown_as_it_is() {
    let sandbox = sandbox();
    assert_eq!(
        run(&sandbox, "(input) => { throw 42; }").await,
        Err(TransformError::Thrown { message: "42".into() })
    );
    assert_eq!(
        run(&sandbox, "(input) => { throw { code: 'E1' }; }").await,
        Err(TransformError::Thrown {
            message: r#"{"code":"E1"}"#.into()
        })
    );
    assert_eq!(
        run(&sandbox, "(input) => { throw 'plain'; }").await,
        Err(TransformError::Thrown {
            message: "plain".into()
        })
    );
}

#[tokio::test]
async fn deep_recursion_is_a_stack_overflow_and_not_a_crash() {
    let sandbox = generous_sandbox();
    let error = run(&sandbox, "const down = (n) => down(n + 1) + 1;\n(input) => down(0)").await;
    assert_eq!(error, Err(TransformError::StackOverflow));
    assert_still_works(&sandbox).await;
    let nested = "(input) => { let deep = {}; for (let i = 0; i < 20000; i++) deep = { deep }; return deep; }";
    let error = run(&sandbox, nested).await.unwrap_err();
    assert!(
        matches!(
            error,
            TransformError::StackOverflow | TransformError::InvalidOutput { .. }
        ),
        "{error:?}"
    );
    assert_still_works(&sandbox).await;
}

#[test]
fn a_syntax_error_is_refused_on_compile_with_its_line_and_column() {
    let error = Transform::compile("(input) => {\n  let total = ;\n}").unwrap_err();
    let TransformError::Syntax { line, column, message } = &error else {
        panic!("{error:?}")
    };
    assert_eq!((*line, *column), (2, 15), "{error}");
    assert!(!message.is_empty());
    assert!(
        error.to_string().starts_with("syntax error at line 2, column 15: "),
        "{error}"
    );
}

#[test]
fn a_deeply_nested_script_is_refused_on_compile_and_not_a_crash() {
    let nested = format!("(input) => {}1{}", "(".repeat(30_000), ")".repeat(30_000));
    let error = Transform::compile(&nested).unwrap_err();
    assert!(
        matches!(&error, TransformError::Syntax { message, .. } if message.contains("stack")),
        "{error:?}"
    );
}

#[test]
fn compiling_runs_none_of_the_script() {
    assert!(Transform::compile("for (;;) {}\n(input) => input").is_ok());
}

#[test]
fn the_script_is_strict_javascript() {
    let error = Transform::compile("with (Math) { max(1, 2) }").unwrap_err();
    assert!(matches!(error, TransformError::Syntax { line: 1, .. }), "{error:?}");
}

#[test]
fn a_source_that_is_too_long_or_holds_a_nul_is_refused() {
    let long = format!("(input) => input // {}", "x".repeat(MAX_SOURCE_BYTES));
    assert!(matches!(Transform::compile(&long), Err(TransformError::TooLong { .. })));
    let error = Transform::compile("(input) =>\n input\0").unwrap_err();
    assert!(matches!(error, TransformError::Syntax { line: 2, .. }), "{error:?}");
}

#[tokio::test]
async fn a_script_that_does_not_end_with_a_function_fails_when_it_runs() {
    let sandbox = sandbox();
    let error = run(&sandbox, "function transform(input) { return input; }")
        .await
        .unwrap_err();
    assert!(
        matches!(&error, TransformError::NotAFunction { found } if found.starts_with("nothing")),
        "{error}"
    );
    let error = run(&sandbox, "42").await.unwrap_err();
    assert_eq!(
        error,
        TransformError::NotAFunction {
            found: "a value of type number".into()
        }
    );
    let works = run(&sandbox, "function transform(input) { return 1; }\ntransform").await;
    assert_eq!(works, Ok(vec![json!(1)]));
}

#[tokio::test]
async fn no_input_output_globals_are_reachable() {
    let sandbox = sandbox();
    let source = "(input) => [typeof fetch, typeof require, typeof process, typeof Deno, typeof std, typeof os, \
                  typeof setTimeout, typeof console, typeof WebAssembly, typeof XMLHttpRequest, typeof WeakRef]";
    let kinds = run(&sandbox, source).await.unwrap();
    assert!(kinds.iter().all(|kind| kind == "undefined"), "{kinds:?}");
}

#[tokio::test]
async fn an_output_that_is_not_json_is_refused() {
    let sandbox = sandbox();
    for source in [
        "(input) => () => 1",
        "(input) => Symbol('x')",
        "(input) => 10n",
        "(input) => ({ big: 10n })",
    ] {
        let error = run(&sandbox, source).await.unwrap_err();
        assert!(
            matches!(error, TransformError::InvalidOutput { .. }),
            "{source}: {error:?}"
        );
    }
}

#[tokio::test]
async fn outputs_beyond_the_limits_are_refused() {
    let sandbox = Sandbox::start(SandboxLimits {
        workers: 1,
        max_output_bytes: 1_000,
        max_messages: 3,
        ..SandboxLimits::default()
    })
    .unwrap();
    let error = run(&sandbox, "(input) => 'x'.repeat(2000)").await.unwrap_err();
    assert_eq!(
        error,
        TransformError::OutputTooLarge {
            size: 2_002,
            limit: 1_000
        }
    );
    let error = run(&sandbox, "(input) => [1, 2, 3, 4]").await.unwrap_err();
    assert_eq!(error, TransformError::TooManyMessages { count: 4, limit: 3 });
}

#[tokio::test]
async fn globals_set_by_one_rule_are_not_seen_by_another() {
    let sandbox = sandbox();
    let writer =
        Transform::compile("(input) => { globalThis.leaked = 'secret'; Object.prototype.polluted = 1; return 1; }")
            .unwrap();
    let reader = Transform::compile("(input) => ({ leaked: typeof leaked, polluted: typeof ({}).polluted })").unwrap();
    assert_eq!(sandbox.run(&writer, &input()).await, Ok(vec![json!(1)]));
    assert_eq!(
        sandbox.run(&reader, &input()).await,
        Ok(vec![json!({"leaked": "undefined", "polluted": "undefined"})])
    );
}

#[tokio::test]
async fn the_same_source_saved_twice_is_two_transforms_that_share_nothing() {
    let sandbox = sandbox();
    let source = "(input) => { globalThis.calls = (globalThis.calls || 0) + 1; return globalThis.calls; }";
    let first = Transform::compile(source).unwrap();
    let second = Transform::compile(source).unwrap();
    assert_eq!(sandbox.run(&first, &input()).await, Ok(vec![json!(1)]));
    assert_eq!(sandbox.run(&second, &input()).await, Ok(vec![json!(1)]));
}

#[tokio::test]
async fn a_worker_that_forgets_transforms_loads_them_again() {
    let sandbox = Sandbox::start(SandboxLimits {
        workers: 1,
        cached_transforms: 1,
        ..SandboxLimits::default()
    })
    .unwrap();
    let first = Transform::compile("(input) => 'first'").unwrap();
    let second = Transform::compile("(input) => 'second'").unwrap();
    for _ in 0..3 {
        assert_eq!(sandbox.run(&first, &input()).await, Ok(vec![json!("first")]));
        assert_eq!(sandbox.run(&second, &input()).await, Ok(vec![json!("second")]));
    }
}

#[tokio::test(flavor = "current_thread")]
async fn a_running_transform_does_not_block_the_async_runtime() {
    let sandbox = sandbox();
    let slow = Transform::compile("(input) => { for (;;) {} }").unwrap();
    let (transform_done, other_task_done) = tokio::join!(
        async {
            let result = sandbox.run(&slow, &input()).await;
            assert!(matches!(result, Err(TransformError::Timeout { .. })), "{result:?}");
            Instant::now()
        },
        async {
            tokio::task::yield_now().await;
            Instant::now()
        }
    );
    assert!(other_task_done + Duration::from_millis(50) < transform_done);
}

#[tokio::test]
async fn a_stopped_sandbox_answers_unavailable() {
    let (jobs, queue) = flume::bounded(1);
    drop(queue);
    let sandbox = Sandbox { jobs };
    assert_eq!(run(&sandbox, "(input) => 1").await, Err(TransformError::Unavailable));
}

#[tokio::test]
async fn an_async_transform_is_refused_and_the_worker_carries_on() {
    let sandbox = sandbox();
    for _ in 0..2 {
        let error = run(&sandbox, "async (input) => { await null; return 1; }")
            .await
            .unwrap_err();
        assert!(
            matches!(&error, TransformError::InvalidOutput { reason } if reason.contains("Promise")),
            "{error:?}"
        );
    }
    assert_still_works(&sandbox).await;
}

#[tokio::test]
async fn importing_a_module_is_impossible() {
    let sandbox = sandbox();
    let error = run(&sandbox, "(input) => import('fs')").await.unwrap_err();
    assert!(
        matches!(&error, TransformError::InvalidOutput { reason } if reason.contains("Promise")),
        "{error:?}"
    );
    let error = Transform::compile("import fs from 'fs';\n(input) => fs").unwrap_err();
    assert!(matches!(error, TransformError::Syntax { line: 1, .. }), "{error:?}");
    assert_still_works(&sandbox).await;
}

#[tokio::test]
async fn the_language_built_ins_are_available() {
    let sandbox = sandbox();
    let source = "function* numbers() { yield 1; yield 2; }\n\
                  (input) => ({ spread: [...numbers()], date: new Date(0).toISOString(), \
                  words: 'a-b'.split(/-/), unique: [...new Set([1, 1, 2])], max: Math.max(1, 3), bytes: new Uint8Array([1, 2]).length })";
    let output = run(&sandbox, source).await.unwrap();
    assert_eq!(
        output,
        vec![
            json!({"spread": [1, 2], "date": "1970-01-01T00:00:00.000Z", "words": ["a", "b"], "unique": [1, 2], "max": 3, "bytes": 2})
        ]
    );
}
