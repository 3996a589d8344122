;; Host functions (provided by the test through covenant::Linker): a host trap
;; is typed "host"; an ordinary host call works.
(module
  (import "env" "add" (func $add (param i32 i32) (result i32)))
  (import "env" "fail" (func $fail (param i32)))
  (func (export "call_add") (param i32 i32) (result i32)
    (call $add (local.get 0) (local.get 1)))
  (func (export "call_fail") (result i32)
    (call $fail (i32.const 7))
    (i32.const 0)))
