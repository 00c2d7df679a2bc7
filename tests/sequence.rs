//! Sequence models: layers that read token ids, and the checks the
//! trainer makes before the first step.

use backprop::data::Dataset;
use backprop::nn::Sequential;
use backprop::ops::loss::LossKind;
use backprop::Tensor;

#[test]
fn ids_outside_the_embedding_table_are_refused_naming_sample_and_position() {
    let mut rng = backprop::rand::seeded(0);
    let m = Sequential::parse(
        "embedding(5,4),flatten,linear(12,2)",
        backprop::nn::Init::Default,
        &mut rng,
    )
    .unwrap();
    let data = |x: Vec<f32>| Dataset {
        x: Tensor::from_vec(vec![2, 3], x),
        y: vec![0, 1],
        source: "ids.csv".into(),
    };
    let ok = data(vec![0.0, 1.0, 4.0, 2.0, 3.0, 0.0]);
    assert_eq!(
        backprop::train::check_compatible(&m, &ok, LossKind::CrossEntropy).unwrap(),
        2
    );
    for (x, what) in [
        (
            vec![0.0, 1.0, 4.0, 2.0, 5.0, 0.0],
            "sample 1 holds 5 at position 1",
        ),
        (
            vec![0.0, 1.5, 4.0, 2.0, 3.0, 0.0],
            "sample 0 holds 1.5 at position 1",
        ),
        (
            vec![0.0, 1.0, 4.0, -1.0, 3.0, 0.0],
            "sample 1 holds -1 at position 0",
        ),
    ] {
        let e = backprop::train::check_compatible(&m, &data(x), LossKind::CrossEntropy)
            .unwrap_err()
            .to_string();
        assert!(
            e.contains(what) && e.contains("ids.csv") && e.contains("0..5"),
            "{e}"
        );
    }
}
