//! libFuzzer entry point of the `path_confinement` target (see `runbox_fuzz::path_confinement` for what it checks).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| runbox_fuzz::path_confinement(data));
