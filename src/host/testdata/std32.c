// The seed world with the standard32 core names (cm32p2|..., docs/abi.md) and
// a covenant:host import in that scheme: approve answers with the clock's time.
#include "guest.h"

CABI_IMPORT("cm32p2|covenant:host/clock@0.1", "now-ms") uint64_t std32_now_ms(void);

CABI_EXPORT("cm32p2_realloc")
void* std32_realloc(void* old_ptr, size_t old_size, size_t align, size_t new_size) {
  return cabi_realloc(old_ptr, old_size, align, new_size);
}

static struct {
  uint8_t approved;
  uint8_t pad[7];
  uint64_t ceiling;
  const char* reason_ptr;
  uint32_t reason_len;
} ret_area;

CABI_EXPORT("cm32p2|agent:settlement/policy@0.1|approve")
void* approve(const char* agent, uint32_t agent_len, const char* task, uint32_t task_len, uint64_t max_units,
              uint64_t expires_at_ms) {
  (void)agent;
  (void)agent_len;
  (void)task;
  (void)task_len;
  (void)max_units;
  (void)expires_at_ms;
  ret_area.approved = 1;
  ret_area.ceiling = std32_now_ms();
  ret_area.reason_ptr = "standard32";
  ret_area.reason_len = 10;
  return &ret_area;
}

CABI_EXPORT("cm32p2|agent:settlement/policy@0.1|approve_post")
void approve_post(void* ret) {
  (void)ret;
  cabi_reset();
}
