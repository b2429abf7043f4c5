//! libFuzzer entry point of the `worker_lines` target (see `runbox_fuzz::worker_lines` for what it checks).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| runbox_fuzz::worker_lines(data));
