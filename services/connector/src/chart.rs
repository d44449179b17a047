//! The overview's charts: a few bars a day (deliveries, bookings and failures; money in and out),
//! drawn as SVG on the server (no script). Pure: numbers in, shapes out.

use chrono::NaiveDate;

/// One bar's value: its series (the colour), how tall, and its tooltip.
#[derive(Debug, Clone, PartialEq)]
pub struct Value {
    pub series: &'static str,
    pub value: f64,
    pub title: String,
}

/// One day's bars, side by side.
#[derive(Debug, Clone, PartialEq)]
pub struct Day {
    pub day: NaiveDate,
    pub values: Vec<Value>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Bar {
    pub x: u32,
    pub y: u32,
    pub height: u32,
    pub series: &'static str,
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
}

pub const WIDTH: u32 = 700;
/// Height of the bars' area; the day labels sit below it.
pub const PLOT_HEIGHT: u32 = 150;
pub const BAR_WIDTH: u32 = 12;

/// The days' bars scaled to the tallest (by magnitude); a zero is no bar.
pub fn draw(days: &[Day]) -> Chart {
    let max = days
        .iter()
        .flat_map(|d| d.values.iter().map(|v| v.value.abs()))
        .fold(0.0_f64, f64::max)
        .max(1.0);
    let slot = WIDTH / (days.len().max(1) as u32);
    let mut bars = Vec::new();
    let mut labels = Vec::new();
    for (i, d) in days.iter().enumerate() {
        let group = d.values.len() as u32 * BAR_WIDTH;
        let left = i as u32 * slot + slot.saturating_sub(group) / 2;
        for (k, v) in d.values.iter().enumerate() {
            let height = ((v.value.abs() / max) * PLOT_HEIGHT as f64).round() as u32;
            if height == 0 {
                continue;
            }
            bars.push(Bar {
                x: left + k as u32 * BAR_WIDTH,
                y: PLOT_HEIGHT - height,
                height,
                series: v.series,
                title: v.title.clone(),
            });
        }
        labels.push(Label {
            x: i as u32 * slot + slot / 2,
            text: d.day.format("%-d/%-m").to_string(),
        });
    }
    Chart { bars, labels }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn day(d: u32, values: &[(&'static str, f64)]) -> Day {
        Day {
            day: NaiveDate::from_ymd_opt(2026, 12, d).unwrap(),
            values: values
                .iter()
                .map(|(series, value)| Value {
                    series,
                    value: *value,
                    title: format!("{value} {series}"),
                })
                .collect(),
        }
    }

    #[test]
    fn bars_are_scaled_to_the_tallest_and_zeros_are_not_drawn() {
        let chart = draw(&[
            day(1, &[("deliveries", 10.0), ("booked", 5.0), ("failures", 0.0)]),
            day(2, &[("deliveries", 0.0), ("booked", 0.0), ("failures", 0.0)]),
        ]);
        let heights: Vec<(&str, u32, u32)> = chart.bars.iter().map(|b| (b.series, b.height, b.y)).collect();
        assert_eq!(heights, [("deliveries", 150, 0), ("booked", 75, 75)]);
        assert_eq!(
            chart.labels.iter().map(|l| l.text.as_str()).collect::<Vec<_>>(),
            ["1/12", "2/12"]
        );
        assert_eq!(chart.bars[0].title, "10 deliveries");
        // the second day's slot starts at the middle
        assert_eq!(chart.labels[1].x, 525);
    }

    #[test]
    fn money_out_is_drawn_by_its_size() {
        let chart = draw(&[day(1, &[("in", 2_277_000.0), ("out", -77_000.0)])]);
        let heights: Vec<u32> = chart.bars.iter().map(|b| b.height).collect();
        assert_eq!(heights, [150, 5]);
    }

    #[test]
    fn an_empty_range_draws_nothing() {
        assert!(draw(&[day(1, &[("booked", 0.0)])]).bars.is_empty());
        assert_eq!(draw(&[]).labels, []);
    }
}
