//! The shipped sentiment model on the hand-written development set (tests/fixtures/sentiment_dev.tsv), scored by
//! the real server over HTTP: accuracy and recall per class stay at or above the figures docs/sentiment.md reports.
//! The model is deterministic, so this is a check of the shipped files and the serving path, not a timing.

mod common;

use common::*;
use serde_json::{Value, json};

const LABELS: [&str; 3] = ["negative", "neutral", "positive"];
/// Accuracy the committed model reaches on the development set (docs/sentiment.md), as a floor.
const MIN_ACCURACY: f64 = 0.90;
/// No class may be recalled less often than this.
const MIN_RECALL: f64 = 0.85;

/// (text, label index) of every line of the development set; '#' lines are comments.
fn dev_set() -> Vec<(String, usize)> {
    let text = std::fs::read_to_string(repo().join("tests/fixtures/sentiment_dev.tsv")).unwrap();
    text.lines()
        .filter(|l| !l.trim().is_empty() && !l.starts_with('#'))
        .map(|l| {
            let (label, sentence) = l.split_once('\t').expect("label<TAB>text");
            let index = LABELS
                .iter()
                .position(|x| *x == label)
                .expect("a known label");
            (sentence.to_string(), index)
        })
        .collect()
}

#[test]
fn the_development_set_is_read_as_a_person_reads_it() {
    let rows = dev_set();
    assert!(rows.len() >= 300, "{} sentences", rows.len());
    let server = start_ready(config(&sample_snapshot()));
    let mut confusion = [[0usize; 3]; 3];
    for chunk in rows.chunks(64) {
        let texts: Vec<&str> = chunk.iter().map(|(t, _)| t.as_str()).collect();
        let (status, body) = post(&server, "/v1/sentiment", &json!({ "texts": texts }));
        assert_eq!(status, 200, "{body}");
        let results: &Vec<Value> = body["results"].as_array().unwrap();
        assert_eq!(results.len(), chunk.len());
        for ((_, want), got) in chunk.iter().zip(results) {
            let label = got["label"].as_str().unwrap();
            let predicted = LABELS.iter().position(|x| *x == label).unwrap();
            confusion[*want][predicted] += 1;
        }
    }
    server.stop();
    let right: usize = (0..3).map(|i| confusion[i][i]).sum();
    let accuracy = right as f64 / rows.len() as f64;
    assert!(
        accuracy >= MIN_ACCURACY,
        "accuracy {accuracy:.4} < {MIN_ACCURACY}; confusion (rows true) {confusion:?}"
    );
    for (i, label) in LABELS.iter().enumerate() {
        let recall = confusion[i][i] as f64 / confusion[i].iter().sum::<usize>() as f64;
        assert!(
            recall >= MIN_RECALL,
            "{label} recall {recall:.4} < {MIN_RECALL}; confusion (rows true) {confusion:?}"
        );
    }
}
