//! Character-level text for language models: a UTF-8 file becomes a
//! vocabulary (its distinct characters, sorted) and two runs of ids, the
//! first ⌊0.9 n⌋ of its n characters to train on and the rest to validate.
//!
//! A training batch is `batch` windows of `block` characters at random
//! offsets; the targets are the same windows shifted by one character
//! (nanoGPT's `get_batch`). Validation is deterministic: window i reads
//! `val[iT .. (i+1)T)` and predicts `val[iT+1 .. (i+1)T+1)`, for every whole
//! window that fits.

use crate::error::{Error, Result};
use crate::Tensor;
use rand::Rng;
use rand_chacha::ChaCha8Rng;
use std::path::{Path, PathBuf};

/// The share of a text's characters that train (the rest validate).
pub const TRAIN_SHARE: f64 = 0.9;

/// A text's characters as ids, split for training and validation.
#[derive(Clone, Debug)]
pub struct CharText {
    /// The distinct characters (Unicode scalar values), sorted: id i is `vocab[i]`.
    pub vocab: Vec<char>,
    /// The first ⌊0.9 n⌋ characters, as ids.
    pub train: Vec<u32>,
    /// The other characters, as ids.
    pub val: Vec<u32>,
    /// Where the text came from (for error messages).
    pub source: PathBuf,
}

/// One batch of windows: ids `x: [B, T]` (as floats, what an embedding
/// reads) and the next character of every position, `y` (`B·T` labels, row
/// by row).
#[derive(Clone, Debug)]
pub struct TextBatch {
    /// `[B, T]` ids.
    pub x: Tensor,
    /// The `B·T` targets: `y[b·T + t]` follows `x[b, t]`.
    pub y: Vec<usize>,
}

/// Which part of the text.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Split {
    /// The first ⌊0.9 n⌋ characters.
    Train,
    /// The rest.
    Val,
}

impl CharText {
    /// Read a UTF-8 text file.
    pub fn load(path: &Path) -> Result<CharText> {
        let bytes = std::fs::read(path).map_err(|e| Error::io(path, e))?;
        Self::from_bytes(&bytes, path)
    }

    /// The text of `bytes`, which must be UTF-8 (the error names the byte
    /// offset of the first bad sequence) and hold at least two characters.
    pub fn from_bytes(bytes: &[u8], source: &Path) -> Result<CharText> {
        let text = std::str::from_utf8(bytes).map_err(|e| {
            Error::data(
                source,
                format!(
                    "not UTF-8 text: the bytes at offset {} do not decode \
                     (a text for a language model must be UTF-8; convert it, e.g. with iconv)",
                    e.valid_up_to()
                ),
            )
        })?;
        let mut vocab: Vec<char> = text.chars().collect();
        let n = vocab.len();
        if n < 2 {
            return Err(Error::data(
                source,
                format!("the text holds {n} character(s); a language model needs at least a few windows of text"),
            ));
        }
        vocab.sort_unstable();
        vocab.dedup();
        let ids: Vec<u32> = text
            .chars()
            .map(|c| vocab.binary_search(&c).unwrap() as u32)
            .collect();
        let cut = (TRAIN_SHARE * n as f64) as usize;
        Ok(CharText {
            train: ids[..cut].to_vec(),
            val: ids[cut..].to_vec(),
            vocab,
            source: source.to_path_buf(),
        })
    }

    /// A text read with a model's vocabulary (`eval` of a saved language
    /// model): the error names the first character the vocabulary lacks,
    /// with its position and byte offset.
    pub fn with_vocab(bytes: &[u8], vocab: &[char], source: &Path) -> Result<CharText> {
        let own = Self::from_bytes(bytes, source)?;
        let text = std::str::from_utf8(bytes).expect("checked by from_bytes");
        let mut ids = Vec::with_capacity(own.train.len() + own.val.len());
        for (i, (at, c)) in text.char_indices().enumerate() {
            match vocab.binary_search(&c) {
                Ok(id) => ids.push(id as u32),
                Err(_) => {
                    return Err(Error::data(
                        source,
                        format!(
                            "character {c:?} (U+{:04X}) at character {i} (byte offset {at}) is not in the \
                             model's vocabulary of {} characters; evaluate on text made of the characters \
                             the model was trained on",
                            c as u32,
                            vocab.len()
                        ),
                    ))
                }
            }
        }
        let cut = own.train.len();
        Ok(CharText {
            train: ids[..cut].to_vec(),
            val: ids[cut..].to_vec(),
            vocab: vocab.to_vec(),
            source: source.to_path_buf(),
        })
    }

    /// The ids of a split.
    pub fn ids(&self, split: Split) -> &[u32] {
        match split {
            Split::Train => &self.train,
            Split::Val => &self.val,
        }
    }

    /// Check that each split holds at least one window of `block`
    /// characters and its next character; the error says how much text a
    /// window needs.
    pub fn check_block(&self, block: usize) -> Result<()> {
        if block == 0 {
            return Err(Error::data(
                &self.source,
                "the block size must be at least 1",
            ));
        }
        for (split, name) in [(Split::Train, "training"), (Split::Val, "validation")] {
            let have = self.ids(split).len();
            if have < block + 1 {
                let total = self.train.len() + self.val.len();
                return Err(Error::data(
                    &self.source,
                    format!(
                        "the {name} split holds {have} characters (of the text's {total}: the first 90 % \
                         train, the rest validate), fewer than one window of {block} and its next \
                         character; use a longer text or shorter windows"
                    ),
                ));
            }
        }
        Ok(())
    }

    /// `batch` windows of `block` ids at offsets drawn uniformly from the
    /// split (each window and its shifted target fit), and their targets.
    ///
    /// # Panics
    /// If the split is shorter than `block + 1` ([`CharText::check_block`]).
    pub fn batch(
        &self,
        split: Split,
        batch: usize,
        block: usize,
        rng: &mut ChaCha8Rng,
    ) -> TextBatch {
        let ids = self.ids(split);
        assert!(
            ids.len() > block,
            "CharText::batch: a split shorter than a window"
        );
        let offsets: Vec<usize> = (0..batch)
            .map(|_| rng.random_range(0..ids.len() - block))
            .collect();
        self.windows(split, &offsets, block)
    }

    /// The windows of `block` ids starting at `offsets` in the split, and
    /// their targets.
    pub fn windows(&self, split: Split, offsets: &[usize], block: usize) -> TextBatch {
        let ids = self.ids(split);
        let mut x = Vec::with_capacity(offsets.len() * block);
        let mut y = Vec::with_capacity(offsets.len() * block);
        for &o in offsets {
            x.extend(ids[o..o + block].iter().map(|&i| i as f32));
            y.extend(ids[o + 1..o + block + 1].iter().map(|&i| i as usize));
        }
        TextBatch {
            x: Tensor::from_vec(vec![offsets.len(), block], x),
            y,
        }
    }

    /// The offsets of the deterministic evaluation windows of a split:
    /// 0, T, 2T, … for every window whose shifted target fits.
    pub fn eval_offsets(&self, split: Split, block: usize) -> Vec<usize> {
        let n = self.ids(split).len();
        (0..n.saturating_sub(1) / block.max(1))
            .map(|i| i * block)
            .collect()
    }

    /// A digest of the text (its vocabulary, split and every id): a resumed
    /// run checks it reads the text it was saved with.
    pub fn fingerprint(&self) -> u64 {
        let mut f = super::Fnv::new();
        for &c in &self.vocab {
            f.word(c as u64);
        }
        f.word(self.train.len() as u64);
        for &i in self.train.iter().chain(&self.val) {
            f.word(i as u64);
        }
        f.finish()
    }

    /// The ids of `s`; the error names the first character outside the
    /// vocabulary and where it is.
    pub fn encode(&self, s: &str) -> Result<Vec<usize>> {
        encode(&self.vocab, s)
    }

    /// The characters of `ids` (ids outside the vocabulary are skipped).
    pub fn decode(&self, ids: &[usize]) -> String {
        decode(&self.vocab, ids)
    }
}

/// The ids of `s` in `vocab` (sorted); the error names the first character
/// the vocabulary lacks and its position.
pub fn encode(vocab: &[char], s: &str) -> Result<Vec<usize>> {
    s.chars()
        .enumerate()
        .map(|(i, c)| {
            vocab.binary_search(&c).map_err(|_| {
                Error::Config(format!(
                    "character {c:?} (U+{:04X}) at position {i} is not in the model's vocabulary of {} \
                     characters; use only characters of the text the model was trained on",
                    c as u32,
                    vocab.len()
                ))
            })
        })
        .collect()
}

/// The characters of `ids` in `vocab` (ids outside it are skipped).
pub fn decode(vocab: &[char], ids: &[usize]) -> String {
    ids.iter().filter_map(|&i| vocab.get(i)).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn text(s: &str) -> CharText {
        CharText::from_bytes(s.as_bytes(), Path::new("t.txt")).unwrap()
    }

    #[test]
    fn vocabulary_is_sorted_and_the_split_is_nine_tenths() {
        let t = text("hello world, héllo!");
        assert_eq!(t.vocab.iter().collect::<String>(), " !,dehlorwé");
        let n = "hello world, héllo!".chars().count();
        assert_eq!(t.train.len(), (0.9 * n as f64) as usize);
        assert_eq!(t.train.len() + t.val.len(), n);
        assert_eq!(t.decode(&t.encode("héllo").unwrap()), "héllo");
    }

    #[test]
    fn windows_and_targets_are_shifted_by_one() {
        let t = text("abcdefghijklmnopqrstuvwxyz");
        let b = t.windows(Split::Train, &[0, 5], 3);
        assert_eq!(b.x.shape(), &[2, 3]);
        assert_eq!(b.x.data(), &[0.0, 1.0, 2.0, 5.0, 6.0, 7.0]);
        assert_eq!(b.y, [1, 2, 3, 6, 7, 8]);
        let mut rng = crate::rand::seeded(1);
        let r = t.batch(Split::Train, 50, 4, &mut rng);
        // every window lies in the training split (23 characters)
        assert!(r.y.iter().all(|&y| y < 23));
        // evaluation windows: val has 3 characters, block 2 → one window
        assert_eq!(t.eval_offsets(Split::Val, 2), [0]);
        assert_eq!(t.eval_offsets(Split::Train, 5), [0, 5, 10, 15]);
    }

    #[test]
    fn bad_text_is_an_error_that_says_where() {
        let e = CharText::from_bytes(b"abc\xffdef", Path::new("t.txt"))
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("t.txt") && e.contains("offset 3") && e.contains("UTF-8"),
            "{e}"
        );
        let e = CharText::from_bytes(b"a", Path::new("t.txt"))
            .unwrap_err()
            .to_string();
        assert!(e.contains("1 character"), "{e}");
        let e = text("abcdefghij").check_block(8).unwrap_err().to_string();
        assert!(
            e.contains("validation split holds 1") && e.contains("shorter windows"),
            "{e}"
        );
        let e = text("abc").encode("abz").unwrap_err().to_string();
        assert!(e.contains("'z'") && e.contains("position 2"), "{e}");
        let vocab: Vec<char> = "abcé".chars().collect();
        let t = CharText::with_vocab("ébca".as_bytes(), &vocab, Path::new("t.txt")).unwrap();
        assert_eq!(
            (t.train.as_slice(), t.val.as_slice()),
            (&[3, 1, 2][..], &[0][..])
        );
        let e = CharText::with_vocab("abéz".as_bytes(), &vocab, Path::new("t.txt"))
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("'z'") && e.contains("character 3") && e.contains("byte offset 4"),
            "{e}"
        );
    }
}
