//! Progress of long jobs on stderr: a bar on a terminal, nothing when stderr is piped or redirected,
//! or with `--quiet`.

use std::io::IsTerminal;
use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressStyle};

use crate::stream::Batch;

/// Whether a bar is drawn at all.
fn shown(quiet: bool) -> bool {
    !quiet && std::io::stderr().is_terminal()
}

fn styled(pb: ProgressBar, template: &str) -> ProgressBar {
    pb.set_style(ProgressStyle::with_template(template).expect("a valid template"));
    pb.enable_steady_tick(Duration::from_millis(200));
    pb
}

/// A bar counting `unit`s toward `total`, with rate and ETA; hidden when `quiet` or when stderr is
/// not a terminal.
pub fn bar(total: u64, unit: &str, quiet: bool) -> ProgressBar {
    if !shown(quiet) {
        return ProgressBar::hidden();
    }
    styled(
        ProgressBar::new(total),
        &format!(
            "{{prefix}} [{{elapsed_precise}}] {{wide_bar}} {{human_pos}}/{{human_len}} {unit} \
             ({{per_sec}}, ETA {{eta}})"
        ),
    )
}

/// A running count of `unit`s with their rate, for jobs that handle inputs one at a time.
pub fn counter(unit: &str, quiet: bool) -> ProgressBar {
    if !shown(quiet) {
        return ProgressBar::hidden();
    }
    styled(
        ProgressBar::no_length(),
        &format!("[{{elapsed_precise}}] {{spinner}} {{human_pos}} {unit} ({{per_sec}})"),
    )
}

/// Progress through a stream of input batches: by inputs when their number is known, else by
/// bytes of the input file when its length is known (percent and ETA), else a running count; with
/// inputs per second.
pub struct Progress {
    pb: ProgressBar,
    by_bytes: bool,
    inputs: u64,
    start: Instant,
}

impl Progress {
    pub fn new(total_inputs: Option<u64>, quiet: bool) -> Self {
        let pb = match total_inputs {
            Some(n) => bar(n, "inputs", quiet),
            None if shown(quiet) => styled(
                ProgressBar::no_length(),
                "[{elapsed_precise}] {spinner} {msg}",
            ),
            None => ProgressBar::hidden(),
        };
        Progress {
            pb,
            by_bytes: false,
            inputs: 0,
            start: Instant::now(),
        }
    }

    pub fn add(&mut self, batch: &Batch) {
        let n = batch.encodings.len() as u64;
        self.inputs += n;
        if self.pb.length().is_some() && !self.by_bytes {
            self.pb.inc(n);
            return;
        }
        if let (Some((done, len)), false) = (batch.file_progress, self.by_bytes) {
            self.by_bytes = true;
            self.pb = styled(
                self.pb.clone(),
                "[{elapsed_precise}] {wide_bar} {percent}% {msg} (ETA {eta})",
            );
            self.pb.set_length(len);
            self.pb.set_position(done);
        } else if let Some((done, _)) = batch.file_progress {
            self.pb.set_position(done);
        }
        let rate = self.inputs as f64 / self.start.elapsed().as_secs_f64().max(1e-3);
        self.pb
            .set_message(format!("{} inputs, {rate:.0}/s", self.inputs));
    }

    pub fn finish(self) {
        self.pb.finish_and_clear();
    }
}
