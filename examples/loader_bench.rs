//! Images per second decoded from a folder of PNGs by the `Loader`: one
//! shuffled pass over an `ImageFolder` (streamed: decoded batch by batch,
//! not held in memory) in batches of 64, the next two prepared on the
//! background thread, as `tools/folder_bench.py` times torchvision's
//! `ImageFolder` + `DataLoader(num_workers=1)`. With `--augment` each batch
//! is also cropped (padding 4) and flipped.
//!
//! `cargo run --release --example loader_bench -- DIR [--augment] [--ahead N]`
//! (`python3 tools/folder_bench.py --make DIR` writes such a folder).

use backprop::data::{Augment, Dataset, ImageFolder, Loader};
use rand::SeedableRng;
use std::time::Instant;

fn main() -> backprop::Result<()> {
    let args: Vec<String> = std::env::args().collect();
    let Some(dir) = args.get(1) else {
        eprintln!("usage: loader_bench DIR [--augment] [--ahead N]");
        std::process::exit(2);
    };
    let augment = args.iter().any(|a| a == "--augment");
    let ahead = args
        .iter()
        .position(|a| a == "--ahead")
        .and_then(|i| args.get(i + 1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(2);
    let t0 = Instant::now();
    let folder = ImageFolder::open(dir.as_ref(), None)?;
    let opened = t0.elapsed().as_secs_f64();
    let augs = if augment {
        vec![Augment::Crop { padding: 4 }, Augment::Flip]
    } else {
        Vec::new()
    };
    let loader = Loader::new(&folder, 64).augment(augs, 0).ahead(ahead);
    let order = loader.order(&mut rand_chacha::ChaCha8Rng::seed_from_u64(0));
    let t1 = Instant::now();
    let (images, waited) =
        loader.prepare(&order, 0, |batches| -> backprop::Result<(usize, f64)> {
            let mut n = 0;
            for b in batches.by_ref() {
                n += b?.0.shape()[0];
            }
            Ok((n, batches.waited().as_secs_f64()))
        })?;
    let secs = t1.elapsed().as_secs_f64();
    println!(
        "backprop Loader (ahead {ahead}{}): {images} images of {:?} in {secs:.2} s, {:.0} images/s \
         (opening the folder, headers only: {opened:.2} s; waited {waited:.2} s)",
        if augment { ", crop+flip" } else { "" },
        folder.sample_shape(),
        images as f64 / secs
    );
    Ok(())
}
