//! Little-endian integers and floats stored as byte arrays.
//!
//! Wire structs use these instead of `u32`/`f32` so that (a) their alignment is 1 and a
//! packet can be viewed in place at any offset, and (b) the byte order is fixed by the
//! type, not by the host. Reading or writing one is a `from_le_bytes`/`to_le_bytes`,
//! which compiles to a plain load on little-endian hosts.

use bytemuck::{Pod, Zeroable};

macro_rules! le_int {
    ($(#[$doc:meta])* $name:ident, $int:ty, $n:literal) => {
        $(#[$doc])*
        #[repr(transparent)]
        #[derive(Clone, Copy, Default, PartialEq, Eq, Hash, Pod, Zeroable)]
        pub struct $name(pub [u8; $n]);

        impl $name {
            /// Stores `value` in little-endian order.
            pub const fn new(value: $int) -> Self {
                Self(value.to_le_bytes())
            }

            /// Reads the value.
            pub const fn get(self) -> $int {
                <$int>::from_le_bytes(self.0)
            }
        }

        impl From<$int> for $name {
            fn from(value: $int) -> Self {
                Self::new(value)
            }
        }

        impl core::fmt::Debug for $name {
            fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
                core::fmt::Debug::fmt(&self.get(), f)
            }
        }

        const _: () = assert!(core::mem::size_of::<$name>() == $n);
        const _: () = assert!(core::mem::align_of::<$name>() == 1);
    };
}

le_int!(
    /// A little-endian `u16`, alignment 1.
    U16Le, u16, 2
);
le_int!(
    /// A little-endian `u32`, alignment 1.
    U32Le, u32, 4
);
le_int!(
    /// A little-endian `u64`, alignment 1.
    U64Le, u64, 8
);
le_int!(
    /// A little-endian `i16`, alignment 1.
    I16Le, i16, 2
);
le_int!(
    /// A little-endian `i32`, alignment 1.
    I32Le, i32, 4
);

/// A little-endian IEEE-754 `f32`, alignment 1. Equality is bitwise.
#[repr(transparent)]
#[derive(Clone, Copy, Default, PartialEq, Eq, Hash, Pod, Zeroable)]
pub struct F32Le(pub [u8; 4]);

impl F32Le {
    /// Stores `value` in little-endian order (bit-exact, NaN payloads included).
    pub const fn new(value: f32) -> Self {
        Self(value.to_bits().to_le_bytes())
    }

    /// Reads the value.
    pub const fn get(self) -> f32 {
        f32::from_bits(u32::from_le_bytes(self.0))
    }
}

impl From<f32> for F32Le {
    fn from(value: f32) -> Self {
        Self::new(value)
    }
}

impl core::fmt::Debug for F32Le {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        core::fmt::Debug::fmt(&self.get(), f)
    }
}

const _: () = assert!(core::mem::size_of::<F32Le>() == 4);
const _: () = assert!(core::mem::align_of::<F32Le>() == 1);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn byte_order_is_little_endian() {
        assert_eq!(U32Le::new(0x0403_0201).0, [1, 2, 3, 4]);
        assert_eq!(U16Le::new(0x0201).0, [1, 2]);
        assert_eq!(I32Le::new(-2).0, [0xfe, 0xff, 0xff, 0xff]);
        assert_eq!(F32Le::new(1.0).0, [0, 0, 0x80, 0x3f]);
    }

    #[test]
    fn round_trip_extremes() {
        for v in [0, 1, u64::MAX, u64::MAX / 3] {
            assert_eq!(U64Le::new(v).get(), v);
        }
        for v in [i16::MIN, -1, 0, i16::MAX] {
            assert_eq!(I16Le::new(v).get(), v);
        }
        assert!(F32Le::new(f32::NAN).get().is_nan());
    }
}
