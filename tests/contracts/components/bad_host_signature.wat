;; Imports covenant:host/clock now-ms as returning s64 (the host returns u64):
;; the same core type, a different component type.
(component
  (import "covenant:host/clock@0.1.0" (instance $c
    (export "now-ms" (func (result s64)))))
  (alias export $c "now-ms" (func $now))
  (core func $now_lowered (canon lower (func $now)))
  (core instance $clock (export "now-ms" (func $now_lowered)))
  (core module $m
    (import "covenant:host/clock@0.1.0" "now-ms" (func $g (result i64)))
    (func (export "run") (result i64) call $g))
  (core instance $i (instantiate $m (with "covenant:host/clock@0.1.0" (instance $clock))))
  (func $run (result s64) (canon lift (core func $i "run")))
  (export "run" (func $run))
)
