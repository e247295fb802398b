//! Progress of a batch run: a one-line bar with rows/s and ETA redrawn on a terminal, plain periodic log lines
//! otherwise (a pipeline's log).

use std::io::{IsTerminal, Write};
use std::time::{Duration, Instant};

/// How often the terminal line is redrawn.
const REDRAW: Duration = Duration::from_millis(250);
/// How often a log line is written when stderr is not a terminal.
const LOG_EVERY: Duration = Duration::from_secs(10);

/// Rows done out of a total, reported as they advance.
pub struct Progress {
    total: usize,
    done: usize,
    started: Instant,
    shown: Instant,
    terminal: bool,
}

impl Progress {
    /// Starts reporting on `total` rows (a bar when stderr is a terminal).
    pub fn new(total: usize) -> Progress {
        let now = Instant::now();
        Progress {
            total,
            done: 0,
            started: now,
            shown: now,
            terminal: std::io::stderr().is_terminal(),
        }
    }

    /// Counts `rows` more rows done, redrawing or logging when due.
    pub fn advance(&mut self, rows: usize) {
        self.done += rows;
        let due = if self.terminal { REDRAW } else { LOG_EVERY };
        if self.shown.elapsed() >= due {
            self.shown = Instant::now();
            self.show();
        }
    }

    /// Rows per second so far.
    pub fn rate(&self) -> f64 {
        self.done as f64 / self.started.elapsed().as_secs_f64().max(1e-9)
    }

    /// Seconds since the start.
    pub fn elapsed(&self) -> Duration {
        self.started.elapsed()
    }

    /// Ends the bar's line (the summary follows in the log).
    pub fn finish(&self) {
        if self.terminal {
            self.show();
            eprintln!();
        }
    }

    fn show(&self) {
        let line = line(self.done, self.total, self.rate());
        if self.terminal {
            let mut err = std::io::stderr().lock();
            let _ = write!(err, "\r{line}\x1b[K");
            let _ = err.flush();
        } else {
            tracing::info!(rows = self.done, total = self.total, "{line}");
        }
    }
}

/// `[#####.....]  40.0%  4000000/10000000 rows  812345 rows/s  ETA 7s`.
fn line(done: usize, total: usize, rate: f64) -> String {
    const WIDTH: usize = 24;
    let fraction = if total == 0 {
        1.0
    } else {
        done as f64 / total as f64
    }
    .min(1.0);
    let filled = (fraction * WIDTH as f64).round() as usize;
    let eta = match rate > 0.0 {
        true => format!("{:.0}s", total.saturating_sub(done) as f64 / rate),
        false => "-".into(),
    };
    format!(
        "[{}{}] {:5.1}%  {done}/{total} rows  {rate:.0} rows/s  ETA {eta}",
        "#".repeat(filled),
        ".".repeat(WIDTH - filled),
        fraction * 100.0
    )
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_line_says_share_rate_and_eta() {
        let l = super::line(4, 10, 2.0);
        assert!(
            l.contains(" 40.0%") && l.contains("4/10 rows") && l.contains("2 rows/s"),
            "{l}"
        );
        assert!(l.ends_with("ETA 3s"), "{l}");
        assert!(super::line(0, 0, 0.0).contains("100.0%"));
    }
}
