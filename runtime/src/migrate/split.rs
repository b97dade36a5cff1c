//! Splits a migration's SQL file into statements at top-level `;`, so that each runs through
//! the execution point on its own. Quotes (`'…'`, `"…"`), PostgreSQL dollar quotes
//! (`$$…$$`, `$tag$…$tag$`) and comments (`--`, `/* */`) are respected; comment-only pieces
//! are dropped.

/// The statements of `sql`, without their `;`, trimmed, comment-only ones left out.
pub(crate) fn statements(sql: &str) -> Vec<String> {
    let bytes = sql.as_bytes();
    let mut out = Vec::new();
    let mut start = 0;
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'\'' | b'"' => i = skip_quoted(bytes, i, bytes[i]),
            b'-' if bytes.get(i + 1) == Some(&b'-') => {
                i = sql[i..].find('\n').map_or(bytes.len(), |n| i + n + 1);
            }
            b'/' if bytes.get(i + 1) == Some(&b'*') => {
                i = sql[i + 2..].find("*/").map_or(bytes.len(), |n| i + 2 + n + 2);
            }
            b'$' => i = skip_dollar(sql, i),
            b';' => {
                push(&mut out, &sql[start..i]);
                i += 1;
                start = i;
            }
            _ => i += 1,
        }
    }
    push(&mut out, &sql[start..]);
    out
}

/// Keeps `piece` if it holds code, without its leading comment lines.
fn push(out: &mut Vec<String>, piece: &str) {
    let code: Vec<&str> = piece
        .lines()
        .skip_while(|l| {
            let l = l.trim();
            l.is_empty() || l.starts_with("--")
        })
        .collect();
    let code = code.join("\n");
    if !code.trim().is_empty() {
        out.push(code.trim().to_owned());
    }
}

/// The position after the quote that closes the one at `i` (a doubled quote is an escape).
fn skip_quoted(bytes: &[u8], i: usize, quote: u8) -> usize {
    let mut j = i + 1;
    while j < bytes.len() {
        if bytes[j] == quote {
            if bytes.get(j + 1) == Some(&quote) {
                j += 2;
                continue;
            }
            return j + 1;
        }
        j += 1;
    }
    bytes.len()
}

/// After a dollar-quoted string starting at `i`, or `i + 1` when `$` starts none (`$1`).
fn skip_dollar(sql: &str, i: usize) -> usize {
    let rest = &sql[i + 1..];
    let tag_len = rest.find(|c: char| !(c.is_ascii_alphanumeric() || c == '_')).unwrap_or(rest.len());
    if !rest[tag_len..].starts_with('$') || rest[..tag_len].starts_with(|c: char| c.is_ascii_digit()) {
        return i + 1;
    }
    let tag = &sql[i..i + tag_len + 2];
    let body = i + tag.len();
    sql[body..].find(tag).map_or(sql.len(), |n| body + n + tag.len())
}

#[cfg(test)]
mod tests {
    use super::statements;

    #[test]
    fn splits_at_top_level_semicolons_only() {
        let sql = "-- header; not a statement\nCREATE TABLE \"a;b\" (x TEXT DEFAULT ';');\n\
                   /* c; */ INSERT INTO t VALUES ($1);\nDO $body$ BEGIN PERFORM 1; END $body$;\n-- trailing\n";
        let got = statements(sql);
        assert_eq!(got.len(), 3, "{got:?}");
        assert!(got[0].ends_with("DEFAULT ';')"));
        assert!(got[1].starts_with("/* c; */ INSERT"));
        assert!(got[2].starts_with("DO $body$"));
    }

    #[test]
    fn comment_only_files_have_no_statements() {
        assert!(statements("-- nothing to do\n\n").is_empty());
    }
}
