//! Reads what SQLite keeps only as text: the `CREATE TABLE` statement in `sqlite_master`.
//! Its column definitions (for AUTOINCREMENT) and its CHECK / named constraints (SQLite has
//! no catalog table for them) are split out at top-level commas, respecting quotes and
//! parentheses.

use std::collections::{BTreeMap, HashMap};

/// The parenthesised body of a `CREATE TABLE`, split at top-level commas.
fn items(sql: &str) -> Vec<String> {
    let Some(open) = sql.find('(') else { return Vec::new() };
    let body = &sql[open + 1..];
    let mut out = Vec::new();
    let (mut depth, mut quote, mut start) = (0i32, None::<char>, 0);
    for (i, c) in body.char_indices() {
        match (quote, c) {
            (Some(q), c) if c == q => quote = None,
            (Some(_), _) => {}
            (None, '\'' | '"' | '`') => quote = Some(c),
            (None, '(') => depth += 1,
            (None, ')') if depth == 0 => {
                out.push(body[start..i].trim().to_owned());
                return out;
            }
            (None, ')') => depth -= 1,
            (None, ',') if depth == 0 => {
                out.push(body[start..i].trim().to_owned());
                start = i + 1;
            }
            _ => {}
        }
    }
    out
}

/// The first identifier of `s` (quoted or bare), unquoted, and the rest.
fn ident(s: &str) -> (String, &str) {
    let s = s.trim_start();
    if let Some(q) = s.chars().next().filter(|c| matches!(c, '"' | '`' | '[')) {
        let close = if q == '[' { ']' } else { q };
        let mut name = String::new();
        let mut chars = s[1..].char_indices().peekable();
        while let Some((i, c)) = chars.next() {
            if c == close {
                if chars.peek().is_some_and(|(_, n)| *n == close) && close != ']' {
                    name.push(c);
                    chars.next();
                    continue;
                }
                return (name, &s[i + 2..]);
            }
            name.push(c);
        }
        return (name, "");
    }
    let end = s.find(|c: char| c.is_whitespace() || c == '(').unwrap_or(s.len());
    (s[..end].to_owned(), &s[end..])
}

/// Column name → its whole definition.
pub(crate) fn column_defs(sql: &str) -> HashMap<String, String> {
    items(sql).into_iter().filter(|item| !is_table_constraint(item)).map(|item| (ident(&item).0, item)).collect()
}

fn is_table_constraint(item: &str) -> bool {
    let upper = item.trim_start().to_ascii_uppercase();
    ["CONSTRAINT", "PRIMARY", "UNIQUE", "CHECK", "FOREIGN"]
        .iter()
        .any(|k| upper.starts_with(k) && upper[k.len()..].starts_with(|c: char| c.is_whitespace() || c == '('))
}

/// Constraints by name: `CONSTRAINT "name" …` clauses (table- or column-level) and unnamed
/// column CHECKs as `{column}.check{n}`, each with its definition (whitespace collapsed).
pub(crate) fn constraints(sql: &str) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    for item in items(sql) {
        let (owner, mut rest) = if is_table_constraint(&item) { (String::new(), item.as_str()) } else { ident(&item) };
        let mut unnamed = 0;
        let mut name: Option<String> = None;
        loop {
            let upper = rest.to_ascii_uppercase();
            let Some(pos) = keyword(&upper, &["CONSTRAINT", "CHECK", "PRIMARY KEY", "UNIQUE", "FOREIGN KEY"]) else {
                break;
            };
            let (kw, after) = (pos.1, &rest[pos.0 + pos.1.len()..]);
            if kw == "CONSTRAINT" {
                let (n, tail) = ident(after);
                name = Some(n);
                rest = tail;
                continue;
            }
            let (def, tail) = if kw == "FOREIGN KEY" {
                (format!("{kw} {}", after.split_whitespace().collect::<Vec<_>>().join(" ")), "")
            } else {
                clause(kw, after)
            };
            match name.take() {
                Some(n) => {
                    out.insert(n, def);
                }
                None if kw == "CHECK" => {
                    unnamed += 1;
                    out.insert(format!("{owner}.check{unnamed}"), def);
                }
                None => {}
            }
            rest = tail;
        }
    }
    out
}

/// The first of `keywords` in `upper` at a word boundary, outside quotes and parentheses:
/// its position and which keyword.
fn keyword<'k>(upper: &str, keywords: &[&'k str]) -> Option<(usize, &'k str)> {
    let (mut depth, mut quote) = (0i32, None::<char>);
    let bytes: Vec<char> = upper.chars().collect();
    let mut offset = 0;
    for (i, &c) in bytes.iter().enumerate() {
        match (quote, c) {
            (Some(q), c) if c == q => quote = None,
            (Some(_), _) => {}
            (None, '\'' | '"' | '`') => quote = Some(c),
            (None, '(') => depth += 1,
            (None, ')') => depth -= 1,
            (None, _) if depth == 0 && (i == 0 || !bytes[i - 1].is_ascii_alphanumeric()) => {
                for k in keywords {
                    if upper[offset..].starts_with(k)
                        && !upper[offset + k.len()..].starts_with(|c: char| c.is_ascii_alphanumeric() || c == '_')
                    {
                        return Some((offset, k));
                    }
                }
            }
            _ => {}
        }
        offset += c.len_utf8();
    }
    None
}

/// A constraint clause after its keyword: the keyword with its parenthesised part (and, for
/// a key, a trailing `AUTOINCREMENT`), whitespace collapsed; and the text after it.
fn clause<'a>(kw: &str, after: &'a str) -> (String, &'a str) {
    let trimmed = after.trim_start();
    let mut end = 0;
    if trimmed.starts_with('(') {
        let mut depth = 0;
        let mut quote = None;
        for (i, c) in trimmed.char_indices() {
            match (quote, c) {
                (Some(q), c) if c == q => quote = None,
                (Some(_), _) => {}
                (None, '\'' | '"') => quote = Some(c),
                (None, '(') => depth += 1,
                (None, ')') => {
                    depth -= 1;
                    if depth == 0 {
                        end = i + 1;
                        break;
                    }
                }
                _ => {}
            }
        }
    }
    let def = format!("{kw} {}", &trimmed[..end]);
    (def.split_whitespace().collect::<Vec<_>>().join(" "), &trimmed[end..])
}

#[cfg(test)]
mod tests {
    use super::*;

    const SQL: &str = "CREATE TABLE \"t\" (\n  \"id\" INTEGER PRIMARY KEY AUTOINCREMENT,\n  \
        \"age\" INTEGER NOT NULL CHECK (\"age\" BETWEEN -2147483648 AND 2147483647) \
        CONSTRAINT \"t_age_range_check\" CHECK (\"age\" >= 0 AND \"age\" <= 150),\n  \
        \"tag\" TEXT NOT NULL DEFAULT 'a,b' CHECK (\"tag\" IN ('a,b', 'c'))\n) STRICT";

    #[test]
    fn columns_are_split_at_top_level_commas() {
        let defs = column_defs(SQL);
        assert!(defs["id"].contains("AUTOINCREMENT"));
        assert!(defs["tag"].contains("'a,b'"));
    }

    #[test]
    fn checks_are_found_named_and_unnamed() {
        let c = constraints(SQL);
        assert_eq!(c["t_age_range_check"], "CHECK (\"age\" >= 0 AND \"age\" <= 150)");
        assert_eq!(c["age.check1"], "CHECK (\"age\" BETWEEN -2147483648 AND 2147483647)");
        assert_eq!(c["tag.check1"], "CHECK (\"tag\" IN ('a,b', 'c'))");
        assert_eq!(c.len(), 3, "{c:?}");
    }

    #[test]
    fn named_table_constraints_are_kept() {
        let sql = "CREATE TABLE \"k\" (\"a\" TEXT NOT NULL, CONSTRAINT \"k_pkey\" PRIMARY KEY (\"a\"),\n  \
                   CONSTRAINT \"k_a_fkey\" FOREIGN KEY (\"a\") REFERENCES \"t\" (\"id\") ON DELETE CASCADE ON UPDATE NO ACTION) STRICT";
        assert_eq!(constraints(sql)["k_pkey"], "PRIMARY KEY (\"a\")");
        assert_eq!(
            constraints(sql)["k_a_fkey"],
            "FOREIGN KEY (\"a\") REFERENCES \"t\" (\"id\") ON DELETE CASCADE ON UPDATE NO ACTION"
        );
        assert_eq!(column_defs(sql).len(), 1);
    }
}
