// Imports something no grant can allow (env.secret).
#include "guest.h"

CABI_IMPORT("env", "secret") uint32_t secret(void);

CABI_EXPORT("run") uint32_t run(void) { return secret(); }
