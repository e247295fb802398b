//! score-batch's per-chunk path in customers per second, on one thread (a run gives each of its threads such
//! chunks): one 16,384-row group of the snapshot decoded (only the needed columns), every customer answered by the
//! shared insights code, and the output's Arrow record batch built. `churn`: churn probability and risk band.
//! `insights`: churn + 3 reasons (TreeSHAP) + segment + next best action from the shipped policy. Writing the
//! Parquet file is left out (a separate thread in a run).
//! Data: the shipped sample snapshot (100,000 customers, 16,384-row groups; scripts/train_models.py, fixed seed),
//! the shipped models and policies/engagement.toml; the explainer's reference sample is drawn as the server does.
//! Run: `cargo bench --bench batch`; HTML report in target/criterion.

mod common;

use std::hint::black_box;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use crmscore::batch::columns::{IdType, Layout};
use crmscore::batch::score::{Answering, Scorer};
use crmscore::batch::{explainer, read};
use crmscore::engagement::PolicyStore;
use crmscore::engagement::insights::Ask;
use crmscore::model::spec::snapshot_columns;

fn bench(c: &mut Criterion) {
    let options = common::cpu_sessions();
    let registry = common::registry(&options, 256);
    let (churn, segmentation) = (
        registry.get("churn").expect("churn"),
        registry.get("segmentation").expect("segmentation"),
    );
    let (vocab, _) = crmscore::engagement::check::model_vocabulary(&common::root().join("models"))
        .expect("vocabulary");
    let policy = PolicyStore::open(&common::root().join("policies/engagement.toml"), &vocab)
        .expect("policy")
        .current();
    let mut columns = snapshot_columns([&churn.spec, &segmentation.spec]);
    for f in policy.features_used() {
        if !columns.contains(f) {
            columns.push(f.clone());
        }
    }
    let snapshot =
        read::open(&common::root().join(common::SAMPLE), &columns, None).expect("snapshot");
    let rows = snapshot.unit_rows()[0];
    let layout = |insights: bool| Layout {
        ids: IdType::Str,
        churn: true,
        reasons: insights,
        segment: insights,
        offers: false,
        action: insights,
        error: false,
    };
    let ask = Ask {
        offers: 3,
        reasons: 3,
    };
    let churn_only = Scorer::new(
        Answering {
            churn: Some(churn.clone()),
            segmentation: None,
            recommender: None,
            policy: None,
            masks: None,
            explainer: None,
            ask,
        },
        1,
        options.clone(),
    );
    let insights = Scorer::new(
        Answering {
            churn: Some(churn.clone()),
            segmentation: Some(segmentation),
            recommender: None,
            policy: Some(policy),
            masks: None,
            explainer: Some(explainer(&snapshot, &churn).expect("explainer")),
            ask,
        },
        1,
        options,
    );

    let mut group = c.benchmark_group("batch_chunk");
    group.sample_size(10);
    group.throughput(Throughput::Elements(rows as u64));
    for (name, scorer, layout) in [
        ("churn", &churn_only, layout(false)),
        ("insights", &insights, layout(true)),
    ] {
        group.bench_function(name, |b| {
            b.iter(|| {
                let chunk = read::chunk(&snapshot, 0..1).expect("chunk");
                let answers = scorer.score(&chunk).expect("scores");
                black_box(layout.batch(&answers).expect("batch"))
            })
        });
    }
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
