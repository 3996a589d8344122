#include "wasm/runtime.h"

#include <pthread.h>
#include <signal.h>
#include <sys/mman.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <mutex>
#include <vector>

#include "wasm/prepare.h"

namespace covenant::wasm {

thread_local GuestTls t_guest;

void rt_host_call(void* ctx, uint32_t import_index, uint64_t* slots);  // c_tier.cc

namespace {

thread_local ThreadState t_state;

struct sigaction g_old_segv, g_old_bus;
std::once_flag g_handler_once;

void chain(int sig, siginfo_t* si, void* uc) {
  const struct sigaction& old = sig == SIGSEGV ? g_old_segv : g_old_bus;
  if (old.sa_flags & SA_SIGINFO) {
    if (old.sa_sigaction) {
      old.sa_sigaction(sig, si, uc);
      return;
    }
  } else if (old.sa_handler != SIG_DFL && old.sa_handler != SIG_IGN) {
    old.sa_handler(sig);
    return;
  }
  // Default action: restore and let the fault repeat.
  signal(sig, SIG_DFL);
}

void on_fault(int sig, siginfo_t* si, void* uc) {
  GuestTls& s = t_guest;
  if (s.in_guest && s.jmp) {
    uintptr_t a = reinterpret_cast<uintptr_t>(si->si_addr);
    int code = -1;
    if (a >= s.mem_lo && a < s.mem_hi) {
      code = WASM_RT_TRAP_OOB;
    } else if (s.stack_lo && a < s.stack_hi && a + (1u << 20) >= s.stack_lo) {
      code = kRtStackGuard;
    }
    if (code >= 0) {
      s.in_guest = 0;
      siglongjmp(*s.jmp, code);
    }
  }
  chain(sig, si, uc);
}

void install_handler() {
  struct sigaction sa;
  std::memset(&sa, 0, sizeof sa);
  sigemptyset(&sa.sa_mask);
  // SA_NODEFER: we leave the handler by siglongjmp without restoring the
  // signal mask (sigsetjmp(.., 0) is cheap), so the signal must not stay blocked.
  sa.sa_flags = SA_SIGINFO | SA_ONSTACK | SA_NODEFER;
  sa.sa_sigaction = on_fault;
  if (sigaction(SIGSEGV, &sa, &g_old_segv) != 0 || sigaction(SIGBUS, &sa, &g_old_bus) != 0) {
    std::perror("covenant: sigaction");
    std::abort();
  }
}

// Pool of reservations whose [0, rw_bytes) is read-write and zero, the rest
// PROT_NONE.
struct Reservation {
  uint8_t* base;
  size_t rw_bytes;
};
std::mutex g_pool_mu;
std::vector<Reservation> g_pool;
constexpr size_t kPoolMax = 256;

// rw_bytes of each live memory, keyed by the wasm_rt_memory_t (its size field
// is the current Wasm size; rw can only be larger after a failed shrink, never).
uint8_t* reserve() {
  void* p = mmap(nullptr, kReservationBytes, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE,
                 -1, 0);
  if (p == MAP_FAILED) return nullptr;
  return static_cast<uint8_t*>(p);
}

void rt_trap(int code) {
  GuestTls& s = t_guest;
  if (!s.jmp) {
    std::fprintf(stderr, "covenant: trap %d outside a guest call\n", code);
    std::abort();
  }
  s.in_guest = 0;
  siglongjmp(*s.jmp, code);
}

void rt_allocate_memory(wasm_rt_memory_t* mem, uint32_t initial, uint32_t max) {
  ThreadState& ts = t_state;
  if (max > ts.memory_pages_cap) max = ts.memory_pages_cap;
  if (max < initial) max = initial;  // the host refuses such instances before this
  Reservation r{nullptr, 0};
  {
    std::lock_guard<std::mutex> lock(g_pool_mu);
    if (!g_pool.empty()) {
      r = g_pool.back();
      g_pool.pop_back();
    }
  }
  if (!r.base) {
    r.base = reserve();
    if (!r.base) rt_trap(WASM_RT_TRAP_OOB);
  }
  size_t need = size_t(initial) * kWasmPageBytes;
  if (r.rw_bytes < need) {
    if (mprotect(r.base + r.rw_bytes, need - r.rw_bytes, PROT_READ | PROT_WRITE) != 0)
      rt_trap(WASM_RT_TRAP_OOB);
  } else if (r.rw_bytes > need) {
    mprotect(r.base + need, r.rw_bytes - need, PROT_NONE);
  }
  mem->data = r.base;
  mem->pages = initial;
  mem->max_pages = max;
  mem->size = static_cast<uint32_t>(need);
}

uint32_t rt_grow_memory(wasm_rt_memory_t* mem, uint32_t delta) {
  uint32_t old = mem->pages;
  if (delta == 0) return old;
  uint64_t pages = uint64_t(old) + delta;
  if (pages > mem->max_pages || pages > 65536) return UINT32_MAX;
  uint64_t old_bytes = uint64_t(old) * kWasmPageBytes;
  uint64_t add = uint64_t(delta) * kWasmPageBytes;
  if (mprotect(mem->data + old_bytes, add, PROT_READ | PROT_WRITE) != 0) return UINT32_MAX;
  mem->pages = static_cast<uint32_t>(pages);
  // A 4 GiB memory's size does not fit wasm_rt_memory_t::size (u32); the
  // glue rewrites wasm2c's bulk-memory range checks to use pages instead.
  mem->size = static_cast<uint32_t>(std::min<uint64_t>(pages * kWasmPageBytes, UINT32_MAX));
  return old;
}

void rt_free_memory(wasm_rt_memory_t* mem) {
  if (!mem->data) return;
  size_t rw = size_t(mem->pages) * kWasmPageBytes;
  bool pooled = false;
  if (madvise(mem->data, rw, MADV_DONTNEED) == 0) {
    std::lock_guard<std::mutex> lock(g_pool_mu);
    if (g_pool.size() < kPoolMax) {
      g_pool.push_back({mem->data, rw});
      pooled = true;
    }
  }
  if (!pooled) munmap(mem->data, kReservationBytes);
  mem->data = nullptr;
  mem->pages = mem->size = 0;
}

// funcref and externref tables alike: growth is capped per instance
// (InstanceLimits::table_elements_max), as the interp tier caps its tables.
template <class Table, class Elem>
void allocate_table(Table* table, uint32_t elements, uint32_t max) {
  ThreadState& ts = t_state;
  if (max > ts.table_elements_cap) max = ts.table_elements_cap;
  if (max < elements) max = elements;
  table->data = static_cast<Elem*>(std::calloc(elements ? elements : 1, sizeof(Elem)));
  if (!table->data) rt_trap(WASM_RT_TRAP_OOB);
  table->size = elements;
  table->max_size = max;
}

template <class Table>
void free_table(Table* table) {
  std::free(table->data);
  table->data = nullptr;
  table->size = 0;
}

template <class Table, class Elem>
uint32_t grow_table(Table* table, uint32_t delta, Elem init) {
  uint32_t old = table->size;
  uint64_t n = uint64_t(old) + delta;
  if (n > table->max_size) return UINT32_MAX;
  if (delta == 0) return old;
  auto* d = static_cast<Elem*>(std::realloc(table->data, n * sizeof(Elem)));
  if (!d) return UINT32_MAX;
  for (uint64_t i = old; i < n; ++i) d[i] = init;
  table->data = d;
  table->size = static_cast<uint32_t>(n);
  return old;
}

void rt_allocate_funcref_table(wasm_rt_funcref_table_t* table, uint32_t elements, uint32_t max) {
  allocate_table<wasm_rt_funcref_table_t, wasm_rt_funcref_t>(table, elements, max);
}
void rt_free_funcref_table(wasm_rt_funcref_table_t* table) { free_table(table); }
uint32_t rt_grow_funcref_table(wasm_rt_funcref_table_t* table, uint32_t delta, wasm_rt_funcref_t init) {
  return grow_table(table, delta, init);
}
void rt_allocate_externref_table(wasm_rt_externref_table_t* table, uint32_t elements, uint32_t max) {
  allocate_table<wasm_rt_externref_table_t, wasm_rt_externref_t>(table, elements, max);
}
void rt_free_externref_table(wasm_rt_externref_table_t* table) { free_table(table); }
uint32_t rt_grow_externref_table(wasm_rt_externref_table_t* table, uint32_t delta, wasm_rt_externref_t init) {
  return grow_table(table, delta, init);
}

const RtTable g_rt = {
    rt_trap,
    rt_allocate_memory,
    rt_grow_memory,
    rt_free_memory,
    rt_allocate_funcref_table,
    rt_free_funcref_table,
    rt_grow_funcref_table,
    rt_host_call,
    rt_allocate_externref_table,
    rt_free_externref_table,
    rt_grow_externref_table,
};

}  // namespace

const RtTable& rt_table() { return g_rt; }

ThreadState& thread_state() { return t_state; }

void ensure_signal_handling() {
  std::call_once(g_handler_once, install_handler);
  GuestTls& s = t_guest;
  if (s.altstack_ready) return;
  // An alternate stack so that a native stack overflow can still be handled.
  stack_t ss;
  std::memset(&ss, 0, sizeof ss);
  if (sigaltstack(nullptr, &ss) == 0 && !(ss.ss_flags & SS_DISABLE) && ss.ss_sp) {
    // The thread already has one (for example from a sanitizer).
  } else {
    size_t size = 64u << 10;
    void* sp = mmap(nullptr, size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (sp == MAP_FAILED) {
      std::perror("covenant: sigaltstack mmap");
      std::abort();
    }
    ss.ss_sp = sp;
    ss.ss_size = size;
    ss.ss_flags = 0;
    sigaltstack(&ss, nullptr);
    // The mapping lives as long as the thread; it is small and threads that run
    // guests are long-lived in every embedding we ship.
  }
  pthread_attr_t attr;
  if (pthread_getattr_np(pthread_self(), &attr) == 0) {
    void* addr;
    size_t size;
    if (pthread_attr_getstack(&attr, &addr, &size) == 0) {
      s.stack_lo = reinterpret_cast<uintptr_t>(addr);
      s.stack_hi = s.stack_lo + size;
    }
    pthread_attr_destroy(&attr);
  }
  s.altstack_ready = 1;
}

size_t stack_remaining_bytes() {
  ensure_signal_handling();
  char here;
  uintptr_t sp = reinterpret_cast<uintptr_t>(&here);
  return sp > t_guest.stack_lo ? sp - t_guest.stack_lo : 0;
}

TrapKind classify_rt_trap(int code, uint32_t reason) {
  switch (code) {
    case WASM_RT_TRAP_OOB: return TrapKind::kMemoryOutOfBounds;
    case WASM_RT_TRAP_INT_OVERFLOW: return TrapKind::kIntegerOverflow;
    case WASM_RT_TRAP_DIV_BY_ZERO: return TrapKind::kIntegerDivideByZero;
    case WASM_RT_TRAP_INVALID_CONVERSION: return TrapKind::kInvalidConversion;
    case WASM_RT_TRAP_UNREACHABLE:
      switch (reason) {
        case kReasonFuel: return TrapKind::kOutOfFuel;
        case kReasonDepth: return TrapKind::kStackExhausted;
        case kReasonDeadline: return TrapKind::kDeadline;
        default: return TrapKind::kUnreachable;
      }
    case WASM_RT_TRAP_CALL_INDIRECT: return TrapKind::kIndirectCallTypeMismatch;
    case WASM_RT_TRAP_EXHAUSTION: return TrapKind::kStackExhausted;
    case kRtTableOutOfBounds: return TrapKind::kTableOutOfBounds;
    case kRtUninitializedElement: return TrapKind::kUninitializedElement;
    case kRtHost: return TrapKind::kHost;
    case kRtStackGuard: return TrapKind::kStackExhausted;
    default: return TrapKind::kHost;
  }
}

}  // namespace covenant::wasm
