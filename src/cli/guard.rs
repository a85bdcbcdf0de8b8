//! The command line's last line of defence: a panic inside a command (libtorch's wrappers
//! panic on the errors they cannot return; anything else is a bug of ours) reaches the user
//! as one error line saying what and where, not as Rust's panic report.

use std::cell::{Cell, RefCell};
use std::panic::{catch_unwind, AssertUnwindSafe, PanicHookInfo};
use std::sync::Once;

thread_local! {
    /// Whether this thread runs inside [`guarded`].
    static GUARDED: Cell<bool> = const { Cell::new(false) };
    /// The last panic of this thread inside [`guarded`]: where and what.
    static LAST_PANIC: RefCell<Option<String>> = const { RefCell::new(None) };
}

/// Runs `f`; a panic in it comes back as `Err("<what> (at <file:line>)")`. Panics on other
/// threads are reported as Rust reports them, and under `RUST_BACKTRACE` every panic is
/// (with its trace) as well.
pub fn guarded<T>(f: impl FnOnce() -> T) -> Result<T, String> {
    install_hook();
    GUARDED.with(|g| g.set(true));
    let result = catch_unwind(AssertUnwindSafe(f));
    GUARDED.with(|g| g.set(false));
    result.map_err(|payload| {
        LAST_PANIC
            .with(|p| p.borrow_mut().take())
            .unwrap_or_else(|| message(payload.as_ref()))
    })
}

fn install_hook() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        let default = std::panic::take_hook();
        let backtrace = std::env::var_os("RUST_BACKTRACE").is_some_and(|v| v != "0");
        std::panic::set_hook(Box::new(move |info: &PanicHookInfo<'_>| {
            if backtrace || !GUARDED.with(|g| g.get()) {
                default(info);
            }
            if !GUARDED.with(|g| g.get()) {
                return;
            }
            let at = info.location().map_or(String::new(), |l| {
                format!(" (at {}:{})", l.file(), l.line())
            });
            let what = format!("{}{at}", message(info.payload()));
            LAST_PANIC.with(|p| *p.borrow_mut() = Some(what));
        }));
    });
}

fn message(payload: &(dyn std::any::Any + Send)) -> String {
    payload
        .downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| payload.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "a panic without a message".into())
}

#[cfg(test)]
mod tests {
    use super::guarded;

    #[test]
    fn a_panic_comes_back_as_its_message_and_place() {
        assert_eq!(guarded(|| 7), Ok(7));
        let err = guarded(|| -> u8 { panic!("boom {}", 3) }).unwrap_err();
        assert!(err.starts_with("boom 3 (at src/cli/guard.rs:"), "{err}");
        // Guarding ends with the call: a later panic on this thread is not captured.
        let later = std::panic::catch_unwind(|| panic!("plain")).unwrap_err();
        assert_eq!(super::message(later.as_ref()), "plain");
        assert!(super::LAST_PANIC.with(|p| p.borrow().is_none()));
    }

    #[cfg(feature = "torch")]
    #[test]
    fn a_libtorch_error_that_panics_is_reported_with_torchs_message() {
        let err = guarded(|| {
            let a = tch::Tensor::zeros([2, 3], (tch::Kind::Float, tch::Device::Cpu));
            a.matmul(&a)
        })
        .unwrap_err();
        assert!(err.contains("Torch") || err.contains("torch"), "{err}");
        assert!(err.contains("cannot be multiplied"), "{err}");
    }
}
