//! The results table: each figure with its baseline (measured in the same run) and target,
//! printed and written to `docs/benchmarks.md` with the machine and the command.

use std::{fmt::Write as _, time::Duration};

/// One figure.
#[derive(Debug, Clone)]
pub struct Row {
    pub section: String,
    pub measure: &'static str,
    pub value: f64,
    pub unit: &'static str,
    /// The baseline's name and value, when the figure is a ratio to one.
    pub baseline: Option<(&'static str, f64)>,
    /// Met when the ratio (or, without a baseline, the value) is at least this…
    pub at_least: Option<f64>,
    /// …or at most this.
    pub at_most: Option<f64>,
}

impl Row {
    /// `value` beside `baseline`; the target applies to the ratio.
    pub fn ratio(
        section: &'static str,
        measure: &'static str,
        value: f64,
        baseline_name: &'static str,
        baseline: f64,
        at_least: Option<f64>,
    ) -> Row {
        let section = section.to_owned();
        Row { section, measure, value, unit: "/s", baseline: Some((baseline_name, baseline)), at_least, at_most: None }
    }

    /// A duration, in milliseconds, with an upper target.
    pub fn time(section: &'static str, measure: &'static str, value: Duration, at_most_ms: Option<f64>) -> Row {
        let ms = value.as_secs_f64() * 1000.0;
        let section = section.to_owned();
        Row { section, measure, value: ms, unit: "ms", baseline: None, at_least: None, at_most: at_most_ms }
    }

    /// A plain number with an upper target.
    pub fn value(section: &'static str, measure: &'static str, value: f64, at_most: Option<f64>) -> Row {
        Self::amount(section, measure, value, "", at_most)
    }

    /// An amount in `unit` (MB, %, s…) with an upper target.
    pub fn amount(
        section: &'static str,
        measure: &'static str,
        value: f64,
        unit: &'static str,
        at_most: Option<f64>,
    ) -> Row {
        Row { section: section.to_owned(), measure, value, unit, baseline: None, at_least: None, at_most }
    }

    fn ratio_value(&self) -> Option<f64> {
        self.baseline.map(|(_, b)| if b > 0.0 { self.value / b } else { 0.0 })
    }

    /// Whether the target is met; `None` without one.
    pub fn met(&self) -> Option<bool> {
        let judged = self.ratio_value().unwrap_or(self.value);
        match (self.at_least, self.at_most) {
            (Some(min), _) => Some(judged >= min),
            (_, Some(max)) => Some(judged <= max),
            _ => None,
        }
    }

    fn target(&self) -> String {
        let what = if self.baseline.is_some() { "ratio" } else { "value" };
        match (self.at_least, self.at_most) {
            (Some(min), _) => format!("{what} ≥ {min}"),
            (_, Some(max)) if self.unit.is_empty() || self.unit == "ms" => format!("≤ {max}{}", self.unit),
            (_, Some(max)) => format!("≤ {max} {}", self.unit),
            _ => "—".into(),
        }
    }
}

fn number(v: f64, unit: &str) -> String {
    match unit {
        "ms" => format!("{v:.2} ms"),
        "/s" => format!("{v:.0}/s"),
        "" => format!("{v:.3}"),
        "%" => format!("{v:.2} %"),
        _ => format!("{v:.1} {unit}"),
    }
}

/// Every figure of a run, with notes on how each was taken.
#[derive(Debug, Default)]
pub struct Report {
    pub rows: Vec<Row>,
    pub notes: Vec<String>,
    /// Added to the section of rows pushed from now on (which database, say).
    suffix: String,
}

impl Report {
    pub fn section_suffix(&mut self, suffix: &str) {
        suffix.clone_into(&mut self.suffix);
    }

    pub fn push(&mut self, mut row: Row) {
        row.section.push_str(&self.suffix);
        println!("{}", Self::line(&row));
        self.rows.push(row);
    }

    pub fn note(&mut self, note: String) {
        let note = format!("{note}{}", self.suffix);
        println!("   {note}");
        self.notes.push(note);
    }

    fn line(r: &Row) -> String {
        let baseline = r.baseline.map(|(name, b)| format!("{} ({name})", number(b, r.unit))).unwrap_or("—".into());
        let ratio = r.ratio_value().map_or("—".into(), |x| format!("{x:.2}"));
        let met = match r.met() {
            Some(true) => "met",
            Some(false) => "MISSED",
            None => "—",
        };
        format!(
            "| {} | {} | {} | {baseline} | {ratio} | {} | {met} |",
            r.section,
            r.measure,
            number(r.value, r.unit),
            r.target()
        )
    }

    /// The table in Markdown.
    pub fn table(&self) -> String {
        let mut out = String::from(
            "| section | measure | value | baseline (same run) | ratio | target | |\n|---|---|---|---|---|---|---|\n",
        );
        for r in &self.rows {
            let _ = writeln!(out, "{}", Self::line(r));
        }
        out
    }
}
