//! MNIST IDX files (`train-images-idx3-ubyte`, `train-labels-idx1-ubyte`, ...), plain or gzip.
//!
//! Format: two zero bytes, an element-type byte (0x08 = unsigned byte, the only one MNIST uses),
//! a rank byte, then `rank` big-endian u32 dimensions, then the elements in row-major order.
//! Sizes are checked against the header before anything is allocated.

use std::path::Path;

use crate::dataset::Dataset;
use crate::error::{DatasetError, Location, Result};
use crate::gz::{maybe_gunzip, read_file};

const UBYTE: u8 = 0x08;
/// MNIST has ten classes.
pub const MNIST_CLASSES: usize = 10;

/// A parsed IDX array of unsigned bytes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct IdxArray {
    /// The dimensions from the header.
    pub dims: Vec<usize>,
    /// The elements, row-major.
    pub data: Vec<u8>,
}

/// Parses an IDX array (plain or gzip). `what` names it in errors.
pub fn parse(bytes: &[u8], what: &'static str) -> Result<IdxArray> {
    let bytes = maybe_gunzip(bytes)?;
    let bytes = &*bytes;
    if bytes.len() < 4 || bytes[0] != 0 || bytes[1] != 0 {
        return Err(DatasetError::BadMagic {
            found: bytes.iter().take(4).copied().collect(),
        });
    }
    if bytes[2] != UBYTE {
        return Err(DatasetError::UnsupportedIdxType { code: bytes[2] });
    }
    let rank = usize::from(bytes[3]);
    let header_len = 4 + 4 * rank;
    let header = bytes.get(4..header_len).ok_or(DatasetError::Truncated {
        what,
        expected: header_len,
        found: bytes.len(),
    })?;
    let dims: Vec<usize> = header
        .chunks_exact(4)
        .map(|c| u32::from_be_bytes([c[0], c[1], c[2], c[3]]) as usize)
        .collect();
    let body = &bytes[header_len..];
    // Saturate: an absurd header is just "truncated", never an overflow or a huge allocation.
    let expected = dims.iter().fold(1usize, |acc, &d| acc.saturating_mul(d));
    if body.len() < expected {
        return Err(DatasetError::Truncated {
            what,
            expected: header_len.saturating_add(expected),
            found: bytes.len(),
        });
    }
    if body.len() > expected {
        return Err(DatasetError::TrailingBytes {
            what,
            extra: body.len() - expected,
        });
    }
    Ok(IdxArray {
        dims,
        data: body.to_vec(),
    })
}

/// Builds an MNIST dataset from an images file (rank 3: n x rows x cols) and a labels file
/// (rank 1: n), each plain or gzip. Pixels are kept as 0..255 floats, like the shipped
/// `mnist_5k`; labels must be below 10.
pub fn mnist_from_bytes(images: &[u8], labels: &[u8]) -> Result<Dataset> {
    let images = parse(images, "images")?;
    let labels = parse(labels, "labels")?;
    let &[n, rows, cols] = images.dims.as_slice() else {
        return Err(DatasetError::WrongRank {
            what: "images",
            expected: 3,
            found: images.dims.len(),
        });
    };
    if labels.dims.len() != 1 {
        return Err(DatasetError::WrongRank {
            what: "labels",
            expected: 1,
            found: labels.dims.len(),
        });
    }
    if labels.dims[0] != n {
        return Err(DatasetError::CountMismatch {
            images: n,
            labels: labels.dims[0],
        });
    }
    if let Some((i, &l)) = labels
        .data
        .iter()
        .enumerate()
        .find(|(_, &l)| usize::from(l) >= MNIST_CLASSES)
    {
        return Err(DatasetError::LabelOutOfRange {
            at: Location::Item(i),
            label: u64::from(l),
            num_classes: MNIST_CLASSES,
        });
    }
    let features = images.data.iter().map(|&p| f32::from(p)).collect();
    let labels = labels.data.iter().map(|&l| u32::from(l)).collect();
    Dataset::new(features, labels, rows * cols, MNIST_CLASSES)
}

/// [`mnist_from_bytes`] on two files.
pub fn mnist_from_paths(images: impl AsRef<Path>, labels: impl AsRef<Path>) -> Result<Dataset> {
    mnist_from_bytes(&read_file(images.as_ref())?, &read_file(labels.as_ref())?)
}

/// Encodes unsigned bytes as an IDX array (for tests, fixtures and export).
pub fn encode(dims: &[u32], data: &[u8]) -> Vec<u8> {
    let mut out = vec![0, 0, UBYTE, dims.len() as u8];
    for d in dims {
        out.extend_from_slice(&d.to_be_bytes());
    }
    out.extend_from_slice(data);
    out
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn images(n: u32) -> Vec<u8> {
        encode(&[n, 2, 2], &(0..n as u8 * 4).collect::<Vec<_>>())
    }

    #[test]
    fn round_trip() {
        let ds = mnist_from_bytes(&images(3), &encode(&[3], &[7, 0, 9])).unwrap();
        assert_eq!(ds.len(), 3);
        assert_eq!(ds.num_features(), 4);
        assert_eq!(ds.num_classes(), 10);
        assert_eq!(ds.row(1).unwrap(), &[4.0, 5.0, 6.0, 7.0]);
        assert_eq!(ds.labels(), &[7, 0, 9]);
    }

    #[test]
    fn malformed() {
        let labels = encode(&[3], &[1, 2, 3]);
        let mut bad = images(3);
        bad[0] = 1;
        assert!(matches!(
            mnist_from_bytes(&bad, &labels),
            Err(DatasetError::BadMagic { .. })
        ));
        assert!(matches!(
            mnist_from_bytes(&[0, 0], &labels),
            Err(DatasetError::BadMagic { .. })
        ));
        let mut f32type = images(3);
        f32type[2] = 0x0d;
        assert!(matches!(
            mnist_from_bytes(&f32type, &labels),
            Err(DatasetError::UnsupportedIdxType { code: 0x0d })
        ));
        let full = images(3);
        assert!(matches!(
            mnist_from_bytes(&full[..full.len() - 1], &labels),
            Err(DatasetError::Truncated { what: "images", .. })
        ));
        assert!(matches!(
            mnist_from_bytes(&full[..10], &labels),
            Err(DatasetError::Truncated {
                what: "images",
                expected: 16,
                found: 10
            })
        ));
        let mut long = full.clone();
        long.push(0);
        assert!(matches!(
            mnist_from_bytes(&long, &labels),
            Err(DatasetError::TrailingBytes { extra: 1, .. })
        ));
        assert!(matches!(
            mnist_from_bytes(&full, &encode(&[2], &[1, 2])),
            Err(DatasetError::CountMismatch {
                images: 3,
                labels: 2
            })
        ));
        assert!(matches!(
            mnist_from_bytes(&full, &encode(&[3], &[1, 10, 3])),
            Err(DatasetError::LabelOutOfRange {
                at: Location::Item(1),
                label: 10,
                ..
            })
        ));
        assert!(matches!(
            mnist_from_bytes(&labels, &labels),
            Err(DatasetError::WrongRank { what: "images", .. })
        ));
        // a header announcing 2^32-1 x 2^32-1 images must not allocate or overflow
        let huge = encode(&[u32::MAX, u32::MAX, u32::MAX], &[]);
        assert!(matches!(
            mnist_from_bytes(&huge, &labels),
            Err(DatasetError::Truncated { .. })
        ));
    }
}
