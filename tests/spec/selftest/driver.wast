;; The spec driver's own test (src/wasm/spec_driver.cc): one command of each
;; kind the driver handles, run on every tier by ctest (wasm_spec_selftest*).

(module $M
  (global (export "g") i32 (i32.const 7))
  (memory 1)
  (func (export "add") (param i32 i32) (result i32) (i32.add (local.get 0) (local.get 1)))
  (func (export "nan") (result f32) (f32.div (f32.const 0) (f32.const 0)))
  (func (export "neg-nan") (result f64) (f64.neg (f64.const nan:0x4)))
  (func (export "div") (param i32) (result i32) (i32.div_s (i32.const 1) (local.get 0)))
  (func $deep (export "deep") (call $deep))
  (func (export "store") (param i32) (i32.store (i32.const 0) (local.get 0)))
  (func (export "load") (result i32) (i32.load (i32.const 0)))
  (func (export "oob") (result i32) (i32.load (i32.const 65536)))
  (func (export "two") (result i32 i64) (i32.const 1) (i64.const -2))
)
(register "M" $M)

(assert_return (invoke "add" (i32.const 1) (i32.const -3)) (i32.const -2))
(assert_return (invoke "nan") (f32.const nan:canonical))
(assert_return (invoke "nan") (f32.const nan:arithmetic))
(assert_return (invoke "neg-nan") (f64.const -nan:0x4))
(assert_return (invoke "two") (i32.const 1) (i64.const -2))
(assert_trap (invoke "div" (i32.const 0)) "integer divide by zero")
(assert_trap (invoke "oob") "out of bounds memory access")
(assert_exhaustion (invoke "deep") "call stack exhausted")
(invoke "store" (i32.const 42))
(assert_return (invoke "load") (i32.const 42))
(assert_return (get "g") (i32.const 7))

;; A second module calls the first through the Linker, keeping its state.
(module $N
  (func $add (import "M" "add") (param i32 i32) (result i32))
  (func $load (import "M" "load") (result i32))
  (func $oob (import "M" "oob") (result i32))
  (func $print (import "spectest" "print_i32") (param i32))
  (memory 1)
  (func (export "add-load") (result i32) (call $add (call $load) (i32.const 1)))
  ;; A trap of this module after a call into $M returned (the driver's
  ;; forwarding must leave this thread able to catch it).
  (func (export "load-then-oob") (result i32) (drop (call $load)) (i32.load (i32.const 65536)))
  (func (export "oob") (result i32) (call $oob))
  (func (export "print") (call $print (i32.const 1)))
)
(assert_return (invoke $N "add-load") (i32.const 43))
(assert_trap (invoke $N "oob") "out of bounds memory access")
(assert_trap (invoke $N "load-then-oob") "out of bounds memory access")
(assert_return (invoke $N "print"))
(assert_return (invoke $M "add" (i32.const 2) (i32.const 2)) (i32.const 4))

(assert_invalid (module (func (result i32) (i64.const 0))) "type mismatch")
(assert_malformed (module binary "\00asm" "\02\00\00\00") "unknown binary version")
(assert_malformed (module quote "(func (i32.const 0x))") "unknown operator")
(assert_unlinkable (module (import "M" "nope" (func))) "unknown import")
(assert_trap (module (func $t unreachable) (start $t)) "unreachable")
