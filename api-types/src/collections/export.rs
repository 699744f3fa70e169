//! One export row of a collection item, as CSV (RFC 4180) or a JSON line: the API streams
//! its export with these, and `lens` writes its result file with the same.

use super::CollectionItem;

/// The CSV header: the columns of every row, in order.
pub const CSV_HEADER: &str = "path,original_file_name,sha256,state,error,top_label,top_score,top_k,uncertain,model,model_version,finished_at,feedback";

/// `item` as one line of the export, its line break included.
pub fn line(item: &CollectionItem, csv: bool) -> String {
    if !csv {
        let mut json = serde_json::to_string(item).unwrap_or_default();
        json.push('\n');
        return json;
    }
    let top_k = item
        .predictions
        .as_ref()
        .map(|p| serde_json::to_string(p).unwrap_or_default())
        .unwrap_or_default();
    let fields = [
        text(&item.path),
        text(&item.original_file_name),
        item.sha256.clone(),
        item.state.as_str().to_owned(),
        text(item.error.as_deref().unwrap_or_default()),
        text(item.top_label.as_deref().unwrap_or_default()),
        item.top_score
            .map(|s| format!("{s:.6}"))
            .unwrap_or_default(),
        top_k,
        item.uncertain.to_string(),
        item.model.clone(),
        item.model_version.clone(),
        item.finished_at.clone().unwrap_or_default(),
        text(item.feedback.as_deref().unwrap_or_default()),
    ];
    let mut out = fields
        .iter()
        .map(|f| quote(f))
        .collect::<Vec<_>>()
        .join(",");
    out.push_str("\r\n");
    out
}

/// A text a person or a client wrote (a file name, a label, a message): one starting with `=`,
/// `+`, `-`, `@`, a tab or a carriage return gets a leading `'`, so a spreadsheet shows it
/// rather than running it as a formula.
fn text(s: &str) -> String {
    if s.starts_with(['=', '+', '-', '@', '\t', '\r']) {
        format!("'{s}")
    } else {
        s.to_owned()
    }
}

/// RFC 4180: a field holding a comma, a quote or a line break is quoted, its quotes doubled.
fn quote(s: &str) -> String {
    if s.contains([',', '"', '\r', '\n']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s.to_owned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fields_are_quoted_as_rfc_4180_says_and_formulas_are_defused() {
        assert_eq!(quote("plain"), "plain");
        assert_eq!(quote("a,b"), "\"a,b\"");
        assert_eq!(quote("say \"hi\""), "\"say \"\"hi\"\"\"");
        assert_eq!(quote("two\nlines"), "\"two\nlines\"");
        for f in ["=SUM(A1)", "+1", "-2", "@cmd", "\tx"] {
            assert!(text(f).starts_with('\''), "{f}");
        }
        assert_eq!(text("beach.jpg"), "beach.jpg");
        assert_eq!(CSV_HEADER.split(',').count(), 13);
    }
}
