;; 2,000 initial pages (125 MiB) is above memory_initial_pages_max (1,024):
;; a load error naming the memory limit, on every tier.
(module
  (memory 2000)
  (func (export "f") (result i32) (memory.size)))
