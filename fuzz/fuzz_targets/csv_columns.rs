//! Fuzz target `csv_columns`: see `harness::csv_columns` in fuzz/harness.rs for the input format.
#![no_main]

#[path = "../harness.rs"]
mod harness;

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    harness::csv_columns(data);
});
