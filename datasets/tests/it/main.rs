//! Integration tests for fedchain-datasets: files on disk, gzip, and partition properties.
#![allow(clippy::unwrap_used)]

use std::io::Write;

use fedchain_datasets::{builtin, csv, idx, DatasetError, Partitioner};
use proptest::prelude::*;

fn gzip(bytes: &[u8]) -> Vec<u8> {
    let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    enc.write_all(bytes).unwrap();
    enc.finish().unwrap()
}

fn tempdir(name: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!(
        "fedchain-datasets-it-{name}-{}",
        std::process::id()
    ));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

#[test]
fn mnist_idx_files_plain_and_gzip() {
    let dir = tempdir("idx");
    let pixels: Vec<u8> = (0..4 * 28 * 28).map(|i| (i % 256) as u8).collect();
    let images = idx::encode(&[4, 28, 28], &pixels);
    let labels = idx::encode(&[4], &[3, 1, 4, 1]);
    let paths = [
        (
            "train-images-idx3-ubyte",
            images.clone(),
            "train-labels-idx1-ubyte",
            labels.clone(),
        ),
        (
            "train-images-idx3-ubyte.gz",
            gzip(&images),
            "train-labels-idx1-ubyte.gz",
            gzip(&labels),
        ),
    ];
    for (img_name, img, lbl_name, lbl) in paths {
        std::fs::write(dir.join(img_name), img).unwrap();
        std::fs::write(dir.join(lbl_name), lbl).unwrap();
        let ds = idx::mnist_from_paths(dir.join(img_name), dir.join(lbl_name)).unwrap();
        assert_eq!(
            (ds.len(), ds.num_features(), ds.num_classes()),
            (4, 784, 10)
        );
        assert_eq!(ds.labels(), &[3, 1, 4, 1]);
        assert_eq!(ds.row(1).unwrap()[0], f32::from(((784) % 256) as u8));
    }
    let missing = idx::mnist_from_paths(dir.join("nope"), dir.join("nope"));
    assert!(matches!(missing, Err(DatasetError::Io { .. })));
    // a truncated gzip stream is a typed error too
    let gz = gzip(&images);
    std::fs::write(dir.join("cut.gz"), &gz[..gz.len() / 2]).unwrap();
    let cut = idx::mnist_from_paths(dir.join("cut.gz"), dir.join("train-labels-idx1-ubyte"));
    assert!(matches!(cut, Err(DatasetError::Gzip(_))), "{cut:?}");
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn csv_gz_file_on_disk_matches_builtin() {
    let dir = tempdir("csv");
    let path = dir.join("bc.csv.gz");
    std::fs::write(&path, builtin::Builtin::BreastCancer.raw().unwrap()).unwrap();
    let ds = csv::from_path(
        &path,
        &builtin::Builtin::BreastCancer.csv_options().unwrap(),
    )
    .unwrap();
    assert_eq!(ds, builtin::breast_cancer());
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn partition_stats_of_a_builtin() {
    let data = builtin::digits();
    let part = Partitioner::Dirichlet { alpha: 0.3 }
        .partition(&data, 8, 11)
        .unwrap();
    let stats = part.stats(&data).unwrap();
    assert_eq!(stats.iter().map(|s| s.size).sum::<usize>(), data.len());
    let mut total = vec![0; 10];
    for s in &stats {
        assert_eq!(s.label_histogram.iter().sum::<usize>(), s.size);
        for (t, h) in total.iter_mut().zip(&s.label_histogram) {
            *t += h;
        }
    }
    assert_eq!(total, data.label_histogram());
    let parts = part.apply(&data).unwrap();
    for (p, s) in parts.iter().zip(&stats) {
        assert_eq!(p.label_histogram(), s.label_histogram);
    }
}

#[test]
fn partitioner_config_is_serde() {
    let p: Partitioner = serde_json::from_str(r#"{"kind":"dirichlet","alpha":0.5}"#).unwrap();
    assert_eq!(p, Partitioner::Dirichlet { alpha: 0.5 });
    assert!(
        serde_json::from_str::<Partitioner>(r#"{"kind":"dirichlet","alpha":0.5,"x":1}"#).is_err()
    );
}

fn any_partitioner() -> impl Strategy<Value = Partitioner> {
    prop_oneof![
        Just(Partitioner::Iid),
        (0.01f64..100.0).prop_map(|alpha| Partitioner::Dirichlet { alpha }),
        (0.01f64..100.0).prop_map(|alpha| Partitioner::Quantity { alpha }),
        (1usize..4).prop_map(|per_hospital| Partitioner::Shards { per_hospital }),
    ]
}

proptest! {
    /// Every row lands in exactly one hospital, nobody is empty, and the seed fixes the result.
    #[test]
    fn partitions_are_disjoint_covers(
        labels in prop::collection::vec(0u32..5, 1..300),
        hospitals in 1usize..20,
        partitioner in any_partitioner(),
        seed in any::<u64>(),
    ) {
        let res = partitioner.partition_labels(&labels, 5, hospitals, seed);
        let feasible = hospitals <= labels.len()
            && match partitioner {
                Partitioner::Shards { per_hospital } => hospitals * per_hospital <= labels.len(),
                _ => true,
            };
        prop_assert_eq!(res.is_ok(), feasible);
        if let Ok(p) = res {
            prop_assert_eq!(p.num_hospitals(), hospitals);
            prop_assert!(p.parts().iter().all(|h| !h.is_empty()));
            let mut all: Vec<usize> = p.parts().iter().flatten().copied().collect();
            all.sort_unstable();
            prop_assert_eq!(all, (0..labels.len()).collect::<Vec<_>>());
            prop_assert_eq!(Some(p), partitioner.partition_labels(&labels, 5, hospitals, seed).ok());
        }
    }

    /// Arbitrary bytes never panic the loaders.
    #[test]
    fn loaders_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..200)) {
        let _ = idx::mnist_from_bytes(&bytes, &bytes);
        let _ = idx::parse(&bytes, "fuzz");
        let _ = csv::from_bytes(&bytes, &csv::CsvOptions::default());
    }
}
