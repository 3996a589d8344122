;; Two core modules with code of their own, both instantiated.
(component
  (core module $a (func (export "one") (result i32) i32.const 1))
  (core module $b (func (export "two") (result i32) i32.const 2))
  (core instance $ia (instantiate $a))
  (core instance $ib (instantiate $b))
  (func $one (result u32) (canon lift (core func $ia "one")))
  (func $two (result u32) (canon lift (core func $ib "two")))
  (export "one" (func $one))
  (export "two" (func $two))
)
