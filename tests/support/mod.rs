//! Test support shared by every integration test: each test file declares
//! `mod support;` and takes what it needs. One way to do each thing:
//! a database per test ([`db`]), scratch directories ([`tempdir`]), service
//! configs ([`config`]), the service binary as a process ([`spawn`]), waits on
//! events with a deadline ([`wait`]), and Go taken from the builder image
//! ([`go`]); plus the servers and clients tests talk to (api, worker, janitor,
//! S3, SSE, module proxies, an HTTP recorder, a browser).
//!
//! Each test binary compiles all of it and uses a part, hence `dead_code` off.
#![allow(dead_code)]

pub mod api;
pub mod attest;
pub mod browser;
pub mod config;
pub mod db;
pub mod go;
pub mod goproxy;
pub mod http_recorder;
pub mod janitor;
pub mod s3;
pub mod spawn;
pub mod sse;
pub mod tempdir;
pub mod wait;
pub mod worker;
