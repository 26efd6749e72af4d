//! Charts for the reports page, drawn on the server as SVG with `plotters` (SVG backend only, no
//! font files: text is emitted as SVG `<text>` and the browser draws it with its own fonts, so
//! Vietnamese diacritics render on any machine).
//!
//! Why server-side SVG: no chart script to ship or keep working on old browsers, the charts print
//! with the page, and they are plain markup a test can read.

use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};

/// Width of a chart, in pixels.
pub const CHART_WIDTH_PX: u32 = 520;
/// Height of a chart, in pixels.
pub const CHART_HEIGHT_PX: u32 = 280;

const FONT: &str = "sans-serif";

fn fail(e: impl std::fmt::Display) -> String {
    tracing::error!(error = %e, "drawing a chart");
    String::new()
}

/// A vertical bar chart of labelled counts, each bar with its count above it. Returns the SVG
/// text (empty if drawing failed, which the page shows as a missing chart).
pub fn bars(title: &str, data: &[(String, u64)], color: RGBColor) -> String {
    let mut svg = String::new();
    let result = (|| -> Result<(), Box<dyn std::error::Error + '_>> {
        let root = SVGBackend::with_string(&mut svg, (CHART_WIDTH_PX, CHART_HEIGHT_PX))
            .into_drawing_area();
        root.fill(&WHITE)?;
        let max = data.iter().map(|d| d.1).max().unwrap_or(0).max(1);
        let top = max + max / 5 + 1;
        let mut chart = ChartBuilder::on(&root)
            .caption(title, (FONT, 22))
            .margin(12)
            .x_label_area_size(36)
            .y_label_area_size(48)
            .build_cartesian_2d((0..data.len().max(1) - 1).into_segmented(), 0u64..top)?;
        chart
            .configure_mesh()
            .disable_x_mesh()
            .y_labels(5)
            .x_label_style((FONT, 16))
            .y_label_style((FONT, 14))
            .x_label_formatter(&|x| match x {
                SegmentValue::CenterOf(i) => data.get(*i).map(|d| d.0.clone()).unwrap_or_default(),
                _ => String::new(),
            })
            .draw()?;
        chart.draw_series(
            Histogram::vertical(&chart)
                .style(color.filled())
                .margin(24)
                .data(data.iter().enumerate().map(|(i, d)| (i, d.1))),
        )?;
        chart.draw_series(data.iter().enumerate().map(|(i, d)| {
            Text::new(
                d.1.to_string(),
                (SegmentValue::CenterOf(i), d.1),
                (FONT, 17)
                    .into_font()
                    .color(&BLACK)
                    .pos(Pos::new(HPos::Center, VPos::Bottom)),
            )
        }))?;
        root.present()?;
        Ok(())
    })();
    match result {
        Ok(()) => svg,
        Err(e) => fail(e),
    }
}

/// A line chart of one count per day, labelled `dd/mm`.
pub fn daily_line(title: &str, days: &[(String, u64)], color: RGBColor) -> String {
    let mut svg = String::new();
    let result = (|| -> Result<(), Box<dyn std::error::Error + '_>> {
        let root = SVGBackend::with_string(&mut svg, (CHART_WIDTH_PX * 2, CHART_HEIGHT_PX))
            .into_drawing_area();
        root.fill(&WHITE)?;
        let max = days.iter().map(|d| d.1).max().unwrap_or(0).max(1);
        let last = days.len().max(2) - 1;
        let mut chart = ChartBuilder::on(&root)
            .caption(title, (FONT, 22))
            .margin(12)
            .x_label_area_size(36)
            .y_label_area_size(48)
            .build_cartesian_2d(0..last, 0u64..max + max / 5 + 1)?;
        chart
            .configure_mesh()
            .x_labels(days.len().min(16))
            .y_labels(5)
            .x_label_style((FONT, 14))
            .y_label_style((FONT, 14))
            .x_label_formatter(&|i| days.get(*i).map(|d| d.0.clone()).unwrap_or_default())
            .draw()?;
        chart.draw_series(LineSeries::new(
            days.iter().enumerate().map(|(i, d)| (i, d.1)),
            color.stroke_width(3),
        ))?;
        chart.draw_series(
            days.iter()
                .enumerate()
                .map(|(i, d)| Circle::new((i, d.1), 3, color.filled())),
        )?;
        root.present()?;
        Ok(())
    })();
    match result {
        Ok(()) => svg,
        Err(e) => fail(e),
    }
}

/// The palette: the same colours as the stylesheet.
pub mod colors {
    use plotters::style::RGBColor;
    /// Blue: received.
    pub const BLUE: RGBColor = RGBColor(0x1f, 0x5f, 0xa8);
    /// Green: on time, satisfied.
    pub const GREEN: RGBColor = RGBColor(0x2e, 0x7d, 0x32);
    /// Amber: ratings.
    pub const AMBER: RGBColor = RGBColor(0xc7, 0x7c, 0x02);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bar_chart_is_svg_with_vietnamese_labels_and_counts() {
        // Why: the charts must render without any font file on the node, labels intact.
        let svg = bars(
            "Hồ sơ theo hình thức nộp",
            &[
                ("Trực tuyến".into(), 7),
                ("Bưu chính".into(), 1),
                ("Trực tiếp".into(), 3),
            ],
            colors::BLUE,
        );
        assert!(svg.starts_with("<svg"), "{svg}");
        assert!(svg.contains("Trực tuyến"));
        assert!(svg.contains("Hồ sơ theo hình thức nộp"));
        let texts: Vec<&str> = svg
            .split("</text>")
            .filter_map(|s| s.rsplit('>').next().map(str::trim))
            .collect();
        assert!(
            texts.contains(&"7"),
            "the count is written on its bar: {texts:?}"
        );
        let line = daily_line(
            "Tiếp nhận theo ngày",
            &[("01/11".into(), 2), ("02/11".into(), 5)],
            colors::GREEN,
        );
        assert!(
            line.contains("<polyline") || line.contains("<path"),
            "{line}"
        );
    }
}
