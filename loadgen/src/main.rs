//! `loadgen`: parses the options, runs the load (see the library), prints
//! the table and writes the JSON report and the SVG plot. Exits 1 when a
//! request or a consistency check failed, 2 when the run could not start.

use std::process::ExitCode;

use loadgen::config::{command, Options};

#[tokio::main]
async fn main() -> ExitCode {
    let opts = match Options::from_matches(&command().get_matches()) {
        Ok(o) => o,
        Err(e) => {
            eprintln!("loadgen: {e}");
            return ExitCode::from(2);
        }
    };
    let report = match loadgen::run(opts.clone()).await {
        Ok(r) => r,
        Err(e) => {
            eprintln!("loadgen: {e}");
            return ExitCode::from(2);
        }
    };
    println!("{}", report.text());
    let json = serde_json::to_string_pretty(&report).expect("the report serializes");
    let title = format!(
        "loadgen: {} — {} requests, {} errors, p99 {:.1} ms",
        report.base, report.requests, report.errors, report.all.p99_ms
    );
    for (path, contents) in [
        (&opts.report, json),
        (&opts.plot, loadgen::plot::svg(&title, &report.timeline)),
    ] {
        if let Err(e) = std::fs::write(path, contents) {
            eprintln!("loadgen: writing {}: {e}", path.display());
            return ExitCode::from(2);
        }
    }
    println!(
        "report: {}, plot: {}",
        opts.report.display(),
        opts.plot.display()
    );
    if report.passed {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}
