//! Unit tests of snapshot discovery: layouts, completion, what is skipped, and the reasons for what is not served.

use super::*;

/// A temporary folder removed on drop.
struct Dir(PathBuf);

impl Dir {
    fn new(tag: &str) -> Dir {
        let nanos = SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .unwrap_or_default()
            .as_nanos();
        let dir = std::env::temp_dir().join(format!(
            "crmscore-discover-{tag}-{}-{nanos}",
            std::process::id()
        ));
        std::fs::create_dir_all(&dir).unwrap();
        Dir(dir)
    }

    /// Writes `relative` with bytes that carry the Parquet magic at both ends (discovery reads nothing else).
    fn parquet(&self, relative: &str) -> PathBuf {
        self.write(relative, b"PAR1 footer-free test bytes PAR1")
    }

    fn write(&self, relative: &str, bytes: &[u8]) -> PathBuf {
        let path = self.0.join(relative);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, bytes).unwrap();
        path
    }
}

impl Drop for Dir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn one(path: &Path, options: &DiscoverOptions) -> Result<SnapshotSource, String> {
    let found = discover(path, options).unwrap();
    match (found.sources.first(), found.unservable.first()) {
        (Some(s), None) => Ok(s.clone()),
        (None, Some(u)) => Err(u.reason.clone()),
        other => panic!("expected one snapshot, found {other:?}"),
    }
}

#[test]
fn a_spark_partitioned_folder_reads_every_part_with_typed_values() {
    let dir = Dir::new("spark");
    let snap = dir.0.join("customers");
    dir.parquet("customers/segment=a/tier=1/part-00000-5f1e.c000.snappy.parquet");
    dir.parquet("customers/segment=b%20c/tier=2/part-00001-5f1e.c000");
    dir.parquet(
        "customers/segment=__HIVE_DEFAULT_PARTITION__/tier=3/part-00002-5f1e.c000.zstd.parquet",
    );
    for skipped in [
        "customers/_SUCCESS",
        "customers/_committed_123",
        "customers/_started_123",
        "customers/segment=a/tier=1/.part-00000-5f1e.c000.snappy.parquet.crc",
        "customers/segment=a/tier=1/part-9.parquet.tmp",
        "customers/_metadata",
    ] {
        dir.write(skipped, b"");
    }
    let source = one(&snap, &DiscoverOptions::default()).unwrap();
    assert_eq!(source.name, "customers");
    assert_eq!(source.files.len(), 3, "{:?}", source.files);
    // Files in path order: `__HIVE_DEFAULT_PARTITION__` sorts before `a`.
    assert_eq!(
        source.files[0].value("segment"),
        Some(&PartitionValue::Null)
    );
    assert_eq!(source.files[0].value("tier"), Some(&PartitionValue::Int(3)));
    assert_eq!(
        source.files[2].partition,
        vec![
            ("segment".to_string(), PartitionValue::Str("b c".into())),
            ("tier".to_string(), PartitionValue::Int(2)),
        ]
    );
    assert!(source.files[2].path.ends_with("part-00001-5f1e.c000"));
    assert_eq!(source.modified, modified(&snap.join("_SUCCESS")).unwrap());
    // The same folder inside a folder of snapshots is one snapshot.
    let inside = discover(&dir.0, &DiscoverOptions::default()).unwrap();
    assert_eq!(inside.sources, vec![source]);
}

#[test]
fn a_folder_without_success_waits_unless_it_settled() {
    let dir = Dir::new("settle");
    dir.parquet("k=1/data_0.parquet");
    dir.parquet("k=2.5/data_0.parquet");
    let err = one(&dir.0, &DiscoverOptions::default()).unwrap_err();
    assert!(
        err.contains("no _SUCCESS") && err.contains("--snapshot-settle-seconds"),
        "{err}"
    );
    let waiting = DiscoverOptions {
        settle: Some(Duration::from_secs(3600)),
    };
    let err = one(&dir.0, &waiting).unwrap_err();
    assert!(err.contains("served once unchanged"), "{err}");
    let settled = DiscoverOptions {
        settle: Some(Duration::ZERO),
    };
    let source = one(&dir.0, &settled).unwrap();
    assert_eq!(
        source.files[0].value("k"),
        Some(&PartitionValue::Float(1.0))
    );
    assert_eq!(
        source.files[1].value("k"),
        Some(&PartitionValue::Float(2.5))
    );
    // A Spark job still committing is never taken for settled.
    std::fs::create_dir_all(dir.0.join("_temporary/0")).unwrap();
    let err = one(&dir.0, &settled).unwrap_err();
    assert!(err.contains("still being written"), "{err}");
}

#[test]
fn found_but_unservable_folders_say_why() {
    // (folder, its files and contents, the reason expected)
    type Case<'a> = (&'a str, &'a [(&'a str, &'a [u8])], &'a str);
    let cases: [Case; 5] = [
        ("empty", &[], "holds no Parquet part files"),
        (
            "csv",
            &[
                ("part-0.parquet", b"PAR1 ok PAR1"),
                ("part-1", b"a,b\n1,2\n"),
            ],
            "'part-1' is not a Parquet file",
        ),
        (
            "truncated",
            &[("part-0.parquet", b"PAR1 cut off in the midd")],
            "'part-0.parquet' is not a Parquet file",
        ),
        (
            "mixed",
            &[
                ("a=1/p.parquet", b"PAR1 ok PAR1"),
                ("b=1/p.parquet", b"PAR1 ok PAR1"),
            ],
            "different partition folders (a= and b=)",
        ),
        (
            "encrypted",
            &[("p.parquet", b"PAR1 secret footer PARE")],
            "encrypted Parquet",
        ),
    ];
    for (name, files, expected) in cases {
        let dir = Dir::new(name);
        dir.write("_SUCCESS", b"");
        for (file, bytes) in files {
            dir.write(file, bytes);
        }
        let err = one(&dir.0, &DiscoverOptions::default()).unwrap_err();
        assert!(err.contains(expected), "{name}: {err}");
    }
    let dir = Dir::new("subfolder");
    dir.write("_SUCCESS", b"");
    dir.parquet("p.parquet");
    dir.parquet("extra/q.parquet");
    let err = one(&dir.0, &DiscoverOptions::default()).unwrap_err();
    assert!(err.contains("'extra' is not a partition folder"), "{err}");
}

#[test]
fn a_folder_of_snapshots_lists_files_folders_and_refusals_newest_first() {
    let dir = Dir::new("many");
    dir.parquet("a.parquet");
    dir.write("notes.txt", b"not a snapshot, not reported");
    dir.write(".hidden.parquet", b"");
    std::thread::sleep(Duration::from_millis(20));
    dir.parquet("b/part-0");
    dir.write("b/_SUCCESS", b"");
    std::thread::sleep(Duration::from_millis(20));
    dir.parquet("c/part-0.parquet");
    dir.parquet("export-without-extension");
    let found = discover(&dir.0, &DiscoverOptions::default()).unwrap();
    let names: Vec<&str> = found.sources.iter().map(|s| s.name.as_str()).collect();
    assert_eq!(names, vec!["b", "a.parquet"]);
    let refused: Vec<&str> = found.unservable.iter().map(|u| u.name.as_str()).collect();
    assert_eq!(refused.len(), 2, "{refused:?}");
    assert!(refused.contains(&"c") && refused.contains(&"export-without-extension"));
    let bare = found
        .unservable
        .iter()
        .find(|u| u.name == "export-without-extension")
        .unwrap();
    assert!(bare.reason.contains("rename it"), "{}", bare.reason);
    assert_eq!(
        find_snapshots(&dir.0).unwrap(),
        found.sources,
        "find_snapshots keeps only the complete ones"
    );
    assert!(discover(&dir.0.join("gone"), &DiscoverOptions::default()).is_err());
}
