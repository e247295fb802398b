//! The model report: joins the decision log to the outcome log and says, overall and per group of a snapshot
//! column, how well a model's scores still rank and match what happened (AUC, calibration) and what it chose.

pub mod figures;
pub mod groups;
pub mod join;
pub mod read;
pub mod render;

use std::path::{Path, PathBuf};

use serde::Serialize;
use utoipa::ToSchema;

use crate::snapshot::SnapshotError;
pub use figures::{Figures, ReliabilityBin};
pub use groups::GroupColumn;

/// Bins of the reliability table when none are asked for.
pub const DEFAULT_BINS: usize = 10;
/// Most bins accepted: more would leave every bin nearly empty.
pub const MAX_BINS: usize = 1000;
/// Labelled customers a group needs before its figures are judged.
pub const DEFAULT_MIN_GROUP: usize = 50;

/// Why a report could not be made.
#[derive(Debug, thiserror::Error)]
pub enum ReportError {
    #[error("feedback folder {0} does not exist")]
    MissingFolder(PathBuf),
    #[error("cannot read {path}: {message}")]
    Read { path: PathBuf, message: String },
    #[error("no decisions of model '{model}' (with a customer id and a score) under {dir}")]
    NoDecisions { model: String, dir: PathBuf },
    #[error("column '{column}' is not in snapshot {snapshot}; its columns: {available}")]
    UnknownColumn {
        column: String,
        snapshot: String,
        available: String,
    },
    #[error(transparent)]
    Snapshot(#[from] SnapshotError),
    #[error("{0}")]
    BadOption(String),
}

/// What to report on.
#[derive(Debug, Clone)]
pub struct ReportOptions {
    /// The feedback folder holding `decisions/` and `outcomes/`.
    pub feedback_dir: PathBuf,
    /// The model whose decisions are judged.
    pub model: String,
    /// Group by this snapshot column, read from this snapshot (file or part folder).
    pub by: Option<(String, PathBuf)>,
    /// Equal-width bins of the reliability table and ECE.
    pub bins: usize,
    /// Labelled customers below which a group is marked too small.
    pub min_group: usize,
}

/// The report, as the CLI prints it in JSON and the admin route answers.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Report {
    /// The model reported on.
    pub model: String,
    /// The snapshot column groups come from (null: no grouping).
    pub by: Option<String>,
    /// File or folder name of the snapshot the groups were read from.
    pub snapshot: Option<String>,
    /// Bins of the reliability tables.
    pub bins: usize,
    /// Labelled customers a group needs to be judged.
    pub min_group: usize,
    /// Decision rows of the model read (with a customer id and a score), before keeping each customer's latest.
    pub decisions: usize,
    /// Churned/retained outcome rows read.
    pub outcomes: usize,
    /// Parquet files read.
    pub files: usize,
    /// Whether some day folders read are still open (no `_SUCCESS`: more events may land in them).
    pub includes_open_days: bool,
    /// The open day folders read, as `decisions/date=YYYY-MM-DD`.
    pub open_days: Vec<String>,
    /// Every customer scored.
    pub overall: Figures,
    /// One entry per value of `by` (`null` for missing values, `not_in_snapshot` for customers the snapshot
    /// lacks), in the column's order.
    pub groups: Vec<Figures>,
}

impl ReportOptions {
    fn check(&self) -> Result<(), ReportError> {
        if self.bins == 0 || self.bins > MAX_BINS {
            return Err(ReportError::BadOption(format!(
                "bins must be between 1 and {MAX_BINS}, got {}",
                self.bins
            )));
        }
        if self.model.is_empty() {
            return Err(ReportError::BadOption("model must not be empty".into()));
        }
        Ok(())
    }
}

/// Reads the logs (and the grouping column) and computes the report.
pub fn build_report(options: &ReportOptions) -> Result<Report, ReportError> {
    options.check()?;
    let dir = &options.feedback_dir;
    let files = read::find_files(dir)?;
    // The column is checked before the logs are read, so a typo fails fast.
    let group_column = match &options.by {
        Some((column, snapshot)) => Some(GroupColumn::read(snapshot, column)?),
        None => None,
    };
    let decisions = read::read_decisions(&files.decisions, &options.model)?;
    if decisions.is_empty() {
        return Err(ReportError::NoDecisions {
            model: options.model.clone(),
            dir: dir.clone(),
        });
    }
    let outcomes = read::read_outcomes(&files.outcomes)?;
    let decision_rows = decisions.len();
    let outcome_rows = outcomes.len();
    let scored = join::label(join::latest_per_customer(decisions), &outcomes);
    let overall = Figures::of("overall", &scored, options.bins, options.min_group);
    let groups = match &group_column {
        Some(column) => column
            .split(&scored)
            .into_iter()
            .map(|(name, members)| Figures::of(&name, &members, options.bins, options.min_group))
            .collect(),
        None => Vec::new(),
    };
    Ok(Report {
        model: options.model.clone(),
        by: group_column.as_ref().map(|c| c.column.clone()),
        snapshot: group_column.as_ref().map(|c| c.snapshot.clone()),
        bins: options.bins,
        min_group: options.min_group,
        decisions: decision_rows,
        outcomes: outcome_rows,
        files: files.decisions.len() + files.outcomes.len(),
        includes_open_days: !files.open_days.is_empty(),
        open_days: files.open_days,
        overall,
        groups,
    })
}

/// The snapshot file or folder name of `path`, for messages.
fn name_of(path: &Path) -> String {
    path.file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| path.display().to_string())
}

/// `crmscore report`: the report of `args`, rendered as asked.
pub fn run(args: &crate::config::ReportArgs) -> Result<String, ReportError> {
    let options = ReportOptions {
        feedback_dir: args.outcomes.clone(),
        model: args.model.clone(),
        by: args.by.clone().zip(args.snapshot.clone()),
        bins: args.bins,
        min_group: args.min_group,
    };
    let report = build_report(&options)?;
    Ok(match args.format {
        crate::config::ReportFormat::Text => render::text(&report),
        crate::config::ReportFormat::Json => {
            let mut json = serde_json::to_string_pretty(&report)
                .map_err(|e| ReportError::BadOption(format!("cannot render the report: {e}")))?;
            json.push('\n');
            json
        }
    })
}
