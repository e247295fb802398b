//! `crmscore check-policy`: validates an engagement policy against the models' vocabulary and prints a report.

use std::fmt::Write;
use std::path::Path;

use super::insights::vocabulary_of;
use super::policy::{Policy, PolicyError, Vocabulary};
use crate::model::ModelSpec;
use crate::model::catalogue::Catalogue;
use crate::model::spec::ModelKind;

/// The vocabulary of the models in `models` (manifests and catalogues only; no ONNX Runtime): the feature
/// columns of every model, the segment keys of segmentation models, the catalogue's categories and price bands.
/// Also returns notes for the report (a catalogue that cannot be read leaves offer filters unchecked).
pub fn model_vocabulary(models: &Path) -> Result<(Vocabulary, Vec<String>), String> {
    let specs = ModelSpec::load_all(models).map_err(|e| e.to_string())?;
    let mut notes = Vec::new();
    let mut catalogues = Vec::new();
    for spec in &specs {
        if let ModelKind::Recommender(r) = &spec.kind {
            match Catalogue::load(&r.items) {
                Ok(catalogue) => catalogues.push(catalogue),
                Err(e) => notes.push(format!("offer filters not checked: {e}")),
            }
        }
    }
    let catalogues: Vec<&Catalogue> = catalogues.iter().collect();
    let vocab = vocabulary_of(specs.iter(), &catalogues);
    Ok((vocab, notes))
}

/// Builds the report for the policy at `path` checked against `vocab`; the bool is the verdict.
pub fn check(path: &Path, vocab: &Vocabulary, notes: &[String]) -> (String, bool) {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "vocabulary {} feature columns, {} segments, {} categories, {} price bands",
        vocab.features.len(),
        vocab.segments.len(),
        vocab.categories.len(),
        vocab.price_bands.len()
    );
    for note in notes {
        let _ = writeln!(out, "note     {note}");
    }
    let policy = match Policy::load(path, vocab) {
        Ok(p) => p,
        Err(PolicyError::Invalid { problems, .. }) => {
            let _ = writeln!(out, "policy   {}", path.display());
            for p in &problems {
                let _ = writeln!(out, "problem  {p}");
            }
            let _ = writeln!(
                out,
                "verdict  FAIL: {} problem(s); the server would refuse this policy",
                problems.len()
            );
            return (out, false);
        }
        Err(e) => {
            let _ = writeln!(out, "verdict  FAIL: {e}");
            return (out, false);
        }
    };
    let rules = policy.rules();
    let _ = writeln!(
        out,
        "policy   {} (version {}, {} rules)",
        path.display(),
        policy.version,
        rules.len()
    );
    let width = rules.iter().map(|r| r.name.len()).max().unwrap_or(0);
    for (i, r) in rules.iter().enumerate() {
        let _ = writeln!(
            out,
            "rule {:>2}  {:width$}  {:14}  {:6}  priority {}{}  uses: {}",
            i + 1,
            r.name,
            r.action.as_str(),
            r.channel,
            r.priority,
            if r.cold_start { "  cold_start" } else { "" },
            if r.variables.is_empty() {
                "-".to_string()
            } else {
                r.variables.join(", ")
            },
        );
    }
    for w in policy.warnings() {
        let _ = writeln!(out, "warning  {w}");
    }
    let _ = writeln!(out, "verdict  OK");
    (out, true)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_vocabulary_comes_from_manifests_and_segmentation_tables() {
        let nanos = std::time::UNIX_EPOCH.elapsed().unwrap().as_nanos();
        let models =
            std::env::temp_dir().join(format!("crmscore-vocab-{}-{nanos}", std::process::id()));
        let write = |name: &str, text: &str| {
            std::fs::create_dir_all(models.join(name)).unwrap();
            std::fs::write(models.join(name).join("model.toml"), text).unwrap();
        };
        write(
            "churn",
            "kind='tabular'\ninput='f'\noutput='p'\nlabels=['no','yes']\nfeatures=['tenure_months','lifetime_value']\n",
        );
        write(
            "segments",
            "kind='segmentation'\ninput='f'\noutput='d'\nfeatures=['lifetime_value','age_band']\n\
             [[segments]]\nkey='young_digital'\nname='Young digital'\n[[segments]]\nkey='families'\nname='Families'\n",
        );
        write(
            "recs",
            "kind='recommender'\ninput='f'\noutput='s'\nfeatures=['tenure_months']\nitems='items.parquet'\n",
        );
        let (vocab, notes) = model_vocabulary(&models).unwrap();
        assert_eq!(
            vocab.features,
            ["tenure_months", "lifetime_value", "age_band"]
        );
        assert_eq!(vocab.segments, ["young_digital", "families"]);
        assert!(vocab.categories.is_empty());
        assert!(
            notes[0].starts_with("offer filters not checked"),
            "{notes:?}"
        );

        let policy = models.join("policy.toml");
        let rule = "[[rules]]\nname='young'\nwhen=\"segment == 'young_digital' && age_band < 2.0\"\naction='cross_sell'\nchannel='app'\npriority=1\noffers={categories=['x']}\n";
        std::fs::write(&policy, format!("version='1'\n{rule}")).unwrap();
        let (report, ok) = check(&policy, &vocab, &notes);
        assert!(ok, "{report}");
        assert!(report.contains("uses: segment, age_band"), "{report}");
        assert!(report.contains("warning  no catch-all rule"), "{report}");
        std::fs::write(
            &policy,
            format!(
                "version='1'\n{}",
                rule.replace("young_digital'", "old_analog'")
            ),
        )
        .unwrap();
        let (report, ok) = check(&policy, &vocab, &notes);
        assert!(!ok, "{report}");
        assert!(report.contains("compares segment with 'old_analog', a value it never takes (it takes: young_digital, families)"), "{report}");

        write(
            "broken",
            "kind='segmentation'\n[[segments]]\nname='no key'\n",
        );
        assert!(
            model_vocabulary(&models)
                .unwrap_err()
                .contains("missing field `key`")
        );
        let _ = std::fs::remove_dir_all(&models);
    }
}
