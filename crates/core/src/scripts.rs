//! Script files: reading, linting, running.
