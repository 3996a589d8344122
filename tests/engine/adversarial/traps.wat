;; One export per trap kind (and the nearby cases that must not trap).
(module
  (type $i_i (func (param i32) (result i32)))
  (type $v_l (func (result i64)))
  (table 3 funcref)
  (elem (i32.const 0) $double)
  (elem (i32.const 2) $forty_two)
  (func $double (param i32) (result i32) (i32.mul (local.get 0) (i32.const 2)))
  (func $forty_two (result i64) (i64.const 42))

  (func (export "unreachable") (result i32) (unreachable))

  (func (export "div_s") (param i32 i32) (result i32) (i32.div_s (local.get 0) (local.get 1)))
  (func (export "div_u") (param i32 i32) (result i32) (i32.div_u (local.get 0) (local.get 1)))
  (func (export "rem_s") (param i32 i32) (result i32) (i32.rem_s (local.get 0) (local.get 1)))
  (func (export "div_s64") (param i64 i64) (result i64) (i64.div_s (local.get 0) (local.get 1)))
  (func (export "rem_u64") (param i64 i64) (result i64) (i64.rem_u (local.get 0) (local.get 1)))

  (func (export "trunc_f64_s_big") (result i32) (i32.trunc_f64_s (f64.const 3e9)))
  (func (export "trunc_f32_u_neg") (result i32) (i32.trunc_f32_u (f32.const -1)))
  (func (export "trunc_f64_u_small_neg") (result i32) (i32.trunc_f64_u (f64.const -0.75)))
  (func (export "trunc_i64_f64_s_big") (result i64) (i64.trunc_f64_s (f64.const 9.3e18)))
  (func (export "trunc_f64_s_nan") (result i32) (i32.trunc_f64_s (f64.const nan)))
  (func (export "trunc_f32_u_nan") (result i64) (i64.trunc_f32_u (f32.const nan)))
  (func (export "trunc_sat_nan") (result i32) (i32.trunc_sat_f64_s (f64.const nan)))
  (func (export "trunc_sat_big") (result i32) (i32.trunc_sat_f64_s (f64.const 3e9)))

  (func (export "call_indirect") (param i32 i32) (result i32)
    (call_indirect (type $i_i) (local.get 1) (local.get 0)))
  (func (export "call_indirect_v_l") (param i32) (result i64)
    (call_indirect (type $v_l) (local.get 0))))
