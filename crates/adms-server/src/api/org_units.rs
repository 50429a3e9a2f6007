//! `/personnel/api/departments/`, `/areas/`, `/positions/`: the same CRUD over three tables,
//! each in ZKBio Time's record shape (code and name, the parent as an object or null).

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use serde_json::json;

use adms_store::StoreError;
use adms_store::roster::{OrgFields, OrgFilter, OrgKind, OrgOrder, OrgUnit, RosterError, RosterRefusal};

use super::auth::Authenticated;
use super::pagination::{Envelope, ListRequest, PageParams, QueryParams};
use super::request::rules::fail;
use super::request::{DrfBody, Field, FieldErrors, Text, Written, invalid_pk, printable, quoted};
use super::{ApiError, openapi};
use crate::state::SharedState;

/// Const-generic tags, so one set of handlers serves the three resources.
pub const DEPARTMENT: u8 = 0;
pub const AREA: u8 = 1;
pub const POSITION: u8 = 2;

/// A resource's field names.
struct Names {
    kind: OrgKind,
    code: &'static str,
    name: &'static str,
    parent: &'static str,
    /// How DRF names the model in "already exists" messages.
    label: &'static str,
}

const fn names<const K: u8>() -> Names {
    match K {
        DEPARTMENT => Names {
            kind: OrgKind::Department,
            code: "dept_code",
            name: "dept_name",
            parent: "parent_dept",
            label: "department",
        },
        AREA => {
            Names { kind: OrgKind::Area, code: "area_code", name: "area_name", parent: "parent_area", label: "area" }
        }
        _ => Names {
            kind: OrgKind::Position,
            code: "position_code",
            name: "position_name",
            parent: "parent_position",
            label: "position",
        },
    }
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
#[schema(as = ParentDepartment)]
pub struct DepartmentParent {
    id: i64,
    dept_code: String,
    dept_name: String,
    parent_dept: Option<i64>,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct Department {
    id: i64,
    dept_code: String,
    dept_name: String,
    parent_dept: Option<DepartmentParent>,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
#[schema(as = ParentArea)]
pub struct AreaParent {
    id: i64,
    area_code: String,
    area_name: String,
    parent_area: Option<i64>,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct Area {
    id: i64,
    area_code: String,
    area_name: String,
    parent_area: Option<AreaParent>,
    parent_area_name: Option<String>,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
#[schema(as = ParentPosition)]
pub struct PositionParent {
    id: i64,
    position_code: String,
    position_name: String,
    parent_position: Option<i64>,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct Position {
    id: i64,
    position_code: String,
    position_name: String,
    parent_position: Option<PositionParent>,
    parent_position_name: Option<String>,
}

/// One record of any of the three resources (serialised as the record itself, keys in order).
#[derive(Debug, Serialize)]
#[serde(untagged)]
pub enum OrgRecord {
    Department(Department),
    Area(Area),
    Position(Position),
}

/// A unit as the resource `K` shows it.
fn to_json<const K: u8>(u: OrgUnit) -> OrgRecord {
    let parent = match (u.parent_id, u.parent_code, u.parent_name) {
        (Some(id), Some(code), Some(name)) => Some((id, code, name, u.parent_parent_id)),
        _ => None,
    };
    let parent_name = parent.as_ref().map(|p| p.2.clone());
    match K {
        DEPARTMENT => OrgRecord::Department(Department {
            id: u.id,
            dept_code: u.code,
            dept_name: u.name,
            parent_dept: parent.map(|(id, dept_code, dept_name, parent_dept)| DepartmentParent {
                id,
                dept_code,
                dept_name,
                parent_dept,
            }),
        }),
        AREA => OrgRecord::Area(Area {
            id: u.id,
            area_code: u.code,
            area_name: u.name,
            parent_area: parent.map(|(id, area_code, area_name, parent_area)| AreaParent {
                id,
                area_code,
                area_name,
                parent_area,
            }),
            parent_area_name: parent_name,
        }),
        _ => OrgRecord::Position(Position {
            id: u.id,
            position_code: u.code,
            position_name: u.name,
            parent_position: parent.map(|(id, position_code, position_name, parent_position)| PositionParent {
                id,
                position_code,
                position_name,
                parent_position,
            }),
            parent_position_name: parent_name,
        }),
    }
}

fn order(params: &QueryParams, n: &Names) -> OrgOrder {
    let requested = params.get("ordering").map(|o| o.trim_start_matches('+').trim()).unwrap_or_default();
    let (descending, field) = match requested.strip_prefix('-') {
        Some(f) => (true, f),
        None => (false, requested),
    };
    match (field, descending) {
        ("id", false) => OrgOrder::IdAsc,
        ("id", true) => OrgOrder::IdDesc,
        (f, false) if f == n.code => OrgOrder::CodeAsc,
        (f, true) if f == n.code => OrgOrder::CodeDesc,
        (f, false) if f == n.name => OrgOrder::NameAsc,
        (f, true) if f == n.name => OrgOrder::NameDesc,
        _ => OrgOrder::IdAsc,
    }
}

pub async fn list<const K: u8>(
    State(state): State<SharedState>,
    _auth: Authenticated,
    list: ListRequest,
) -> Result<Json<Envelope<OrgRecord>>, ApiError> {
    let n = names::<K>();
    let params = &list.params;
    let owned = |k: &str| params.get(k).map(str::to_owned);
    let filter = OrgFilter {
        id: None,
        code: owned(n.code),
        name: owned(n.name),
        code_icontains: owned(&format!("{}_icontains", n.code)),
        name_icontains: owned(&format!("{}_icontains", n.name)),
        order: order(params, &n),
    };
    let (count, rows) = state.store.list_org(n.kind, &filter, list.store_page()).await?;
    let data = rows.into_iter().map(to_json::<K>).collect();
    Ok(Json(list.envelope(count, data)?))
}

pub async fn detail<const K: u8>(
    State(state): State<SharedState>,
    _auth: Authenticated,
    Path(id): Path<String>,
) -> Result<Json<OrgRecord>, ApiError> {
    let unit = state.store.org_by_id(names::<K>().kind, super::parse_id(&id)?).await?.ok_or(ApiError::NotFound)?;
    Ok(Json(to_json::<K>(unit)))
}

/// How a write body is read: on create, code and name are required; on update absent fields
/// keep their value, and a department's code cannot change (read-only in ZKBio Time 9.x's edit
/// serializer), so it is not read at all.
#[derive(Debug, Clone, Copy)]
pub struct OrgWriteMode {
    changing: bool,
    code_read_only: bool,
}

/// The fields of a write body, whichever the resource (each names them its own way:
/// `dept_code`, `area_code`, ...; see the `$write` bodies of `org_unit_routes!`).
pub struct OrgWrite {
    code: Field<Text>,
    name: Field<Text>,
    parent: Field<Written>,
}

/// A code or name of at most `max` printable characters, required on create.
fn org_text(max: usize, is_code: bool) -> impl FnOnce(&Field<Text>, &OrgWriteMode) -> garde::Result {
    move |field, mode| match field {
        _ if is_code && mode.code_read_only => Ok(()),
        Field::Absent | Field::Null if mode.changing => Ok(()),
        Field::Absent | Field::Null => fail("This field is required."),
        Field::Given(Text(s)) if s.is_empty() => fail("This field may not be blank."),
        Field::Given(Text(s)) if s.chars().count() > max || !printable(s) => {
            fail(format!("Ensure this field has no more than {max} printable characters."))
        }
        Field::Given(_) => Ok(()),
        Field::Invalid(_) => fail("Not a valid string."),
    }
}

/// `null` or `""`: no parent.
fn clears_parent(field: &Field<Written>) -> bool {
    match field {
        Field::Null => true,
        Field::Invalid(value) => value.as_str().is_some_and(|s| s.trim().is_empty()),
        _ => false,
    }
}

/// A parent id; whether it exists is checked against the store after the rules.
fn org_parent(field: &Field<Written>, _: &OrgWriteMode) -> garde::Result {
    match field {
        Field::Invalid(value) if !clears_parent(field) => fail(invalid_pk(quoted(value))),
        _ => Ok(()),
    }
}

/// Checks a write body (its rules, then whether its parent exists) and reads code, name and
/// parent over `current` on update.
async fn read_fields<B>(
    state: &SharedState,
    n: &Names,
    body: B,
    current: Option<&OrgUnit>,
) -> Result<OrgFields, ApiError>
where
    B: garde::Validate<Context = OrgWriteMode> + Into<OrgWrite>,
{
    let mode = OrgWriteMode {
        changing: current.is_some(),
        code_read_only: n.kind == OrgKind::Department && current.is_some(),
    };
    let mut errors = FieldErrors::of(&body, &mode);
    let body: OrgWrite = body.into();
    if let Field::Given(parent) = &body.parent
        && state.store.org_by_id(n.kind, parent.value).await?.is_none()
    {
        errors.add(n.parent, invalid_pk(&parent.text));
    }
    errors.finish()?;
    let text = |field: Field<Text>, current: Option<&String>| match field {
        Field::Given(Text(s)) => s,
        _ => current.cloned().unwrap_or_default(),
    };
    let code = if mode.code_read_only {
        current.map(|c| c.code.clone()).unwrap_or_default()
    } else {
        text(body.code, current.map(|c| &c.code))
    };
    let name = text(body.name, current.map(|c| &c.name));
    let parent_id = match body.parent {
        Field::Given(parent) => Some(parent.value),
        Field::Absent => current.and_then(|c| c.parent_id),
        _ => None,
    };
    Ok(OrgFields { code, name, parent_id })
}

fn refusal(n: &Names, e: RosterError) -> ApiError {
    match e {
        RosterError::Refused(RosterRefusal::CodeTaken(_)) => {
            ApiError::BadRequest(json!({ n.code: [format!("{} with this {} already exists.", n.label, n.code)] }))
        }
        RosterError::Refused(RosterRefusal::ParentCycle) => {
            ApiError::BadRequest(json!({ n.parent: ["A unit cannot be its own parent or descendant."] }))
        }
        RosterError::Refused(RosterRefusal::InUse(_)) => ApiError::BadRequest(
            json!({ "detail": format!("This {} is still used by employees, terminals or child units.", n.label) }),
        ),
        RosterError::Refused(RosterRefusal::BuiltIn) => {
            ApiError::BadRequest(json!({ "detail": format!("The default {} cannot be deleted.", n.label) }))
        }
        RosterError::Refused(other) => ApiError::BadRequest(json!({ "detail": other.to_string() })),
        RosterError::Store(StoreError::NotFound) => ApiError::NotFound,
        RosterError::Store(e) => ApiError::Store(e),
    }
}

pub async fn create<const K: u8, B>(
    State(state): State<SharedState>,
    _auth: Authenticated,
    DrfBody(body): DrfBody<B>,
) -> Result<Response, ApiError>
where
    B: garde::Validate<Context = OrgWriteMode> + Into<OrgWrite>,
{
    let n = names::<K>();
    let fields = read_fields(&state, &n, body, None).await?;
    let id = state.store.save_org(n.kind, None, &fields).await.map_err(|e| refusal(&n, e))?;
    let unit = state.store.org_by_id(n.kind, id).await?.ok_or(ApiError::NotFound)?;
    Ok((StatusCode::CREATED, Json(to_json::<K>(unit))).into_response())
}

/// `PUT` / `PATCH`: absent fields keep their value.
pub async fn update<const K: u8, B>(
    State(state): State<SharedState>,
    _auth: Authenticated,
    Path(id): Path<String>,
    DrfBody(body): DrfBody<B>,
) -> Result<Json<OrgRecord>, ApiError>
where
    B: garde::Validate<Context = OrgWriteMode> + Into<OrgWrite>,
{
    let n = names::<K>();
    let id = super::parse_id(&id)?;
    let current = state.store.org_by_id(n.kind, id).await?.ok_or(ApiError::NotFound)?;
    let fields = read_fields(&state, &n, body, Some(&current)).await?;
    state.store.save_org(n.kind, Some(id), &fields).await.map_err(|e| refusal(&n, e))?;
    let unit = state.store.org_by_id(n.kind, id).await?.ok_or(ApiError::NotFound)?;
    Ok(Json(to_json::<K>(unit)))
}

/// 204; refused (400) while employees, terminals or child units refer to it.
pub async fn delete<const K: u8>(
    State(state): State<SharedState>,
    _auth: Authenticated,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    let n = names::<K>();
    let id = super::parse_id(&id)?;
    state.store.delete_org(n.kind, id).await.map_err(|e| refusal(&n, e))?;
    Ok(StatusCode::NO_CONTENT)
}

/// The routes of one resource: non-generic wrappers of the handlers above, each with its
/// `#[utoipa::path]` (the attribute cannot describe a const-generic function; see
/// [`super::openapi`]).
macro_rules! org_unit_routes {
    (
        $module:ident, $kind:ident, $record:ident, $a_noun:tt, $plural:tt,
        list = $list_path:tt, item = $item_path:tt,
        filters = [$($filter:tt),*], ordering = $ordering:tt,
        write = $write:ident { $code:ident, $name:ident, $parent:ident } $(,)?
    ) => {
        pub mod $module {
            use super::*;

            /// The write body (JSON or form-encoded): code and name are required on create;
            /// `PUT` / `PATCH` take any subset.
            #[derive(Debug, serde::Deserialize, utoipa::ToSchema, garde::Validate)]
            #[garde(context(OrgWriteMode))]
            pub struct $write {
                /// At most 30 printable characters.
                #[serde(default)]
                #[schema(value_type = Option<String>, min_length = 1, max_length = 30)]
                #[garde(custom(org_text(30, true)))]
                $code: Field<Text>,
                /// At most 100 printable characters.
                #[serde(default)]
                #[schema(value_type = Option<String>, min_length = 1, max_length = 100)]
                #[garde(custom(org_text(100, false)))]
                $name: Field<Text>,
                /// The parent's id; `null` or `""` for none.
                #[serde(default)]
                #[schema(value_type = Option<i64>)]
                #[garde(custom(org_parent))]
                $parent: Field<Written>,
            }

            impl From<$write> for OrgWrite {
                fn from(body: $write) -> OrgWrite {
                    OrgWrite { code: body.$code, name: body.$name, parent: body.$parent }
                }
            }

            #[utoipa::path(
                get,
                path = $list_path,
                tag = openapi::tag::PERSONNEL,
                summary = concat!("List ", $plural, "."),
                params(
                    $(($filter = Option<String>, Query),)*
                    ("ordering" = Option<String>, Query, description = $ordering),
                    PageParams,
                ),
                responses(
                    (status = 200, description = concat!("One page of ", $plural, "."), body = Envelope<$record>),
                    (status = 404, description = "`Invalid page.`", body = openapi::Detail),
                )
            )]
            pub async fn list(
                state: State<SharedState>,
                auth: Authenticated,
                list: ListRequest,
            ) -> Result<Json<Envelope<OrgRecord>>, ApiError> {
                super::list::<$kind>(state, auth, list).await
            }

            #[utoipa::path(
                post,
                path = $list_path,
                tag = openapi::tag::PERSONNEL,
                summary = concat!("Create ", $a_noun, "."),
                description = concat!(
                    "`", stringify!($code), "` and `", stringify!($name), "` are required; `",
                    stringify!($parent), "` is an id or null."
                ),
                request_body(content(
                    ($write = "application/json"),
                    ($write = "application/x-www-form-urlencoded"),
                )),
                responses(
                    (status = 201, description = "Created.", body = $record),
                    (status = 400, description = "Invalid fields, a code already taken, or an unknown parent.", body = openapi::ValidationErrors),
                )
            )]
            pub async fn create(
                state: State<SharedState>,
                auth: Authenticated,
                body: DrfBody<$write>,
            ) -> Result<Response, ApiError> {
                super::create::<$kind, _>(state, auth, body).await
            }

            #[utoipa::path(
                get,
                path = $item_path,
                tag = openapi::tag::PERSONNEL,
                summary = concat!("Get ", $a_noun, "."),
                params(("id" = i64, Path)),
                responses(
                    (status = 200, description = "The record.", body = $record),
                    (status = 404, description = "No such record.", body = openapi::Detail),
                )
            )]
            pub async fn detail(
                state: State<SharedState>,
                auth: Authenticated,
                id: Path<String>,
            ) -> Result<Json<OrgRecord>, ApiError> {
                super::detail::<$kind>(state, auth, id).await
            }

            #[utoipa::path(
                method(put, patch),
                path = $item_path,
                tag = openapi::tag::PERSONNEL,
                summary = concat!("Change ", $a_noun, "."),
                description = "Absent fields keep their value (a department's code cannot change).",
                params(("id" = i64, Path)),
                request_body(
                    content(
                        (Option<$write> = "application/json"),
                        (Option<$write> = "application/x-www-form-urlencoded"),
                    ),
                    description = "An empty body changes nothing.",
                ),
                responses(
                    (status = 200, description = "The record as changed.", body = $record),
                    (status = 400, description = "Invalid fields, a code already taken, or a parent cycle.", body = openapi::ValidationErrors),
                    (status = 404, description = "No such record.", body = openapi::Detail),
                )
            )]
            pub async fn update(
                state: State<SharedState>,
                auth: Authenticated,
                id: Path<String>,
                body: DrfBody<$write>,
            ) -> Result<Json<OrgRecord>, ApiError> {
                super::update::<$kind, _>(state, auth, id, body).await
            }

            #[utoipa::path(
                delete,
                path = $item_path,
                tag = openapi::tag::PERSONNEL,
                summary = concat!("Delete ", $a_noun, "."),
                description = "Refused while employees, terminals or child units refer to it, and for the built-in default.",
                params(("id" = i64, Path)),
                responses(
                    (status = 204, description = "Deleted."),
                    (status = 400, description = "Still in use, or the default.", body = openapi::Detail),
                    (status = 404, description = "No such record.", body = openapi::Detail),
                )
            )]
            pub async fn delete(
                state: State<SharedState>,
                auth: Authenticated,
                id: Path<String>,
            ) -> Result<StatusCode, ApiError> {
                super::delete::<$kind>(state, auth, id).await
            }
        }
    };
}

org_unit_routes!(
    departments,
    DEPARTMENT,
    Department,
    "a department",
    "departments",
    list = "/personnel/api/departments",
    item = "/personnel/api/departments/{id}",
    filters = ["dept_code", "dept_name", "dept_code_icontains", "dept_name_icontains"],
    ordering = "`id`, `dept_code` or `dept_name`, `-` first for descending.",
    write = DepartmentWrite { dept_code, dept_name, parent_dept },
);
org_unit_routes!(
    areas,
    AREA,
    Area,
    "an area",
    "areas",
    list = "/personnel/api/areas",
    item = "/personnel/api/areas/{id}",
    filters = ["area_code", "area_name", "area_code_icontains", "area_name_icontains"],
    ordering = "`id`, `area_code` or `area_name`, `-` first for descending.",
    write = AreaWrite { area_code, area_name, parent_area },
);
org_unit_routes!(
    positions,
    POSITION,
    Position,
    "a position",
    "positions",
    list = "/personnel/api/positions",
    item = "/personnel/api/positions/{id}",
    filters = ["position_code", "position_name", "position_code_icontains", "position_name_icontains"],
    ordering = "`id`, `position_code` or `position_name`, `-` first for descending.",
    write = PositionWrite { position_code, position_name, parent_position },
);
