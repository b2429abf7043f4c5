//! libFuzzer entry point of the `execute_body` target (see `runbox_fuzz::execute_body` for what it checks).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| runbox_fuzz::execute_body(data));
