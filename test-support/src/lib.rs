//! Test support, in one place: a private `redis-server` per test ([`Redis`]) and jobs queued
//! in it as the API queues them ([`queue::enqueue`]), a database per test on SQLite or
//! PostgreSQL ([`TestDb`]), the real `api`, `worker` and `ui` binaries started on port 0
//! ([`Stack`], or one by one through [`Launcher`]), an HTTP client that
//! registers, logs in, uploads and waits ([`Client`]), image fixtures ([`fixtures`]), and a
//! private network of hosts in Linux network namespaces for network faults ([`netns::Lab`]).
//!
//! The Redis and PostgreSQL URLs tests use come from here only: a private Redis on a free
//! port, and databases created through [`db::admin_url`] (`TEST_DATABASE_URL`) and dropped
//! when the test ends. Nothing is written into the machine's Redis or its databases.

pub mod client;
pub mod db;
pub mod fixtures;
pub mod grafana;
pub mod hostile;
pub mod netns;
pub mod paths;
pub mod process;
pub mod queue;
mod redis_server;
pub mod stack;

pub use client::{login, probe, typed, Client, PASSWORD};
pub use db::{Backend, TestDb};
pub use fixtures::{grace_hopper, png, png_declaring, top1, unique_photo, with_trailer};
pub use netns::{Lab, LabError};
pub use paths::{binary, repo, shared_dir};
pub use process::{eventually, wait_until, Proc, TimedOut};
pub use redis_server::{free_port, Redis, MAXMEMORY};
pub use stack::{test_defaults, wait_ready, with, Api, Launcher, Stack, StackBuilder, Ui};
