//! Fuzzes the seed HMAC, the URL token, Standard Webhooks and the add-on JWT checks.
//! The harness, and what it asserts, is `sm8_wire::fuzzing::signature_checks`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| sm8_wire::fuzzing::signature_checks(data));
