//! Fuzzes the realtime relay's frame decoder, text and binary, and its round trips.
//! The harness, and what it asserts, is `sm8_wire::fuzzing::realtime_frames`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| sm8_wire::fuzzing::realtime_frames(data));
