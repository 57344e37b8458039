//! The department's page: the Thông tư 13/2021 indicator table for a
//! period, beside the same period a year earlier, a chart of abused
//! children (indicator 0101) by month, and the CSV the ministry's forms are
//! filled from. Small counts of children are suppressed by the service and
//! shown as such, never as 0.

use baove_proto::v1 as p;

use crate::i18n::{tr, trf};
use maud::{Markup, html};

/// A share as a percentage with one decimal, the Vietnamese way
/// ("12,5%").
#[must_use]
pub fn percent(value: u64, of: u64) -> String {
    if of == 0 {
        return String::new();
    }
    let tenths = (u128::from(value) * 1000 + u128::from(of) / 2) / u128::from(of);
    format!("{},{}%", tenths / 10, tenths % 10)
}

/// A cell's value as shown: a suppressed small count, a share, minutes, or
/// a count.
#[must_use]
pub fn cell(row: &p::IndicatorRow) -> String {
    if row.suppressed {
        tr("< ngưỡng (ẩn)").to_owned()
    } else if row.unit == "share" {
        format!(
            "{} / {} ({})",
            row.value,
            row.of,
            percent(row.value, row.of)
        )
    } else if row.unit == "minutes" {
        trf("{0} phút", &[&row.value])
    } else {
        row.value.to_string()
    }
}

/// The form choosing the period and the unit.
#[must_use]
pub fn query_form(period: &str, unit: &str) -> Markup {
    html! {
        form.query method="get" action="/thong-ke" {
            div.field {
                label for="ky" { (tr("Kỳ báo cáo (2026, 2026-H1, 2026-Q3, 2026-05 hoặc 2026-01-01..2026-06-30)")) }
                input type="text" id="ky" name="ky" value=(period);
            }
            div.field {
                label for="don-vi" { (tr("Đơn vị (mã; để trống: cả tỉnh)")) }
                input type="text" id="don-vi" name="don-vi" value=(unit);
            }
            button.primary type="submit" { "Xem" }
        }
    }
}

/// Abused children by month (indicator 0101), a bar per month, the year
/// before beside it when compared: an SVG drawn here (no script).
#[must_use]
pub fn chart(table: &p::IndicatorTable) -> Markup {
    let months: Vec<&p::IndicatorRow> = table
        .rows
        .iter()
        .filter(|r| r.indicator == "0101" && r.dimension == "month")
        .collect();
    let top = months
        .iter()
        .map(|r| r.value.max(r.previous))
        .max()
        .unwrap_or(0)
        .max(1);
    if months.is_empty() {
        return html! { p #chart { (tr("Không có số liệu theo tháng của chỉ tiêu 0101 trong kỳ này.")) } };
    }
    let (w, h, bar) = (40_u64, 200_u64, 14_u64);
    let width = w * u64::try_from(months.len()).unwrap_or(0) + 40;
    html! {
        figure #chart {
            svg xmlns="http://www.w3.org/2000/svg" width=(width) height=(h + 40) role="img"
                aria-label=(tr("Số trẻ em bị xâm hại theo tháng")) {
                @for (i, r) in months.iter().enumerate() {
                    @let x = 30 + w * u64::try_from(i).unwrap_or(0);
                    @let now_h = r.value * h / top;
                    @let then_h = r.previous * h / top;
                    rect x=(x) y=(h - now_h + 10) width=(bar) height=(now_h) fill="#0b4f8a" {
                        title { (r.key) ": " (r.value) }
                    }
                    @if r.has_previous {
                        rect x=(x + bar + 2) y=(h - then_h + 10) width=(bar / 2) height=(then_h) fill="#6b6b6b" {
                            title { (r.key) (tr(" (năm trước): ")) (r.previous) }
                        }
                    }
                    text x=(x) y=(h + 28) font-size="10" fill="#1b1b1b" { (r.key.get(5..).unwrap_or(&r.key)) }
                }
                line x1="28" y1=(h + 10) x2=(width) y2=(h + 10) stroke="#1b1b1b" {}
            }
            figcaption { (tr("Trẻ em bị xâm hại (chỉ tiêu 0101) theo tháng: xanh là kỳ này, xám là cùng kỳ năm trước. Tối đa ")) (top) "." }
        }
    }
}

/// Several provinces' tables of one period and unit as one, for a
/// national console over every province's casework: counts and shares'
/// numerators and denominators added up, cell by cell, in the order the
/// cells first come. A cell hidden as a small count in any province is
/// hidden in the sum (never a value that would let the hidden one be
/// worked out); medians and 90th percentiles (minutes), which do not add
/// up, are left out ([`national_note`] says so). Its position is none
/// (0): each province's is its own.
#[must_use]
pub fn national(tables: &[p::IndicatorTable]) -> p::IndicatorTable {
    let Some(first) = tables.first() else {
        return p::IndicatorTable::default();
    };
    let mut rows: Vec<p::IndicatorRow> = Vec::new();
    let mut at = std::collections::HashMap::new();
    for row in tables.iter().flat_map(|t| &t.rows) {
        if row.unit == "minutes" {
            continue;
        }
        let key = (
            row.indicator.clone(),
            row.dimension.clone(),
            row.key.clone(),
        );
        let Some(&i) = at.get(&key) else {
            at.insert(key, rows.len());
            rows.push(row.clone());
            continue;
        };
        let sum: &mut p::IndicatorRow = &mut rows[i];
        sum.value += row.value;
        sum.of += row.of;
        sum.previous += row.previous;
        sum.has_previous |= row.has_previous;
        sum.suppressed |= row.suppressed;
    }
    for row in rows.iter_mut().filter(|r| r.suppressed) {
        row.value = 0;
        row.previous = 0;
    }
    p::IndicatorTable {
        period: first.period.clone(),
        first_day: first.first_day.clone(),
        last_day: first.last_day.clone(),
        unit_id: first.unit_id.clone(),
        as_of_position: 0,
        small_cells_suppressed: tables.iter().any(|t| t.small_cells_suppressed),
        rows,
        province_id: String::new(),
    }
}

/// What a national table ([`national`]) is made of: each province's
/// table with the position of its log, and where its CSV is.
#[must_use]
pub fn national_note(tables: &[p::IndicatorTable], period: &str, unit: &str) -> Markup {
    html! {
        div #provinces {
            p { (trf("Số liệu cả nước: cộng số liệu của {0} tỉnh, thành phố. Trung vị và phân vị 90 (phút) không cộng được giữa các tỉnh: xem bảng của từng tỉnh.", &[&tables.len()])) }
            ul {
                @for t in tables {
                    @let csv = format!(
                        "/thong-ke/csv?{}",
                        serde_urlencoded::to_string([("ky", period), ("don-vi", unit), ("tinh", &t.province_id)])
                            .unwrap_or_default()
                    );
                    li {
                        (t.province_id) (tr(" · tính đến vị trí nhật ký ")) (t.as_of_position) " · "
                        a href=(csv) download { (tr("Tải CSV")) }
                    }
                }
            }
        }
    }
}

/// The indicator table.
#[must_use]
pub fn table(table: &p::IndicatorTable) -> Markup {
    let english = crate::i18n::current() == crate::i18n::Lang::En;
    html! {
        p #period {
            (tr("Kỳ ")) (table.period) (tr(": từ ")) (table.first_day) (tr(" đến ")) (table.last_day)
            @if !table.unit_id.is_empty() { (tr(", đơn vị ")) (table.unit_id) }
            @if !table.province_id.is_empty() { (tr(", tỉnh ")) (table.province_id) }
            // A national table has no one position ([`national`]).
            @if table.as_of_position > 0 { (tr(" · tính đến vị trí nhật ký ")) (table.as_of_position) }
        }
        @if table.small_cells_suppressed {
            p.warning { (tr("Các ô có số trẻ nhỏ hơn ngưỡng được ẩn để không nhận diện được trẻ.")) }
        }
        table #indicators {
            thead { tr { th { (tr("Chỉ tiêu")) } th { (tr("Phân tổ")) } th { (tr("Kỳ này")) } th { (tr("Cùng kỳ năm trước")) } } }
            tbody {
                @for r in &table.rows {
                    @if r.dimension != "month_form" {
                        tr {
                            @if english {
                                td { (r.indicator) " " (r.indicator_en) }
                                td { (r.label_en) }
                            } @else {
                                td { (r.indicator) " " (r.indicator_vi) }
                                td { (r.label_vi) }
                            }
                            td.num { (cell(r)) }
                            td.num {
                                @if r.has_previous {
                                    (cell(&p::IndicatorRow { value: r.previous, ..r.clone() }))
                                }
                            }
                        }
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn given_shares_and_suppressed_cells_then_they_read_the_vietnamese_way() {
        assert_eq!(percent(1, 8), "12,5%");
        assert_eq!(percent(2, 3), "66,7%");
        assert_eq!(percent(1, 0), "");
        let hidden = p::IndicatorRow {
            suppressed: true,
            ..p::IndicatorRow::default()
        };
        assert_eq!(cell(&hidden), "< ngưỡng (ẩn)");
        let share = p::IndicatorRow {
            unit: "share".into(),
            value: 3,
            of: 4,
            ..p::IndicatorRow::default()
        };
        assert_eq!(cell(&share), "3 / 4 (75,0%)");
    }

    #[test]
    fn given_two_provinces_tables_then_the_national_one_adds_them_up_and_hides_what_either_hides() {
        let row = |dimension: &str, key: &str, unit: &str, value, of, suppressed| p::IndicatorRow {
            indicator: "0101".into(),
            dimension: dimension.into(),
            key: key.into(),
            unit: unit.into(),
            value,
            of,
            has_previous: true,
            previous: value / 2,
            suppressed,
            ..p::IndicatorRow::default()
        };
        let ha_noi = p::IndicatorTable {
            period: "2026".into(),
            as_of_position: 40,
            province_id: "vn:01".into(),
            rows: vec![
                row("total", "total", "children", 12, 0, false),
                row("sex", "female", "children", 0, 0, true),
                row("handling", "share", "share", 3, 4, false),
                row("first_action", "median", "minutes", 30, 0, false),
                row("unit", "vn:00070", "children", 12, 0, false),
            ],
            ..p::IndicatorTable::default()
        };
        let can_tho = p::IndicatorTable {
            period: "2026".into(),
            as_of_position: 7,
            province_id: "vn:92".into(),
            small_cells_suppressed: true,
            rows: vec![
                row("total", "total", "children", 20, 0, false),
                row("sex", "female", "children", 9, 0, false),
                row("handling", "share", "share", 5, 6, false),
                row("first_action", "median", "minutes", 90, 0, false),
                row("unit", "vn:31135", "children", 20, 0, false),
            ],
            ..p::IndicatorTable::default()
        };
        let all = national(&[ha_noi.clone(), can_tho.clone()]);
        let cells: Vec<(&str, &str, u64, u64, u64, bool)> = all
            .rows
            .iter()
            .map(|r| {
                (
                    r.dimension.as_str(),
                    r.key.as_str(),
                    r.value,
                    r.of,
                    r.previous,
                    r.suppressed,
                )
            })
            .collect();
        assert_eq!(
            cells,
            [
                ("total", "total", 32, 0, 16, false),
                ("sex", "female", 0, 0, 0, true),
                ("handling", "share", 8, 10, 3, false),
                ("unit", "vn:00070", 12, 0, 6, false),
                ("unit", "vn:31135", 20, 0, 10, false),
            ]
        );
        assert!(all.small_cells_suppressed);
        assert_eq!((all.period.as_str(), all.as_of_position), ("2026", 0));
        assert_eq!(national(&[]), p::IndicatorTable::default());
        let note = national_note(&[ha_noi, can_tho], "2026", "").into_string();
        assert!(note.contains("2 tỉnh"), "{note}");
        assert!(
            note.contains("/thong-ke/csv?ky=2026&amp;don-vi=&amp;tinh=vn%3A92"),
            "{note}"
        );
    }

    #[test]
    fn given_months_then_the_chart_has_a_bar_each_and_the_year_before_beside() {
        let month = |key: &str, value, previous| p::IndicatorRow {
            indicator: "0101".into(),
            dimension: "month".into(),
            key: key.into(),
            value,
            has_previous: true,
            previous,
            ..p::IndicatorRow::default()
        };
        let t = p::IndicatorTable {
            rows: vec![month("2026-01", 4, 2), month("2026-02", 0, 1)],
            ..p::IndicatorTable::default()
        };
        let svg = chart(&t).into_string();
        assert_eq!(svg.matches("<rect").count(), 4, "{svg}");
        assert!(svg.contains("2026-01: 4") && svg.contains("2026-02 (năm trước): 1"));
    }

    #[test]
    fn given_english_then_the_table_names_indicators_as_the_service_does_in_english() {
        let t = p::IndicatorTable {
            rows: vec![p::IndicatorRow {
                indicator: "0101".into(),
                indicator_en: "Abused children".into(),
                indicator_vi: "Số trẻ em bị xâm hại".into(),
                dimension: "sex".into(),
                label_en: "Girls".into(),
                label_vi: "Trẻ em gái".into(),
                value: 3,
                ..p::IndicatorRow::default()
            }],
            ..p::IndicatorTable::default()
        };
        let render = |lang| {
            let context = crate::i18n::Context {
                lang,
                here: "/thong-ke".into(),
            };
            tokio::runtime::Builder::new_current_thread()
                .build()
                .expect("a runtime")
                .block_on(crate::i18n::scope(context, async {
                    table(&t).into_string()
                }))
        };
        let en = render(crate::i18n::Lang::En);
        assert!(
            en.contains("0101 Abused children") && en.contains("Girls"),
            "{en}"
        );
        assert!(
            en.contains("This period") && !en.contains("Trẻ em gái"),
            "{en}"
        );
        let vi = render(crate::i18n::Lang::Vi);
        assert!(
            vi.contains("Số trẻ em bị xâm hại") && vi.contains("Trẻ em gái"),
            "{vi}"
        );
    }
}
