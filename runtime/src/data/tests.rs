//! Tests of the data module: each loader on the fixtures of `tests/fixtures/data` and the
//! bundled example data, every error case with its message, reproducibility, synthetic tasks
//! and a little fuzzing.

use super::*;
use modelc_compiler::check::settings::{CsvData, SyntheticTask};
use modelc_compiler::interp::TensorData;
use rand_chacha::rand_core::{RngCore, SeedableRng};
use rand_chacha::ChaCha8Rng;
use std::path::PathBuf;

fn repository() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn fixtures() -> PathBuf {
    repository().join("tests/fixtures/data")
}

fn examples() -> PathBuf {
    repository().join("examples")
}

fn scratch(test: &str) -> PathBuf {
    let directory = std::env::temp_dir().join(format!("modelc-data-{test}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&directory);
    std::fs::create_dir_all(&directory).expect("create a scratch directory");
    directory
}

fn classes(classes: Option<usize>) -> LabelKind {
    LabelKind::Classes { classes }
}

fn options(labels: LabelKind) -> LoadOptions {
    LoadOptions { labels, seed: 0 }
}

fn spec(source: DataSource) -> DataSpec {
    DataSpec {
        source,
        span: Span::DUMMY,
    }
}

fn csv_spec(path: &str) -> CsvData {
    CsvData {
        path: path.to_string(),
        features: None,
        label: None,
        shape: None,
        header: false,
    }
}

fn f32s(features: &Features) -> &[f32] {
    match features {
        Features::F32(values) => values,
        Features::I64(_) => panic!("expected f32 features"),
    }
}

fn i64s(features: &Features) -> &[i64] {
    match features {
        Features::I64(values) => values,
        Features::F32(_) => panic!("expected i64 features"),
    }
}

fn class_labels(labels: &Labels) -> &[i64] {
    match labels {
        Labels::Classes(values) => values,
        Labels::Targets(_) => panic!("expected class labels"),
    }
}

/// Parses CSV text with default columns and class labels, expecting an error; its message.
fn csv_error(text: &str, csv: &CsvData, labels: LabelKind) -> String {
    let diagnostic = parse_csv(text.as_bytes(), "d.csv", csv, labels).expect_err(text);
    assert_eq!(diagnostic.code, DATA_INVALID, "{diagnostic:?}");
    diagnostic.message
}

// ---------------------------------------------------------------------------------- CSV loads

#[test]
fn tiny_csv_with_header_blank_lines_crlf_spaces_and_quotes() {
    let mut csv = csv_spec("tiny.csv");
    csv.header = true;
    let data = load(
        &spec(DataSource::Csv(csv)),
        &fixtures(),
        &options(classes(Some(3))),
    )
    .expect("tiny.csv loads");
    assert_eq!(data.len(), 3);
    assert_eq!(data.feature_shape, vec![3]);
    assert!(data.label_shape.is_empty());
    assert_eq!(
        f32s(&data.features),
        &[0.5, 1.0, 2.0, -1.25, 0.3, 4.0, 7.0, 8.0, 9.0]
    );
    assert_eq!(class_labels(&data.labels), &[0, 2, 1]);
}

#[test]
fn gzipped_csv_equals_the_plain_one() {
    let mut plain = csv_spec("tiny.csv");
    plain.header = true;
    let plain = read_csv(&fixtures().join("tiny.csv"), &plain, classes(None)).expect("plain");
    let gzipped = read_csv(
        &fixtures().join("tiny.csv.gz"),
        &csv_spec("tiny.csv.gz"),
        classes(None),
    )
    .expect("gzipped");
    assert_eq!(plain, gzipped);
}

#[test]
fn csv_columns_shape_and_targets() {
    let text = "1,2,3,4,5\n6,7,8,9,10\n";
    let mut csv = csv_spec("d.csv");
    csv.features = Some(vec![4, 0, 2, 3]);
    csv.label = Some(1);
    csv.shape = Some(vec![2, 2]);
    let data = parse_csv(text.as_bytes(), "d.csv", &csv, LabelKind::Targets).expect("parses");
    assert_eq!(
        f32s(&data.features),
        &[5.0, 1.0, 3.0, 4.0, 10.0, 6.0, 8.0, 9.0]
    );
    assert_eq!(data.feature_shape, vec![2, 2]);
    assert_eq!(data.labels, Labels::Targets(vec![2.0, 7.0]));

    // All but the label, which is not the last column; a whole-valued float class.
    let mut csv = csv_spec("d.csv");
    csv.label = Some(0);
    let data = parse_csv(b"2.0,1,2\n1e0,3,4", "d.csv", &csv, classes(Some(3))).expect("parses");
    assert_eq!(f32s(&data.features), &[1.0, 2.0, 3.0, 4.0]);
    assert_eq!(class_labels(&data.labels), &[2, 1]);
}

#[test]
fn digits_example_data() {
    let data = load(
        &spec(DataSource::Csv(CsvData {
            path: "data/digits.csv.gz".to_string(),
            features: Some((0..64).collect()),
            label: Some(64),
            shape: Some(vec![1, 8, 8]),
            header: false,
        })),
        &examples(),
        &options(classes(Some(10))),
    )
    .expect("digits load");
    // The README: 1797 rows, 64 pixels of 0..16 then the class 0..9, no header.
    assert_eq!(data.len(), 1797);
    assert_eq!(data.feature_shape, vec![1, 8, 8]);
    let pixels = f32s(&data.features);
    assert_eq!(pixels.len(), 1797 * 64);
    assert!(pixels
        .iter()
        .all(|&pixel| (0.0..=16.0).contains(&pixel) && pixel.fract() == 0.0));
    assert_eq!(&pixels[..8], &[0.0, 0.0, 5.0, 13.0, 9.0, 1.0, 0.0, 0.0]);
    assert_eq!(&pixels[1796 * 64..1796 * 64 + 4], &[0.0, 0.0, 10.0, 14.0]);
    let labels = class_labels(&data.labels);
    assert_eq!(&labels[..3], &[0, 1, 2]);
    assert_eq!(labels[1796], 8);
    let mut counts = [0usize; 10];
    labels.iter().for_each(|&label| counts[label as usize] += 1);
    assert_eq!(counts, [178, 182, 177, 183, 181, 182, 181, 179, 174, 180]);

    let batch = data.batch(&[0, 1796]);
    assert_eq!(batch.inputs.shape, vec![2, 1, 8, 8]);
    assert_eq!(batch.labels.shape, vec![2]);
    assert_eq!(batch.labels.data, TensorData::I64(vec![0, 8]));

    // Nine classes are too few: label 9 first appears in row 10.
    let error = load(
        &spec(DataSource::Csv(CsvData {
            path: "data/digits.csv.gz".to_string(),
            features: None,
            label: None,
            shape: None,
            header: false,
        })),
        &examples(),
        &options(classes(Some(9))),
    )
    .expect_err("9 classes");
    assert!(
        error.message.ends_with(
            "data/digits.csv.gz`, line 10, column 64: label 9 is out of range for 9 classes (expected 0 to 8)"
        ),
        "{}",
        error.message
    );
}

#[test]
fn breast_cancer_and_iris_example_data() {
    let data = load(
        &spec(DataSource::Csv(CsvData {
            path: "data/breast_cancer.csv".to_string(),
            features: Some((0..30).collect()),
            label: Some(30),
            shape: None,
            header: true,
        })),
        &examples(),
        &options(classes(Some(2))),
    )
    .expect("breast cancer loads");
    // The README: 569 cases of 30 features and the class (0 malignant, 1 benign).
    assert_eq!(data.len(), 569);
    assert_eq!(data.feature_shape, vec![30]);
    let features = f32s(&data.features);
    assert_eq!(&features[..3], &[17.99, 10.38, 122.8]);
    assert_eq!(&features[568 * 30..568 * 30 + 3], &[7.76, 24.54, 47.92]);
    let labels = class_labels(&data.labels);
    assert_eq!(labels.iter().filter(|&&label| label == 0).count(), 212);
    assert_eq!(labels.iter().filter(|&&label| label == 1).count(), 357);
    assert_eq!((labels[0], labels[568]), (0, 1));

    // Without `header = true`, the header is read as data.
    let error = load(
        &spec(DataSource::Csv(csv_spec("data/breast_cancer.csv"))),
        &examples(),
        &options(classes(None)),
    )
    .expect_err("header read as data");
    assert!(
        error
            .message
            .ends_with("breast_cancer.csv`, line 1, column 2: `malignant` is not a number"),
        "{}",
        error.message
    );
    assert_eq!(
        error.help.as_deref(),
        Some("if the first line holds column names, add `header = true`")
    );

    let mut iris = csv_spec("data/iris.csv");
    iris.header = true;
    let data = load(
        &spec(DataSource::Csv(iris)),
        &examples(),
        &options(classes(Some(3))),
    )
    .expect("iris loads");
    assert_eq!((data.len(), data.feature_shape.clone()), (150, vec![4]));
    assert_eq!(&f32s(&data.features)[..4], &[5.1, 3.5, 1.4, 0.2]);
}

// --------------------------------------------------------------------------------- CSV errors

#[test]
fn csv_errors_name_the_file_line_and_column() {
    let plain = csv_spec("d.csv");
    let cases: &[(&str, &str)] = &[
        ("", "`d.csv` is empty"),
        (" \n\r\n\t\n", "`d.csv` is empty"),
        (
            "1,2,0\n3,4\n",
            "`d.csv`, line 2: expected 3 columns, as on line 1, found 2",
        ),
        (
            "\n1,2,0\n3,4,1,9\n",
            "`d.csv`, line 3: expected 3 columns, as on line 2, found 4",
        ),
        (
            "1,2,0\n3,abc,1\n",
            "`d.csv`, line 2, column 1: `abc` is not a number",
        ),
        ("1,,0\n", "`d.csv`, line 1, column 1: the cell is empty"),
        ("1,\"\",0\n", "`d.csv`, line 1, column 1: the cell is empty"),
        (
            "1,NaN,0\n",
            "`d.csv`, line 1, column 1: `NaN` is not a finite number",
        ),
        (
            "1,-inf,0\n",
            "`d.csv`, line 1, column 1: `-inf` is not a finite number",
        ),
        (
            "1,1e39,0\n",
            "`d.csv`, line 1, column 1: `1e39` is out of the f32 range",
        ),
        (
            "1,2,x\n",
            "`d.csv`, line 1, column 2: label `x` is not a number",
        ),
        (
            "1,2,\n",
            "`d.csv`, line 1, column 2: the label cell is empty",
        ),
        (
            "1,2,0\n1,2,2.5\n",
            "`d.csv`, line 2, column 2: label `2.5` is not a class index (a whole number)",
        ),
        (
            "1,2,-1\n",
            "`d.csv`, line 1, column 2: label -1 is negative; class indices count from 0",
        ),
        (
            "1,2,0\n1,2,3\n",
            "`d.csv`, line 2, column 2: label 3 is out of range for 3 classes (expected 0 to 2)",
        ),
        (
            "7\n",
            "`d.csv`, line 1: the row has 1 column and no feature column besides the label",
        ),
        (
            "1,2,1e300\n",
            "`d.csv`, line 1, column 2: label `1e300` is not a class index (a whole number)",
        ),
        (
            "1,\u{ff}\u{fe},0\n",
            "`d.csv`, line 1, column 1: `\u{ff}\u{fe}` is not a number",
        ),
    ];
    for (text, message) in cases {
        assert_eq!(
            &csv_error(text, &plain, classes(Some(3))),
            message,
            "for {text:?}"
        );
    }
    let long = format!("1,{},0\n", "z".repeat(100));
    assert_eq!(
        csv_error(&long, &plain, classes(None)),
        format!(
            "`d.csv`, line 1, column 1: `{}…` is not a number",
            "z".repeat(40)
        )
    );

    let mut header = plain.clone();
    header.header = true;
    assert_eq!(
        csv_error("a,b,label\n\n", &header, classes(None)),
        "`d.csv` has no data rows, only a header line"
    );

    let mut shaped = plain.clone();
    shaped.shape = Some(vec![1, 2, 2]);
    assert_eq!(
        csv_error("1,2,3,0\n", &shaped, classes(None)),
        "`d.csv`, line 1: `shape = [1, 2, 2]` holds 4 values, but the row has 3 feature columns"
    );
    shaped.shape = Some(vec![usize::MAX, 2]);
    assert_eq!(
        csv_error("1,2,3,0\n", &shaped, classes(None)),
        format!(
            "`d.csv`, line 1: `shape = [{}, 2]` is too large, but the row has 3 feature columns",
            usize::MAX
        )
    );

    let mut columns = plain.clone();
    columns.features = Some(vec![0, 5]);
    columns.label = Some(1);
    assert_eq!(
        csv_error("1,2,3\n", &columns, classes(None)),
        "`d.csv`, line 1: the row has 3 columns (columns 0 to 2), so column 5 selected by `features` does not exist"
    );
    let mut label = plain.clone();
    label.label = Some(3);
    assert_eq!(
        csv_error("1,2,3\n", &label, classes(None)),
        "`d.csv`, line 1: the row has 3 columns (columns 0 to 2), so `label = 3` does not exist"
    );

    // Targets take any finite number, but not an infinite one.
    assert_eq!(
        csv_error("1,2,1e39\n", &plain, LabelKind::Targets),
        "`d.csv`, line 1, column 2: label `1e39` is out of the f32 range"
    );
    let data = parse_csv(b"1,2,2.5\n", "d.csv", &plain, LabelKind::Targets).expect("targets");
    assert_eq!(data.labels, Labels::Targets(vec![2.5]));

    // Every CSV diagnostic says how lines and columns are counted.
    let diagnostic = parse_csv(b"1,x,0", "d.csv", &plain, classes(None)).expect_err("not a number");
    assert_eq!(
        diagnostic.notes,
        vec!["lines count from 1; columns count from 0, as in `features` and `label`"]
    );
}

#[test]
fn gzip_problems_are_diagnostics() {
    let directory = scratch("gzip");
    let digits = std::fs::read(examples().join("data/digits.csv.gz")).expect("digits");
    let csv = csv_spec("d");

    std::fs::write(directory.join("cut.csv.gz"), &digits[..digits.len() / 2]).expect("write");
    let error = read_csv(&directory.join("cut.csv.gz"), &csv, classes(None)).expect_err("cut");
    assert_eq!(error.code, DATA_INVALID);
    assert!(
        error
            .message
            .contains("cut.csv.gz` is not a valid gzip file: "),
        "{}",
        error.message
    );

    std::fs::write(directory.join("plain.csv.gz"), b"1,2,0\n").expect("write");
    let error =
        read_csv(&directory.join("plain.csv.gz"), &csv, classes(None)).expect_err("not gzip");
    assert!(
        error
            .message
            .contains("plain.csv.gz` is not a valid gzip file"),
        "{}",
        error.message
    );

    std::fs::write(directory.join("hidden.csv"), &digits).expect("write");
    let error =
        read_csv(&directory.join("hidden.csv"), &csv, classes(None)).expect_err("gzip named csv");
    assert!(
        error
            .message
            .ends_with("hidden.csv` is gzip-compressed, but its name does not end in `.gz`"),
        "{}",
        error.message
    );

    // Upper-case extension, two concatenated members, and an empty .gz file.
    let mut twice = std::fs::read(fixtures().join("tiny.csv.gz")).expect("tiny");
    twice.extend_from_within(..);
    std::fs::write(directory.join("twice.CSV.GZ"), &twice).expect("write");
    let data = read_csv(&directory.join("twice.CSV.GZ"), &csv, classes(None)).expect("twice");
    assert_eq!(data.len(), 6);
    std::fs::write(directory.join("empty.csv.gz"), b"").expect("write");
    let error = read_csv(&directory.join("empty.csv.gz"), &csv, classes(None)).expect_err("empty");
    assert!(
        error.message.ends_with("empty.csv.gz` is empty"),
        "{}",
        error.message
    );

    let error = read_csv(&directory.join("missing.csv"), &csv, classes(None)).expect_err("io");
    assert_eq!(error.code, "io-error");
    assert!(error.message.contains("missing.csv"));
    let _ = std::fs::remove_dir_all(&directory);
}

#[test]
fn random_bytes_never_panic() {
    let mut rng = ChaCha8Rng::seed_from_u64(11);
    let alphabet = b"0123456789,.-+eE \t\r\n\"naif\x00\xff";
    let mut csv = csv_spec("fuzz.csv");
    for round in 0..3000 {
        let length = (rng.next_u32() % 200) as usize;
        let bytes: Vec<u8> = (0..length)
            .map(|_| {
                let draw = rng.next_u32() as usize;
                if round % 3 == 0 {
                    draw as u8
                } else {
                    alphabet[draw % alphabet.len()]
                }
            })
            .collect();
        csv.header = round % 2 == 0;
        csv.label = (round % 5 == 0).then_some(1);
        csv.features = (round % 7 == 0).then(|| vec![0, 2]);
        csv.shape = (round % 11 == 0).then(|| vec![2]);
        let labels = match round % 3 {
            0 => LabelKind::Targets,
            1 => classes(Some(3)),
            _ => classes(None),
        };
        if let Ok(data) = parse_csv(&bytes, "fuzz.csv", &csv, labels) {
            // A success keeps the invariants.
            assert!(!data.is_empty());
            assert_eq!(data.features.len(), data.len() * data.feature_size());
            assert_eq!(data.labels.len(), data.len());
        }
    }

    // Corrupted and random gzip streams.
    let directory = scratch("fuzz-gzip");
    let tiny = std::fs::read(fixtures().join("tiny.csv.gz")).expect("tiny");
    let path = directory.join("fuzz.csv.gz");
    for round in 0..400 {
        let bytes: Vec<u8> = if round % 2 == 0 {
            let mut bytes = tiny.clone();
            let position = rng.next_u32() as usize % bytes.len();
            bytes[position] ^= 1 << (rng.next_u32() % 8);
            bytes.truncate(rng.next_u32() as usize % (bytes.len() + 1));
            bytes
        } else {
            let mut bytes = vec![0x1f, 0x8b, 8, 0];
            bytes.extend((0..rng.next_u32() % 64).map(|_| rng.next_u32() as u8));
            bytes
        };
        std::fs::write(&path, &bytes).expect("write");
        let _ = read_csv(&path, &csv_spec("fuzz.csv.gz"), classes(Some(3)));
    }
    let _ = std::fs::remove_dir_all(&directory);
}

// ------------------------------------------------------------------------ npy and safetensors

#[test]
fn npy_features_and_labels() {
    let data = load(
        &spec(DataSource::Npy {
            features: "x.npy".to_string(),
            label: "y.npy".to_string(),
        }),
        &fixtures(),
        &options(classes(Some(3))),
    )
    .expect("npy loads");
    assert_eq!(data.len(), 4);
    assert_eq!(data.feature_shape, vec![2]);
    assert_eq!(
        f32s(&data.features),
        &[0.5, 1.0, -2.0, 3.25, 4.0, 0.0, 1e-3, -7.5]
    );
    assert_eq!(class_labels(&data.labels), &[0, 2, 1, 2]);

    // Whole-valued float labels are classes; as targets any values pass.
    let x = fixtures().join("x.npy");
    let data = read_npy_dataset(&x, &fixtures().join("y_float.npy"), classes(None)).expect("float");
    assert_eq!(class_labels(&data.labels), &[1, 0, 2, 1]);
    let data =
        read_npy_dataset(&x, &fixtures().join("y.npy"), LabelKind::Targets).expect("targets");
    assert_eq!(data.labels, Labels::Targets(vec![0.0, 2.0, 1.0, 2.0]));

    // Token ids with per-token labels; -100 marks positions without a target.
    let data = read_npy_dataset(
        &fixtures().join("tokens.npy"),
        &fixtures().join("token_labels.npy"),
        classes(Some(9)),
    )
    .expect("tokens");
    assert_eq!(data.feature_shape, vec![4]);
    assert_eq!(data.label_shape, vec![4]);
    assert_eq!(&i64s(&data.features)[..4], &[1, 2, 3, 4]);
    let batch = data.batch(&[2]);
    assert_eq!(batch.inputs.shape, vec![1, 4]);
    assert_eq!(batch.labels.data, TensorData::I64(vec![-100, -100, 1, 2]));
    let error = data
        .check_classes(8, "token_labels.npy")
        .expect_err("8 classes");
    assert_eq!(
        error.message,
        "`token_labels.npy`, example 1, position 3: label 8 is out of range for 8 classes (expected 0 to 7)"
    );
}

#[test]
fn npy_errors() {
    let x = fixtures().join("x.npy");
    let error =
        read_npy_dataset(&x, &fixtures().join("y_short.npy"), classes(None)).expect_err("short");
    assert_eq!(error.code, DATA_INVALID);
    assert_eq!(
        error.message,
        format!(
            "`{}` has 4 examples but `{}` has 3",
            x.display(),
            fixtures().join("y_short.npy").display()
        )
    );
    let error =
        read_npy_dataset(&x, &fixtures().join("y.npy"), classes(Some(2))).expect_err("2 classes");
    assert!(
        error.message.ends_with(
            "y.npy`, example 1: label 2 is out of range for 2 classes (expected 0 to 1)"
        ),
        "{}",
        error.message
    );
    // Labels are not features: an .npy of floats as class labels.
    let error = read_npy_dataset(&x, &x, classes(None)).expect_err("float labels");
    assert!(
        error.message.ends_with(
            "x.npy`, example 0, position 0: label 0.5 is not a class index (a whole number)"
        ),
        "{}",
        error.message
    );
    // Not an .npy file at all.
    let error =
        read_npy_dataset(&fixtures().join("tiny.csv"), &x, classes(None)).expect_err("csv as npy");
    assert_eq!(error.code, "npy-invalid");
    // Ignore labels are for per-position labels only.
    let scalar = |values: Vec<i64>| Tensor::from_i64(vec![values.len()], values).expect("tensor");
    let features = || Tensor::from_f32(vec![2, 1], vec![1.0, 2.0]).expect("tensor");
    let error = dataset_from_tensors(
        features(),
        "x",
        scalar(vec![0, IGNORE_INDEX]),
        "y",
        classes(None),
    )
    .expect_err("ignore in scalar labels");
    assert_eq!(
        error.message,
        "y, example 1: label -100 is negative; class indices count from 0"
    );
}

#[test]
fn tensors_without_examples_are_rejected() {
    let labels = || Tensor::from_i64(vec![2], vec![0, 1]).expect("tensor");
    let cases: Vec<(Tensor, &str)> = vec![
        (
            Tensor::from_f32(vec![], vec![1.0]).expect("scalar"),
            "x holds a single value, but the features need a first axis that counts the examples",
        ),
        (
            Tensor::from_f32(vec![0, 3], vec![]).expect("empty"),
            "x has no examples (shape [0, 3])",
        ),
        (
            Tensor::from_f32(vec![2, 0], vec![]).expect("empty rows"),
            "x has shape [2, 0]: each example's features are empty",
        ),
        (
            Tensor::from_f32(vec![2], vec![1.0, f32::NAN]).expect("nan"),
            "x, example 1: feature 0 is NaN",
        ),
    ];
    for (features, message) in cases {
        let error =
            dataset_from_tensors(features, "x", labels(), "y", classes(None)).expect_err(message);
        assert_eq!(error.message, message);
    }
    let error = dataset_from_tensors(
        Tensor::from_f32(vec![2], vec![1.0, 2.0]).expect("tensor"),
        "x",
        Tensor::from_f32(vec![2], vec![1.0, f32::INFINITY]).expect("tensor"),
        "y",
        LabelKind::Targets,
    )
    .expect_err("infinite target");
    assert_eq!(error.message, "y, example 1: the target is inf");
    // Bool features and labels become 0/1; a rank-1 feature array has scalar features.
    let data = dataset_from_tensors(
        Tensor::from_bool(vec![2], vec![true, false]).expect("tensor"),
        "x",
        Tensor::from_bool(vec![2], vec![false, true]).expect("tensor"),
        "y",
        classes(Some(2)),
    )
    .expect("bools");
    assert_eq!(data.features, Features::F32(vec![1.0, 0.0]));
    assert!(data.feature_shape.is_empty());
    assert_eq!(data.labels, Labels::Classes(vec![0, 1]));
    assert_eq!(data.batch(&[1, 0]).inputs.shape, vec![2]);
}

#[test]
fn safetensors_features_and_labels() {
    let data = load(
        &spec(DataSource::Safetensors {
            path: "data.safetensors".to_string(),
            features: "x".to_string(),
            label: "y".to_string(),
        }),
        &fixtures(),
        &options(classes(Some(2))),
    )
    .expect("safetensors loads");
    assert_eq!(data.len(), 3);
    assert_eq!(data.feature_shape, vec![2]);
    assert_eq!(f32s(&data.features), &[1.0, 2.0, 3.0, 4.0, 5.0, 6.0]);
    assert_eq!(class_labels(&data.labels), &[1, 0, 1]);

    let path = fixtures().join("data.safetensors");
    let error =
        read_safetensors_dataset(&path, "x", "labels", classes(None)).expect_err("no labels");
    assert_eq!(error.code, DATA_INVALID);
    assert_eq!(
        error.message,
        format!(
            "`{}` has no tensor `labels` for the labels; it holds `extra`, `x`, `y`",
            path.display()
        )
    );
    let error = read_safetensors_dataset(&path, "x", "extra", classes(None)).expect_err("count");
    assert_eq!(
        error.message,
        format!(
            "tensor `x` of `{0}` has 3 examples but tensor `extra` of `{0}` has 1",
            path.display()
        )
    );
    let error = read_safetensors_dataset(&fixtures().join("tiny.csv"), "x", "y", classes(None))
        .expect_err("not safetensors");
    assert_eq!(error.code, "weights-corrupt");
}

#[test]
fn load_labels_errors_at_the_data_setting() {
    let data_spec = DataSpec {
        source: DataSource::Csv(csv_spec("no-such-file.csv")),
        span: Span::new(10, 20),
    };
    let error = load(&data_spec, &fixtures(), &options(classes(None))).expect_err("missing");
    assert_eq!(error.code, "io-error");
    assert_eq!(error.primary_span(), Some(Span::new(10, 20)));
    assert_eq!(error.labels[0].message, "the data set given here");
}

// ---------------------------------------------------------------- shuffling, split, batches

fn counting_dataset(count: usize) -> Dataset {
    Dataset {
        features: Features::F32((0..count * 2).map(|value| value as f32).collect()),
        feature_shape: vec![2],
        labels: Labels::Classes((0..count as i64).collect()),
        label_shape: Vec::new(),
    }
}

#[test]
fn split_is_deterministic_and_partitions() {
    let data = counting_dataset(103);
    let (train, validation) = data.split(0.8, 7);
    assert_eq!((train.len(), validation.len()), (82, 21));
    assert_eq!((train.clone(), validation.clone()), data.split(0.8, 7));
    assert_ne!(train, data.split(0.8, 8).0);
    let mut seen: Vec<i64> = class_labels(&train.labels)
        .iter()
        .chain(class_labels(&validation.labels))
        .copied()
        .collect();
    seen.sort_unstable();
    assert_eq!(seen, (0..103).collect::<Vec<i64>>());
    // Features travel with their labels.
    for (row, &label) in f32s(&train.features)
        .chunks(2)
        .zip(class_labels(&train.labels))
    {
        assert_eq!(row, &[label as f32 * 2.0, label as f32 * 2.0 + 1.0]);
    }
}

#[test]
fn epoch_batches_cover_everything_keep_the_remainder_and_are_reproducible() {
    let data = counting_dataset(10);
    let labels_of = |epoch: u64| -> Vec<Vec<i64>> {
        data.epoch_batches(4, 3, epoch)
            .map(|batch| batch.labels.as_i64().expect("i64 labels").to_vec())
            .collect()
    };
    let first = labels_of(0);
    assert_eq!(
        first.iter().map(Vec::len).collect::<Vec<_>>(),
        vec![4, 4, 2]
    );
    let mut all: Vec<i64> = first.concat();
    all.sort_unstable();
    assert_eq!(all, (0..10).collect::<Vec<i64>>());
    assert_eq!(first, labels_of(0));
    assert_ne!(first, labels_of(1));
    assert_eq!(labels_of(1), labels_of(1));

    let batches: Vec<Batch> = data.epoch_batches(4, 3, 0).collect();
    assert_eq!(batches[0].inputs.shape, vec![4, 2]);
    assert_eq!(batches[2].inputs.shape, vec![2, 2]);
    assert_eq!(batches[2].labels.shape, vec![2]);
    // Batch size 0 is taken as 1, and one batch can hold everything.
    assert_eq!(data.epoch_batches(0, 3, 0).count(), 10);
    assert_eq!(data.epoch_batches(64, 3, 0).count(), 1);

    let ordered: Vec<Vec<i64>> = data
        .ordered_batches(3)
        .map(|batch| batch.labels.as_i64().expect("i64").to_vec())
        .collect();
    assert_eq!(
        ordered,
        vec![vec![0, 1, 2], vec![3, 4, 5], vec![6, 7, 8], vec![9]]
    );
}

#[test]
fn cast_features_and_check_classes() {
    let mut data = counting_dataset(3);
    data.cast_features(DType::I64).expect("whole numbers");
    assert_eq!(data.features, Features::I64(vec![0, 1, 2, 3, 4, 5]));
    data.cast_features(DType::F32).expect("to f32");
    assert_eq!(data.features.dtype(), DType::F32);
    data.features = Features::F32(vec![0.0, 1.0, 2.0, 3.5, 4.0, 5.0]);
    let error = data.cast_features(DType::I64).expect_err("3.5");
    assert_eq!(
        error.message,
        "the model takes i64 inputs, but feature 1 of example 1 is 3.5, not a whole number"
    );
    assert_eq!(
        data.cast_features(DType::Bool).expect_err("bool").code,
        "dtype-mismatch"
    );

    assert!(data.check_classes(3, "d.csv").is_ok());
    assert_eq!(
        data.check_classes(2, "d.csv")
            .expect_err("2 classes")
            .message,
        "`d.csv`, example 2: label 2 is out of range for 2 classes (expected 0 to 1)"
    );
    assert_eq!(
        data.check_classes(1, "d.csv").expect_err("1 class").message,
        "`d.csv`, example 1: label 1 is out of range for 1 class (expected 0)"
    );
    data.labels = Labels::Targets(vec![5.0, 6.0, 7.0]);
    assert!(data.check_classes(1, "d.csv").is_ok());
}

#[test]
fn standardizer_uses_training_statistics() {
    let mut train = Dataset {
        features: Features::F32(vec![1.0, 5.0, 3.0, 5.0]),
        feature_shape: vec![2],
        labels: Labels::Classes(vec![0, 1]),
        label_shape: Vec::new(),
    };
    let mut validation = train.subset(&[0]);
    let standardizer = Standardizer::fit(&train).expect("f32 features");
    assert_eq!(standardizer.mean, vec![2.0, 5.0]);
    assert_eq!(standardizer.std, vec![1.0, 1.0]);
    standardizer.apply(&mut train);
    standardizer.apply(&mut validation);
    assert_eq!(train.features, Features::F32(vec![-1.0, 0.0, 1.0, 0.0]));
    assert_eq!(validation.features, Features::F32(vec![-1.0, 0.0]));
    assert!(Standardizer::fit(
        &synthetic(
            SyntheticTask::Copy,
            2,
            3,
            2,
            0,
            SequenceLayout::Aligned,
            classes(None)
        )
        .expect("synthetic")
    )
    .is_none());
}

// ------------------------------------------------------------------------------- synthetic

fn generate(task: SyntheticTask, layout: SequenceLayout, seed: u64) -> Dataset {
    synthetic(task, 6, 10, 200, seed, layout, classes(Some(10))).expect("generates")
}

#[test]
fn synthetic_tasks_compute_their_answers() {
    for task in [
        SyntheticTask::Copy,
        SyntheticTask::Reverse,
        SyntheticTask::Sort,
    ] {
        let data = generate(task, SequenceLayout::Aligned, 1);
        assert_eq!(data.len(), 200);
        assert_eq!(
            (data.feature_shape.clone(), data.label_shape.clone()),
            (vec![6], vec![6])
        );
        let inputs = i64s(&data.features);
        let targets = class_labels(&data.labels);
        assert!(inputs.iter().all(|id| (0..10).contains(id)));
        for (x, y) in inputs.chunks(6).zip(targets.chunks(6)) {
            match task {
                SyntheticTask::Copy => assert_eq!(x, y),
                SyntheticTask::Reverse => {
                    assert!((0..6).all(|i| y[i] == x[5 - i]), "{x:?} {y:?}")
                }
                SyntheticTask::Sort => {
                    assert!(y.windows(2).all(|pair| pair[0] <= pair[1]));
                    let mut sorted = x.to_vec();
                    sorted.sort_unstable();
                    assert_eq!(sorted, y);
                }
            }
        }
        // Not all sequences are already sorted or palindromes.
        assert!(
            inputs.chunks(6).zip(targets.chunks(6)).any(|(x, y)| x != y)
                || task == SyntheticTask::Copy
        );
    }
    assert_eq!(
        synthetic::answer(SyntheticTask::Reverse, &[4, 1, 7]),
        vec![7, 1, 4]
    );
    assert_eq!(
        synthetic::answer(SyntheticTask::Sort, &[4, 1, 7, 1]),
        vec![1, 1, 4, 7]
    );
}

#[test]
fn causal_layout_is_prompt_then_answer() {
    let aligned = generate(SyntheticTask::Reverse, SequenceLayout::Aligned, 5);
    let causal = generate(SyntheticTask::Reverse, SequenceLayout::Causal, 5);
    assert_eq!(causal.feature_shape, vec![12]);
    assert_eq!(causal.label_shape, vec![12]);
    let pairs = i64s(&aligned.features)
        .chunks(6)
        .zip(class_labels(&aligned.labels).chunks(6));
    let causal_pairs = i64s(&causal.features)
        .chunks(12)
        .zip(class_labels(&causal.labels).chunks(12));
    for ((x, y), (input, target)) in pairs.zip(causal_pairs) {
        // The same examples in either layout.
        assert_eq!(&input[..6], x);
        assert_eq!(input[6], 10, "the separator is `vocab`");
        assert_eq!(&input[7..], &y[..5]);
        assert_eq!(&target[..6], &[IGNORE_INDEX; 6]);
        assert_eq!(&target[6..], y);
        // Shifted by one: each answer position predicts what the input shows one step later.
        assert_eq!(&input[7..], &target[6..11]);
    }
    assert!(causal.check_classes(10, "synthetic").is_ok());
}

#[test]
fn synthetic_data_is_reproducible_from_the_seed() {
    let first = generate(SyntheticTask::Sort, SequenceLayout::Causal, 42);
    assert_eq!(
        first,
        generate(SyntheticTask::Sort, SequenceLayout::Causal, 42)
    );
    assert_ne!(
        first,
        generate(SyntheticTask::Sort, SequenceLayout::Causal, 43)
    );
    // Pinned: the first example of seed 42 never changes.
    let data = synthetic(
        SyntheticTask::Copy,
        8,
        10,
        1,
        42,
        SequenceLayout::Aligned,
        classes(None),
    )
    .expect("one example");
    assert_eq!(i64s(&data.features), PINNED_COPY);
    // Through `load`, with the seed from the options.
    let loaded = load(
        &spec(DataSource::Synthetic {
            task: SyntheticTask::Sort,
            length: 6,
            vocab: 10,
            samples: 200,
            layout: SequenceLayout::Causal,
        }),
        Path::new("."),
        &LoadOptions {
            labels: classes(Some(10)),
            seed: 42,
        },
    )
    .expect("loads");
    assert_eq!(loaded, first);
    // The spec's layout is the one generated.
    let aligned = load(
        &spec(DataSource::Synthetic {
            task: SyntheticTask::Sort,
            length: 6,
            vocab: 10,
            samples: 200,
            layout: SequenceLayout::Aligned,
        }),
        Path::new("."),
        &LoadOptions {
            labels: classes(Some(10)),
            seed: 42,
        },
    )
    .expect("loads");
    assert_eq!(
        aligned,
        generate(SyntheticTask::Sort, SequenceLayout::Aligned, 42)
    );
}

const PINNED_COPY: &[i64] = &[1, 2, 5, 1, 2, 4, 5, 2];

#[test]
fn synthetic_errors() {
    let make = |length, vocab, samples, labels| {
        synthetic(
            SyntheticTask::Reverse,
            length,
            vocab,
            samples,
            0,
            SequenceLayout::Causal,
            labels,
        )
        .expect_err("an error")
    };
    let error = make(4, 10, 10, LabelKind::Targets);
    assert_eq!(error.code, DATA_INVALID);
    assert_eq!(
        error.message,
        "`synthetic(\"reverse\")` has token ids as labels, which need a classification loss"
    );
    let error = make(4, 10, 10, classes(Some(8)));
    assert_eq!(
        error.message,
        "`synthetic(\"reverse\")` has labels 0 to 9, but the model has 8 classes"
    );
    assert_eq!(
        make(0, 10, 10, classes(None)).message,
        "`synthetic(\"reverse\")` needs a positive `length`"
    );
    let error = make(1 << 20, 10, 1 << 20, classes(None));
    assert_eq!(error.code, "tensor-too-large");
    assert_eq!(
        error.message,
        "`synthetic(\"reverse\")` with 1048576 samples of 2097152 tokens has more than 268435456 elements"
    );
    assert_eq!(
        make(usize::MAX, 10, usize::MAX, classes(None)).code,
        "tensor-too-large"
    );
    assert_eq!(
        make(4, usize::MAX, 10, classes(None)).message,
        format!(
            "`synthetic(\"reverse\")`: `vocab = {}` is too large for i64 token ids",
            usize::MAX
        )
    );
    // A huge vocabulary that fits is fine.
    let data = synthetic(
        SyntheticTask::Sort,
        3,
        i64::MAX as usize,
        4,
        0,
        SequenceLayout::Causal,
        classes(None),
    )
    .expect("large vocab");
    assert!(i64s(&data.features).iter().all(|&id| id >= 0));
}
