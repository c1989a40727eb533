//! CSV cells and rows as RFC 4180 has them (comma separated, CRLF line ends, a cell quoted
//! when it holds a comma, a quote, CR or LF, quotes doubled), made safe against formula
//! injection: a cell starting with `=`, `+`, `-`, `@`, a tab or a CR is prefixed with an
//! apostrophe, so a spreadsheet shows it as text instead of running it.

/// Appends one cell's encoding to `out`.
pub fn push_cell(out: &mut Vec<u8>, cell: &str) {
    let guarded = matches!(
        cell.as_bytes().first(),
        Some(b'=' | b'+' | b'-' | b'@' | b'\t' | b'\r')
    );
    let quoted = cell.contains([',', '"', '\r', '\n']);
    if quoted {
        out.push(b'"');
    }
    if guarded {
        out.push(b'\'');
    }
    for b in cell.bytes() {
        if b == b'"' {
            out.extend_from_slice(b"\"\"");
        } else {
            out.push(b);
        }
    }
    if quoted {
        out.push(b'"');
    }
}

/// Appends a row (cells and the CRLF that ends it).
pub fn push_row<S: AsRef<str>>(out: &mut Vec<u8>, cells: &[S]) {
    for (i, cell) in cells.iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        push_cell(out, cell.as_ref());
    }
    out.extend_from_slice(b"\r\n");
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(cells: &[&str]) -> String {
        let mut out = Vec::new();
        push_row(&mut out, cells);
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn quoting_and_guards() {
        assert_eq!(row(&["a", "b"]), "a,b\r\n");
        assert_eq!(
            row(&["a,b", "say \"hi\""]),
            "\"a,b\",\"say \"\"hi\"\"\"\r\n"
        );
        assert_eq!(row(&["line\nbreak", ""]), "\"line\nbreak\",\r\n");
        assert_eq!(
            row(&["=1+2", "+x", "-3", "@SUM(A1)"]),
            "'=1+2,'+x,'-3,'@SUM(A1)\r\n"
        );
        assert_eq!(
            row(&["=HYPERLINK(\"http://x\",\"y\")"]),
            "\"'=HYPERLINK(\"\"http://x\"\",\"\"y\"\")\"\r\n"
        );
        assert_eq!(row(&["a=b", "ok-"]), "a=b,ok-\r\n");
        assert_eq!(row(&["\tcmd"]), "'\tcmd\r\n");
    }
}
