//! sockserve-server: shell, filled by a later issue.
