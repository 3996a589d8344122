;; Strings lifted as UTF-16: Covenant's canonical ABI is UTF-8 only.
(component
  (core module $m
    (memory (export "memory") 1)
    (func (export "cabi_realloc") (param i32 i32 i32 i32) (result i32) i32.const 0)
    (func (export "len") (param i32 i32) (result i32) local.get 1))
  (core instance $i (instantiate $m))
  (func $len (param "s" string) (result u32)
    (canon lift (core func $i "len") (memory (core memory $i "memory")) (realloc (core func $i "cabi_realloc")) string-encoding=utf16))
  (export "len" (func $len))
)
