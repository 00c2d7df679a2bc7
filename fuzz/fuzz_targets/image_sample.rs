//! Fuzz target `image_sample`: see `harness::image_sample` in fuzz/harness.rs for the input format.
#![no_main]

#[path = "../harness.rs"]
mod harness;

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    harness::image_sample(data);
});
