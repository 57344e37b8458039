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
}

/// Runs a `report` command.
pub async fn run(addr: &str, command: Command) -> anyhow::Result<()> {
    let Command::Indicators {
        period,
        unit,
        at,
        compare,
        csv,
    } = command;
    let request = p::GetIndicatorsRequest {
        period,
        unit_id: unit,
        as_of_position: at,
        compare_previous_year: compare,
    };
    let mut client = ReportingServiceClient::new(channel(addr).await?);
    if let Some(path) = csv {
        let export = client
            .export_indicators(request)
            .await
            .map_err(|s| crate::refusal(&s))?
            .into_inner();
        std::fs::write(&path, &export.csv)
            .with_context(|| format!("cannot write {}", path.display()))?;
        println!(
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
        .into_inner();
    print_table(&table);
    Ok(())
}

fn print_table(t: &p::IndicatorTable) {
    println!(
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
            println!("\n{} / {}", row.indicator_vi, row.indicator_en);
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
        println!("  {:<12} {:<60} {value}{previous}", row.dimension, label);
    }
}
