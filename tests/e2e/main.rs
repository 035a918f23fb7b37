//! End-to-end tests across crates (one test binary; one module an area).

mod examples;
