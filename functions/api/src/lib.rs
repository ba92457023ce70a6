//! Placeholder until the component is written (edge-functions issue).
use spin_sdk::http::{IntoResponse, Request, StatusCode};
use spin_sdk::http_service;

#[http_service]
async fn handle(_request: Request) -> impl IntoResponse {
    StatusCode::NOT_IMPLEMENTED
}
