//! The SQL fragments written once for the whole store, as macros that expand to string
//! literals, so every statement stays one static string (`concat!`) with bound parameters.
//!
//! The fragments here read the same on both engines ([`contains!`], a substring test). The ones
//! that differ per engine (the binding of a list: `in_list!`, `list_rows!`) are defined per
//! engine in `backend`, and exist only inside `on_db!` and `dual!`.

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
