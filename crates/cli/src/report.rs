//! `baove report ...`: the statistics (casework's ReportingService).

use std::path::PathBuf;

use anyhow::Context as _;
use baove_proto::v1::{self as p, reporting_service_client::ReportingServiceClient};
use clap::Subcommand;

use crate::channel;

/// `baove report ...`.
#[derive(Subcommand)]
pub enum Command {
    /// The Thông tư 13 indicators and the handling figures for a period:
    /// a readable table, or CSV with --csv. Ask casework (--addr).
    Indicators {
        /// 2022, 2022-H1, 2022-Q3, 2022-05 or 2022-01-01..2022-06-30
        /// (Vietnam time).
        #[arg(long)]
        period: String,
        /// Only cases that happened in this unit.
        #[arg(long, default_value = "")]
        unit: String,
        /// Computed up to this global position of casework's log (default:
        /// now; the answer says which position it used).
        #[arg(long, default_value_t = 0)]
        at: u64,
        /// Also the same period a year earlier.
        #[arg(long)]
        compare: bool,
        /// Write CSV (UTF-8, Vietnamese and English labels) to this file.
        #[arg(long)]
        csv: Option<PathBuf>,
    },
    /// An SVG chart of abused children (indicator 0101) by month and form
    /// of abuse, for a period.
    Chart {
        /// As for `indicators`.
        #[arg(long)]
        period: String,
        /// Only cases that happened in this unit.
        #[arg(long, default_value = "")]
        unit: String,
        /// Computed up to this global position (default: now).
        #[arg(long, default_value_t = 0)]
        at: u64,
        /// The SVG file to write.
        #[arg(long)]
        out: PathBuf,
    },
}

/// Runs a `report` command.
pub async fn run(addr: &str, command: Command) -> anyhow::Result<()> {
    let (period, unit, at, compare, csv) = match command {
        Command::Indicators {
            period,
            unit,
            at,
            compare,
            csv,
        } => (period, unit, at, compare, csv),
        Command::Chart {
            period,
            unit,
            at,
            out,
        } => {
            let table = ReportingServiceClient::new(channel(addr).await?)
                .get_indicators(p::GetIndicatorsRequest {
                    period,
                    unit_id: unit,
                    as_of_position: at,
                    compare_previous_year: false,
                })
                .await
                .map_err(|s| crate::refusal(&s))?
                .into_inner()
                .table
                .unwrap_or_default();
            let svg = chart(&table)?;
            std::fs::write(&out, svg).with_context(|| format!("cannot write {}", out.display()))?;
            out!(
                "wrote {} (computed up to position {})",
                out.display(),
                table.as_of_position
            );
            return Ok(());
        }
    };
    let request = p::GetIndicatorsRequest {
        period,
        unit_id: unit,
        as_of_position: at,
        compare_previous_year: compare,
    };
    let mut client = ReportingServiceClient::new(channel(addr).await?);
    if let Some(path) = csv {
        let export = client
            .export_indicators(p::ExportIndicatorsRequest {
                period: request.period,
                unit_id: request.unit_id,
                as_of_position: request.as_of_position,
                compare_previous_year: request.compare_previous_year,
            })
            .await
            .map_err(|s| crate::refusal(&s))?
            .into_inner();
        std::fs::write(&path, &export.csv)
            .with_context(|| format!("cannot write {}", path.display()))?;
        out!(
            "wrote {} (computed up to position {}; ask again with --at {} for the same figures)",
            path.display(),
            export.as_of_position,
            export.as_of_position
        );
        return Ok(());
    }
    let table = client
        .get_indicators(request)
        .await
        .map_err(|s| crate::refusal(&s))?
        .into_inner()
        .table
        .unwrap_or_default();
    print_table(&table);
    Ok(())
}

fn print_table(t: &p::IndicatorTable) {
    out!(
        "{} ({} to {}), {}, computed up to position {}{}",
        t.period,
        t.first_day,
        t.last_day,
        if t.unit_id.is_empty() {
            "whole province"
        } else {
            &t.unit_id
        },
        t.as_of_position,
        if t.small_cells_suppressed {
            "; counts of children below the threshold are hidden (*)"
        } else {
            ""
        }
    );
    let mut current = String::new();
    for row in &t.rows {
        if row.indicator != current {
            current.clone_from(&row.indicator);
            out!("\n{} / {}", row.indicator_vi, row.indicator_en);
        }
        let value = if row.suppressed {
            "*".to_owned()
        } else if row.unit == "share" {
            if row.of == 0 {
                "0/0".to_owned()
            } else {
                // Display only; the exact figures are the two counts.
                #[allow(clippy::cast_precision_loss)]
                let share = row.value as f64 * 100.0 / row.of as f64;
                format!("{}/{} ({share:.1}%)", row.value, row.of)
            }
        } else if row.unit == "minutes" {
            format!("{} min ({:.1} h)", row.value, {
                #[allow(clippy::cast_precision_loss)]
                let hours = row.value as f64 / 60.0;
                hours
            })
        } else {
            row.value.to_string()
        };
        let previous = if row.has_previous && !row.suppressed {
            format!("   (a year earlier: {})", row.previous)
        } else {
            String::new()
        };
        let label = if row.label_vi == row.label_en {
            row.label_vi.clone()
        } else {
            format!("{} / {}", row.label_vi, row.label_en)
        };
        out!("  {:<12} {:<60} {value}{previous}", row.dimension, label);
    }
}

/// Abused children by month, a bar per month stacked by form of abuse.
fn chart(t: &p::IndicatorTable) -> anyhow::Result<String> {
    use plotters::prelude::*;
    let months: Vec<&str> = t
        .rows
        .iter()
        .filter(|r| r.indicator == "0101" && r.dimension == "month")
        .map(|r| r.key.as_str())
        .collect();
    let forms: Vec<&p::IndicatorRow> = t
        .rows
        .iter()
        .filter(|r| r.indicator == "0101" && r.dimension == "form")
        .collect();
    let cell = |month: &str, form: &str| {
        t.rows
            .iter()
            .find(|r| r.dimension == "month_form" && r.key == format!("{month}/{form}"))
            .map_or(0, |r| r.value)
    };
    let stacked: Vec<u64> = months
        .iter()
        .map(|m| forms.iter().map(|f| cell(m, &f.key)).sum())
        .collect();
    let top = stacked.iter().copied().max().unwrap_or(0).max(1);
    let colors = [
        RGBColor(0xc0, 0x39, 0x2b),
        RGBColor(0x8e, 0x44, 0xad),
        RGBColor(0x29, 0x80, 0xb9),
        RGBColor(0x16, 0xa0, 0x85),
        RGBColor(0xf3, 0x9c, 0x12),
        RGBColor(0x7f, 0x8c, 0x8d),
        RGBColor(0x2c, 0x3e, 0x50),
    ];
    let mut out = String::new();
    {
        let width = u32::try_from(months.len())
            .unwrap_or(u32::MAX)
            .saturating_mul(60)
            .max(640);
        let root = SVGBackend::with_string(&mut out, (width, 480)).into_drawing_area();
        let err = |e: &dyn std::fmt::Display| anyhow::anyhow!("cannot draw the chart: {e}");
        root.fill(&WHITE).map_err(|e| err(&e))?;
        let caption = format!(
            "Trẻ em bị xâm hại theo tháng và hình thức / Abused children by month and form, {}{} (position {})",
            t.period,
            if t.unit_id.is_empty() {
                String::new()
            } else {
                format!(", {}", t.unit_id)
            },
            t.as_of_position
        );
        let months_len = u32::try_from(months.len()).unwrap_or(0);
        let mut c = ChartBuilder::on(&root)
            .caption(caption, ("sans-serif", 16))
            .margin(12)
            .x_label_area_size(40)
            .y_label_area_size(40)
            .build_cartesian_2d(0u32..months_len.max(1), 0u64..top + top / 5 + 1)
            .map_err(|e| err(&e))?;
        c.configure_mesh()
            .disable_x_mesh()
            .x_labels(months.len().max(1))
            .x_label_formatter(&|i| {
                months
                    .get(*i as usize)
                    .map_or(String::new(), |m| (*m).to_owned())
            })
            .y_desc("trẻ em / children")
            .draw()
            .map_err(|e| err(&e))?;
        for (fi, form) in forms.iter().enumerate() {
            let color = colors[fi % colors.len()];
            let bars = months.iter().enumerate().map(|(mi, m)| {
                let below: u64 = forms[..fi].iter().map(|f| cell(m, &f.key)).sum();
                let x = u32::try_from(mi).unwrap_or(0);
                Rectangle::new(
                    [(x, below), (x + 1, below + cell(m, &form.key))],
                    color.filled(),
                )
            });
            c.draw_series(bars)
                .map_err(|e| err(&e))?
                .label(format!("{} / {}", form.label_vi, form.label_en))
                .legend(move |(x, y)| {
                    Rectangle::new([(x, y - 5), (x + 10, y + 5)], color.filled())
                });
        }
        c.configure_series_labels()
            .background_style(WHITE.mix(0.8))
            .border_style(BLACK)
            .draw()
            .map_err(|e| err(&e))?;
        root.present().map_err(|e| err(&e))?;
    }
    Ok(out)
}
