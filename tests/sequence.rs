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

#[test]
fn a_gpt_line_names_its_tensors_as_nanogpt_and_checks_its_sizes() {
    use backprop::nn::{Init, Module, ModuleExt};
    let line = "gpt(vocab=65,block=16,layers=2,heads=2,embd=32)";
    let mut rng = backprop::rand::seeded(0);
    let m = Sequential::parse(line, Init::Default, &mut rng).unwrap();
    let names: Vec<String> = m.state_dict().into_iter().map(|(n, _)| n).collect();
    assert_eq!(names[0], "transformer.wte.weight");
    assert!(names.contains(&"transformer.h.1.attn.c_attn.weight".to_string()));
    assert!(names.contains(&"transformer.h.0.mlp.c_proj.weight".to_string()));
    assert_eq!(names.last().unwrap(), "lm_head.weight");
    assert!(!names.iter().any(|n| n.ends_with("bias")), "{names:?}");
    // the tied weight is saved twice but counted, trained and allocated once
    let held: usize = m.parameters().iter().map(|(_, p)| p.value().numel()).sum();
    assert_eq!(Sequential::check_line(line).unwrap(), held);
    assert_eq!(m.line().unwrap(), line);
    assert_eq!(m.input_vocab(), Some(65));
    assert_eq!(m.output_shape(&[16]).unwrap(), vec![16, 65]);
    let e = m.output_shape(&[17]).unwrap_err().to_string();
    assert!(e.contains("17 tokens") && e.contains("holds 16"), "{e}");

    for (line, want) in [
        (
            "gpt(vocab=65,block=16,heads=3,embd=32)",
            "3 heads do not divide the width 32",
        ),
        ("gpt(layers=2)", "needs its vocabulary and context"),
        ("gpt(vocab=65,block=16,dropout=1)", "dropout = 1"),
        (
            "gpt(vocab=65,block=16,layers=2.5)",
            "layers must be a whole number",
        ),
    ] {
        let e = Sequential::check_line(line).unwrap_err().to_string();
        assert!(
            e.contains(want) && e.contains("layer 0 `gpt("),
            "{line}: {e}"
        );
    }
}
