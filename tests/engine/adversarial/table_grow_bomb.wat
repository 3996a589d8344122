;; table.grow is a reference-types instruction, outside the deterministic
;; profile: the engine refuses the module at load (unsupported feature). If the
;; profile ever admits it, the cap is InstanceLimits::table_elements_max.
(module
  (table 1 funcref)
  (func (export "table_bomb") (result i32)
    (local $n i32)
    (block $done
      (loop $l
        (br_if $done (i32.eq (table.grow 0 (ref.null func) (i32.const 100000)) (i32.const -1)))
        (local.set $n (i32.add (local.get $n) (i32.const 1)))
        (br $l)))
    (local.get $n)))
