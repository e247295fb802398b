//! The report as a readable text table (the JSON form is the `Report` itself).

use std::fmt::Write;

use super::{Figures, Report};

fn number(value: Option<f64>, digits: usize) -> String {
    value.map_or_else(|| "-".to_string(), |v| format!("{v:.digits$}"))
}

fn actions(f: &Figures) -> String {
    f.actions
        .iter()
        .map(|(action, rate)| format!("{action} {:.1}%", rate * 100.0))
        .collect::<Vec<_>>()
        .join(", ")
}

fn row(out: &mut String, f: &Figures) {
    let mark = if f.too_small { " *" } else { "" };
    let _ = writeln!(
        out,
        "{:<18} {:>9} {:>9} {:>11} {:>11} {:>7} {:>7}  {}",
        format!("{}{mark}", f.group),
        f.customers,
        f.labelled,
        number(Some(f.mean_score), 4),
        number(f.churn_rate, 4),
        number(f.auc, 4),
        number(f.ece, 4),
        actions(f)
    );
}

/// The report as text: a summary, one line per group, the notes, and the overall reliability table.
pub fn text(report: &Report) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "Model {}: {} customers scored ({} decisions), {} labelled ({} churned/retained outcomes, {} files read)",
        report.model,
        report.overall.customers,
        report.decisions,
        report.overall.labelled,
        report.outcomes,
        report.files
    );
    if let (Some(by), Some(snapshot)) = (&report.by, &report.snapshot) {
        let _ = writeln!(out, "Grouped by {by} of snapshot {snapshot}");
    }
    if report.includes_open_days {
        let _ = writeln!(
            out,
            "Includes open days (no _SUCCESS yet, more events may arrive): {}",
            report.open_days.join(", ")
        );
    }
    let _ = writeln!(
        out,
        "\n{:<18} {:>9} {:>9} {:>11} {:>11} {:>7} {:>7}  actions",
        "group", "customers", "labelled", "mean score", "churn rate", "AUC", "ECE"
    );
    row(&mut out, &report.overall);
    for group in &report.groups {
        row(&mut out, group);
    }
    let notes: Vec<&Figures> = std::iter::once(&report.overall)
        .chain(&report.groups)
        .filter(|f| f.reason.is_some())
        .collect();
    if !notes.is_empty() {
        let _ = writeln!(out);
        for f in notes {
            let mark = if f.too_small { "* " } else { "" };
            let _ = writeln!(
                out,
                "{mark}{}: {}",
                f.group,
                f.reason.as_deref().unwrap_or("")
            );
        }
    }
    let _ = writeln!(
        out,
        "\nReliability (overall, {} bins; per group in --format json):\n{:<13} {:>8} {:>15} {:>14}",
        report.bins, "score", "labelled", "mean predicted", "observed rate"
    );
    for bin in &report.overall.reliability {
        let _ = writeln!(
            out,
            "{:<13} {:>8} {:>15} {:>14}",
            format!("{:.3}-{:.3}", bin.from, bin.to),
            bin.count,
            number(bin.mean_predicted, 4),
            number(bin.observed_rate, 4)
        );
    }
    out
}
