//! Fuzzes a whole delivery through `decode`: headers, query and body.
//! The harness, and what it asserts, is `sm8_wire::fuzzing::delivery_decoder`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| sm8_wire::fuzzing::delivery_decoder(data));
