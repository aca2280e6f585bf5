//! One SVG line chart per scenario: reprocess calls Graph let through per second and 429s per second
//! since the drain started, the token bucket's rate as a horizontal line and the fault-free bound as a
//! vertical one; with several instances, also each instance's accepted calls per second.

use crate::scenario::{Outcome, RATE};
use plotters::prelude::*;
use std::path::Path;

const INSTANCE_COLORS: [RGBColor; 4] = [
    RGBColor(0, 150, 60),
    RGBColor(230, 140, 0),
    RGBColor(150, 60, 200),
    RGBColor(0, 170, 190),
];

pub fn draw(outcome: &Outcome, path: &Path) -> Result<(), Box<dyn std::error::Error>> {
    let seconds = outcome.series.len() as f64;
    let bound = outcome.bound().as_secs_f64();
    let peak = outcome
        .series
        .iter()
        .map(|t| t.accepted.max(t.throttled))
        .max()
        .unwrap_or(0) as f64;
    let y_max = (peak.max(RATE) * 1.15).ceil();
    let root = SVGBackend::new(path, (1000, 500)).into_drawing_area();
    root.fill(&WHITE)?;
    let caption = format!(
        "{}: {} IDs in {:.1} s ({:.2} × bound)",
        outcome.scenario.title,
        outcome.ids,
        outcome.wall.as_secs_f64(),
        outcome.ratio()
    );
    let mut chart = ChartBuilder::on(&root)
        .caption(caption, ("sans-serif", 18))
        .margin(12)
        .x_label_area_size(40)
        .y_label_area_size(55)
        .build_cartesian_2d(0f64..seconds.max(bound) + 1.0, 0f64..y_max)?;
    chart
        .configure_mesh()
        .x_desc("seconds since the queue drain started")
        .y_desc("reprocess calls per second")
        .x_label_formatter(&|x| format!("{x:.0}"))
        .y_label_formatter(&|y| format!("{y:.0}"))
        .max_light_lines(0)
        .draw()?;

    let per_second = |tallies: &[reprocess_emulator::series::Tally],
                      pick: fn(&reprocess_emulator::series::Tally) -> usize|
     -> Vec<(f64, f64)> {
        tallies
            .iter()
            .enumerate()
            .map(|(s, t)| (s as f64, pick(t) as f64))
            .collect()
    };
    for (index, tallies) in outcome.per_instance.iter().enumerate() {
        let color = INSTANCE_COLORS[index % INSTANCE_COLORS.len()];
        let label = format!("instance {} accepted", index + 1);
        line(
            &mut chart,
            per_second(tallies, |t| t.accepted),
            color.stroke_width(1),
            label,
        )?;
    }
    let label = "accepted (answered non-429)".to_owned();
    line(
        &mut chart,
        per_second(&outcome.series, |t| t.accepted),
        BLUE.stroke_width(2),
        label,
    )?;
    line(
        &mut chart,
        per_second(&outcome.series, |t| t.throttled),
        RED.stroke_width(2),
        "429".to_owned(),
    )?;
    chart
        .draw_series(DashedLineSeries::new(
            [(0.0, RATE), (seconds.max(bound) + 1.0, RATE)],
            8,
            5,
            BLACK.stroke_width(1),
        ))?
        .label(format!("Graph budget ({RATE:.0}/s)"))
        .legend(|(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], BLACK.stroke_width(1)));
    chart
        .draw_series(DashedLineSeries::new(
            [(bound, 0.0), (bound, y_max)],
            3,
            4,
            BLACK.mix(0.6).stroke_width(1),
        ))?
        .label(format!("bound ({bound:.0} s)"))
        .legend(|(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], BLACK.mix(0.6).stroke_width(1)));
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::UpperRight)
        .background_style(WHITE.mix(0.85))
        .border_style(BLACK.mix(0.4))
        .draw()?;
    root.present()?;
    Ok(())
}

type Chart<'a, 'b> = ChartContext<
    'a,
    SVGBackend<'b>,
    Cartesian2d<plotters::coord::types::RangedCoordf64, plotters::coord::types::RangedCoordf64>,
>;

/// One per-second line with its legend entry.
fn line(
    chart: &mut Chart<'_, '_>,
    points: Vec<(f64, f64)>,
    style: ShapeStyle,
    label: String,
) -> Result<(), Box<dyn std::error::Error>> {
    chart
        .draw_series(LineSeries::new(points, style))?
        .label(label)
        .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], style));
    Ok(())
}
