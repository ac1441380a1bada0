//! Transparent gzip: inputs that start with the gzip magic are decompressed, others pass through.

use std::borrow::Cow;
use std::io::Read;
use std::path::Path;

use crate::error::{DatasetError, Result};

const GZIP_MAGIC: [u8; 2] = [0x1f, 0x8b];

/// Returns `bytes` unchanged, or decompressed if they are a gzip stream.
pub fn maybe_gunzip(bytes: &[u8]) -> Result<Cow<'_, [u8]>> {
    if bytes.starts_with(&GZIP_MAGIC) {
        let mut out = Vec::new();
        // MultiGzDecoder: concatenated members are valid gzip too.
        flate2::read::MultiGzDecoder::new(bytes)
            .read_to_end(&mut out)
            .map_err(DatasetError::Gzip)?;
        Ok(Cow::Owned(out))
    } else {
        Ok(Cow::Borrowed(bytes))
    }
}

/// Reads a whole file, with the path in the error.
pub(crate) fn read_file(path: &Path) -> Result<Vec<u8>> {
    std::fs::read(path).map_err(|source| DatasetError::Io {
        path: path.to_path_buf(),
        source,
    })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use std::io::Write;

    #[test]
    fn passes_plain_and_inflates_gzip() {
        assert_eq!(&*maybe_gunzip(b"abc").unwrap(), b"abc");
        let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        enc.write_all(b"hello").unwrap();
        let gz = enc.finish().unwrap();
        assert_eq!(&*maybe_gunzip(&gz).unwrap(), b"hello");
        let cut = &gz[..gz.len() - 6];
        assert!(matches!(maybe_gunzip(cut), Err(DatasetError::Gzip(_))));
    }
}
