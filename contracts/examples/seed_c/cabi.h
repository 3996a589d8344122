// Hand-written canonical ABI glue for freestanding C guests (clang
// --target=wasm32, no libc): export/import attributes, a bump-allocating
// cabi_realloc, and little helpers. Until `covenant bindgen --lang c` exists
// this is what generated bindings will do for you.
//
// Memory discipline: everything cabi_realloc hands out (the host's copies of
// strings and lists passed in, and host results, which the host places with
// cabi_realloc) lives until the guest
// calls cabi_reset() — at the end of each export, or in its cabi_post_*.
#pragma once

#include <stddef.h>
#include <stdint.h>

#define CABI_EXPORT(name) __attribute__((export_name(name)))
#define CABI_IMPORT(module, name) __attribute__((import_module(module), import_name(name)))

#ifndef CABI_HEAP_BYTES
#define CABI_HEAP_BYTES (1u << 20)
#endif

static uint8_t cabi_heap[CABI_HEAP_BYTES] __attribute__((aligned(16)));
static uint32_t cabi_heap_used;

CABI_EXPORT("cabi_realloc")
void* cabi_realloc(void* old_ptr, size_t old_size, size_t align, size_t new_size) {
  if (new_size == 0) return (void*)align;
  if (align == 0 || (align & (align - 1)) != 0) __builtin_trap();
  uint32_t p = (cabi_heap_used + (uint32_t)align - 1) & ~((uint32_t)align - 1);
  if (p > CABI_HEAP_BYTES || new_size > CABI_HEAP_BYTES - p) __builtin_trap();  // out of guest heap
  cabi_heap_used = p + (uint32_t)new_size;
  uint8_t* r = cabi_heap + p;
  if (old_ptr) {
    const uint8_t* o = (const uint8_t*)old_ptr;
    for (size_t i = 0; i < old_size && i < new_size; i++) r[i] = o[i];
  }
  return r;
}

// Frees everything cabi_realloc handed out.
static inline void cabi_reset(void) { cabi_heap_used = 0; }

static inline int cabi_eq(const char* a, uint32_t n, const char* z) {
  uint32_t i = 0;
  for (; i < n; i++)
    if (z[i] == 0 || z[i] != a[i]) return 0;
  return z[i] == 0;
}

static inline uint32_t cabi_strlen(const char* z) {
  uint32_t n = 0;
  while (z[n]) n++;
  return n;
}

static inline void cabi_copy(uint8_t* dst, const uint8_t* src, uint32_t n) {
  for (uint32_t i = 0; i < n; i++) dst[i] = src[i];
}

// Writes v in decimal at out (at least 20 bytes); returns the length.
static inline uint32_t cabi_u64_to_dec(uint64_t v, char* out) {
  char tmp[20];
  uint32_t n = 0;
  do {
    tmp[n++] = (char)('0' + v % 10);
    v /= 10;
  } while (v);
  for (uint32_t i = 0; i < n; i++) out[i] = tmp[n - 1 - i];
  return n;
}
