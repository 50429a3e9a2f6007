//! CVSecurity's answer: `{code, message, data}` with HTTP 200, `code: 0` and `message:
//! "success"` on success, a negative code and a descriptive message on errors (clients parse
//! only the body; several compare `message` with "success" and show it to an operator).
//!
//! Every code the bridge answers is here, with the reference's meaning (`cvsecurity_api.md`
//! §3.5). Two are our choice, since the reference has none for them: a missing, unknown or
//! revoked `access_token` is [`CvError::Unauthenticated`] (-401, "Authentication required",
//! the words one client reported), and a write by a read-only client is [`CvError::ReadOnly`]
//! (-403). Change them here. The `auxOut/*` family is undocumented: its errors answer with the
//! door codes of the same meaning (-44 id empty, -45 duration, -47 missing), with words that
//! name the auxiliary output. The visitor codes (-240 to -261) are listed by the reference as
//! meanings in order without each code beside its meaning; ours number them in that order from
//! -240 (a guess, kept here: [`CvError::code`]). An unknown floor id has no code in the
//! reference: -1 with words that say so.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use serde_json::Value;

use adms_store::{ErrorKind, StoreError};

/// The success answer, with its data (`null` for writes).
#[derive(Debug, Serialize)]
pub struct Envelope {
    code: i64,
    message: String,
    data: Value,
}

impl Envelope {
    pub fn success(data: Value) -> Envelope {
        Envelope { code: 0, message: "success".into(), data }
    }
}

impl IntoResponse for Envelope {
    fn into_response(self) -> Response {
        axum::Json(self).into_response()
    }
}

/// What a CVSecurity handler answers.
pub type CvResult = Result<Envelope, CvError>;

/// Why a CVSecurity request failed; each answers with its code (see [`CvError::code`]).
#[derive(Debug, thiserror::Error)]
pub enum CvError {
    #[error("Authentication required")]
    Unauthenticated,
    #[error("API access abnormal: this API client may only read")]
    ReadOnly,
    #[error("pageNo and pageSize must be greater than 0")]
    PageNotPositive,
    #[error("pageSize must not be greater than {0}")]
    PageTooLarge(i64),
    #[error("pageNo and pageSize are required")]
    PageMissing,
    #[error("the department number is empty")]
    DeptCodeEmpty,
    #[error("the department number does not exist")]
    DeptMissing,
    #[error("the pin is empty")]
    PinEmpty,
    #[error("the person does not exist")]
    PersonMissing,
    #[error("the pin is not 1 to 24 letters and digits")]
    PinInvalid,
    #[error("the card number is already used by {0}")]
    CardUsed(String),
    #[error("the access level does not exist")]
    LevelMissing,
    #[error("the elevator level does not exist")]
    EleLevelMissing,
    #[error("authorizing the access level failed: {0}")]
    LevelGrantFailed(String),
    #[error("the person or level id is empty")]
    PersonOrLevelEmpty,
    #[error("the level id is empty")]
    LevelIdEmpty,
    #[error("the door id is empty")]
    DoorIdEmpty,
    #[error("the door opening duration must be 1 to 254 seconds")]
    DoorDuration,
    #[error("the door name is empty")]
    DoorNameEmpty,
    #[error("the door does not exist")]
    DoorMissing,
    #[error("the auxiliary output id is empty")]
    AuxOutputIdEmpty,
    #[error("the auxiliary output opening duration must be 1 to 254 seconds")]
    AuxOutputDuration,
    #[error("the auxiliary output does not exist")]
    AuxOutputMissing,
    #[error("the host's pin (persPersonPin) is empty")]
    VisitHostEmpty,
    #[error("the certificate type is empty")]
    VisitCertTypeEmpty,
    #[error("the certificate number is empty")]
    VisitCertNumEmpty,
    #[error("the visitor's name is empty")]
    VisitNameEmpty,
    #[error("the visit reason is empty")]
    VisitReasonEmpty,
    #[error("the visit date is empty")]
    VisitDateEmpty,
    #[error("the visit date format is wrong (yyyy-MM-dd HH:mm:ss)")]
    VisitDateFormat,
    #[error("the certificate type is not one of 1 to 8")]
    VisitCertTypeBad,
    #[error("the certificate number is not 1 to 30 letters, digits or '-'")]
    VisitCertNumBad,
    #[error("the visited employee does not exist")]
    VisitHostMissing,
    #[error("the visitor is already registered")]
    VisitAlreadyRegistered,
    #[error("the visitor is not registered (no visit in progress to check out)")]
    VisitNotRegistered,
    #[error("the number of visitors must be greater than 0")]
    VisitCountBad,
    #[error("{0}")]
    VisitSpecialCharacters(String),
    #[error("the floor id is required")]
    FloorIdEmpty,
    #[error("the floor opening time is required")]
    FloorDurationEmpty,
    #[error("the floor opening time must be 1 to 254 seconds")]
    FloorDuration,
    #[error("the floor does not exist")]
    FloorMissing,
    #[error("the time format is wrong (yyyy-MM-dd HH:mm:ss)")]
    TimeFormat,
    #[error("the start time is after the end time")]
    StartAfterEnd,
    #[error("the device does not exist")]
    DeviceMissing,
    #[error("the device SN is required")]
    SnEmpty,
    #[error("the reader id is empty")]
    ReaderIdEmpty,
    #[error("the reader does not exist")]
    ReaderMissing,
    /// Something the reference has no code for (an unknown transaction id, a body that does
    /// not parse): "program error" with words that say what.
    #[error("{0}")]
    Other(String),
    #[error("request body too large (limit {0} bytes)")]
    BodyTooLarge(usize),
    #[error("storage: {0}")]
    Store(#[from] StoreError),
}

impl CvError {
    /// The envelope's code (`cvsecurity_api.md` §3.5).
    pub fn code(&self) -> i64 {
        match self {
            CvError::Unauthenticated => -401,
            CvError::ReadOnly => -403,
            CvError::PageNotPositive => -90,
            CvError::PageTooLarge(_) => -91,
            CvError::PageMissing => -92,
            CvError::DeptCodeEmpty => -10,
            CvError::DeptMissing => -13,
            CvError::PinEmpty => -20,
            CvError::PersonMissing => -22,
            CvError::CardUsed(_) => -23,
            CvError::PinInvalid => -29,
            CvError::LevelMissing | CvError::EleLevelMissing => -24,
            CvError::LevelGrantFailed(_) => -40,
            CvError::PersonOrLevelEmpty => -42,
            CvError::LevelIdEmpty => -43,
            CvError::DoorIdEmpty => -44,
            CvError::DoorDuration => -45,
            CvError::DoorNameEmpty => -46,
            CvError::DoorMissing => -47,
            CvError::AuxOutputIdEmpty => -44,
            CvError::AuxOutputDuration => -45,
            CvError::AuxOutputMissing => -47,
            CvError::VisitHostEmpty => -240,
            CvError::VisitCertTypeEmpty => -241,
            CvError::VisitCertNumEmpty => -242,
            CvError::VisitNameEmpty => -243,
            CvError::VisitReasonEmpty => -245,
            CvError::VisitDateEmpty => -246,
            CvError::VisitDateFormat => -248,
            CvError::VisitCertTypeBad => -249,
            CvError::VisitCertNumBad => -250,
            CvError::VisitHostMissing => -251,
            CvError::VisitAlreadyRegistered => -253,
            CvError::VisitNotRegistered => -254,
            CvError::VisitCountBad => -256,
            CvError::VisitSpecialCharacters(_) => -259,
            CvError::FloorIdEmpty => -201,
            CvError::FloorDurationEmpty => -202,
            CvError::FloorDuration => -203,
            CvError::FloorMissing => -1,
            CvError::TimeFormat => -100,
            CvError::StartAfterEnd => -101,
            CvError::DeviceMissing => -102,
            CvError::SnEmpty => -200,
            CvError::ReaderIdEmpty => -263,
            CvError::ReaderMissing => -264,
            CvError::Other(_) | CvError::BodyTooLarge(_) | CvError::Store(_) => -1,
        }
    }
}

impl IntoResponse for CvError {
    fn into_response(self) -> Response {
        let message = match &self {
            CvError::Store(error) => {
                // The store's own words for a refusal; never the database's (they name tables).
                match error.kind() {
                    ErrorKind::Unavailable => {
                        tracing::error!(%error, "CVSecurity API storage error");
                        "program error: storage unavailable, retry later".to_owned()
                    }
                    _ if matches!(error, StoreError::Database(_)) => {
                        tracing::warn!(%error, "CVSecurity API request refused by the database");
                        "program error".to_owned()
                    }
                    _ => error.to_string(),
                }
            }
            other => other.to_string(),
        };
        let body = Envelope { code: self.code(), message, data: Value::Null };
        if let CvError::BodyTooLarge(_) = self {
            let mut response = (StatusCode::PAYLOAD_TOO_LARGE, axum::Json(body)).into_response();
            // This route's own limit, already explained: not to be restated as `max_body_bytes`.
            response.extensions_mut().insert(crate::limits::Explained);
            return response;
        }
        // HTTP 200: the clients the reference lists read only the body.
        axum::Json(body).into_response()
    }
}
