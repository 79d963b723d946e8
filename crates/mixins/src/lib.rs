//! sockserve-mixins: shell, filled by a later issue.
