;; A module-declared maximum is honoured below the instance cap.
(module
  (memory 1 2)
  (func (export "grow_to_max") (result i32)
    (memory.grow (i32.const 1)))
  (func (export "grow_past_max") (result i32)
    (memory.grow (i32.const 2))))
