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
    ] {
        assert!(written.contains(figure) && printed.contains(figure), "{figure} missing:\n{written}");
    }
    assert!(written.contains("Written by people.") && written.contains("After."), "{written}");
    assert!(!written.contains("\nold\n"), "the old results are replaced: {written}");
    assert!(written.contains("cores") && written.contains("cargo run --release -p kehai-bench"), "{written}");
}
