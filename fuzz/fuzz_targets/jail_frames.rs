//! libFuzzer entry point of the `jail_frames` target (see `runbox_fuzz::jail_frames` for what it checks).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| runbox_fuzz::jail_frames(data));
