//! sockserve-handler: shell, filled by a later issue.
