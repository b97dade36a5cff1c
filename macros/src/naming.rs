//! Naming rules shared by the derives: table names, field-handle names, enum renames and
//! "did you mean" suggestions.

/// `OrderItem` → `order_item`.
pub fn snake_case(name: &str) -> String {
    let mut out = String::with_capacity(name.len() + 4);
    let chars: Vec<char> = name.chars().collect();
    for (i, &c) in chars.iter().enumerate() {
        if c.is_uppercase() {
            let prev_lower = i > 0 && (chars[i - 1].is_lowercase() || chars[i - 1].is_ascii_digit());
            let next_lower = chars.get(i + 1).is_some_and(|n| n.is_lowercase());
            let prev_upper = i > 0 && chars[i - 1].is_uppercase();
            if i > 0 && (prev_lower || (prev_upper && next_lower)) && !out.ends_with('_') {
                out.push('_');
            }
            out.extend(c.to_lowercase());
        } else {
            out.push(c);
        }
    }
    out
}

/// The default table name: the snake_case name with a naive English plural
/// (`User` → `users`, `Category` → `categories`, `Address` → `addresses`).
pub fn table_name(struct_name: &str) -> String {
    let snake = snake_case(struct_name);
    let ends = |s: &str| snake.ends_with(s);
    if ends("s") || ends("x") || ends("z") || ends("ch") || ends("sh") {
        format!("{snake}es")
    } else if ends("y") && !snake[..snake.len() - 1].ends_with(['a', 'e', 'i', 'o', 'u']) {
        format!("{}ies", &snake[..snake.len() - 1])
    } else {
        format!("{snake}s")
    }
}

/// A field's handle name: `created_at` → `CREATED_AT`.
pub fn handle_name(field: &str) -> String {
    field.trim_start_matches("r#").to_uppercase()
}

/// Renames an enum variant by a `rename_all` rule; `None` when the rule is unknown.
pub fn rename_variant(variant: &str, rule: &str) -> Option<String> {
    let snake = snake_case(variant);
    Some(match rule {
        "lowercase" => variant.to_lowercase(),
        "UPPERCASE" => variant.to_uppercase(),
        "snake_case" => snake,
        "SCREAMING_SNAKE_CASE" => snake.to_uppercase(),
        "kebab-case" => snake.replace('_', "-"),
        "camelCase" => {
            let mut c = variant.chars();
            c.next().map(|f| f.to_lowercase().chain(c).collect()).unwrap_or_default()
        }
        "PascalCase" => variant.to_owned(),
        _ => return None,
    })
}

/// The `rename_all` rules [`rename_variant`] knows.
pub const RENAME_RULES: &[&str] =
    &["lowercase", "UPPERCASE", "snake_case", "SCREAMING_SNAKE_CASE", "kebab-case", "camelCase", "PascalCase"];

/// The candidate closest to `word`, if it is close enough to be a likely typo.
pub fn did_you_mean<'a>(word: &str, candidates: impl IntoIterator<Item = &'a str>) -> Option<&'a str> {
    candidates
        .into_iter()
        .map(|c| (levenshtein(word, c), c))
        .filter(|&(d, c)| d <= 2.max(c.len() / 3))
        .min_by_key(|&(d, _)| d)
        .map(|(_, c)| c)
}

fn levenshtein(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut cur = vec![i + 1; b.len() + 1];
        for (j, &cb) in b.iter().enumerate() {
            cur[j + 1] = (prev[j] + usize::from(ca != cb)).min(prev[j + 1] + 1).min(cur[j] + 1);
        }
        prev = cur;
    }
    prev[b.len()]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_names_follow_the_documented_plural_rule() {
        assert_eq!(table_name("User"), "users");
        assert_eq!(table_name("OrderItem"), "order_items");
        assert_eq!(table_name("Category"), "categories");
        assert_eq!(table_name("Day"), "days");
        assert_eq!(table_name("Address"), "addresses");
        assert_eq!(table_name("Box"), "boxes");
        assert_eq!(table_name("HTTPRequest"), "http_requests");
    }

    #[test]
    fn variants_rename_by_rule() {
        assert_eq!(rename_variant("InProgress", "snake_case").as_deref(), Some("in_progress"));
        assert_eq!(rename_variant("InProgress", "kebab-case").as_deref(), Some("in-progress"));
        assert_eq!(rename_variant("InProgress", "camelCase").as_deref(), Some("inProgress"));
        assert_eq!(rename_variant("InProgress", "SCREAMING_SNAKE_CASE").as_deref(), Some("IN_PROGRESS"));
        assert_eq!(rename_variant("InProgress", "Title"), None);
    }

    #[test]
    fn suggestions_only_for_near_misses() {
        assert_eq!(did_you_mean("emial", ["id", "email", "name"]), Some("email"));
        assert_eq!(did_you_mean("zzzzzz", ["id", "email", "name"]), None);
    }
}
