//! A small builder for SQL whose filters vary: writes the placeholders and keeps the binds.

use sqlx::any::AnyArguments;
use sqlx::query::Query;
use sqlx::{Any, Arguments};

/// A value bound to a placeholder.
#[derive(Debug, Clone)]
pub(crate) enum Arg {
    Int(i64),
    Text(String),
}

#[derive(Debug, Default)]
pub(crate) struct Sql {
    pub(crate) text: String,
    args: Vec<Arg>,
}

impl Sql {
    /// Numbered `$N` placeholders, understood by both backends.
    pub(crate) fn new(text: &str) -> Self {
        Self { text: text.to_owned(), args: Vec::new() }
    }

    pub(crate) fn push(&mut self, text: &str) -> &mut Self {
        self.text.push_str(text);
        self
    }

    /// Appends a placeholder bound to `arg`.
    pub(crate) fn bind(&mut self, arg: Arg) -> &mut Self {
        self.args.push(arg);
        self.text.push('$');
        self.text.push_str(&self.args.len().to_string());
        self
    }

    pub(crate) fn query(&self) -> Query<'_, Any, AnyArguments<'_>> {
        let mut args = AnyArguments::default();
        for arg in &self.args {
            arg.clone().add_to(&mut args);
        }
        sqlx::query_with(&self.text, args)
    }
}

impl Arg {
    /// Moves the value into an argument buffer.
    pub(crate) fn add_to(self, args: &mut AnyArguments<'_>) {
        // Adding a plain integer or string to the argument buffer cannot fail.
        let _ = match self {
            Arg::Int(v) => args.add(v),
            Arg::Text(v) => args.add(v),
        };
    }
}

/// `AND column IN ($…)` for a non-empty list.
pub(crate) fn push_in(sql: &mut Sql, column: &str, values: impl IntoIterator<Item = Arg>) {
    let mut first = true;
    for value in values {
        sql.push(if first { " AND " } else { ", " });
        if first {
            sql.push(column).push(" IN (");
            first = false;
        }
        sql.bind(value);
    }
    if !first {
        sql.push(")");
    }
}

/// Escapes `%`, `_` and `\` for a `LIKE … ESCAPE '\'` pattern.
pub(crate) fn like_pattern(needle: &str) -> String {
    let mut out = String::from("%");
    for c in needle.to_lowercase().chars() {
        if matches!(c, '%' | '_' | '\\') {
            out.push('\\');
        }
        out.push(c);
    }
    out.push('%');
    out
}
