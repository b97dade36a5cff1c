//! Compile-fail and compile-pass cases for the derives and the typed query API, run by
//! trybuild. Each `tests/ui/<area>/<case>.rs` has a reviewed `.stderr`: the message a user sees.

#[test]
fn compile_fail_cases_report_clear_errors() {
    let t = trybuild::TestCases::new();
    t.compile_fail("ui/**/*.rs");
}

#[test]
fn compile_pass_cases_build() {
    let t = trybuild::TestCases::new();
    t.pass("ui-pass/*.rs");
}
