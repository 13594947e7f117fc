//! Misuse of filch's borrowing and thread-safety contracts must not compile: each file in
//! `tests/compile-fail/` is built by trybuild and must fail with the error in its
//! `.stderr` file (a borrow escaping a scope, non-`Send` or non-`Sync` captures, a
//! non-`'static` spawn).

#[test]
fn misuse_does_not_compile() {
    trybuild::TestCases::new().compile_fail("tests/compile-fail/*.rs");
}
