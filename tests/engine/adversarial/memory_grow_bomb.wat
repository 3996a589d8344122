;; memory.grow bombs: growth past the instance cap (InstanceLimits default
;; 256 MiB = 4096 pages) or past the declared maximum returns -1; no crash,
;; and memory stays usable afterwards.
(module
  (memory 1)
  ;; Grows by 1024 pages (64 MiB) until refused; returns the successful count
  ;; (3 with the default cap: 1 -> 1025 -> 2049 -> 3073, then 4097 > 4096).
  (func (export "grow_until_refused") (result i32)
    (local $n i32)
    (block $done
      (loop $l
        (br_if $done (i32.eq (memory.grow (i32.const 1024)) (i32.const -1)))
        (local.set $n (i32.add (local.get $n) (i32.const 1)))
        (br $l)))
    (local.get $n))
  ;; One grow past 4 GiB: -1.
  (func (export "grow_past_4gib") (result i32)
    (memory.grow (i32.const 65536)))
  ;; Page count argument with the sign bit set (an unsigned 2^31 pages): -1.
  (func (export "grow_negative") (result i32)
    (memory.grow (i32.const -1)))
  ;; A refused grow leaves memory intact: write, try a bomb, read back, and
  ;; check memory.size is unchanged. Returns 1234 + size (1 page) = 1235.
  (func (export "grow_refused_keeps_memory") (result i32)
    (i32.store (i32.const 65532) (i32.const 1234))
    (drop (memory.grow (i32.const 65536)))
    (i32.add (i32.load (i32.const 65532)) (memory.size)))
  ;; Grow by 1 page, then the new last byte is addressable and zero. Returns 2 * 1000 + byte.
  (func (export "grow_one_then_touch") (result i32)
    (drop (memory.grow (i32.const 1)))
    (i32.store8 (i32.const 131071) (i32.const 7))
    (i32.add (i32.mul (memory.size) (i32.const 1000)) (i32.load8_u (i32.const 131071)))))
