//! The people page: the roster, read-only (the API writes it), filtered by PIN and area, with
//! the terminals that reported each person and their template counts. Paged by the roster's
//! own list (pages of 50; the roster is thousands of people, not millions).

use askama::Template;
use axum::extract::{Query, State};
use axum::response::Response;
use serde::Deserialize;

use adms_store::Page;
use adms_store::roster::EmployeeFilter;

use super::pages::{AreaOption, Layout, areas, device_href};
use super::session::ConsoleUser;
use super::{ConsoleError, render};
use crate::state::SharedState;

const PEOPLE_PER_PAGE: i64 = 50;
/// The deepest page offered (a search narrows further).
const MAX_PAGE: i64 = 10_000;

struct Terminal {
    sn: String,
    href: String,
    fingerprints: i64,
    faces: i64,
}

struct Person {
    pin: String,
    name: String,
    department: String,
    areas: String,
    status: String,
    templates: String,
    terminals: Vec<Terminal>,
}

#[derive(Template)]
#[template(path = "console/people.html")]
struct PeoplePage {
    layout: Layout,
    nav: &'static str,
    people: Vec<Person>,
    count: i64,
    areas: Vec<AreaOption>,
    filter_q: String,
    previous_page: Option<String>,
    next_page: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
pub struct PeopleQuery {
    #[serde(default)]
    q: String,
    #[serde(default)]
    area: String,
    #[serde(default)]
    page: String,
}

impl PeopleQuery {
    fn href(&self, page: i64) -> String {
        let mut query = form_urlencoded::Serializer::new(String::new());
        for (key, value) in [("q", &self.q), ("area", &self.area)] {
            if !value.is_empty() {
                query.append_pair(key, value);
            }
        }
        if page > 0 {
            query.append_pair("page", &page.to_string());
        }
        let query = query.finish();
        if query.is_empty() { "/ui/people".to_owned() } else { format!("/ui/people?{query}") }
    }
}

/// What a template type is called.
fn bio_name(bio_type: i64) -> &'static str {
    match bio_type {
        1 => "fingerprint",
        2 | 9 => "face",
        7 => "finger vein",
        8 => "palm",
        _ => "other",
    }
}

/// `GET /ui/people?q=&area=&page=`.
pub async fn people(
    State(state): State<SharedState>,
    user: ConsoleUser,
    Query(query): Query<PeopleQuery>,
) -> Result<Response, ConsoleError> {
    let bad = |what: &str| ConsoleError::BadRequest(format!("Unknown {what} in the address."));
    let area_id = match query.area.as_str() {
        "" => None,
        text => Some(text.parse::<i64>().map_err(|_| bad("area"))?),
    };
    let page_no = match query.page.as_str() {
        "" => 0,
        text => text.parse::<i64>().ok().filter(|n| (0..=MAX_PAGE).contains(n)).ok_or_else(|| bad("page"))?,
    };
    let search = query.q.trim();
    let filter = EmployeeFilter {
        emp_code_icontains: (!search.is_empty()).then(|| search.to_owned()),
        area: area_id,
        ..EmployeeFilter::default()
    };
    let page = Page { offset: page_no * PEOPLE_PER_PAGE, limit: PEOPLE_PER_PAGE };
    let (count, employees) = state.store.list_employees(&filter, page).await?;
    let pins: Vec<String> = employees.iter().map(|e| e.fields.emp_code.clone()).collect();
    let held = state.store.terminals_holding(&pins).await?;
    let people = employees
        .into_iter()
        .map(|e| {
            let pin = e.fields.emp_code;
            Person {
                terminals: held
                    .iter()
                    .filter(|h| h.pin == pin)
                    .map(|h| Terminal {
                        sn: h.sn.clone(),
                        href: device_href(&h.sn),
                        fingerprints: h.fingerprints,
                        faces: h.faces,
                    })
                    .collect(),
                name: format!("{} {}", e.fields.first_name, e.fields.last_name).trim().to_owned(),
                department: e.dept_name,
                areas: e.areas.iter().map(|a| a.area_name.as_str()).collect::<Vec<_>>().join(", "),
                status: e.status,
                templates: e
                    .biometrics
                    .iter()
                    .map(|b| format!("{} {}", b.count, bio_name(b.bio_type)))
                    .collect::<Vec<_>>()
                    .join(", "),
                pin,
            }
        })
        .collect();
    let next_page = (page.offset + PEOPLE_PER_PAGE < count && page_no < MAX_PAGE).then(|| query.href(page_no + 1));
    render(&PeoplePage {
        layout: Layout::of(&user),
        nav: "people",
        people,
        count,
        areas: areas(&state, area_id).await?,
        filter_q: query.q.clone(),
        previous_page: (page_no > 0).then(|| query.href(page_no - 1)),
        next_page,
    })
}
