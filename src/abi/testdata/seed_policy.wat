;; The seed's approve as a core module with wit-bindgen's legacy names and the
;; canonical ABI signature Covenant computes: (i32 i32 i32 i32 i64 i64) -> i32, a
;; bump cabi_realloc, and a decision {approved: true, ceiling: max-units,
;; reason: agent-id} in a return area at 64. wasm-tools component new accepts it,
;; and jco transpile runs it in Node with the expected decision.
(module
  (memory (export "memory") 1)
  (global $bump (mut i32) (i32.const 1024))
  (func (export "cabi_realloc") (param i32 i32 i32 i32) (result i32)
    (local $p i32)
    (local.set $p (i32.and (i32.add (global.get $bump) (i32.sub (local.get 2) (i32.const 1)))
                           (i32.sub (i32.const 0) (local.get 2))))
    (global.set $bump (i32.add (local.get $p) (local.get 3)))
    (local.get $p))
  (func (export "agent:settlement/policy@0.1.0#approve")
        (param i32 i32 i32 i32 i64 i64) (result i32)
    (i32.store8 (i32.const 64) (i32.const 1))
    (i64.store (i32.const 72) (local.get 4))
    (i32.store (i32.const 80) (local.get 0))
    (i32.store (i32.const 84) (local.get 1))
    (i32.const 64))
  (func (export "cabi_post_agent:settlement/policy@0.1.0#approve") (param i32)))
