//! The data pipeline: the background loader, a folder streamed from its
//! files and a user's own data set all train exactly as the plain
//! in-memory path does (the same weights, bit for bit).

use backprop::data::{load_data, Augment, Dataset, ImageFolder, Targets, TensorDataset};
use backprop::nn::{Init, ModuleExt, Sequential};
use backprop::optim::OptimizerConfig;
use backprop::train::{Silent, Summary, TrainConfig, Trainer};
use backprop::{Result, Tensor};
use rand::SeedableRng;
use std::path::Path;

/// Train `spec` on `train` (and `test`) with `cfg`, `ahead` batches
/// prepared ahead; the summary and every weight's bits.
fn run<D: Dataset>(
    spec: &str,
    train: &D,
    test: Option<&D>,
    cfg: &TrainConfig,
    ahead: usize,
) -> (Summary, Vec<u32>) {
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(1);
    let mut m = Sequential::parse(spec, Init::Default, &mut rng).unwrap();
    let (s, _) = Trainer::new(cfg)
        .prefetch(ahead)
        .run(&mut m, train, test, &mut Silent)
        .unwrap();
    let bits = m
        .state_dict()
        .iter()
        .flat_map(|(_, t)| t.data().iter().map(|v| v.to_bits()).collect::<Vec<_>>())
        .collect();
    (s, bits)
}

fn mnist(n: usize) -> (TensorDataset, TensorDataset) {
    let (tr, te) = load_data(Path::new("data/mnist"), None, None).unwrap();
    let idx: Vec<usize> = (0..n).collect();
    (tr.subset(&idx), te.unwrap().subset(&idx[..n / 2]))
}

#[test]
fn the_background_loader_trains_bit_identically() {
    let (train, test) = mnist(512);
    let mut cfg = TrainConfig::new(OptimizerConfig::adam(1e-3));
    cfg.epochs = 2;
    cfg.batch_size = 32;
    cfg.augment = vec![
        Augment::Crop { padding: 2 },
        Augment::Affine {
            degrees: 10.0,
            translate: 0.05,
        },
    ];
    let spec = "conv2d(1,4,5),relu,maxpool2d(2),flatten,linear(576,10)";
    let (a, wa) = run(spec, &train, Some(&test), &cfg, 0);
    let (b, wb) = run(spec, &train, Some(&test), &cfg, 3);
    assert_eq!(wa, wb);
    assert_eq!(a.test_loss, b.test_loss);
    // the augmentation took part: without it the weights differ
    cfg.augment.clear();
    let (_, wc) = run(spec, &train, Some(&test), &cfg, 3);
    assert_ne!(wa, wc);
}

/// A folder of `n` grey 8×8 PNGs in 3 classes, each class a brighter square.
fn write_folder(root: &Path, n: usize) {
    for i in 0..n {
        let c = i % 3;
        let dir = root.join(["dark", "mid", "light"][c]);
        std::fs::create_dir_all(&dir).unwrap();
        let img = image::GrayImage::from_fn(8, 8, |x, y| {
            let inside = (2..6).contains(&x) && (2..6).contains(&y);
            image::Luma([if inside {
                60 + 80 * c as u8
            } else {
                (i * 7 % 40) as u8
            }])
        });
        img.save(dir.join(format!("{i:03}.png"))).unwrap();
    }
}

#[test]
fn an_image_folder_streams_and_trains_like_its_copy_in_memory() {
    let dir = tempfile::tempdir().unwrap();
    write_folder(dir.path(), 60);
    let folder = ImageFolder::open(dir.path(), None).unwrap();
    assert!(!folder.in_memory());
    assert_eq!(folder.classes(), &["dark", "light", "mid"]);
    let memory = folder.load().unwrap();
    let mut cfg = TrainConfig::new(OptimizerConfig::adam(1e-2));
    cfg.epochs = 20;
    cfg.batch_size = 8;
    cfg.augment = vec![Augment::Flip];
    let spec = "flatten,linear(64,16),relu,linear(16,3)";
    let (a, wa) = run(spec, &folder, Some(&folder), &cfg, 2);
    let (b, wb) = run(spec, &memory, Some(&memory), &cfg, 0);
    assert_eq!(wa, wb);
    assert_eq!(a.test_accuracy, b.test_accuracy);
    assert!(a.test_accuracy.unwrap() >= 0.8, "{:?}", a.test_accuracy);
}

/// y = x₀ − 2·x₁ for x on a grid: a data set that is one `impl`.
struct Plane {
    targets: Targets,
}

impl Plane {
    fn x(i: usize) -> [f32; 2] {
        [(i % 10) as f32 / 10.0, (i / 10) as f32 / 10.0]
    }

    fn new() -> Plane {
        let y: Vec<f32> = (0..100)
            .map(|i| {
                let [a, b] = Plane::x(i);
                a - 2.0 * b
            })
            .collect();
        Plane {
            targets: Targets::Values(Tensor::from_vec(vec![100, 1], y)),
        }
    }
}

impl Dataset for Plane {
    fn len(&self) -> usize {
        100
    }
    fn sample_shape(&self) -> &[usize] {
        &[2]
    }
    fn targets(&self) -> &Targets {
        &self.targets
    }
    fn features(&self, idx: &[usize]) -> Result<Tensor> {
        Ok(Tensor::from_vec(
            vec![idx.len(), 2],
            idx.iter().flat_map(|&i| Plane::x(i)).collect(),
        ))
    }
    fn source(&self) -> &Path {
        Path::new("plane")
    }
}

#[test]
fn a_users_own_data_set_trains_a_regression() {
    let data = Plane::new();
    let mut cfg = TrainConfig::new(OptimizerConfig::adam(0.05));
    cfg.loss = backprop::train::LossKind::Mse;
    cfg.epochs = 60;
    cfg.batch_size = 20;
    let (s, _) = run("linear(2,1)", &data, Some(&data), &cfg, 2);
    assert_eq!(s.task, backprop::train::Task::Regression);
    let m = s.test_metrics.unwrap();
    assert!(m["mae"] < 0.05 && m["r2"] > 0.99, "{m:?}");
}
