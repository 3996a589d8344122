// A misbehaving guest: results that point outside memory or hold invalid
// UTF-8, and a cabi_realloc that hands out an out-of-bounds pointer. Each must
// end in a clean trap (world bad in bad.wit), never a host error or crash.
#include <stddef.h>
#include <stdint.h>

#define EXPORT(name) __attribute__((export_name(name)))

static uint32_t ret[2];
static const char kBadUtf8[] = {(char)0xff, (char)0xfe, 'x'};

EXPORT("cabi_realloc") uint32_t cabi_realloc(uint32_t old_ptr, uint32_t old_size, uint32_t align, uint32_t new_size) {
  (void)old_ptr;
  (void)old_size;
  (void)align;
  (void)new_size;
  return 0xfffffff0u;
}

EXPORT("bad-pointer") uint32_t* bad_pointer(void) {
  ret[0] = 0xfffffff0u;
  ret[1] = 100;
  return ret;
}

EXPORT("bad-utf8") uint32_t* bad_utf8(void) {
  ret[0] = (uint32_t)(uintptr_t)kBadUtf8;
  ret[1] = sizeof kBadUtf8;
  return ret;
}

EXPORT("bad-return-area") uint32_t bad_return_area(void) { return 0xffffff00u; }

EXPORT("takes-string") uint32_t takes_string(const char* s, uint32_t n) {
  (void)s;
  return n;
}
