//! Progress of long jobs on stderr: a bar on a terminal, nothing when stderr is piped or redirected,
//! or with `--quiet`.

use std::io::IsTerminal;
use std::time::Duration;

use indicatif::{ProgressBar, ProgressStyle};

/// A bar counting `unit`s toward `total` (with rate and ETA), or a counter with its rate when the
/// total is unknown; hidden when `quiet` or when stderr is not a terminal.
pub fn bar(total: Option<u64>, unit: &str, quiet: bool) -> ProgressBar {
    if quiet || !std::io::stderr().is_terminal() {
        return ProgressBar::hidden();
    }
    let template = match total {
        Some(_) => format!(
            "{{prefix}} [{{elapsed_precise}}] {{wide_bar}} {{human_pos}}/{{human_len}} {unit} \
             ({{per_sec}}, ETA {{eta}})"
        ),
        None => format!(
            "{{prefix}} [{{elapsed_precise}}] {{spinner}} {{human_pos}} {unit} ({{per_sec}})"
        ),
    };
    let pb = match total {
        Some(n) => ProgressBar::new(n),
        None => ProgressBar::no_length(),
    };
    pb.set_style(ProgressStyle::with_template(&template).expect("a valid template"));
    pb.enable_steady_tick(Duration::from_millis(200));
    pb
}
