//! Measures what gradient checkpointing saves on the `cnn-lenet` workload:
//! the peak heap memory of one training step (forward + backward, batch 64)
//! with and without `--checkpoint`, counted by a wrapping global allocator,
//! and checks that the gradients are bit-identical.
//!
//! `cargo run --release --example checkpoint_memory`

use backprop::data::load_data;
use backprop::nn::{checkpoint::parse_segments, Init, Sequential};
use backprop::train::{compute_gradients, LossKind};
use rand::SeedableRng;
use std::alloc::{GlobalAlloc, Layout, System};
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering::Relaxed};

/// The system allocator, counting live and peak bytes.
struct Counting;
static LIVE: AtomicUsize = AtomicUsize::new(0);
static PEAK: AtomicUsize = AtomicUsize::new(0);

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, l: Layout) -> *mut u8 {
        let now = LIVE.fetch_add(l.size(), Relaxed) + l.size();
        PEAK.fetch_max(now, Relaxed);
        unsafe { System.alloc(l) }
    }
    unsafe fn dealloc(&self, p: *mut u8, l: Layout) {
        LIVE.fetch_sub(l.size(), Relaxed);
        unsafe { System.dealloc(p, l) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

fn main() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("data/mnist");
    let (train, _) = load_data(&dir, None, None).expect("data/mnist");
    let idx: Vec<usize> = (0..64).collect();
    let (x, y) = train.batch(&idx);
    let mut model = Sequential::parse(
        "lenet",
        Init::Default,
        &mut rand_chacha::ChaCha8Rng::seed_from_u64(0),
    )
    .unwrap();
    let step = |m: &Sequential| {
        let base = LIVE.load(Relaxed);
        PEAK.store(base, Relaxed);
        let r = compute_gradients(m, x.clone(), &y, LossKind::CrossEntropy, 1);
        (PEAK.load(Relaxed) - base, r.grads.tensors().to_vec())
    };
    let (plain, g0) = step(&model);
    println!(
        "lenet, batch 64, one step: peak {:.2} MiB above the model and data",
        plain as f64 / 1048576.0
    );
    let mut worst = 0.0f64;
    for seg in ["0-5", "0-2,3-5", "0-11"] {
        model.checkpoints = parse_segments(seg, model.len()).unwrap();
        let (peak, g) = step(&model);
        assert_eq!(g, g0, "--checkpoint {seg}: gradients differ");
        let saved = 1.0 - peak as f64 / plain as f64;
        worst = worst.max(saved);
        println!(
            "  --checkpoint {seg:8} peak {:.2} MiB, saves {:.2} MiB ({:.0} %), gradients bit-identical",
            peak as f64 / 1048576.0,
            (plain as f64 - peak as f64) / 1048576.0,
            saved * 100.0
        );
    }
    if worst <= 0.0 {
        eprintln!("FAIL: checkpointing saved no memory");
        std::process::exit(1);
    }
}
