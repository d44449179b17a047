//! How lists read on a terminal: aligned columns under a header.

/// `rows` under `header`, each column as wide as its widest cell; `empty` when there are none.
pub fn table<const N: usize>(header: [&str; N], rows: impl IntoIterator<Item = [String; N]>, empty: &str) -> String {
    let rows: Vec<[String; N]> = rows.into_iter().collect();
    if rows.is_empty() {
        return empty.to_owned();
    }
    let mut widths = header.map(|h| h.chars().count());
    for row in &rows {
        for (width, cell) in widths.iter_mut().zip(row) {
            *width = (*width).max(cell.chars().count());
        }
    }
    let line = |cells: [&str; N]| {
        let padded: Vec<String> = cells.iter().zip(widths).map(|(c, w)| format!("{c:<w$}")).collect();
        padded.join("  ").trim_end().to_owned()
    };
    std::iter::once(line(header))
        .chain(rows.iter().map(|row| line(row.each_ref().map(String::as_str))))
        .collect::<Vec<_>>()
        .join("\n")
}

/// A missing value in a table cell.
pub fn or_dash(value: Option<&str>) -> String {
    value.unwrap_or("-").to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn columns_line_up_under_the_header() {
        let rows = [
            ["1".to_owned(), "Shop".to_owned()],
            ["22".to_owned(), "Café Hà Nội".to_owned()],
        ];
        assert_eq!(
            table(["ID", "NAME"], rows, "none"),
            "ID  NAME\n1   Shop\n22  Café Hà Nội"
        );
        assert_eq!(table(["ID"], Vec::<[String; 1]>::new(), "none"), "none");
    }
}
