//! The tenant web console (`/app`): HTTP-level checks of its guards (anti-forgery tokens,
//! roles, sign-in), tenant isolation through its routes as a property, and the flows in a
//! real browser (headless Chromium over WebDriver).

mod accessibility;
mod account_pages;
mod account_settings;
mod browser;
mod browser_account;
mod connect;
mod fence_witness;
mod http;
mod isolation;
mod lines;
mod picker;
mod statuses;
