//! The SQL fragments written once for the whole store, as macros that expand to string
//! literals, so every statement stays one static string (`concat!`) with bound parameters.
//!
//! The fragments here read the same on both engines ([`contains!`], a substring test;
//! [`device_users_upsert!`], the parts of the bulk user upsert that do not depend on how the
//! rows arrive). The ones that differ per engine (the binding of a list: `in_list!`,
//! `list_rows!`) are defined per engine in `backend`, and exist only inside `on_db!` and `dual!`.

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

/// The columns of a `device_users` row as an upsert writes them (one `USER` line, sealed), and
/// what a conflict on `(device_id, pin)` replaces: the same text for each engine's bulk upsert
/// (`sqlite::bulk`, `postgres::bulk`), which differ only in how the rows arrive.
macro_rules! device_users_upsert {
    (columns) => {
        "INSERT INTO device_users (device_id, pin, name, name_raw, privilege, password, card, group_no, time_zones, \
                                   verify, vice_card, raw_line, updated_at, revision) "
    };
    (on_conflict) => {
        " ON CONFLICT (device_id, pin) DO UPDATE SET name = excluded.name, name_raw = excluded.name_raw, \
         privilege = excluded.privilege, password = excluded.password, card = excluded.card, \
         group_no = excluded.group_no, time_zones = excluded.time_zones, verify = excluded.verify, \
         vice_card = excluded.vice_card, raw_line = excluded.raw_line, updated_at = excluded.updated_at, \
         revision = excluded.revision"
    };
}
