;; Run after every adversarial case on the same tier: the process must still
;; run an ordinary contract correctly after a trap.
(module
  (memory 1)
  (func (export "canary") (param i32 i32) (result i32)
    (i32.store (i32.const 16) (local.get 0))
    (i32.add (i32.load (i32.const 16)) (local.get 1))))
