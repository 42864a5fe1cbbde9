//! Files the browser saves rather than shows (`Content-Disposition: attachment`): the CSV
//! exports of the operator API and the dashboard.

use axum::http::header;
use axum::response::{IntoResponse, Response};

/// A CSV file download named `filename`.
pub fn csv(filename: &str, bytes: Vec<u8>) -> Response {
    (
        [
            (header::CONTENT_TYPE, "text/csv; charset=utf-8".to_owned()),
            (
                header::CONTENT_DISPOSITION,
                format!("attachment; filename=\"{filename}\""),
            ),
        ],
        bytes,
    )
        .into_response()
}
