//! Cross-crate and end-to-end tests of CallHelper live in `e2e/`, one module an area.
//! This library holds nothing; the package exists for its test binary.
