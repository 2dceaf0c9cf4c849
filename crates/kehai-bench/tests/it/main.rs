//! The benchmark runs end to end (small, `--quick`) and writes its table where it is told,
//! keeping what people wrote around the results.

#![allow(clippy::unwrap_used)]

use std::process::Command;

#[test]
fn a_quick_run_measures_every_figure_and_writes_the_table_between_the_markers() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("benchmarks.md");
    std::fs::write(
        &out,
        "# Benchmarks\n\nWritten by people.\n\n<!-- results: written by kehai-bench -->\nold\n<!-- end of results -->\n\nAfter.\n",
    )
    .unwrap();
    let run = Command::new(env!("CARGO_BIN_EXE_kehai-bench"))
        .args(["--quick", "--out"])
        .arg(&out)
        .current_dir(dir.path())
        .output()
        .unwrap();
    let printed = String::from_utf8_lossy(&run.stdout);
    assert!(run.status.success(), "{printed}\n{}", String::from_utf8_lossy(&run.stderr));
    let written = std::fs::read_to_string(&out).unwrap();
    for figure in [
        "| a. ingestion | rich notifications/s, whole path |",
        "| a. ingestion | answer time p99 at 2,000/s |",
        "| a. ingestion | basic notifications taken/s |",
        "| b. latency | POST to frame p99 at 500/s |",
        "| c. Graph cost | requests per member-hour |",
        "| d. scale | start to ready (/readyz) |",
        "| d. scale | resident memory, steady state (max) |",
        "| d. scale | idle CPU (one core = 100 %) |",
        "| d. scale | renewals: busiest minute / mean |",
        "| e. fan-out | POST to frame at every stream p99 |",
        "| e. fan-out | bare axum + broadcast p99 (baseline) |",
        "| g. Google Calendar | calls per member-hour with push |",
        "| g. Google Calendar | calls per member-hour, 5-minute polling |",
        "| g. Google Calendar | boundary flip lateness p99 |",
        "| g. Google Calendar | Calendar calls at the boundary |",
    ] {
        assert!(written.contains(figure) && printed.contains(figure), "{figure} missing:\n{written}");
    }
    for row in written.lines().filter(|l| l.starts_with("| ") && !l.starts_with("| section") && !l.starts_with("|---"))
    {
        check_row(row);
    }
    assert!(written.contains("Written by people.") && written.contains("After."), "{written}");
    assert!(!written.contains("\nold\n"), "the old results are replaced: {written}");
    assert!(written.contains("cores") && written.contains("cargo run --release -p kehai-bench"), "{written}");
}

/// The leading number of a cell ("2151/s", "3.17 ms", "ratio ≥ 0.7" after its words), and how
/// far it may be from the figure it shows (half its last digit).
fn number(cell: &str) -> Option<(f64, f64)> {
    let start = cell.find(|c: char| c.is_ascii_digit())?;
    let digits: String = cell[start..].chars().take_while(|c| c.is_ascii_digit() || *c == '.').collect();
    let decimals = digits.split_once('.').map_or(0, |(_, d)| d.len());
    Some((digits.parse().ok()?, 0.5 / 10f64.powi(decimals as i32)))
}

/// A row of the table: a measured figure (a finite number, not negative), a ratio that is the
/// figure over its baseline, and a verdict that follows from the target.
fn check_row(row: &str) {
    let cells: Vec<&str> = row.trim_matches('|').split('|').map(str::trim).collect();
    let [_, _, value, baseline, ratio, target, verdict] = cells[..] else { panic!("not a row of seven cells: {row}") };
    let (value, value_rounding) = number(value).unwrap_or_else(|| panic!("no figure: {row}"));
    assert!(value.is_finite() && value >= 0.0, "{row}");
    if ratio != "—" {
        let (ratio, baseline) = (number(ratio).unwrap().0, number(baseline).unwrap().0);
        assert!(baseline > 0.0 && (ratio - value / baseline).abs() < 0.01 + ratio * 0.01, "the ratio: {row}");
    }
    let (judged, rounding, limit) = match target.split_once(' ') {
        Some(("ratio", limit)) => {
            let (ratio, rounding) = number(ratio).unwrap();
            (ratio, rounding, number(limit).unwrap().0)
        }
        Some(("≤", limit)) => (value, value_rounding, number(limit).unwrap().0),
        _ => {
            assert_eq!((target, verdict), ("—", "—"), "{row}");
            return;
        }
    };
    // A figure shown as its target's value may be either side of it.
    if (judged - limit).abs() > rounding {
        let met = if target.starts_with("ratio") { judged >= limit } else { judged <= limit };
        assert_eq!(verdict, if met { "met" } else { "MISSED" }, "{row}");
    } else {
        assert!(["met", "MISSED"].contains(&verdict), "{row}");
    }
}
