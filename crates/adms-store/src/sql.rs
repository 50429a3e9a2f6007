//! The SQL fragments written once for the whole store, as macros that expand to string
//! literals, so every statement stays one static string (`concat!`) with bound parameters.
//!
//! Two kinds live here:
//! - **per dialect**: [`in_list!`], [`list_rows!`] and [`list_param`], the binding of a list of values. SQLite
//!   has no array parameter, so a list travels as one JSON array unpacked by `json_each`;
//!   PostgreSQL will bind an array and test `= ANY($n)`. Every statement that binds a list goes
//!   through this pair, so the port swaps the pair, not the statements.
//! - **portable, but long**: [`contains!`], a substring test both engines read the same way.

/// `column IN (the list bound as parameter $n)`; bind the list with [`list_param`].
///
/// SQLite: the parameter is a JSON array (`json_each` yields its elements as SQL values).
macro_rules! in_list {
    ($column:literal, $param:literal) => {
        concat!($column, " IN (SELECT value FROM json_each(", $param, "))")
    };
}

/// The list bound as parameter `$n`, as a table named `alias` with the columns `value` (the
/// element) and `key` (its place in the list, for `ORDER BY`); bind the list with
/// [`list_param`].
///
/// SQLite: the parameter is a JSON array, read by the table-valued `json_each`.
macro_rules! list_rows {
    ($param:literal, $alias:literal) => {
        concat!("json_each(", $param, ") AS ", $alias)
    };
}

/// Whether `haystack` contains the text of parameter `needle`, ignoring ASCII case: the API's
/// `*_icontains` filters. `LIKE` with the needle's wildcards escaped (`!` escapes), not SQLite's
/// `instr` (PostgreSQL has `strpos` instead); both sides are lowered, so `LIKE`'s own ASCII case
/// folding on SQLite changes nothing, and a needle holding `%` or `_` matches only itself.
macro_rules! contains {
    ($($haystack:literal),+ => $needle:literal) => {
        concat!(
            "lower(",
            $($haystack,)+
            ") LIKE '%' || replace(replace(replace(lower(",
            $needle,
            "), '!', '!!'), '%', '!%'), '_', '!_') || '%' ESCAPE '!'"
        )
    };
}

/// The value to bind for an [`in_list!`] parameter: SQLite reads a list as a JSON array.
pub(crate) fn list_param<T: serde::Serialize>(values: &[T]) -> String {
    // A slice of numbers or strings always serialises.
    serde_json::to_string(values).unwrap_or_else(|_| "[]".into())
}
