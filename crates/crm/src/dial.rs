//! Click-to-call (placeholder).
