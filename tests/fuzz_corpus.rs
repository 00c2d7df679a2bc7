//! Replays the fuzzing corpus on stable: every committed seed in
//! `fuzz/seeds/<target>/` and every input that once crashed a parser, in
//! `tests/fixtures/fuzz/<target>/`, through the same harness the fuzz targets
//! run (`fuzz/harness.rs`). A panic, or a hand-made seed accepted or refused
//! against its name (`bad_*` must be refused), fails the test. How to fuzz:
//! RELIABILITY.md.

#[path = "../fuzz/harness.rs"]
mod harness;

use std::path::Path;

type Harness = fn(&[u8]) -> bool;

const TARGETS: [(&str, Harness); 11] = [
    ("idx", harness::idx),
    ("csv", harness::csv),
    ("safetensors", harness::safetensors),
    ("model_line", harness::model_line),
    ("image", harness::image),
    ("run_state", harness::run_state),
    ("text", harness::text),
    ("npy", harness::npy),
    ("cifar", harness::cifar),
    ("csv_columns", harness::csv_columns),
    ("image_sample", harness::image_sample),
];

/// The files of `dir`, sorted by name; none when it does not exist.
fn files(dir: &Path) -> Vec<std::path::PathBuf> {
    let Ok(rd) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut v: Vec<_> = rd
        .map(|e| e.unwrap().path())
        .filter(|p| p.is_file())
        .collect();
    v.sort();
    v
}

#[test]
fn seeds_and_past_crashes_replay_cleanly() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut named = 0;
    for (target, run) in TARGETS {
        let seeds = files(&root.join("fuzz/seeds").join(target));
        assert!(seeds.len() >= 5, "{target}: too few seeds");
        let crashes = files(&root.join("tests/fixtures/fuzz").join(target));
        for p in seeds.iter().chain(&crashes) {
            let data = std::fs::read(p).unwrap();
            let accepted = run(&data);
            // Hand-made seeds have names; cmin's are content hashes (40 hex digits).
            let name = p.file_name().unwrap().to_string_lossy();
            if name.len() != 40 && p.starts_with(root.join("fuzz/seeds")) {
                named += 1;
                assert_eq!(accepted, !name.starts_with("bad_"), "{}", p.display());
            }
        }
    }
    assert!(named >= 25, "only {named} hand-made seeds");
}
