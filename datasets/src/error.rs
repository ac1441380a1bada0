//! The crate's one error type.

use std::fmt;
use std::path::PathBuf;

/// Result alias for this crate.
pub type Result<T, E = DatasetError> = std::result::Result<T, E>;

/// Where in an input a problem was found.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Location {
    /// 1-based line of a text file (CSV).
    Line(u64),
    /// 0-based record index (an IDX item, a row of an in-memory dataset).
    Item(usize),
}

impl fmt::Display for Location {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Location::Line(l) => write!(f, "line {l}"),
            Location::Item(i) => write!(f, "item {i}"),
        }
    }
}

/// Everything that can go wrong while loading, checking, splitting or partitioning data.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum DatasetError {
    /// A file could not be read.
    #[error("cannot read {path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
    /// The input looked like gzip but did not decompress.
    #[error("corrupt gzip stream: {0}")]
    Gzip(std::io::Error),
    /// The CSV reader itself failed (bad UTF-8, I/O inside the reader).
    #[error("malformed CSV at {at}: {message}")]
    Csv {
        /// Where.
        at: Location,
        /// The reader's message.
        message: String,
    },
    /// The input has no data rows.
    #[error("no data rows")]
    Empty,
    /// A row has a different number of fields than the first row.
    #[error("ragged row at {at}: expected {expected} fields, found {found}")]
    RaggedRow {
        /// Where.
        at: Location,
        /// Fields in the first row (or header).
        expected: usize,
        /// Fields in this row.
        found: usize,
    },
    /// A feature field is not a number.
    #[error("non-numeric value {value:?} at {at}, column {column}")]
    NonNumeric {
        /// Where.
        at: Location,
        /// 0-based column.
        column: usize,
        /// The offending text.
        value: String,
    },
    /// A feature is NaN or infinite.
    #[error("non-finite value at {at}, column {column}")]
    NonFinite {
        /// Where.
        at: Location,
        /// 0-based column (feature index for in-memory data).
        column: usize,
    },
    /// A label field is not a non-negative integer.
    #[error("invalid label {value:?} at {at} (labels are integers 0..num_classes)")]
    InvalidLabel {
        /// Where.
        at: Location,
        /// The offending text.
        value: String,
    },
    /// A label is not below the number of classes.
    #[error("label {label} out of range at {at}: num_classes = {num_classes}")]
    LabelOutOfRange {
        /// Where.
        at: Location,
        /// The label.
        label: u64,
        /// The number of classes it must be below.
        num_classes: usize,
    },
    /// The label column named in the options does not exist.
    #[error("label column {column} not found (row has {width} fields)")]
    LabelColumnNotFound {
        /// The requested column, as given.
        column: String,
        /// Number of fields in the header/first row.
        width: usize,
    },
    /// A row holds a label but no feature.
    #[error("rows have no feature columns")]
    NoFeatures,
    /// An IDX file does not start with 0x00 0x00.
    #[error("bad IDX magic {found:02x?}: expected 00 00 <type> <rank>")]
    BadMagic {
        /// The first four bytes (or fewer, if the file is shorter).
        found: Vec<u8>,
    },
    /// An IDX element type other than unsigned byte (0x08).
    #[error("unsupported IDX element type 0x{code:02x} (only 0x08, unsigned byte)")]
    UnsupportedIdxType {
        /// The type code.
        code: u8,
    },
    /// An IDX file has the wrong number of dimensions for what it should hold.
    #[error("IDX {what} file has rank {found}, expected {expected}")]
    WrongRank {
        /// "images" or "labels".
        what: &'static str,
        /// Expected rank.
        expected: usize,
        /// Rank in the header.
        found: usize,
    },
    /// A binary input ends before its header says it should.
    #[error("truncated {what}: expected {expected} bytes, found {found}")]
    Truncated {
        /// What was being read.
        what: &'static str,
        /// Bytes the header promises.
        expected: usize,
        /// Bytes present.
        found: usize,
    },
    /// A binary input has bytes after the end its header announces.
    #[error("{extra} trailing bytes after {what}")]
    TrailingBytes {
        /// What was being read.
        what: &'static str,
        /// Number of extra bytes.
        extra: usize,
    },
    /// The image and label files hold different numbers of items.
    #[error("{images} images but {labels} labels")]
    CountMismatch {
        /// Items in the image file.
        images: usize,
        /// Items in the label file.
        labels: usize,
    },
    /// Feature buffer, labels and dimensions do not agree.
    #[error("shape mismatch: {features} feature values, {labels} labels, {num_features} features per row")]
    ShapeMismatch {
        /// Length of the flat feature buffer.
        features: usize,
        /// Number of labels.
        labels: usize,
        /// Declared features per row.
        num_features: usize,
    },
    /// Data with a different number of features than expected (e.g. a fitted [`crate::Scaler`]).
    #[error("expected {expected} features per row, found {found}")]
    FeatureMismatch {
        /// Expected features per row.
        expected: usize,
        /// Found features per row.
        found: usize,
    },
    /// An index is outside the dataset.
    #[error("index {index} out of range for a dataset of {len} rows")]
    IndexOutOfRange {
        /// The index.
        index: usize,
        /// Rows in the dataset.
        len: usize,
    },
    /// A parameter (fraction, alpha, counts...) is outside its domain.
    #[error("invalid parameter {name} = {value}: {reason}")]
    InvalidParameter {
        /// Parameter name.
        name: &'static str,
        /// Its value, as text.
        value: String,
        /// What it must satisfy.
        reason: &'static str,
    },
}

impl DatasetError {
    pub(crate) fn invalid(
        name: &'static str,
        value: impl fmt::Display,
        reason: &'static str,
    ) -> Self {
        DatasetError::InvalidParameter {
            name,
            value: value.to_string(),
            reason,
        }
    }
}
