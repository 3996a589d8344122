;; A world-level function export: run(x: u32) -> u32 = x + 1.
(component
  (core module $m
    (func (export "run") (param i32) (result i32) local.get 0 i32.const 1 i32.add))
  (core instance $i (instantiate $m))
  (func $run (param "x" u32) (result u32) (canon lift (core func $i "run")))
  (export "run" (func $run))
)
