//! The console's static files, embedded in the binary (`assets/console/`, see its README for
//! where each comes from). Their names carry their version, so they are cached for a year.

use axum::extract::Path;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};

/// htmx, vendored unmodified with its licence.
pub const HTMX: &str = "htmx-4.0.1.min.js";
/// The console's styles; the name changes with the content (its first bytes of SHA-256 would
/// need a build step: the version in the name is bumped by hand when the file changes).
pub const CSS: &str = "console-2.css";

/// The live punches page's script (the version in the name bumped by hand, as the styles').
pub const LIVE_JS: &str = "console-live-1.js";

struct Asset {
    name: &'static str,
    content_type: &'static str,
    body: &'static [u8],
}

const ASSETS: [Asset; 4] = [
    Asset {
        name: HTMX,
        content_type: "text/javascript; charset=utf-8",
        body: include_bytes!("../../assets/console/htmx-4.0.1.min.js"),
    },
    Asset {
        name: CSS,
        content_type: "text/css; charset=utf-8",
        body: include_bytes!("../../assets/console/console.css"),
    },
    Asset {
        name: LIVE_JS,
        content_type: "text/javascript; charset=utf-8",
        body: include_bytes!("../../assets/console/console-live.js"),
    },
    Asset {
        name: "htmx-LICENSE.txt",
        content_type: "text/plain; charset=utf-8",
        body: include_bytes!("../../assets/console/htmx-LICENSE.txt"),
    },
];

/// `GET /ui/static/{name}`: public (the login page needs its styles), immutable.
pub async fn serve(Path(name): Path<String>) -> Response {
    let Some(asset) = ASSETS.iter().find(|a| a.name == name) else {
        return (StatusCode::NOT_FOUND, "not found").into_response();
    };
    let mut response = asset.body.into_response();
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(asset.content_type));
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("public, max-age=31536000, immutable"));
    response
}
