//! CSV data sets: the integer class label in the first column, numeric
//! features after it, as in the MNIST CSV files people use. No header, or one
//! header line (detected as non-numeric) which is skipped. The file may be
//! gzip-compressed (detected by content).
//!
//! Errors name the file, the 1-based line number and column.

use super::{maybe_gunzip, Targets, TensorDataset};
use crate::error::{Error, Result};
use crate::Tensor;
use std::path::Path;

/// Labels above this are rejected: they are not class indices.
const MAX_LABEL: f64 = 1_000_000.0;

/// A field with surrounding whitespace and one pair of double quotes removed.
fn clean(field: &str) -> &str {
    let f = field.trim();
    f.strip_prefix('"')
        .and_then(|f| f.strip_suffix('"'))
        .map_or(f, str::trim)
}

/// A field shown in an error message: quoted, escaped, cut short.
fn show(field: &str) -> String {
    let mut s: String = field.chars().take(30).collect();
    if s.len() < field.len() {
        s.push_str("...");
    }
    format!("{s:?}")
}

/// A hint when a field looks like it holds several values with another separator.
fn separator_hint(field: &str) -> &'static str {
    if field.contains(';') || field.contains('\t') || field.trim().contains(' ') {
        "; fields must be separated by commas"
    } else {
        ""
    }
}

/// Where a field is: its 1-based column, and the column's name when the
/// file has a header that names its targets.
#[derive(Clone, Copy)]
struct Column<'a> {
    at: usize,
    name: Option<&'a str>,
}

impl std::fmt::Display for Column<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        match self.name {
            Some(n) => write!(f, "column {} ({n})", self.at),
            None => write!(f, "column {}", self.at),
        }
    }
}

/// The label-first layout's label column.
const LABEL_COLUMN: Column = Column { at: 1, name: None };

/// Parse the label field at `col` of line `ln`.
fn parse_label(path: &Path, ln: usize, col: Column, raw: &str) -> Result<usize> {
    let f = clean(raw);
    let bad = |what: String| Error::data(path, format!("line {ln}, {col}: {what}"));
    let rule = match col.name {
        None => "the first column must hold the integer class label",
        Some(_) => "the target column must hold integer class labels",
    };
    if f.is_empty() {
        return Err(bad(format!("the label is empty; {rule}")));
    }
    let v: f64 = f.parse().map_err(|_| {
        bad(format!(
            "label {} is not a number; {rule}{}",
            show(f),
            separator_hint(f)
        ))
    })?;
    if v.is_nan() || v.fract() != 0.0 {
        return Err(bad(format!(
            "label {} is not an integer; labels must be class numbers 0, 1, 2, ...",
            show(f)
        )));
    }
    if v < 0.0 {
        return Err(bad(format!(
            "label {} is negative; labels must be class numbers 0, 1, 2, ...",
            show(f)
        )));
    }
    if v > MAX_LABEL {
        return Err(bad(format!(
            "label {} is too large to be a class number; is the label really in the first column?",
            show(f)
        )));
    }
    Ok(v as usize)
}

/// Parse a feature (or float target) field at line `ln`, column `col`.
fn parse_feature(path: &Path, ln: usize, col: Column, raw: &str) -> Result<f32> {
    let f = clean(raw);
    let bad = |what: String| Error::data(path, format!("line {ln}, {col}: {what}"));
    let rule = match col.name {
        None => "every field after the label must be a number",
        Some(_) => "every field must be a number",
    };
    if f.is_empty() {
        return Err(bad(
            "the field is empty; every feature must be a number (is there a trailing comma?)"
                .into(),
        ));
    }
    let v: f32 = f.parse().map_err(|_| {
        bad(format!(
            "{} is not a number; {rule}{}",
            show(f),
            separator_hint(f)
        ))
    })?;
    if !v.is_finite() {
        return Err(bad(format!(
            "{} is not a finite number; features must be finite",
            show(f)
        )));
    }
    Ok(v)
}

/// True when every field of the line parses as a number.
fn all_numeric(line: &str) -> bool {
    line.split(',').all(|f| clean(f).parse::<f64>().is_ok())
}

/// CSV with the integer label in the first column and features after it (as
/// the MNIST CSV files people use: no header, or one header line which is
/// detected as non-numeric and skipped). Features are taken as given unless
/// `scale` is `Some(s)`, then multiplied by `s` (e.g. `1/255` for pixels).
///
/// Errors name the file, the line number (1-based) and column: a non-numeric
/// field, a negative or non-integer label, a row with a different number of
/// fields than the first row, an empty file, no features. A non-finite
/// `scale` is an [`Error::Config`].
pub fn load_csv(path: &Path, scale: Option<f32>) -> Result<TensorDataset> {
    if let Some(s) = scale {
        if !s.is_finite() {
            return Err(Error::Config(format!(
                "the CSV feature scale must be a finite number, got {s}"
            )));
        }
    }
    let bytes = crate::io::read_regular(path)?;
    parse_csv(&bytes, path, scale)
}

/// [`load_csv`] on a file already in memory: `bytes` is the whole file
/// (gzip-compressed or plain text), `origin` names it in error messages. This
/// is the same parser `load_csv` runs.
///
/// ```
/// use backprop::data::parse_csv;
/// use std::path::Path;
/// let d = parse_csv(b"label,a,b\n3,10,20\n", Path::new("t.csv"), None).unwrap();
/// assert_eq!((d.labels().unwrap(), d.x.shape()), (&[3][..], &[1, 2][..]));
/// let e = parse_csv(b"1,2\n3,x\n", Path::new("t.csv"), None).unwrap_err();
/// assert_eq!(e.to_string(), "t.csv: line 2, column 2: \"x\" is not a number; every field after the label must be a number");
/// ```
pub fn parse_csv(bytes: &[u8], origin: &Path, scale: Option<f32>) -> Result<TensorDataset> {
    with_text(bytes, origin, scale, |text| parse(origin, text, scale))
}

/// `f` of a CSV file's text: `bytes` gunzipped when gzip, checked to be
/// text (not an IDX file, valid UTF-8, no NUL bytes), its byte-order mark
/// left out; `scale` checked to be finite. Both CSV parsers read through it.
fn with_text<R>(
    bytes: &[u8],
    path: &Path,
    scale: Option<f32>,
    f: impl FnOnce(&str) -> Result<R>,
) -> Result<R> {
    if let Some(s) = scale {
        if !s.is_finite() {
            return Err(Error::Config(format!(
                "the CSV feature scale must be a finite number, got {s}"
            )));
        }
    }
    let bytes = maybe_gunzip(bytes, path)?;
    if bytes.len() >= 4 && bytes[0] == 0 && bytes[1] == 0 && (0x08..=0x0e).contains(&bytes[2]) {
        return Err(Error::data(
            path,
            "this is an IDX file, not a CSV file; pass the folder that holds the IDX files \
             (train-images-idx3-ubyte[.gz] and train-labels-idx1-ubyte[.gz]) instead",
        ));
    }
    let text = match std::str::from_utf8(&bytes) {
        Ok(t) => t,
        Err(e) => {
            let ln = 1 + bytes[..e.valid_up_to()]
                .iter()
                .filter(|&&b| b == b'\n')
                .count();
            return Err(Error::data(
                path,
                format!("line {ln}: not valid UTF-8 text; is this really a CSV file?"),
            ));
        }
    };
    if text.contains('\0') {
        return Err(Error::data(
            path,
            "holds binary data (NUL bytes), not CSV text; pass a CSV file of label,feature,feature,... rows",
        ));
    }
    // A byte-order mark (spreadsheets write one) is not part of the first
    // line: left in, it would make a data row look like a header.
    f(text.strip_prefix('\u{feff}').unwrap_or(text))
}

/// Parse CSV text (see [`load_csv`]).
fn parse(path: &Path, text: &str, scale: Option<f32>) -> Result<TensorDataset> {
    let mut header: Option<(usize, usize)> = None; // (line, fields)
    let mut first: Option<(usize, usize)> = None; // (line, fields) of the first data row
    let mut xs: Vec<f32> = Vec::new();
    let mut ys: Vec<usize> = Vec::new();
    let mut seen_line = false;

    for (i, line) in text.lines().enumerate() {
        let ln = i + 1;
        if line.trim().is_empty() {
            continue;
        }
        if !seen_line {
            seen_line = true;
            if !all_numeric(line) {
                header = Some((ln, line.split(',').count()));
                continue;
            }
        }
        let mut fields = line.split(',');
        let label = parse_label(path, ln, LABEL_COLUMN, fields.next().unwrap_or(""))?;
        let start = xs.len();
        let mut count = 1;
        for (j, f) in fields.enumerate() {
            count += 1;
            if let Some((_, want)) = first {
                if count > want {
                    break;
                }
            }
            let col = Column {
                at: j + 2,
                name: None,
            };
            let v = parse_feature(path, ln, col, f)?;
            xs.push(scale.map_or(v, |s| v * s));
        }
        match first {
            None => {
                if count == 1 {
                    return Err(Error::data(
                        path,
                        format!(
                            "line {ln} has only one column (the label) and no features; \
                             expected rows of label,feature,feature,... separated by commas{}",
                            separator_hint(line)
                        ),
                    ));
                }
                if let Some((hl, hn)) = header {
                    if hn != count {
                        return Err(Error::data(
                            path,
                            format!(
                                "line {hl} (the header) has {hn} fields but line {ln} (the first data row) has {count}; \
                                 fix the header or the rows so they agree"
                            ),
                        ));
                    }
                }
                first = Some((ln, count));
                // Pre-size from the file length and the first row's length.
                let rows = text.len() / (line.len() + 1) + 1;
                xs.reserve(rows.saturating_mul(count - 1).min(1 << 28));
                ys.reserve(rows);
            }
            Some((fl, want)) if count != want => {
                let total = if count > want {
                    line.split(',').count()
                } else {
                    count
                };
                xs.truncate(start);
                return Err(Error::data(
                    path,
                    format!(
                        "line {ln} has {total} fields but line {fl} (the first data row) has {want}; \
                         every row must have the label and the same number of features"
                    ),
                ));
            }
            Some(_) => {}
        }
        ys.push(label);
    }

    let Some((_, width)) = first else {
        let msg = match header {
            Some((hl, _)) => format!(
                "has a header line (line {hl}) but no data rows; expected rows of label,feature,feature,..."
            ),
            None => "is empty; expected CSV rows of label,feature,feature,...".into(),
        };
        return Err(Error::data(path, msg));
    };
    let n = ys.len();
    Ok(TensorDataset::new(
        Tensor::from_vec(vec![n, width - 1], xs),
        ys,
        path,
    ))
}

/// Which columns of a CSV file with a header are the targets.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct CsvColumns {
    /// The target columns' names, as the header spells them (`price`, or
    /// `a` and `b`); every other column is a feature.
    pub target: Vec<String>,
    /// Read the (single) target column as integer class labels instead of
    /// float values.
    pub classes: bool,
}

/// A CSV file with a header line whose named columns (`cols.target`) are
/// the targets and whose other columns are the features: float values
/// `[N, K]` for regression or multi-label tasks, or class labels when
/// `cols.classes`. `scale` multiplies the features. The names are kept in
/// the data set's [`DataInfo`](super::DataInfo). The file may be
/// gzip-compressed.
///
/// Errors name the file, the line and the column by its name: a target
/// column the header does not have (the error lists those it has), a
/// missing header, a field that is not a number.
///
/// ```
/// use backprop::data::{parse_csv_columns, CsvColumns};
/// use std::path::Path;
/// let cols = CsvColumns { target: vec!["price".into()], classes: false };
/// let d = parse_csv_columns(b"rooms,price,age\n3,250.5,10\n", Path::new("h.csv"), None, &cols).unwrap();
/// assert_eq!(d.x.data(), &[3.0, 10.0]);
/// assert_eq!(d.y.values().unwrap().data(), &[250.5]);
/// assert_eq!(d.info.features, vec!["rooms", "age"]);
/// ```
pub fn parse_csv_columns(
    bytes: &[u8],
    origin: &Path,
    scale: Option<f32>,
    cols: &CsvColumns,
) -> Result<TensorDataset> {
    with_text(bytes, origin, scale, |text| {
        parse_named(origin, text, scale, cols)
    })
}

/// [`parse_csv_columns`] on a file.
pub fn load_csv_columns(
    path: &Path,
    scale: Option<f32>,
    cols: &CsvColumns,
) -> Result<TensorDataset> {
    let bytes = crate::io::read_regular(path)?;
    parse_csv_columns(&bytes, path, scale, cols)
}

/// The columns of `header` that `cols.target` names, in the order named.
fn target_columns(path: &Path, header: &[&str], cols: &CsvColumns) -> Result<Vec<usize>> {
    if cols.target.is_empty() {
        return Err(Error::Config("name at least one target column".into()));
    }
    if cols.classes && cols.target.len() > 1 {
        return Err(Error::Config(format!(
            "class labels come from one column, {} were named; name one, or train a multi-label task",
            cols.target.len()
        )));
    }
    let mut at = Vec::new();
    for name in &cols.target {
        let Some(j) = header.iter().position(|h| h == name) else {
            let shown: Vec<String> = header.iter().take(20).map(|h| show(h)).collect();
            return Err(Error::data(
                path,
                format!(
                    "has no column {} (its header has {}{}); name one of its columns",
                    show(name),
                    shown.join(", "),
                    if header.len() > 20 { ", ..." } else { "" }
                ),
            ));
        };
        if at.contains(&j) {
            return Err(Error::Config(format!(
                "the target column {} is named twice",
                show(name)
            )));
        }
        at.push(j);
    }
    if at.len() == header.len() {
        return Err(Error::data(
            path,
            "every column is a target, which leaves no features; name fewer target columns",
        ));
    }
    Ok(at)
}

/// Parse CSV text with a header and named targets (see [`parse_csv_columns`]).
fn parse_named(
    path: &Path,
    text: &str,
    scale: Option<f32>,
    cols: &CsvColumns,
) -> Result<TensorDataset> {
    let mut lines = text
        .lines()
        .enumerate()
        .map(|(i, l)| (i + 1, l))
        .filter(|(_, l)| !l.trim().is_empty());
    let Some((hl, head)) = lines.next() else {
        return Err(Error::data(
            path,
            "is empty; expected a header line and data rows",
        ));
    };
    if all_numeric(head) {
        return Err(Error::data(
            path,
            format!("line {hl} is not a header (every field is a number); named target columns need a header line of column names"),
        ));
    }
    let header: Vec<&str> = head.split(',').map(clean).collect();
    let targets = target_columns(path, &header, cols)?;
    let width = header.len();
    let (mut xs, mut ts, mut ys) = (Vec::new(), Vec::new(), Vec::new());
    for (ln, line) in lines {
        let fields: Vec<&str> = line.split(',').collect();
        if fields.len() != width {
            return Err(Error::data(
                path,
                format!(
                    "line {ln} has {} fields but the header (line {hl}) has {width}; every row must have one field per column",
                    fields.len()
                ),
            ));
        }
        let col = |j: usize| Column {
            at: j + 1,
            name: Some(header[j]),
        };
        for &j in &targets {
            if cols.classes {
                ys.push(parse_label(path, ln, col(j), fields[j])?);
            } else {
                ts.push(parse_feature(path, ln, col(j), fields[j])?);
            }
        }
        for (j, f) in fields.iter().enumerate() {
            if !targets.contains(&j) {
                let v = parse_feature(path, ln, col(j), f)?;
                xs.push(scale.map_or(v, |s| v * s));
            }
        }
    }
    let f = width - targets.len();
    let n = xs.len() / f;
    if n == 0 {
        return Err(Error::data(
            path,
            format!("has a header line (line {hl}) but no data rows"),
        ));
    }
    let y = if cols.classes {
        Targets::Classes(ys)
    } else {
        Targets::Values(Tensor::from_vec(vec![n, targets.len()], ts))
    };
    let mut d = TensorDataset::new(Tensor::from_vec(vec![n, f], xs), y, path);
    d.info.targets = targets.iter().map(|&j| header[j].to_string()).collect();
    d.info.features = (0..width)
        .filter(|j| !targets.contains(j))
        .map(|j| header[j].to_string())
        .collect();
    Ok(d)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;
    use std::path::PathBuf;

    fn write(dir: &Path, name: &str, text: &[u8]) -> PathBuf {
        let p = dir.join(name);
        std::fs::write(&p, text).unwrap();
        p
    }

    /// Load `text` as a CSV file, expecting an error; the one-line message.
    fn err(text: &str) -> String {
        let dir = tempfile::tempdir().unwrap();
        let p = write(dir.path(), "d.csv", text.as_bytes());
        let s = load_csv(&p, None).unwrap_err().to_string();
        assert!(!s.contains('\n'), "multi-line message: {s}");
        assert!(s.contains("d.csv"), "{s}");
        s
    }

    #[test]
    fn plain_rows() {
        let dir = tempfile::tempdir().unwrap();
        let p = write(dir.path(), "a.csv", b"5,0,128,255\r\n0, 1.5 ,2,-3\n\n");
        let d = load_csv(&p, None).unwrap();
        assert_eq!(d.x.shape(), &[2, 3]);
        assert_eq!(d.y, vec![5, 0]);
        assert_eq!(d.x.data(), &[0., 128., 255., 1.5, 2., -3.]);
        assert_eq!(d.source, p);
        assert_eq!(d.sample_shape(), &[3]);
    }

    #[test]
    fn a_byte_order_mark_is_not_a_header() {
        let p = Path::new("bom.csv");
        let d = parse_csv(b"\xef\xbb\xbf3,1,2\n4,5,6\n", p, None).unwrap();
        assert_eq!(d.y, vec![3, 4]);
        assert_eq!(d.x.data(), &[1., 2., 5., 6.]);
        let d = parse_csv(b"\xef\xbb\xbflabel,a,b\n4,5,6\n", p, None).unwrap();
        assert_eq!(d.y, vec![4]);
    }

    #[test]
    fn header_skipped_and_scale() {
        let dir = tempfile::tempdir().unwrap();
        let p = write(
            dir.path(),
            "h.csv",
            b"label,1x1,1x2\n7,0,255\n\"2\",\"51\",102\n",
        );
        let d = load_csv(&p, Some(1.0 / 255.0)).unwrap();
        assert_eq!(d.y, vec![7, 2]);
        assert_eq!(d.x.shape(), &[2, 2]);
        let want = [0.0, 1.0, 0.2, 0.4];
        for (a, b) in d.x.data().iter().zip(want) {
            assert!((a - b).abs() < 1e-6, "{a} vs {b}");
        }
        // integer-valued float labels are accepted
        let p = write(dir.path(), "f.csv", b"3.0,1\n");
        assert_eq!(load_csv(&p, None).unwrap().y, vec![3]);
    }

    #[test]
    fn gzipped_csv() {
        let dir = tempfile::tempdir().unwrap();
        let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        e.write_all(b"1,2,3\n4,5,6\n").unwrap();
        let p = write(dir.path(), "z.csv.gz", &e.finish().unwrap());
        let d = load_csv(&p, None).unwrap();
        assert_eq!(d.y, vec![1, 4]);
        assert_eq!(d.x.data(), &[2., 3., 5., 6.]);
    }

    #[test]
    fn bad_fields_report_line_and_column() {
        let e = err("1,2,3\n4,x,6\n");
        assert!(
            e.contains("line 2, column 2") && e.contains("\"x\" is not a number"),
            "{e}"
        );
        let e = err("label,a,b\n1,2,3\n\n4,5,oops\n");
        assert!(
            e.contains("line 4, column 3") && e.contains("\"oops\""),
            "{e}"
        );
        let e = err("1,2,3\n4,5,\n");
        assert!(e.contains("line 2, column 3") && e.contains("empty"), "{e}");
        let e = err("1,2,3\n4,5,inf\n");
        assert!(
            e.contains("line 2, column 3") && e.contains("finite"),
            "{e}"
        );
        let e = err("1;2;3\n4;5;6\n");
        assert!(
            e.contains("line 2, column 1") && e.contains("separated by commas"),
            "{e}"
        );
    }

    #[test]
    fn bad_labels() {
        let e = err("1,2\n-1,3\n");
        assert!(
            e.contains("line 2, column 1") && e.contains("negative"),
            "{e}"
        );
        let e = err("1,2\n2.5,3\n");
        assert!(
            e.contains("line 2, column 1") && e.contains("not an integer"),
            "{e}"
        );
        let e = err("1,2\ncat,3\n");
        assert!(
            e.contains("line 2, column 1") && e.contains("not a number"),
            "{e}"
        );
        let e = err("1,2\n1e12,3\n");
        assert!(e.contains("too large"), "{e}");
        let e = err("1,2\nnan,3\n");
        assert!(e.contains("not an integer"), "{e}");
    }

    #[test]
    fn ragged_rows() {
        let e = err("1,2,3\n4,5\n");
        assert!(
            e.contains("line 2 has 2 fields") && e.contains("line 1 (the first data row) has 3"),
            "{e}"
        );
        let e = err("h,a,b\n1,2,3\n4,5,6,7,8\n");
        assert!(
            e.contains("line 3 has 5 fields") && e.contains("line 2 (the first data row) has 3"),
            "{e}"
        );
        let e = err("h,a\n1,2,3\n");
        assert!(e.contains("line 1 (the header) has 2 fields"), "{e}");
    }

    #[test]
    fn empty_and_no_features() {
        assert!(err("").contains("is empty"));
        assert!(err("\n\n  \n").contains("is empty"));
        let e = err("label,a,b\n");
        assert!(e.contains("header") && e.contains("no data rows"), "{e}");
        let e = err("1\n2\n");
        assert!(e.contains("line 1") && e.contains("no features"), "{e}");
    }

    #[test]
    fn bytes_and_path_give_the_same_result_and_errors() {
        let dir = tempfile::tempdir().unwrap();
        let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        e.write_all(b"1,2,3\n4,5,6\n").unwrap();
        let cases: Vec<Vec<u8>> = vec![
            b"h,a\n1,2\n".to_vec(),
            e.finish().unwrap(),
            b"1,2\n3\n".to_vec(),
            vec![0x1f, 0x8b, 8, 0],
            b"\xff".to_vec(),
        ];
        for (i, b) in cases.iter().enumerate() {
            let p = write(dir.path(), &format!("c{i}.csv"), b);
            let a = load_csv(&p, Some(0.5)).map(|d| (d.x, d.y));
            let b = parse_csv(b, &p, Some(0.5)).map(|d| (d.x, d.y));
            match (a, b) {
                (Ok(a), Ok(b)) => assert_eq!(a, b, "case {i}"),
                (Err(a), Err(b)) => assert_eq!(a.to_string(), b.to_string(), "case {i}"),
                (a, b) => panic!("case {i}: {:?} vs {:?}", a.is_ok(), b.is_ok()),
            }
        }
    }

    #[test]
    fn binary_garbage_and_idx() {
        let e = err(std::str::from_utf8(&[b'1', b',', 0, b'\n']).unwrap());
        assert!(e.contains("binary"), "{e}");
        let dir = tempfile::tempdir().unwrap();
        let p = write(dir.path(), "g.csv", b"1,2\n3,4\n\xff\xfe\n");
        let e = load_csv(&p, None).unwrap_err().to_string();
        assert!(e.contains("line 3") && e.contains("UTF-8"), "{e}");
        let p = write(dir.path(), "i", &[0, 0, 8, 3, 0, 0, 0, 1]);
        let e = load_csv(&p, None).unwrap_err().to_string();
        assert!(e.contains("IDX file"), "{e}");
        let e = load_csv(&p, Some(f32::NAN)).unwrap_err();
        assert!(matches!(e, Error::Config(_)));
    }
}
