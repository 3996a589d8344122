;; Infinite loops: only fuel (or the deadline) stops them.
(module
  (func (export "spin")
    (loop $l (br $l)))
  ;; A loop that does work but never exits: fuel is counted per block.
  (func (export "spin_work") (param i32) (result i32)
    (local $i i32)
    (loop $l
      (local.set $i (i32.add (local.get $i) (local.get 0)))
      (br_if $l (i32.ne (local.get $i) (i32.const -1)))
      (local.set $i (i32.const 0))
      (br $l))
    (local.get $i)))
