//! Fuzzes the form decoder of bodies and query strings.
//! The harness, and what it asserts, is `sm8_wire::fuzzing::form_parser`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| sm8_wire::fuzzing::form_parser(data));
