//! CSV loader: numeric feature columns plus one integer label column.

use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::dataset::Dataset;
use crate::error::{DatasetError, Location, Result};
use crate::gz::{maybe_gunzip, read_file};

/// Which column holds the label.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LabelColumn {
    /// The first column.
    First,
    /// The last column (the default; all shipped datasets use it).
    Last,
    /// A 0-based column index.
    Index(usize),
    /// A column named in the header.
    Name(String),
}

/// How to read a CSV file.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct CsvOptions {
    /// The first line is a header (column names), not data.
    pub has_header: bool,
    /// The label column.
    pub label: LabelColumn,
    /// The number of classes; labels must be below it. `None` infers `max label + 1`.
    pub num_classes: Option<usize>,
    /// Field delimiter.
    pub delimiter: u8,
}

impl Default for CsvOptions {
    fn default() -> Self {
        CsvOptions {
            has_header: true,
            label: LabelColumn::Last,
            num_classes: None,
            delimiter: b',',
        }
    }
}

/// Loads a CSV dataset from bytes (plain or gzip). Features are kept as they are in the file:
/// fit a [`crate::Scaler`] on the training split to standardize them.
pub fn from_bytes(bytes: &[u8], options: &CsvOptions) -> Result<Dataset> {
    let bytes = maybe_gunzip(bytes)?;
    let mut reader = ::csv::ReaderBuilder::new()
        .has_headers(false)
        .delimiter(options.delimiter)
        .flexible(true) // ragged rows are reported by us, with their line
        .trim(::csv::Trim::All)
        .from_reader(&*bytes);

    let mut records = reader.records();
    let mut features = Vec::new();
    let mut labels = Vec::new();
    let mut width = None;
    let mut label_col = None;

    if options.has_header {
        let header = match records.next() {
            Some(r) => r.map_err(|e| csv_error(&bytes, e))?,
            None => return Err(DatasetError::Empty),
        };
        width = Some(header.len());
        label_col = Some(resolve_label(&options.label, header.len(), Some(&header))?);
    }

    for record in records {
        let record = record.map_err(|e| csv_error(&bytes, e))?;
        // Computed only on error: the reader's own line counter skips blank lines.
        let byte = record.position().map_or(0, |p| p.byte());
        let at = || line_at(&bytes, byte);
        let expected = *width.get_or_insert(record.len());
        if record.len() != expected {
            return Err(DatasetError::RaggedRow {
                at: at(),
                expected,
                found: record.len(),
            });
        }
        let label_col = match label_col {
            Some(c) => c,
            None => *label_col.insert(resolve_label(&options.label, expected, None)?),
        };
        for (column, field) in record.iter().enumerate() {
            if column == label_col {
                let label = parse_label(field, at)?;
                if let Some(num_classes) = options.num_classes.filter(|&k| label as usize >= k) {
                    return Err(DatasetError::LabelOutOfRange {
                        at: at(),
                        label: u64::from(label),
                        num_classes,
                    });
                }
                labels.push(label);
            } else {
                let value: f32 = field.parse().map_err(|_| DatasetError::NonNumeric {
                    at: at(),
                    column,
                    value: field.to_owned(),
                })?;
                if !value.is_finite() {
                    return Err(DatasetError::NonFinite { at: at(), column });
                }
                features.push(value);
            }
        }
    }

    let width = width.unwrap_or(0);
    if labels.is_empty() {
        return Err(DatasetError::Empty);
    }
    let max_label = labels.iter().copied().max().unwrap_or(0) as usize;
    let num_classes = options.num_classes.unwrap_or(max_label + 1);
    Dataset::new(features, labels, width - 1, num_classes)
}

/// Loads a CSV dataset from a file (plain or gzip, detected from the content).
pub fn from_path(path: impl AsRef<Path>, options: &CsvOptions) -> Result<Dataset> {
    from_bytes(&read_file(path.as_ref())?, options)
}

fn resolve_label(
    label: &LabelColumn,
    width: usize,
    header: Option<&::csv::StringRecord>,
) -> Result<usize> {
    if width < 2 {
        return Err(DatasetError::NoFeatures);
    }
    let not_found = |column: String| DatasetError::LabelColumnNotFound { column, width };
    match label {
        LabelColumn::First => Ok(0),
        LabelColumn::Last => Ok(width - 1),
        LabelColumn::Index(i) if *i < width => Ok(*i),
        LabelColumn::Index(i) => Err(not_found(i.to_string())),
        LabelColumn::Name(name) => header
            .and_then(|h| h.iter().position(|c| c == name))
            .ok_or_else(|| not_found(format!("{name:?}"))),
    }
}

fn parse_label(field: &str, at: impl Fn() -> Location) -> Result<u32> {
    let invalid = || DatasetError::InvalidLabel {
        at: at(),
        value: field.to_owned(),
    };
    if let Ok(l) = field.parse::<u32>() {
        return Ok(l);
    }
    // Accept integral floats such as "1.0", as some exporters write them.
    let f: f64 = field.parse().map_err(|_| invalid())?;
    if f.fract() == 0.0 && (0.0..=f64::from(u32::MAX)).contains(&f) {
        Ok(f as u32)
    } else {
        Err(invalid())
    }
}

/// The 1-based line of the record the reader says starts at byte offset `byte`. The reader
/// counts skipped blank lines as part of the next record, so they are stepped over first.
fn line_at(bytes: &[u8], byte: u64) -> Location {
    let mut start = usize::try_from(byte).unwrap_or(usize::MAX).min(bytes.len());
    while matches!(bytes.get(start), Some(b'\n' | b'\r')) {
        start += 1;
    }
    Location::Line(1 + bytes[..start].iter().filter(|&&b| b == b'\n').count() as u64)
}

fn csv_error(bytes: &[u8], e: ::csv::Error) -> DatasetError {
    DatasetError::Csv {
        at: line_at(bytes, e.position().map_or(0, |p| p.byte())),
        message: e.to_string(),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn load(text: &str) -> Result<Dataset> {
        from_bytes(text.as_bytes(), &CsvOptions::default())
    }

    #[test]
    fn reads_header_and_last_label() {
        let ds = load("a,b,y\n1,2,0\n3.5, 4 ,1\n").unwrap();
        assert_eq!(ds.len(), 2);
        assert_eq!(ds.num_features(), 2);
        assert_eq!(ds.num_classes(), 2);
        assert_eq!(ds.features(), &[1.0, 2.0, 3.5, 4.0]);
        assert_eq!(ds.labels(), &[0, 1]);
    }

    #[test]
    fn label_by_name_first_and_index() {
        let text = "y,a,b\n2,1,2\n0,3,4\n";
        let by_name = CsvOptions {
            label: LabelColumn::Name("y".into()),
            ..CsvOptions::default()
        };
        let first = CsvOptions {
            label: LabelColumn::First,
            ..CsvOptions::default()
        };
        let idx = CsvOptions {
            label: LabelColumn::Index(0),
            ..CsvOptions::default()
        };
        for o in [by_name, first, idx] {
            let ds = from_bytes(text.as_bytes(), &o).unwrap();
            assert_eq!(ds.labels(), &[2, 0]);
            assert_eq!(ds.num_classes(), 3);
            assert_eq!(ds.features(), &[1.0, 2.0, 3.0, 4.0]);
        }
        let missing = CsvOptions {
            label: LabelColumn::Name("z".into()),
            ..CsvOptions::default()
        };
        assert!(matches!(
            from_bytes(text.as_bytes(), &missing),
            Err(DatasetError::LabelColumnNotFound { width: 3, .. })
        ));
    }

    #[test]
    fn no_header() {
        let o = CsvOptions {
            has_header: false,
            ..CsvOptions::default()
        };
        let ds = from_bytes(b"1,2,1\n3,4,0\n", &o).unwrap();
        assert_eq!(ds.len(), 2);
    }

    #[test]
    fn typed_errors() {
        assert!(matches!(
            load("a,b,y\n1,2,0\n3,1\n"),
            Err(DatasetError::RaggedRow {
                at: Location::Line(3),
                expected: 3,
                found: 2
            })
        ));
        assert!(matches!(
            load("a,b,y\n1,x,0\n"),
            Err(DatasetError::NonNumeric {
                at: Location::Line(2),
                column: 1,
                ..
            })
        ));
        assert!(matches!(
            load("a,b,y\n1,,0\n"),
            Err(DatasetError::NonNumeric { .. })
        ));
        assert!(matches!(
            load("a,b,y\n1,inf,0\n"),
            Err(DatasetError::NonFinite { .. })
        ));
        assert!(matches!(
            load("a,b,y\n1,2,-1\n"),
            Err(DatasetError::InvalidLabel { .. })
        ));
        assert!(matches!(
            load("a,b,y\n1,2,0.5\n"),
            Err(DatasetError::InvalidLabel { .. })
        ));
        assert!(matches!(load("a,b,y\n"), Err(DatasetError::Empty)));
        assert!(matches!(load(""), Err(DatasetError::Empty)));
        assert!(matches!(load("y\n1\n"), Err(DatasetError::NoFeatures)));
        let two = CsvOptions {
            num_classes: Some(2),
            ..CsvOptions::default()
        };
        assert!(matches!(
            from_bytes(b"a,y\n1,0\n1,2\n", &two),
            Err(DatasetError::LabelOutOfRange {
                at: Location::Line(3),
                label: 2,
                num_classes: 2
            })
        ));
        // blank lines are skipped, and the reported line is still the file's
        assert!(matches!(
            from_bytes(b"a,y\n\n1,0\n\n1,5\n", &two),
            Err(DatasetError::LabelOutOfRange {
                at: Location::Line(5),
                label: 5,
                num_classes: 2
            })
        ));
        assert!(matches!(
            from_bytes(b"a,y\n1,0\n1,\xff\n", &CsvOptions::default()),
            Err(DatasetError::Csv { .. })
        ));
    }

    #[test]
    fn integral_float_labels() {
        assert_eq!(load("a,y\n1,1.0\n").unwrap().labels(), &[1]);
    }
}
