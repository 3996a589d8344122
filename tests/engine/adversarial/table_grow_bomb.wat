;; table.grow (reference types, in the profile since issue 9) is capped by
;; InstanceLimits::table_elements_max (100,000 by default) on every tier, and
;; pays one unit of fuel per element asked for: from 1 element, nine steps of
;; 10,000 succeed and the tenth is refused (-1).
(module
  (table 1 funcref)
  (func (export "table_bomb") (result i32)
    (local $n i32)
    (block $done
      (loop $l
        (br_if $done (i32.eq (table.grow 0 (ref.null func) (i32.const 10000)) (i32.const -1)))
        (local.set $n (i32.add (local.get $n) (i32.const 1)))
        (br $l)))
    (local.get $n)))
