//! sockserve-socket: shell, filled by a later issue.
