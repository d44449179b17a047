//! The overview's chart: the last days' deliveries, bookings and failures as grouped bars, drawn
//! as SVG on the server (no script). Pure: numbers in, shapes out.

use chrono::NaiveDate;

/// One day's counts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DayCounts {
    pub day: NaiveDate,
    pub deliveries: i64,
    pub booked: i64,
    pub failed: i64,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Bar {
    pub x: u32,
    pub y: u32,
    pub height: u32,
    /// `deliveries`, `booked` or `failed` (its colour).
    pub series: &'static str,
    /// The tooltip: day, series and count.
    pub title: String,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Label {
    pub x: u32,
    pub text: String,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Chart {
    pub bars: Vec<Bar>,
    pub labels: Vec<Label>,
    /// The tallest count (the top of the scale).
    pub max: i64,
}

pub const WIDTH: u32 = 700;
/// Height of the bars' area; the day labels sit below it.
pub const PLOT_HEIGHT: u32 = 150;
const BAR_WIDTH: u32 = 12;

/// Three bars a day, side by side, scaled to the tallest; a zero is no bar.
pub fn draw(days: &[DayCounts]) -> Chart {
    let max = days
        .iter()
        .flat_map(|d| [d.deliveries, d.booked, d.failed])
        .max()
        .unwrap_or(0)
        .max(1);
    let slot = WIDTH / (days.len().max(1) as u32);
    let mut bars = Vec::new();
    let mut labels = Vec::new();
    for (i, d) in days.iter().enumerate() {
        let left = i as u32 * slot + (slot.saturating_sub(3 * BAR_WIDTH)) / 2;
        for (k, (series, value)) in [("deliveries", d.deliveries), ("booked", d.booked), ("failed", d.failed)]
            .into_iter()
            .enumerate()
        {
            let height = ((value.max(0) as f64 / max as f64) * PLOT_HEIGHT as f64).round() as u32;
            if height == 0 {
                continue;
            }
            bars.push(Bar {
                x: left + k as u32 * BAR_WIDTH,
                y: PLOT_HEIGHT - height,
                height,
                series,
                title: format!("{}: {value} {series}", d.day.format("%b %-d")),
            });
        }
        labels.push(Label {
            x: i as u32 * slot + slot / 2,
            text: d.day.format("%-d/%-m").to_string(),
        });
    }
    Chart { bars, labels, max }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn day(d: u32, deliveries: i64, booked: i64, failed: i64) -> DayCounts {
        DayCounts {
            day: NaiveDate::from_ymd_opt(2026, 12, d).unwrap(),
            deliveries,
            booked,
            failed,
        }
    }

    #[test]
    fn bars_are_scaled_to_the_tallest_and_zeros_are_not_drawn() {
        let chart = draw(&[day(1, 10, 5, 0), day(2, 0, 0, 0)]);
        assert_eq!(chart.max, 10);
        let heights: Vec<(&str, u32, u32)> = chart.bars.iter().map(|b| (b.series, b.height, b.y)).collect();
        assert_eq!(heights, [("deliveries", 150, 0), ("booked", 75, 75)]);
        assert_eq!(
            chart.labels.iter().map(|l| l.text.as_str()).collect::<Vec<_>>(),
            ["1/12", "2/12"]
        );
        assert_eq!(chart.bars[0].title, "Dec 1: 10 deliveries");
        // the second day's slot starts at the middle
        assert_eq!(chart.labels[1].x, 525);
    }

    #[test]
    fn an_empty_range_draws_nothing() {
        let chart = draw(&[day(1, 0, 0, 0)]);
        assert!(chart.bars.is_empty());
        assert_eq!(chart.max, 1);
        assert_eq!(draw(&[]).labels, []);
    }
}
