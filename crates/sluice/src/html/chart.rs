//! Horizontal bar charts as inline SVG, laid out here in Rust: no script and no chart library,
//! so they show from `file://` and print like the rest of the page. Each bar is labelled with
//! its figure, and the figures stay in the page's tables too: the chart only helps the eye.

use super::{block, element, text, Markup};

/// One bar: what it is, its length, the figure written beside it, and its CSS class
/// (`passed`, `failed`, `before`, `after`…).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Bar {
    pub label: String,
    pub value: u128,
    pub figure: String,
    pub class: &'static str,
}

const WIDTH: u128 = 760;
/// Room for the labels, left of the bars.
const LABEL_WIDTH: u128 = 230;
/// The longest bar; what is left of the width is for its figure.
const BAR_SPACE: u128 = 420;
const ROW_HEIGHT: u128 = 22;
const BAR_HEIGHT: u128 = 14;
/// Labels longer than this are cut (the whole label is the bar's tooltip).
const LABEL_CHARS: usize = 34;

/// A figure with the chart (its caption above it); nothing when there are no bars.
pub(crate) fn horizontal_bars(caption: &str, bars: &[Bar]) -> Markup {
    if bars.is_empty() {
        return Markup::default();
    }
    let longest = bars.iter().map(|b| b.value).max().unwrap_or(0);
    let height = ROW_HEIGHT * bars.len() as u128 + 4;
    let rows: Markup = bars
        .iter()
        .enumerate()
        .map(|(i, bar)| row(i as u128, bar, longest))
        .collect();
    let axis = element(
        "line",
        &[
            ("class", "axis"),
            ("x1", &LABEL_WIDTH.to_string()),
            ("x2", &LABEL_WIDTH.to_string()),
            ("y1", "0"),
            ("y2", &height.to_string()),
        ],
        Markup::default(),
    );
    let svg = element(
        "svg",
        &[
            ("class", "chart"),
            ("role", "img"),
            ("aria-label", caption),
            ("viewBox", &format!("0 0 {WIDTH} {height}")),
        ],
        element("title", &[], text(caption)) + axis + rows,
    );
    block(
        "figure",
        &[],
        element("figcaption", &[], text(caption)) + svg,
    )
}

/// The length of a bar of `value` when the longest is `longest`: proportional, and at least one
/// unit for any value above zero so that it is seen.
pub(crate) fn bar_length(value: u128, longest: u128) -> u128 {
    if longest == 0 || value == 0 {
        return 0;
    }
    (value.saturating_mul(BAR_SPACE) / longest).max(1)
}

fn row(index: u128, bar: &Bar, longest: u128) -> Markup {
    let top = index * ROW_HEIGHT + 4;
    let baseline = (top + BAR_HEIGHT - 3).to_string();
    let length = bar_length(bar.value, longest);
    let label = element(
        "text",
        &[
            ("x", &(LABEL_WIDTH - 8).to_string()),
            ("y", &baseline),
            ("text-anchor", "end"),
        ],
        text(shorten(&bar.label)),
    );
    let rect = element(
        "rect",
        &[
            ("class", &format!("bar {}", bar.class)),
            ("x", &LABEL_WIDTH.to_string()),
            ("y", &top.to_string()),
            ("width", &length.to_string()),
            ("height", &BAR_HEIGHT.to_string()),
        ],
        Markup::default(),
    );
    let figure = element(
        "text",
        &[
            ("class", "figure"),
            ("x", &(LABEL_WIDTH + length + 6).to_string()),
            ("y", &baseline),
        ],
        text(&bar.figure),
    );
    let tooltip = element("title", &[], text(format!("{}: {}", bar.label, bar.figure)));
    block("g", &[], tooltip + label + rect + figure)
}

fn shorten(label: &str) -> String {
    if label.chars().count() <= LABEL_CHARS {
        return label.to_string();
    }
    let cut: String = label.chars().take(LABEL_CHARS - 1).collect();
    format!("{cut}…")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bar(label: &str, value: u128) -> Bar {
        Bar {
            label: label.into(),
            value,
            figure: format!("{value} ms"),
            class: "passed",
        }
    }

    #[test]
    fn bars_are_proportional_and_a_small_one_is_still_seen() {
        assert_eq!(bar_length(100, 100), BAR_SPACE);
        assert_eq!(bar_length(50, 100), BAR_SPACE / 2);
        assert_eq!(bar_length(1, 1_000_000), 1);
        assert_eq!(bar_length(0, 100), 0);
        assert_eq!(bar_length(0, 0), 0);
    }

    #[test]
    fn every_bar_has_its_label_and_figure() {
        let chart = horizontal_bars("Step timings", &[bar("backup", 900), bar("lint", 3)]);
        let svg = chart.as_str();
        assert!(svg.contains("<svg class=\"chart\" role=\"img\" aria-label=\"Step timings\""));
        assert!(svg.contains(">backup</text>") && svg.contains(">900 ms</text>"));
        assert!(svg.contains(&format!("width=\"{BAR_SPACE}\"")));
        assert!(svg.contains(">3 ms</text>"));
        assert!(horizontal_bars("none", &[]).is_empty());
    }

    #[test]
    fn labels_are_escaped_and_long_ones_cut() {
        let chart = horizontal_bars("c", &[bar("<b>x", 1), bar(&"y".repeat(60), 2)]);
        assert!(chart.as_str().contains("&lt;b&gt;x"));
        assert!(chart
            .as_str()
            .contains(&format!("{}…", "y".repeat(LABEL_CHARS - 1))));
    }
}
