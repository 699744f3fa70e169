//! End-to-end tests of the real binaries (see `tests/*.rs`); their helpers live in the
//! `test-support` crate.
