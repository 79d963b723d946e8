//! [`Interest`]: which readiness a registration asks for (Python's `EVENT_READ` / `EVENT_WRITE`).

use std::fmt;
use std::ops::{BitOr, BitOrAssign};

/// The readiness a registration waits for: readable, writable, or both.
///
/// Python's `selectors.EVENT_READ` is [`Interest::READABLE`], `EVENT_WRITE` is
/// [`Interest::WRITABLE`], and `EVENT_READ | EVENT_WRITE` is written the same way here. There is no
/// empty interest: to stop watching a file descriptor, [`unregister`](crate::Reactor::unregister)
/// it.
///
/// ```
/// use sockserve_reactor::Interest;
///
/// let both = Interest::READABLE | Interest::WRITABLE;
/// assert!(both.is_readable() && both.is_writable());
/// assert_eq!(both.remove(Interest::WRITABLE), Some(Interest::READABLE));
/// assert_eq!(format!("{both:?}"), "READABLE | WRITABLE");
/// ```
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct Interest(u8);

const READ: u8 = 0b01;
const WRITE: u8 = 0b10;

impl Interest {
    /// Wait until a read (or `accept`) would not block: Python's `EVENT_READ`.
    ///
    /// ```
    /// use sockserve_reactor::Interest;
    ///
    /// assert!(Interest::READABLE.is_readable());
    /// assert!(!Interest::READABLE.is_writable());
    /// ```
    pub const READABLE: Interest = Interest(READ);

    /// Wait until a write (or a non-blocking `connect`) would not block: Python's `EVENT_WRITE`.
    ///
    /// ```
    /// use sockserve_reactor::Interest;
    ///
    /// assert!(Interest::WRITABLE.is_writable());
    /// assert!(!Interest::WRITABLE.is_readable());
    /// ```
    pub const WRITABLE: Interest = Interest(WRITE);

    /// Whether this interest includes [`Interest::READABLE`].
    ///
    /// ```
    /// use sockserve_reactor::Interest;
    ///
    /// assert!((Interest::READABLE | Interest::WRITABLE).is_readable());
    /// ```
    pub const fn is_readable(self) -> bool {
        self.0 & READ != 0
    }

    /// Whether this interest includes [`Interest::WRITABLE`].
    ///
    /// ```
    /// use sockserve_reactor::Interest;
    ///
    /// assert!(!Interest::READABLE.is_writable());
    /// ```
    pub const fn is_writable(self) -> bool {
        self.0 & WRITE != 0
    }

    /// Both interests together; the same as `self | other`, usable in `const` context.
    ///
    /// ```
    /// use sockserve_reactor::Interest;
    ///
    /// const BOTH: Interest = Interest::READABLE.add(Interest::WRITABLE);
    /// assert_eq!(BOTH, Interest::READABLE | Interest::WRITABLE);
    /// ```
    #[must_use]
    pub const fn add(self, other: Interest) -> Interest {
        Interest(self.0 | other.0)
    }

    /// This interest without `other`, or `None` if nothing would be left (there is no empty
    /// interest).
    ///
    /// ```
    /// use sockserve_reactor::Interest;
    ///
    /// let both = Interest::READABLE | Interest::WRITABLE;
    /// assert_eq!(both.remove(Interest::READABLE), Some(Interest::WRITABLE));
    /// assert_eq!(Interest::READABLE.remove(Interest::READABLE), None);
    /// ```
    #[must_use]
    pub const fn remove(self, other: Interest) -> Option<Interest> {
        match self.0 & !other.0 {
            0 => None,
            bits => Some(Interest(bits)),
        }
    }

    /// The same interest in mio's terms.
    pub(crate) fn to_mio(self) -> mio::Interest {
        match (self.is_readable(), self.is_writable()) {
            (true, true) => mio::Interest::READABLE | mio::Interest::WRITABLE,
            (false, true) => mio::Interest::WRITABLE,
            // An `Interest` is never empty (no constructor makes one), so "neither" cannot occur;
            // it falls here, to readable, rather than panicking.
            _ => mio::Interest::READABLE,
        }
    }
}

impl BitOr for Interest {
    type Output = Interest;

    fn bitor(self, other: Interest) -> Interest {
        self.add(other)
    }
}

impl BitOrAssign for Interest {
    fn bitor_assign(&mut self, other: Interest) {
        *self = self.add(other);
    }
}

impl fmt::Debug for Interest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (self.is_readable(), self.is_writable()) {
            (true, true) => f.write_str("READABLE | WRITABLE"),
            (true, false) => f.write_str("READABLE"),
            (false, true) => f.write_str("WRITABLE"),
            (false, false) => f.write_str("(none)"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::Interest;

    #[test]
    fn bit_operations() {
        let mut i = Interest::READABLE;
        i |= Interest::WRITABLE;
        assert_eq!(i, Interest::READABLE | Interest::WRITABLE);
        assert_eq!(i.remove(Interest::READABLE | Interest::WRITABLE), None);
        assert_eq!(
            Interest::WRITABLE.remove(Interest::READABLE),
            Some(Interest::WRITABLE)
        );
    }

    #[test]
    fn to_mio() {
        assert_eq!(Interest::READABLE.to_mio(), mio::Interest::READABLE);
        assert_eq!(Interest::WRITABLE.to_mio(), mio::Interest::WRITABLE);
        assert_eq!(
            (Interest::READABLE | Interest::WRITABLE).to_mio(),
            mio::Interest::READABLE | mio::Interest::WRITABLE
        );
    }
}
