//! API tests through the router (`tower::ServiceExt::oneshot`), one file per resource, one test
//! binary. Every scenario runs twice: on a fresh SQLite file and on a fresh PostgreSQL database
//! (created and dropped by `test_support::TestDb`; an unreachable PostgreSQL fails the test,
//! it is never skipped), each with a private Redis.

#![allow(clippy::unwrap_used)]

mod helpers;

mod auth;
mod collections;
mod contract;
mod feedback;
mod health;
mod hostile;
mod limits;
mod predictions;
mod restart;
mod users;
