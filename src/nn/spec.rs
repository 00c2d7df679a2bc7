//! The one-line model spec: `flatten,linear(784,128),relu,linear(128,10)`.
//!
//! Items are separated by commas outside parentheses; each is a PyTorch layer
//! name, optionally with arguments: positional numbers, then `key=value`
//! pairs (`conv2d(1,6,5,padding=2)`). Names are case-insensitive and
//! underscores are optional (`LeakyReLU`, `leaky_relu`, `leakyrelu`).
//! Item *i* becomes layer *i* of the model, exactly as in `nn.Sequential`.

use crate::{Error, Result};

/// Named model lines: the command line's presets, the benchmark workloads' models.
pub const PRESETS: &[(&str, &str)] = &[
    ("mlp", "flatten,linear(784,128),relu,linear(128,10)"),
    (
        "lenet",
        "conv2d(1,6,5,padding=2),relu,maxpool2d(2),conv2d(6,16,5),relu,maxpool2d(2),flatten,\
         linear(400,120),relu,linear(120,84),relu,linear(84,10)",
    ),
    ("rnn", "reshape(28,28),rnn(28,128),linear(128,10)"),
    ("mlp-wide", "flatten,linear(784,1024),relu,linear(1024,1024),relu,linear(1024,10)"),
    (
        "mlp-bn",
        "flatten,linear(784,256),batchnorm1d(256),relu,linear(256,256),batchnorm1d(256),relu,linear(256,10)",
    ),
    (
        // examples/speedrun.rs: 99 % in two epochs (Adam, one-cycle at 0.01, batch 128).
        "speedrun",
        "conv2d(1,6,5,padding=2),batchnorm2d(6),relu,maxpool2d(2),conv2d(6,16,5),batchnorm2d(16),relu,\
         maxpool2d(2),flatten,linear(400,120),relu,linear(120,10)",
    ),
    (
        // A ResNet for 32×32 RGB images (He et al. 2016's CIFAR family with
        // one block per stage, 6n+2 = 8 layers): examples/resnet.rs.
        "resnet8",
        "conv2d(3,16,3,padding=1,bias=false),batchnorm2d(16),relu,resblock(16,16),\
         resblock(16,32,stride=2),resblock(32,64,stride=2),adaptiveavgpool2d(1),flatten,linear(64,10)",
    ),
    // nanoGPT's CPU "baby GPT"; the vocabulary and context come from the
    // text and --block-size (`backprop train --data FILE.txt`).
    ("gpt-baby", "gpt(layers=4,heads=4,embd=128)"),
    // a char-rnn style LSTM language model (`vocab`: the text's).
    ("char-lstm", "embedding(vocab,64),lstm(64,256,layers=2),linear(256,vocab)"),
];

/// The model line a preset name stands for, or the text itself.
///
/// ```
/// use backprop::nn::spec::expand_preset;
/// assert_eq!(expand_preset("mlp"), "flatten,linear(784,128),relu,linear(128,10)");
/// assert_eq!(expand_preset("linear(4,2)"), "linear(4,2)");
/// ```
pub fn expand_preset(s: &str) -> String {
    let t = s.trim();
    PRESETS
        .iter()
        .find(|(n, _)| n.eq_ignore_ascii_case(t))
        .map(|(_, l)| l.to_string())
        .unwrap_or_else(|| t.to_string())
}

/// One parsed item of a model line.
#[derive(Clone, Debug, PartialEq)]
pub struct Item {
    /// Position in the line (= layer index).
    pub index: usize,
    /// The item as written, for error messages.
    pub text: String,
    /// Normalized name: lowercase, no underscores.
    pub name: String,
    /// Positional arguments.
    pub args: Vec<f64>,
    /// `key=value` arguments.
    pub kwargs: Vec<(String, f64)>,
}

impl Item {
    /// "layer 2 `linear(784)`": how errors point at the item.
    pub fn at(&self) -> String {
        format!("layer {} `{}`", self.index, self.text)
    }

    /// An error about this item.
    pub fn err(&self, msg: impl std::fmt::Display) -> Error {
        Error::Spec(format!("{}: {msg}", self.at()))
    }

    /// Argument `i` as a positive integer, or `kw=` if given by name.
    pub fn usize_arg(&self, i: usize, kw: &str, what: &str) -> Result<usize> {
        let v = self
            .kwargs
            .iter()
            .find(|(k, _)| k == kw)
            .map(|(_, v)| *v)
            .or_else(|| self.args.get(i).copied())
            .ok_or_else(|| self.err(format!("missing {what} (argument {})", i + 1)))?;
        if v < 1.0 || v.fract() != 0.0 || v > 1e9 {
            return Err(self.err(format!("{what} must be a positive whole number, got {v}")));
        }
        Ok(v as usize)
    }

    /// A keyword-only argument (`bias=false`: 0), if given.
    pub fn keyword(&self, kw: &str) -> Option<f32> {
        self.kwargs
            .iter()
            .find(|(k, _)| k == kw)
            .map(|(_, v)| *v as f32)
    }

    /// Optional float argument, positional `i` or by keyword.
    pub fn f32_arg(&self, i: usize, kw: &str) -> Option<f32> {
        self.kwargs
            .iter()
            .find(|(k, _)| k == kw)
            .map(|(_, v)| *v as f32)
            .or_else(|| self.args.get(i).map(|&v| v as f32))
    }

    /// Fail unless the item has at most `max` positional arguments and only
    /// the listed keywords; `usage` shows the right form.
    pub fn expect_args(&self, max: usize, keywords: &[&str], usage: &str) -> Result<()> {
        if self.args.len() > max {
            return Err(self.err(format!(
                "takes at most {max} argument(s), got {}; write it as {usage}",
                self.args.len()
            )));
        }
        if let Some((k, _)) = self
            .kwargs
            .iter()
            .find(|(k, _)| !keywords.contains(&k.as_str()))
        {
            return Err(self.err(format!("unknown argument `{k}`; write it as {usage}")));
        }
        Ok(())
    }
}

/// Split a model line into items.
///
/// ```
/// use backprop::nn::spec::parse;
/// let items = parse("flatten, Linear(784, 10), leaky_relu(0.2)").unwrap();
/// assert_eq!(items[1].name, "linear");
/// assert_eq!(items[1].args, vec![784.0, 10.0]);
/// assert_eq!(items[2].name, "leakyrelu");
/// assert!(parse("linear(784,10").is_err());
/// ```
pub fn parse(line: &str) -> Result<Vec<Item>> {
    if line.trim().is_empty() {
        return Err(Error::Spec(
            "the model line is empty; give layers like `flatten,linear(784,128),relu,linear(128,10)` or a preset (mlp)"
                .into(),
        ));
    }
    let mut parts = Vec::new();
    let (mut depth, mut start) = (0i32, 0usize);
    for (i, ch) in line.char_indices() {
        match ch {
            '(' => depth += 1,
            ')' => {
                depth -= 1;
                if depth < 0 {
                    return Err(Error::Spec(format!(
                        "unmatched `)` at character {} of `{line}`",
                        i + 1
                    )));
                }
            }
            ',' if depth == 0 => {
                parts.push(&line[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    if depth != 0 {
        return Err(Error::Spec(format!("unclosed `(` in `{line}`")));
    }
    parts.push(&line[start..]);
    parts
        .into_iter()
        .enumerate()
        .map(|(index, p)| parse_item(index, p.trim()))
        .collect()
}

fn parse_item(index: usize, text: &str) -> Result<Item> {
    let bad = |msg: String| Error::Spec(format!("layer {index} `{text}`: {msg}"));
    if text.is_empty() {
        return Err(bad(
            "empty item (two commas in a row, or a trailing comma?)".into(),
        ));
    }
    let (name, argstr) = match text.find('(') {
        Some(p) => {
            if !text.ends_with(')') {
                return Err(bad("text after the closing `)`".into()));
            }
            (&text[..p], Some(&text[p + 1..text.len() - 1]))
        }
        None => (text, None),
    };
    let name = name.trim().to_ascii_lowercase().replace(['_', '-'], "");
    if name.is_empty() || !name.chars().all(|c| c.is_ascii_alphanumeric()) {
        return Err(bad("expected a layer name like `linear` or `relu`".into()));
    }
    let mut args = Vec::new();
    let mut kwargs = Vec::new();
    if let Some(a) = argstr {
        for raw in a.split(',').map(str::trim).filter(|s| !s.is_empty()) {
            if let Some((k, v)) = raw.split_once('=') {
                let v: f64 = parse_num(v.trim())
                    .ok_or_else(|| bad(format!("`{raw}`: `{}` is not a number", v.trim())))?;
                kwargs.push((k.trim().to_ascii_lowercase(), v));
            } else {
                if !kwargs.is_empty() {
                    return Err(bad(format!(
                        "positional argument `{raw}` after a keyword argument"
                    )));
                }
                args.push(parse_num(raw).ok_or_else(|| bad(format!("`{raw}` is not a number")))?);
            }
        }
    }
    Ok(Item {
        index,
        text: text.to_string(),
        name,
        args,
        kwargs,
    })
}

fn parse_num(s: &str) -> Option<f64> {
    match s.to_ascii_lowercase().as_str() {
        "true" => Some(1.0),
        "false" => Some(0.0),
        t => t.parse().ok().filter(|v: &f64| v.is_finite()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errors_name_the_item() {
        let e = parse("flatten,,relu").unwrap_err().to_string();
        assert!(e.contains("layer 1"), "{e}");
        let e = parse("linear(784,ten)").unwrap_err().to_string();
        assert!(e.contains("`ten` is not a number"), "{e}");
        let e = parse("relu)").unwrap_err().to_string();
        assert!(e.contains("unmatched"), "{e}");
    }

    #[test]
    fn keyword_arguments() {
        let it = &parse("conv2d(1,6,5,padding=2)").unwrap()[0];
        assert_eq!(it.args, vec![1.0, 6.0, 5.0]);
        assert_eq!(it.kwargs, vec![("padding".to_string(), 2.0)]);
    }
}
