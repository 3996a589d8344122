;; The lifted core function is not named as wit-bindgen names it.
(component
  (core module $m (func (export "impl") (param i32) (result i32) local.get 0))
  (core instance $i (instantiate $m))
  (func $run (param "x" u32) (result u32) (canon lift (core func $i "impl")))
  (export "run" (func $run))
)
