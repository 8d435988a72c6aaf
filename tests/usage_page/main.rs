//! The usage page: the service's bytes and headers, and the page itself in headless Chromium
//! against the quickstart on loopback, compared with `GET /entitlements` for each user.

#[path = "../../examples/quickstart/app.rs"]
mod app;

mod browser;
mod chromium;
mod dom;
mod service;
