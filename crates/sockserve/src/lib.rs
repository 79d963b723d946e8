//! sockserve: shell, filled by a later issue.
