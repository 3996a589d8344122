;; Imports a WASI interface: refused at deploy, naming the import.
(component
  (import "wasi:random/insecure@0.2.0" (instance $r
    (export "get-insecure-random-u64" (func (result u64)))))
  (alias export $r "get-insecure-random-u64" (func $rand))
  (core func $rand_lowered (canon lower (func $rand)))
  (core instance $wasi (export "get-insecure-random-u64" (func $rand_lowered)))
  (core module $m
    (import "wasi:random/insecure@0.2.0" "get-insecure-random-u64" (func $g (result i64)))
    (func (export "run") (result i64) call $g))
  (core instance $i (instantiate $m (with "wasi:random/insecure@0.2.0" (instance $wasi))))
  (func $run (result u64) (canon lift (core func $i "run")))
  (export "run" (func $run))
)
