//! PNG plots of an evaluation (plotters, bitmap backend): ROC and PR curves of every model, the
//! reliability diagram, the lead-time histogram of the alerts, the learning curve (daily
//! prequential ROC AUC and Brier over event time) and the alert budget trade-off.
//!
//! Text needs a TrueType font: the first of [`FONT_PATHS`] that exists is registered (DejaVu
//! Sans on Debian/Ubuntu); without one the plots are drawn without text rather than not at all.

use std::path::Path;

use plotters::prelude::*;

use super::{EvalError, Outcome};

/// Where a sans-serif TrueType font is looked for.
pub const FONT_PATHS: [&str; 3] = [
    "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf",
    "/usr/share/fonts/dejavu/DejaVuSans.ttf",
    "/usr/share/fonts/TTF/DejaVuSans.ttf",
];

const SIZE: (u32, u32) = (900, 640);

fn colour(i: usize) -> RGBColor {
    [
        RGBColor(31, 119, 180),
        RGBColor(255, 127, 14),
        RGBColor(44, 160, 44),
        RGBColor(214, 39, 40),
        RGBColor(148, 103, 189),
        RGBColor(140, 86, 75),
        RGBColor(227, 119, 194),
        RGBColor(127, 127, 127),
        RGBColor(188, 189, 34),
    ][i % 9]
}

/// Registers a font once; false when none was found (plots then carry no text).
fn font() -> bool {
    static FONT: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *FONT.get_or_init(|| {
        FONT_PATHS.iter().any(|p| {
            std::fs::read(p).ok().is_some_and(|bytes| {
                let bytes: &'static [u8] = Box::leak(bytes.into_boxed_slice());
                plotters::style::register_font("sans-serif", FontStyle::Normal, bytes).is_ok()
            })
        })
    })
}

fn plot_err<E: std::error::Error>(name: &str, e: E) -> EvalError {
    EvalError::Plot(name.to_owned(), e.to_string())
}

/// Draws every plot into `dir`; returns the file names written.
pub fn draw_all(dir: &Path, title: &str, o: &Outcome) -> Result<Vec<String>, EvalError> {
    let text = font();
    let mut out = Vec::new();
    for (name, f) in [
        (
            "roc.png",
            curves as fn(&Path, &str, &Outcome, bool, bool) -> Result<(), EvalError>,
        ),
        ("pr.png", curves),
    ] {
        f(&dir.join(name), title, o, name == "roc.png", text)?;
        out.push(name.to_owned());
    }
    reliability(&dir.join("reliability.png"), title, o, text)?;
    out.push("reliability.png".into());
    lead_times(&dir.join("lead_time.png"), title, o, text)?;
    out.push("lead_time.png".into());
    learning(&dir.join("learning_curve.png"), title, o, text)?;
    out.push("learning_curve.png".into());
    if o.alert_budget
        .iter()
        .any(|b| b.max_raised_per_location_per_day > 0)
    {
        budget(&dir.join("alert_budget.png"), title, o, text)?;
        out.push("alert_budget.png".into());
    }
    Ok(out)
}

fn caption(text: bool, s: &str) -> String {
    if text {
        s.to_owned()
    } else {
        String::new()
    }
}

fn curves(path: &Path, title: &str, o: &Outcome, roc: bool, text: bool) -> Result<(), EvalError> {
    let name = path.display().to_string();
    let root = BitMapBackend::new(path, SIZE).into_drawing_area();
    root.fill(&WHITE).map_err(|e| plot_err(&name, e))?;
    let what = if roc {
        "ROC curve"
    } else {
        "Precision-recall curve"
    };
    let mut b = ChartBuilder::on(&root);
    b.margin(15);
    if text {
        b.caption(format!("{what} · {title}"), ("sans-serif", 22))
            .x_label_area_size(45)
            .y_label_area_size(55);
    }
    let mut chart = b
        .build_cartesian_2d(0.0f64..1.0, 0.0f64..1.0)
        .map_err(|e| plot_err(&name, e))?;
    let mut mesh = chart.configure_mesh();
    if text {
        mesh.x_desc(if roc { "false-positive rate" } else { "recall" })
            .y_desc(if roc {
                "true-positive rate"
            } else {
                "precision"
            });
    } else {
        mesh.disable_x_axis().disable_y_axis();
    }
    mesh.draw().map_err(|e| plot_err(&name, e))?;
    if roc {
        chart
            .draw_series(LineSeries::new([(0.0, 0.0), (1.0, 1.0)], BLACK.mix(0.3)))
            .map_err(|e| plot_err(&name, e))?;
    }
    for (i, (m, acc)) in o.names.iter().zip(&o.models).enumerate() {
        let pts = if roc {
            acc.roc_curve(2000)
        } else {
            acc.pr_curve(2000)
        };
        let s = acc.summary();
        let label = if roc {
            format!("{m} (AUC {:.3})", s.roc_auc)
        } else {
            format!("{m} (AP {:.3})", s.pr_auc)
        };
        let c = colour(i);
        let series = chart
            .draw_series(LineSeries::new(
                pts.iter().map(|p| (p.x, p.y)),
                c.stroke_width(2),
            ))
            .map_err(|e| plot_err(&name, e))?;
        if text {
            series.label(label).legend(move |(x, y)| {
                PathElement::new(vec![(x, y), (x + 20, y)], c.stroke_width(2))
            });
        }
    }
    if text {
        chart
            .configure_series_labels()
            .position(if roc {
                SeriesLabelPosition::LowerRight
            } else {
                SeriesLabelPosition::UpperRight
            })
            .background_style(WHITE.mix(0.85))
            .border_style(BLACK)
            .label_font(("sans-serif", 15))
            .draw()
            .map_err(|e| plot_err(&name, e))?;
    }
    root.present().map_err(|e| plot_err(&name, e))
}

fn reliability(path: &Path, title: &str, o: &Outcome, text: bool) -> Result<(), EvalError> {
    let name = path.display().to_string();
    let root = BitMapBackend::new(path, SIZE).into_drawing_area();
    root.fill(&WHITE).map_err(|e| plot_err(&name, e))?;
    let mut b = ChartBuilder::on(&root);
    b.margin(15);
    if text {
        b.caption(format!("Reliability · {title}"), ("sans-serif", 22))
            .x_label_area_size(45)
            .y_label_area_size(55);
    }
    let mut chart = b
        .build_cartesian_2d(0.0f64..1.0, 0.0f64..1.0)
        .map_err(|e| plot_err(&name, e))?;
    let mut mesh = chart.configure_mesh();
    if text {
        mesh.x_desc("mean predicted probability (10 bins)")
            .y_desc("observed frequency");
    }
    mesh.draw().map_err(|e| plot_err(&name, e))?;
    chart
        .draw_series(LineSeries::new([(0.0, 0.0), (1.0, 1.0)], BLACK.mix(0.3)))
        .map_err(|e| plot_err(&name, e))?;
    for (i, (m, acc)) in o.names.iter().zip(&o.models).enumerate() {
        let pts: Vec<(f64, f64)> = acc
            .reliability()
            .iter()
            .filter(|b| b.count > 0)
            .map(|b| (b.mean_predicted, b.observed))
            .collect();
        let c = colour(i);
        let series = chart
            .draw_series(LineSeries::new(pts.iter().copied(), c.stroke_width(2)))
            .map_err(|e| plot_err(&name, e))?;
        if text {
            series
                .label(format!("{m} (ECE {:.3})", acc.ece()))
                .legend(move |(x, y)| {
                    PathElement::new(vec![(x, y), (x + 20, y)], c.stroke_width(2))
                });
        }
        chart
            .draw_series(pts.iter().map(|&p| Circle::new(p, 3, c.filled())))
            .map_err(|e| plot_err(&name, e))?;
    }
    if text {
        chart
            .configure_series_labels()
            .position(SeriesLabelPosition::UpperLeft)
            .background_style(WHITE.mix(0.85))
            .border_style(BLACK)
            .label_font(("sans-serif", 15))
            .draw()
            .map_err(|e| plot_err(&name, e))?;
    }
    root.present().map_err(|e| plot_err(&name, e))
}

fn lead_times(path: &Path, title: &str, o: &Outcome, text: bool) -> Result<(), EvalError> {
    let name = path.display().to_string();
    let root = BitMapBackend::new(path, SIZE).into_drawing_area();
    root.fill(&WHITE).map_err(|e| plot_err(&name, e))?;
    let max_h = o.lead_hours.iter().copied().fold(1.0f64, f64::max).ceil() as u32;
    let mut counts = vec![0u32; max_h as usize + 1];
    for &l in &o.lead_hours {
        counts[(l.floor() as usize).min(max_h as usize)] += 1;
    }
    let top = counts.iter().copied().max().unwrap_or(1).max(1);
    let mut b = ChartBuilder::on(&root);
    b.margin(15);
    if text {
        b.caption(
            format!("Alert lead time (raise → stockout) · {title}"),
            ("sans-serif", 22),
        )
        .x_label_area_size(45)
        .y_label_area_size(60);
    }
    let mut chart = b
        .build_cartesian_2d((0u32..max_h + 1).into_segmented(), 0u32..top + top / 10 + 1)
        .map_err(|e| plot_err(&name, e))?;
    let mut mesh = chart.configure_mesh();
    if text {
        mesh.x_desc("lead time, hours").y_desc("caught stockouts");
    }
    mesh.draw().map_err(|e| plot_err(&name, e))?;
    chart
        .draw_series(
            Histogram::vertical(&chart)
                .style(colour(0).filled())
                .margin(1)
                .data(counts.iter().enumerate().map(|(h, &c)| (h as u32, c))),
        )
        .map_err(|e| plot_err(&name, e))?;
    root.present().map_err(|e| plot_err(&name, e))
}

/// The alert budget trade-off: precision, recall and lost units covered against
/// `alerts.max_raised_per_location_per_day` (log scale), the values without a limit dashed.
fn budget(path: &Path, title: &str, o: &Outcome, text: bool) -> Result<(), EvalError> {
    let name = path.display().to_string();
    let root = BitMapBackend::new(path, SIZE).into_drawing_area();
    root.fill(&WHITE).map_err(|e| plot_err(&name, e))?;
    let capped: Vec<_> = o
        .alert_budget
        .iter()
        .filter(|b| b.max_raised_per_location_per_day > 0)
        .collect();
    let max_x = capped
        .iter()
        .map(|b| f64::from(b.max_raised_per_location_per_day))
        .fold(2.0, f64::max);
    let unlimited = o
        .alert_budget
        .iter()
        .find(|b| b.max_raised_per_location_per_day == 0);
    let mut b = ChartBuilder::on(&root);
    b.margin(15);
    if text {
        b.caption(format!("Alert budget · {title}"), ("sans-serif", 22))
            .x_label_area_size(45)
            .y_label_area_size(55);
    }
    let mut chart = b
        .build_cartesian_2d((1.0f64..max_x).log_scale(), 0.0f64..1.0)
        .map_err(|e| plot_err(&name, e))?;
    let mut mesh = chart.configure_mesh();
    if text {
        mesh.x_desc("max raised per location per day")
            .y_desc("share");
    } else {
        mesh.disable_x_axis().disable_y_axis();
    }
    mesh.draw().map_err(|e| plot_err(&name, e))?;
    type Pick = fn(&super::report::AlertSummary) -> f64;
    let lines: [(&str, Pick); 3] = [
        ("precision", |a| a.precision),
        ("recall", |a| a.recall),
        ("lost units covered", |a| a.lost_units_covered),
    ];
    for (i, (label, pick)) in lines.into_iter().enumerate() {
        let c = colour(i);
        let pts: Vec<(f64, f64)> = capped
            .iter()
            .map(|b| {
                (
                    f64::from(b.max_raised_per_location_per_day),
                    pick(&b.alerts),
                )
            })
            .collect();
        let series = chart
            .draw_series(LineSeries::new(pts.iter().copied(), c.stroke_width(2)))
            .map_err(|e| plot_err(&name, e))?;
        if text {
            series
                .label(label)
                .legend(move |(x, y)| PathElement::new([(x, y), (x + 20, y)], c.stroke_width(2)));
        }
        chart
            .draw_series(pts.iter().map(|&p| Circle::new(p, 3, c.filled())))
            .map_err(|e| plot_err(&name, e))?;
        if let Some(u) = unlimited {
            let y = pick(&u.alerts);
            chart
                .draw_series(DashedLineSeries::new(
                    [(1.0, y), (max_x, y)],
                    6,
                    4,
                    c.mix(0.6).stroke_width(1),
                ))
                .map_err(|e| plot_err(&name, e))?;
        }
    }
    if text {
        chart
            .configure_series_labels()
            .position(SeriesLabelPosition::LowerRight)
            .background_style(WHITE.mix(0.8))
            .border_style(BLACK)
            .label_font(("sans-serif", 15))
            .draw()
            .map_err(|e| plot_err(&name, e))?;
    }
    root.present().map_err(|e| plot_err(&name, e))
}

fn learning(path: &Path, title: &str, o: &Outcome, text: bool) -> Result<(), EvalError> {
    let name = path.display().to_string();
    let root = BitMapBackend::new(path, (SIZE.0, SIZE.1 + 200)).into_drawing_area();
    root.fill(&WHITE).map_err(|e| plot_err(&name, e))?;
    let (top, bottom) = root.split_vertically((SIZE.1 + 200) / 2);
    let days = o.daily.first().map_or(1, Vec::len).max(1) as f64;
    for (panel, auc) in [(&top, true), (&bottom, false)] {
        let series: Vec<Vec<(f64, f64)>> = o
            .daily
            .iter()
            .map(|d| {
                d.iter()
                    .enumerate()
                    .filter(|(_, a)| !a.is_empty())
                    .filter_map(|(day, a)| {
                        let v = if auc { a.roc_auc()? } else { a.brier() };
                        Some((day as f64, v))
                    })
                    .collect()
            })
            .collect();
        let (lo, hi) = series
            .iter()
            .flatten()
            .fold((f64::MAX, f64::MIN), |(l, h), p| (l.min(p.1), h.max(p.1)));
        let (lo, hi) = if lo > hi {
            (0.0, 1.0)
        } else {
            (lo - 0.02, hi + 0.02)
        };
        let mut b = ChartBuilder::on(panel);
        b.margin(12);
        if text {
            b.caption(
                if auc {
                    format!("Daily prequential ROC AUC · {title}")
                } else {
                    "Daily prequential Brier score".to_owned()
                },
                ("sans-serif", 20),
            )
            .x_label_area_size(35)
            .y_label_area_size(55);
        }
        let mut chart = b
            .build_cartesian_2d(0.0..days, lo..hi)
            .map_err(|e| plot_err(&name, e))?;
        let mut mesh = chart.configure_mesh();
        if text {
            mesh.x_desc("day of the data (event time)");
        }
        mesh.draw().map_err(|e| plot_err(&name, e))?;
        for (i, (m, pts)) in o.names.iter().zip(&series).enumerate() {
            let c = colour(i);
            let s = chart
                .draw_series(LineSeries::new(pts.iter().copied(), c.stroke_width(2)))
                .map_err(|e| plot_err(&name, e))?;
            if text {
                s.label(caption(text, m)).legend(move |(x, y)| {
                    PathElement::new(vec![(x, y), (x + 20, y)], c.stroke_width(2))
                });
            }
        }
        if text {
            chart
                .configure_series_labels()
                .position(SeriesLabelPosition::LowerRight)
                .background_style(WHITE.mix(0.85))
                .border_style(BLACK)
                .label_font(("sans-serif", 13))
                .draw()
                .map_err(|e| plot_err(&name, e))?;
        }
    }
    root.present().map_err(|e| plot_err(&name, e))
}
