//! The C ABI of Shoal. For now it only re-exports the version; the C API arrives with the FFI
//! work (ffi/include/shoal.h, shoal_exec, ...).

pub use shoal::VERSION;
