//! Sequence models: layers that read token ids, and the checks the
//! trainer makes before the first step.

mod common;

use backprop::data::TensorDataset;
use backprop::nn::Sequential;
use backprop::ops::loss::LossKind;
use backprop::Tensor;
use std::path::Path;

#[test]
fn ids_outside_the_embedding_table_are_refused_naming_sample_and_position() {
    let mut rng = backprop::rand::seeded(0);
    let m = Sequential::parse(
        "embedding(5,4),flatten,linear(12,2)",
        backprop::nn::Init::Default,
        &mut rng,
    )
    .unwrap();
    let data =
        |x: Vec<f32>| TensorDataset::new(Tensor::from_vec(vec![2, 3], x), vec![0, 1], "ids.csv");
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

/// A tiny GPT trained for a few steps on a small text through the command
/// line: saved with its vocabulary, evaluated to the same validation loss,
/// sampled reproducibly; the errors a user can meet name what is wrong.
#[test]
fn language_models_on_the_command_line() {
    let d = tempfile::tempdir().unwrap();
    let text = d.path().join("t.txt");
    let body =
        "To be, or not to be, that is the question:\nWhether 'tis nobler in the mind to suffer\n"
            .repeat(40);
    std::fs::write(&text, &body).unwrap();
    let model = d.path().join("m.safetensors");
    let (t, m) = (text.to_str().unwrap(), model.to_str().unwrap());
    let line = "gpt(layers=1,heads=2,embd=16)";
    let train = |extra: &[&str]| {
        let mut args = vec!["train", "--data", t, "--model", line, "--block-size", "16"];
        args.extend_from_slice(extra);
        common::run(&args)
    };
    let o = train(&[
        "--max-steps",
        "30",
        "--batch-size",
        "4",
        "--eval-every",
        "10",
        "--eval-iters",
        "2",
        "--save",
        m,
    ]);
    assert!(o.success, "{}", o.stderr);
    assert!(
        o.stderr.contains("step 10: train loss") && o.stderr.contains("step 30:"),
        "{}",
        o.stderr
    );
    let val = o.stdout.lines().last().unwrap().to_string();
    assert!(
        val.starts_with("val loss ") && val.contains("after 30 steps"),
        "{val}"
    );
    // eval gives the same number, from the file alone
    let e = common::run(&["eval", m, "--data", t]);
    assert!(e.success, "{}", e.stderr);
    assert_eq!(e.stdout.trim(), val.split(" after").next().unwrap());
    // the same seed samples the same text; the prompt comes first
    let s1 = common::run(&[
        "sample", m, "--prompt", "To be", "--tokens", "40", "--seed", "3",
    ]);
    let s2 = common::run(&[
        "sample", m, "--prompt", "To be", "--tokens", "40", "--seed", "3",
    ]);
    assert!(
        s1.success && s1.stdout == s2.stdout && s1.stdout.starts_with("To be"),
        "{}",
        s1.stderr
    );
    assert_eq!(s1.stdout.trim_end_matches('\n').chars().count(), 45);
    // two accumulated micro-batches of 2 are one batch of 4
    let (a, b) = (
        d.path().join("a.safetensors"),
        d.path().join("b.safetensors"),
    );
    let base = ["--max-steps", "3", "--eval-every", "0"];
    assert!(
        train(
            &[
                &base[..],
                &["--batch-size", "4", "--save", a.to_str().unwrap()]
            ]
            .concat()
        )
        .success
    );
    assert!(
        train(
            &[
                &base[..],
                &[
                    "--batch-size",
                    "2",
                    "--grad-accum",
                    "2",
                    "--save",
                    b.to_str().unwrap()
                ]
            ]
            .concat()
        )
        .success
    );
    let (wa, wb) = (common::tensor_bytes(&a), common::tensor_bytes(&b));
    assert_eq!(wa.len(), wb.len());
    let f32s = |b: &[u8]| -> Vec<f32> {
        b.chunks(4)
            .map(|c| f32::from_le_bytes(c.try_into().unwrap()))
            .collect()
    };
    for ((n, x), (_, y)) in wa.iter().zip(&wb) {
        let e = common::scaled_error(&f32s(x), &f32s(y));
        assert!(e < 1e-5, "{n}: {e:e}");
    }

    let errors: Vec<(Vec<&str>, &str)> = vec![
        (vec!["sample", m, "--prompt", "Zebra"], "'Z'"),
        (vec!["sample", m, "--temperature", "-1"], "temperature -1"),
        (
            vec!["train", "--data", t, "--epochs", "2"],
            "--epochs does not apply to a language-model run",
        ),
        (
            vec!["train", "--block-size", "8"],
            "--block-size applies to language models only",
        ),
        (
            vec!["train", "--data", t, "--model", "gpt(heads=3,embd=16)"],
            "3 heads do not divide the width 16",
        ),
        (
            vec![
                "train",
                "--data",
                t,
                "--model",
                "gpt(block=8)",
                "--block-size",
                "16",
            ],
            "the model's context (its position table) holds 8",
        ),
        (
            vec!["train", "--data", t, "--model", "mlp"],
            "does not read token ids",
        ),
        (
            vec!["train", "--data", t, "--block-size", "400"],
            "fewer than one window of 400",
        ),
    ];
    for (args, want) in errors {
        let o = common::run(&args);
        assert!(
            !o.success && o.stderr.contains(want),
            "{args:?}: {}",
            o.stderr
        );
    }
    // a text that is not UTF-8, and eval on characters the model never saw
    let bad = d.path().join("bad.txt");
    std::fs::write(&bad, b"To be\xff or not").unwrap();
    let o = common::run(&["train", "--data", bad.to_str().unwrap()]);
    assert!(
        !o.success && o.stderr.contains("offset 5") && o.stderr.contains("UTF-8"),
        "{}",
        o.stderr
    );
    let other = d.path().join("other.txt");
    std::fs::write(&other, "Zounds! ".repeat(50)).unwrap();
    let o = common::run(&["eval", m, "--data", other.to_str().unwrap()]);
    assert!(
        !o.success && o.stderr.contains("'Z'") && o.stderr.contains("vocabulary"),
        "{}",
        o.stderr
    );
    // a recurrent language model: the vocabulary filled in, the context saved
    let r = d.path().join("r.safetensors");
    let o = common::run(&[
        "train",
        "--data",
        t,
        "--model",
        "embedding(vocab,8),gru(8,16),lstm(16,16,layers=2),linear(16,vocab)",
        "--block-size",
        "8",
        "--max-steps",
        "5",
        "--eval-every",
        "0",
        "--save",
        r.to_str().unwrap(),
    ]);
    assert!(o.success, "{}", o.stderr);
    let e = common::run(&["eval", r.to_str().unwrap(), "--data", t]);
    assert_eq!(
        e.stdout.trim(),
        o.stdout
            .lines()
            .last()
            .unwrap()
            .split(" after")
            .next()
            .unwrap()
    );
    let s = common::run(&["sample", r.to_str().unwrap(), "--tokens", "20"]);
    assert!(s.success && s.stdout.chars().count() >= 21, "{}", s.stderr);
    // sample on a classifier
    let clf = d.path().join("clf.safetensors");
    let mnist = common::small_mnist(d.path(), 64, 16);
    let o = common::run(&[
        "train",
        "--data",
        mnist.to_str().unwrap(),
        "--max-steps",
        "1",
        "--save",
        clf.to_str().unwrap(),
        "--quiet",
    ]);
    assert!(o.success, "{}", o.stderr);
    let o = common::run(&["sample", clf.to_str().unwrap()]);
    assert!(
        !o.success && o.stderr.contains("not a language model"),
        "{}",
        o.stderr
    );
}

/// A language-model run leaves `metrics.csv` (step rows with each block's
/// gradient norm, eval rows with both estimates) and its figures beside the
/// save; `--checkpoint blocks` trains the same weights.
#[test]
fn a_language_model_run_leaves_its_metrics_and_checkpoints_its_blocks() {
    let d = tempfile::tempdir().unwrap();
    let text = d.path().join("t.txt");
    std::fs::write(&text, "Now is the winter of our discontent\n".repeat(60)).unwrap();
    let t = text.to_str().unwrap();
    let train = |save: &Path, extra: &[&str]| {
        let mut args = vec![
            "train",
            "--data",
            t,
            "--model",
            "gpt(layers=2,heads=2,embd=16)",
            "--block-size",
            "16",
            "--batch-size",
            "4",
            "--max-steps",
            "20",
            "--eval-every",
            "10",
            "--eval-iters",
            "2",
            "--save",
            save.to_str().unwrap(),
        ];
        args.extend_from_slice(extra);
        let o = common::run(&args);
        assert!(o.success, "{}", o.stderr);
        o.stdout
    };
    let (a, b) = (
        d.path().join("a.safetensors"),
        d.path().join("b.safetensors"),
    );
    let plain = train(&a, &[]);
    let csv = std::fs::read_to_string(d.path().join("a.metrics.csv")).unwrap();
    let lines: Vec<&str> = csv.lines().collect();
    assert!(
        lines[0].starts_with("kind,step,loss,lr,grad_norm,train_loss,val_loss,")
            && lines[0].contains("Ltransformer.h.1.grad_norm"),
        "{}",
        lines[0]
    );
    let kinds: Vec<(&str, &str)> = lines[1..]
        .iter()
        .map(|l| {
            let mut f = l.split(',');
            (f.next().unwrap(), f.next().unwrap())
        })
        .collect();
    assert_eq!(
        kinds,
        [
            ("step", "1"),
            ("step", "10"),
            ("eval", "10"),
            ("step", "20"),
            ("eval", "20")
        ]
    );
    // every block's norm is measured on a step row
    assert!(
        lines[2].split(',').skip(7).all(|f| !f.is_empty()),
        "{}",
        lines[2]
    );
    for f in ["a.loss.png", "a.loss.svg", "a.grads.png", "a.grads.svg"] {
        assert!(d.path().join(f).is_file(), "{f} missing");
    }
    let checkpointed = train(&b, &["--checkpoint", "blocks", "--no-plots"]);
    let loss = |out: &str| out.split(" (").next().unwrap().to_string(); // not the timing
    assert_eq!(loss(&plain), loss(&checkpointed));
    assert_eq!(common::tensor_bytes(&a), common::tensor_bytes(&b));
    assert!(!d.path().join("b.loss.png").exists());
    // a model line without blocks: ranges instead
    let o = common::run(&[
        "train",
        "--data",
        t,
        "--model",
        "char-lstm",
        "--checkpoint",
        "blocks",
    ]);
    assert!(
        !o.success && o.stderr.contains("give layer ranges"),
        "{}",
        o.stderr
    );
}
