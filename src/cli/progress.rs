//! Progress lines for long runs (stderr; hidden when quiet or not a terminal).

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

/// A progress line over bytes (known size) or a spinner counting items.
#[derive(Debug)]
pub struct Progress {
    bar: ProgressBar,
    by_bytes: bool,
}

/// A progress line for reading `total` bytes (spinner when unknown).
pub fn bytes_bar(total: Option<u64>, quiet: bool) -> Progress {
    let bar = match total {
        Some(t) => ProgressBar::new(t).with_style(
            ProgressStyle::with_template(
                "{spinner} [{elapsed_precise}] {bar:30} {bytes}/{total_bytes} {msg} (eta {eta})",
            )
            .unwrap_or_else(|_| ProgressStyle::default_bar()),
        ),
        None => ProgressBar::new_spinner().with_style(
            ProgressStyle::with_template("{spinner} [{elapsed_precise}] {bytes} {msg}")
                .unwrap_or_else(|_| ProgressStyle::default_spinner()),
        ),
    };
    if quiet {
        bar.set_draw_target(ProgressDrawTarget::hidden());
    }
    Progress {
        bar,
        by_bytes: true,
    }
}

/// A progress line counting `total` items.
pub fn count_bar(total: u64, what: &'static str, quiet: bool) -> Progress {
    let bar = ProgressBar::new(total).with_style(
        ProgressStyle::with_template(&format!(
            "{{spinner}} [{{elapsed_precise}}] {{bar:30}} {{human_pos}}/{{human_len}} {what} ({{per_sec}}, eta {{eta}})"
        ))
        .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    if quiet {
        bar.set_draw_target(ProgressDrawTarget::hidden());
    }
    Progress {
        bar,
        by_bytes: false,
    }
}

impl Progress {
    /// Updates the position (bytes for a byte bar) and the item count shown.
    pub fn set(&self, bytes: u64, items: u64) {
        if self.by_bytes {
            self.bar.set_position(bytes);
            self.bar.set_message(format!("{items} lines"));
        } else {
            self.bar.set_position(items);
        }
    }

    /// Clears the line.
    pub fn finish(&self) {
        self.bar.finish_and_clear();
    }
}
