//! PNG plots of a training run, drawn from its `metrics.jsonl` and written next to the
//! checkpoint: losses, probe R², prediction error per horizon, embedding spread.
//!
//! Text is drawn with a DejaVu Sans font compiled into the binary (plotters' `ab_glyph`
//! backend), so plotting needs no system font library.

use std::path::{Path, PathBuf};
use std::sync::Once;

use anyhow::{anyhow, Context};
use plotters::prelude::*;
use serde::Deserialize;

use super::probe::Diagnostics;
use super::train::StepLosses;

static FONT: &[u8] = include_bytes!("../../assets/fonts/DejaVuSans.ttf");
static REGISTER: Once = Once::new();

/// One line of `metrics.jsonl`, as read back.
#[derive(Debug, Deserialize)]
pub struct MetricsRecord {
    pub step: i64,
    pub elapsed_s: f64,
    pub losses: StepLosses,
    #[serde(default)]
    pub validation: Option<Diagnostics>,
}

/// Reads a run's metrics log; a torn last line (a kill mid-write) is skipped.
pub fn read_metrics(path: &Path) -> anyhow::Result<Vec<MetricsRecord>> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    let lines: Vec<&str> = text.lines().filter(|l| !l.trim().is_empty()).collect();
    let mut out = Vec::with_capacity(lines.len());
    for (i, line) in lines.iter().enumerate() {
        match serde_json::from_str(line) {
            Ok(r) => out.push(r),
            Err(_) if i + 1 == lines.len() => {}
            Err(e) => return Err(anyhow!("{}: line {}: {e}", path.display(), i + 1)),
        }
    }
    Ok(out)
}

/// A named curve.
pub(crate) struct Series {
    pub name: String,
    pub points: Vec<(f64, f64)>,
}

/// A line chart (points marked when there are few) with a legend, as a PNG.
pub(crate) fn line_chart(
    path: &Path,
    title: &str,
    x_desc: &str,
    y_desc: &str,
    series: &[Series],
) -> anyhow::Result<()> {
    line_chart_in(path, title, x_desc, y_desc, series, None)
}

/// [`line_chart`] with a fixed y range (e.g. 0-100 for success rates).
pub(crate) fn line_chart_in(
    path: &Path,
    title: &str,
    x_desc: &str,
    y_desc: &str,
    series: &[Series],
    y_range: Option<(f64, f64)>,
) -> anyhow::Result<()> {
    REGISTER.call_once(|| {
        let _ = plotters::style::register_font("sans-serif", FontStyle::Normal, FONT);
    });
    let points = || {
        series
            .iter()
            .flat_map(|s| s.points.iter())
            .filter(|p| p.0.is_finite() && p.1.is_finite())
    };
    let (mut x0, mut x1, mut y0, mut y1) = (f64::MAX, f64::MIN, f64::MAX, f64::MIN);
    for &(x, y) in points() {
        (x0, x1, y0, y1) = (x0.min(x), x1.max(x), y0.min(y), y1.max(y));
    }
    if x0 > x1 {
        (x0, x1, y0, y1) = (0.0, 1.0, 0.0, 1.0);
    }
    let pad = ((y1 - y0) * 0.05).max(1e-6);
    let (x1, y0, y1) = (if x1 > x0 { x1 } else { x0 + 1.0 }, y0 - pad, y1 + pad);
    let (y0, y1) = y_range.unwrap_or((y0, y1));
    let root = BitMapBackend::new(path, (720, 450)).into_drawing_area();
    root.fill(&WHITE).map_err(|e| anyhow!("{e}"))?;
    let mut chart = ChartBuilder::on(&root)
        .caption(title, ("sans-serif", 20))
        .margin(12)
        .x_label_area_size(40)
        .y_label_area_size(60)
        .build_cartesian_2d(x0..x1, y0..y1)
        .map_err(|e| anyhow!("{e}"))?;
    chart
        .configure_mesh()
        .x_desc(x_desc)
        .y_desc(y_desc)
        .label_style(("sans-serif", 13))
        .draw()
        .map_err(|e| anyhow!("{e}"))?;
    for (i, s) in series.iter().enumerate() {
        let color = Palette99::pick(i).to_rgba();
        let pts: Vec<(f64, f64)> = s
            .points
            .iter()
            .copied()
            .filter(|p| p.0.is_finite() && p.1.is_finite())
            .collect();
        let single = pts.len() == 1;
        chart
            .draw_series(LineSeries::new(pts.clone(), color.stroke_width(2)))
            .map_err(|e| anyhow!("{e}"))?
            .label(s.name.clone())
            .legend(move |(x, y)| {
                PathElement::new(vec![(x, y), (x + 20, y)], color.stroke_width(2))
            });
        if single || pts.len() <= 20 {
            chart
                .draw_series(pts.iter().map(|&p| Circle::new(p, 3, color.filled())))
                .map_err(|e| anyhow!("{e}"))?;
        }
    }
    chart
        .configure_series_labels()
        .label_font(("sans-serif", 13))
        .background_style(WHITE.mix(0.85))
        .border_style(BLACK)
        .position(SeriesLabelPosition::UpperRight)
        .draw()
        .map_err(|e| anyhow!("{e}"))?;
    root.present()
        .map_err(|e| anyhow!("{}: {e}", path.display()))?;
    Ok(())
}

/// Draws `losses.png`, `probes.png`, `horizon.png` and `spread.png` into `run` from its
/// metrics log; returns the files written.
pub fn write_run_plots(run: &Path) -> anyhow::Result<Vec<PathBuf>> {
    let records = read_metrics(&run.join("metrics.jsonl"))?;
    let mut written = Vec::new();

    let losses = loss_series(&records);
    let path = run.join("losses.png");
    line_chart(&path, "Training losses", "step", "log10 loss", &losses)?;
    written.push(path);

    let validations: Vec<(f64, &Diagnostics)> = records
        .iter()
        .filter_map(|r| r.validation.as_ref().map(|v| (step(r), v)))
        .collect();
    let Some((_, last)) = validations.last() else {
        return Ok(written);
    };

    let probes = probe_series(&validations, last);
    let path = run.join("probes.png");
    line_chart(
        &path,
        "Linear probe R² on held-out episodes",
        "step",
        "R²",
        &probes,
    )?;
    written.push(path);

    let horizon = horizon_series(last);
    let path = run.join("horizon.png");
    line_chart(
        &path,
        "Open-loop prediction error (relative to variance)",
        "control steps ahead",
        "error",
        &horizon,
    )?;
    written.push(path);

    let spread = spread_series(&validations, last);
    let path = run.join("spread.png");
    line_chart(
        &path,
        "Embedding spread (collapse watch)",
        "step",
        "value",
        &spread,
    )?;
    written.push(path);
    Ok(written)
}

/// A record's step, as the x of a point.
fn step(r: &MetricsRecord) -> f64 {
    r.step as f64
}

/// The training losses by step, on a log scale (NaN where not positive).
fn loss_series(records: &[MetricsRecord]) -> Vec<Series> {
    let log10 = |v: f64| if v > 0.0 { v.log10() } else { f64::NAN };
    let mut losses = vec![
        Series {
            name: "total".into(),
            points: records
                .iter()
                .map(|r| (step(r), log10(r.losses.total)))
                .collect(),
        },
        Series {
            name: "level-1 prediction".into(),
            points: records
                .iter()
                .map(|r| (step(r), log10(r.losses.level1.prediction)))
                .collect(),
        },
    ];
    if records.iter().any(|r| r.losses.level2.is_some()) {
        losses.push(Series {
            name: "level-2 prediction".into(),
            points: records
                .iter()
                .filter_map(|r| {
                    r.losses
                        .level2
                        .as_ref()
                        .map(|l| (step(r), log10(l.prediction)))
                })
                .collect(),
        });
    }
    losses
}

/// Each probe's R² by validation step (the probes of the last validation).
fn probe_series(validations: &[(f64, &Diagnostics)], last: &Diagnostics) -> Vec<Series> {
    let mut probes: Vec<Series> = Vec::new();
    for (i, p) in last.probes.iter().enumerate() {
        probes.push(Series {
            name: format!("level {}: {}", p.level, p.target),
            points: validations
                .iter()
                .filter_map(|(s, v)| v.probes.get(i).map(|q| (*s, q.r2)))
                .collect(),
        });
    }
    probes
}

/// The last validation's open-loop error by control steps ahead, at each level.
fn horizon_series(last: &Diagnostics) -> Vec<Series> {
    let mut horizon = vec![Series {
        name: "level 1".into(),
        points: last
            .level1_error
            .iter()
            .enumerate()
            .map(|(t, e)| ((t + 1) as f64, *e))
            .collect(),
    }];
    if !last.level2_error.is_empty() {
        let k = last.level2_k.max(1) as f64;
        horizon.push(Series {
            name: "level 2 (one point per jump)".into(),
            points: last
                .level2_error
                .iter()
                .enumerate()
                .map(|(j, e)| ((j + 1) as f64 * k, *e))
                .collect(),
        });
    }
    horizon
}

/// Effective rank (per dimension) and minimum std of the embeddings by validation step.
fn spread_series(validations: &[(f64, &Diagnostics)], last: &Diagnostics) -> Vec<Series> {
    let mut spread = vec![Series {
        name: "level 1 effective rank / dim".into(),
        points: validations
            .iter()
            .map(|(s, v)| {
                (
                    *s,
                    v.level1_spread.effective_rank / v.level1_spread.dim.max(1) as f64,
                )
            })
            .collect(),
    }];
    spread.push(Series {
        name: "level 1 min std".into(),
        points: validations
            .iter()
            .map(|(s, v)| (*s, v.level1_spread.std_min))
            .collect(),
    });
    if last.level2_spread.is_some() {
        spread.push(Series {
            name: "level 2 effective rank / dim".into(),
            points: validations
                .iter()
                .filter_map(|(s, v)| {
                    v.level2_spread
                        .as_ref()
                        .map(|sp| (*s, sp.effective_rank / sp.dim.max(1) as f64))
                })
                .collect(),
        });
    }
    spread
}
