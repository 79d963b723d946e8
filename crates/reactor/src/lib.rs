//! sockserve-reactor: shell, filled by a later issue.
