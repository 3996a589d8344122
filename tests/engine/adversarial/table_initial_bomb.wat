;; A table of 10,000,000 initial elements is above table_initial_elements_max
;; (100,000): a load error naming the table limit.
(module
  (table 10000000 funcref)
  (func (export "f") (result i32) (i32.const 0)))
