//! A small builder for SQL whose filters vary: writes the placeholders and keeps the binds.

use sqlx::any::AnyArguments;
use sqlx::query::Query;
use sqlx::{Any, Arguments};

/// A value bound to a placeholder.
#[derive(Debug, Clone)]
pub(crate) enum Arg {
    Int(i64),
    Text(String),
    /// Text or NULL.
    OptText(Option<String>),
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

    /// A statement already written, with the values of its placeholders in order.
    pub(crate) fn written(text: String, args: Vec<Arg>) -> Self {
        Self { text, args }
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
            // Adding a plain integer or string to the argument buffer cannot fail.
            let _ = match arg {
                Arg::Int(v) => args.add(*v),
                Arg::Text(v) => args.add(v.clone()),
                Arg::OptText(v) => args.add(v.clone()),
            };
        }
        sqlx::query_with(&self.text, args)
    }

    /// The query, moving the bound values into it rather than copying them (run it once).
    pub(crate) fn take_query(&mut self) -> Query<'_, Any, AnyArguments<'_>> {
        let mut args = AnyArguments::default();
        for arg in std::mem::take(&mut self.args) {
            // Adding a plain integer or string to the argument buffer cannot fail.
            let _ = match arg {
                Arg::Int(v) => args.add(v),
                Arg::Text(v) => args.add(v),
                Arg::OptText(v) => args.add(v),
            };
        }
        sqlx::query_with(&self.text, args)
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
