#include "wasm/cache.h"

#include <dlfcn.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sodium.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <climits>
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <map>
#include <mutex>
#include <random>
#include <thread>
#include <vector>

namespace covenant::wasm {
namespace fs = std::filesystem;

namespace {

std::string default_dir() {
  if (const char* d = std::getenv("COVENANT_CACHE_DIR"); d && *d) return d;
  if (const char* x = std::getenv("XDG_CACHE_HOME"); x && *x) return std::string(x) + "/covenant";
  if (const char* h = std::getenv("HOME"); h && *h) return std::string(h) + "/.cache/covenant";
  return "/tmp/covenant-cache";
}

std::string hex(const unsigned char* p, size_t n) {
  static const char* digits = "0123456789abcdef";
  std::string s;
  for (size_t i = 0; i < n; ++i) {
    s += digits[p[i] >> 4];
    s += digits[p[i] & 15];
  }
  return s;
}

bool read_all(int fd, std::vector<uint8_t>& out) {
  struct stat st;
  if (fstat(fd, &st) != 0) return false;
  out.resize(static_cast<size_t>(st.st_size));
  size_t got = 0;
  while (got < out.size()) {
    ssize_t n = pread(fd, out.data() + got, out.size() - got, static_cast<off_t>(got));
    if (n <= 0) return false;
    got += static_cast<size_t>(n);
  }
  return true;
}

bool write_all(int fd, const void* p, size_t n) {
  const auto* b = static_cast<const uint8_t*>(p);
  while (n) {
    ssize_t w = write(fd, b, n);
    if (w < 0) {
      if (errno == EINTR) continue;
      return false;
    }
    b += w;
    n -= static_cast<size_t>(w);
  }
  return true;
}

std::string unique_suffix() {
  static std::mutex mu;
  static std::mt19937_64 rng(std::random_device{}());
  std::lock_guard<std::mutex> lock(mu);
  char buf[64];
  std::snprintf(buf, sizeof buf, "%d.%016llx", getpid(), (unsigned long long)rng());
  return buf;
}

// The temp files and compiler children of the builds now running in this
// process. A short-lived process (a CLI `approve --tier auto`) exits while
// its background compile is still running: the detached thread never reaches
// its cleanup, so at exit the compilers are killed (their whole process
// group) and the temp files removed here. A build checks `exiting` under the
// same lock before it creates a file, so none is created after the sweep.
struct InFlight {
  std::mutex mu;
  bool exiting = false;
  std::map<uint64_t, std::vector<std::string>> files;  // build id -> its temp files
  std::map<uint64_t, pid_t> compilers;                 // build id -> compiler process group
  uint64_t next = 0;

  static InFlight& get() {
    static InFlight* f = [] {
      auto* p = new InFlight();  // never destroyed: builds may outlive main
      std::atexit([] { InFlight::get().abandon(); });
      return p;
    }();
    return *f;
  }
  uint64_t add(std::vector<std::string> paths) {
    std::lock_guard<std::mutex> lock(mu);
    files[++next] = std::move(paths);
    return next;
  }
  void remove(uint64_t id) {
    std::lock_guard<std::mutex> lock(mu);
    files.erase(id);
    compilers.erase(id);
  }
  void abandon() {
    std::lock_guard<std::mutex> lock(mu);
    exiting = true;
    for (const auto& [id, pgid] : compilers) kill(-pgid, SIGKILL);
    for (const auto& [id, pgid] : compilers) waitpid(pgid, nullptr, 0);  // the driver: no more writes
    for (const auto& [id, paths] : files)
      for (const auto& f : paths) unlink(f.c_str());
    files.clear();
    compilers.clear();
  }
};

// Removes temp files in <dir>/tmp left by processes that no longer exist (one
// killed by a signal runs no exit handler). Names carry the creator's pid
// (unique_suffix); files younger than a minute are left alone, so a pid
// reused by a new process cannot lose a file it is writing.
void sweep_orphans(const std::string& tmp_dir) {
  std::error_code ec;
  const auto now = fs::file_time_type::clock::now();
  for (auto it = fs::directory_iterator(tmp_dir, ec); !ec && it != fs::directory_iterator(); it.increment(ec)) {
    const std::string name = it->path().filename().string();
    // <key>.<pid>.<random>.{c,so,art} or load.<pid>.<random>.so
    size_t a = name.find('.');
    if (a == std::string::npos) continue;
    size_t b = name.find('.', a + 1);
    if (b == std::string::npos) continue;
    const std::string pid_text = name.substr(a + 1, b - a - 1);
    if (pid_text.empty() || pid_text.size() > 9 || pid_text.find_first_not_of("0123456789") != std::string::npos)
      continue;
    const pid_t pid = static_cast<pid_t>(std::stol(pid_text));
    if (pid == getpid() || kill(pid, 0) == 0 || errno != ESRCH) continue;
    std::error_code e2;
    const auto mtime = it->last_write_time(e2);
    if (e2 || now - mtime < std::chrono::minutes(1)) continue;
    fs::remove(it->path(), e2);
  }
}

}  // namespace

// Identity of the compiler binary: its resolved path, size and modification
// time. Cheap (no process spawn, so a warm artifact load stays well under a
// millisecond) and it changes whenever the compiler package is upgraded.
std::string compiler_identity(const std::string& cc) {
  static std::mutex mu;
  static std::map<std::string, std::string> ids;
  std::lock_guard<std::mutex> lock(mu);
  auto it = ids.find(cc);
  if (it != ids.end()) return it->second;
  std::string found = cc;
  if (cc.find('/') == std::string::npos) {
    const char* path = std::getenv("PATH");
    std::string p = path ? path : "/usr/bin:/bin";
    size_t start = 0;
    while (start <= p.size()) {
      size_t end = p.find(':', start);
      if (end == std::string::npos) end = p.size();
      std::string cand = p.substr(start, end - start) + "/" + cc;
      if (access(cand.c_str(), X_OK) == 0) {
        found = cand;
        break;
      }
      start = end + 1;
    }
  }
  std::string id = cc;
  char real[PATH_MAX];
  struct stat st;
  if (realpath(found.c_str(), real) && stat(real, &st) == 0) {
    id += std::string(" ") + real + " " + std::to_string(st.st_size) + " " +
          std::to_string(st.st_mtim.tv_sec) + "." + std::to_string(st.st_mtim.tv_nsec);
  }
  ids[cc] = id;
  return id;
}

ArtifactCache::ArtifactCache(const EngineConfig& config)
    : dir_(config.cache_dir.empty() ? default_dir() : config.cache_dir), config_(config) {}

std::string ArtifactCache::key(std::span<const uint8_t> metered, std::string_view tier) const {
  crypto_generichash_state st;
  crypto_generichash_init(&st, nullptr, 0, 32);
  auto add = [&](std::string_view s) {
    uint64_t n = s.size();
    crypto_generichash_update(&st, reinterpret_cast<const unsigned char*>(&n), sizeof n);
    crypto_generichash_update(&st, reinterpret_cast<const unsigned char*>(s.data()), s.size());
  };
  add("covenant-artifact-v1");
  add(Engine::version());
  add(tier);
  add(compiler_identity(config_.cc));
  for (const auto& f : config_.cc_flags) add(f);
  add(std::string_view(reinterpret_cast<const char*>(metered.data()), metered.size()));
  unsigned char out[32];
  crypto_generichash_final(&st, out, sizeof out);
  return hex(out, sizeof out);
}

std::string ArtifactCache::path_for(const std::string& key) const {
  return dir_ + "/" + key.substr(0, 2) + "/" + key + ".so";
}

Result<std::vector<uint8_t>> ArtifactCache::read_verified(const std::string& path) const {
  int fd = open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    if (errno == ENOENT) return Status::not_found("no artifact at " + path);
    return Status::io("opening artifact " + path + ": " + std::strerror(errno));
  }
  std::vector<uint8_t> bytes;
  std::string problem;
  if (!read_all(fd, bytes)) {
    problem = "unreadable";
  } else if (bytes.size() < kArtifactTrailerBytes + 64) {
    problem = "truncated (" + std::to_string(bytes.size()) + " bytes)";
  } else if (std::memcmp(bytes.data() + bytes.size() - 8, kArtifactMagic, 8) != 0) {
    problem = "missing trailer (truncated or not a Covenant artifact)";
  } else {
    size_t n = bytes.size() - kArtifactTrailerBytes;
    unsigned char h[32];
    crypto_generichash(h, sizeof h, bytes.data(), n, nullptr, 0);
    if (sodium_memcmp(h, bytes.data() + n, 32) != 0) problem = "hash mismatch (tampered or corrupted)";
  }
  if (!problem.empty()) {
    close(fd);
    unlink(path.c_str());
    return Status::corruption("artifact " + path + " is " + problem + "; removed");
  }
  close(fd);
  utimensat(AT_FDCWD, path.c_str(), nullptr, 0);  // LRU: mark as used
  bytes.resize(bytes.size() - kArtifactTrailerBytes);
  return bytes;
}

Result<void*> ArtifactCache::load(const std::vector<uint8_t>& elf) const {
  std::error_code ec;
  fs::create_directories(dir_ + "/tmp", ec);
  std::string path = dir_ + "/tmp/load." + unique_suffix() + ".so";
  int fd = open(path.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
  if (fd < 0) return Status::io("creating " + path + ": " + std::strerror(errno));
  bool ok = write_all(fd, elf.data(), elf.size());
  close(fd);
  if (!ok) {
    unlink(path.c_str());
    return Status::io("writing " + path + ": " + std::strerror(errno));
  }
  void* dl = dlopen(path.c_str(), RTLD_NOW | RTLD_LOCAL);
  std::string err = dl ? "" : dlerror();
  unlink(path.c_str());
  if (!dl) return Status::io("dlopen of a verified artifact failed: " + err);
  return dl;
}

Result<std::string> ArtifactCache::build(const std::string& key, const std::string& c_source,
                                         const Progress& progress) const {
  std::error_code ec;
  fs::create_directories(dir_ + "/tmp", ec);
  fs::create_directories(dir_ + "/" + key.substr(0, 2), ec);
  if (ec) return Status::io("cannot create cache directory " + dir_ + ": " + ec.message());
  sweep_orphans(dir_ + "/tmp");
  std::string base = dir_ + "/tmp/" + key + "." + unique_suffix();
  std::string c_path = base + ".c", so_path = base + ".so", art_path = base + ".art";
  InFlight& inflight = InFlight::get();
  struct Cleanup {
    std::vector<std::string> files;
    uint64_t id;
    ~Cleanup() {
      for (auto& f : files) unlink(f.c_str());
      InFlight::get().remove(id);
    }
  } cleanup{{c_path, so_path, art_path}, inflight.add({c_path, so_path, art_path})};
  // Opens a temp file unless the process is exiting (see InFlight).
  auto create = [&](const std::string& path) {
    std::lock_guard<std::mutex> lock(inflight.mu);
    if (inflight.exiting) {
      errno = ECANCELED;
      return -1;
    }
    return open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  };
  {
    int fd = create(c_path);
    if (fd < 0 || !write_all(fd, c_source.data(), c_source.size())) {
      if (fd >= 0) close(fd);
      return Status::io("writing " + c_path + ": " + std::strerror(errno));
    }
    close(fd);
  }
  std::vector<std::string> args = {config_.cc};
  for (const auto& f : config_.cc_flags) args.push_back(f);
  for (const char* f : {"-fPIC", "-shared", "-w", "-fno-strict-aliasing", "-DNDEBUG"}) args.push_back(f);
  args.push_back("-o");
  args.push_back(so_path);
  args.push_back(c_path);
  args.push_back("-lm");
  std::vector<char*> argv;
  for (auto& a : args) argv.push_back(a.data());
  argv.push_back(nullptr);

  int errpipe[2];
  if (pipe2(errpipe, O_CLOEXEC) != 0) return Status::io("pipe: " + std::string(std::strerror(errno)));
  auto t0 = std::chrono::steady_clock::now();
  if (progress) progress("compiling " + std::to_string(c_source.size() / 1024) + " KiB of C with " + config_.cc + " " + (config_.cc_flags.empty() ? "" : config_.cc_flags[0]));
  pid_t pid;
  {
    // Forked under the lock, so the exit sweep either sees the compiler or
    // runs before it exists (and then this build does not start it).
    std::lock_guard<std::mutex> lock(inflight.mu);
    if (inflight.exiting) {
      close(errpipe[0]);
      close(errpipe[1]);
      return Status::io("the process is exiting; compile abandoned");
    }
    pid = fork();
    if (pid == 0) {
      // Its own process group (cc's children die with it), and killed if
      // the thread that started it dies.
      setpgid(0, 0);
      prctl(PR_SET_PDEATHSIG, SIGKILL);
      dup2(errpipe[1], 2);
      execvp(argv[0], argv.data());
      _exit(127);
    }
    if (pid > 0) {
      setpgid(pid, pid);  // also here: no window where kill(-pid) misses it
      inflight.compilers[cleanup.id] = pid;
    }
  }
  if (pid < 0) {
    close(errpipe[0]);
    close(errpipe[1]);
    return Status::io("fork: " + std::string(std::strerror(errno)));
  }
  close(errpipe[1]);
  std::string diag;
  int status = 0;
  int last_report = 0;
  for (;;) {
    struct pollfd p = {errpipe[0], POLLIN, 0};
    int r = poll(&p, 1, 250);
    if (r > 0) {
      char buf[4096];
      ssize_t n = read(errpipe[0], buf, sizeof buf);
      if (n > 0 && diag.size() < 8192) diag.append(buf, static_cast<size_t>(n));
    }
    pid_t w;
    {
      // Reaped and forgotten under the lock: the exit sweep never signals a
      // process group whose id the system may have handed out again.
      std::lock_guard<std::mutex> lock(inflight.mu);
      w = waitpid(pid, &status, WNOHANG);
      if (w == pid) inflight.compilers.erase(cleanup.id);
    }
    if (w == pid) break;
    if (w < 0) {  // reaped by the exit sweep
      close(errpipe[0]);
      return Status::io("the process is exiting; compile abandoned");
    }
    auto elapsed = std::chrono::steady_clock::now() - t0;
    auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(elapsed).count();
    if (progress && ms / 1000 > last_report) {
      last_report = static_cast<int>(ms / 1000);
      progress("still compiling with " + config_.cc + ": " + std::to_string(last_report) + " s");
    }
    if (ms > config_.cc_timeout_ms) {
      {
        std::lock_guard<std::mutex> lock(inflight.mu);
        kill(-pid, SIGKILL);  // the driver and the cc1/as/ld it started
        waitpid(pid, &status, 0);
        inflight.compilers.erase(cleanup.id);
      }
      close(errpipe[0]);
      return Status::limit("the C compiler took over " + std::to_string(config_.cc_timeout_ms) +
                           " ms (cc_timeout_ms); the module is too large to compile on the optimized tier");
    }
  }
  close(errpipe[0]);
  if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
    return Status::internal(config_.cc + " failed on the generated C: " + diag.substr(0, 2000));

  // Artifact = ELF ‖ hash ‖ magic, published atomically.
  int in = open(so_path.c_str(), O_RDONLY | O_CLOEXEC);
  std::vector<uint8_t> elf;
  if (in < 0 || !read_all(in, elf)) {
    if (in >= 0) close(in);
    return Status::io("reading the compiled object " + so_path);
  }
  close(in);
  unsigned char h[32];
  crypto_generichash(h, sizeof h, elf.data(), elf.size(), nullptr, 0);
  int out = create(art_path);
  if (out < 0 || !write_all(out, elf.data(), elf.size()) || !write_all(out, h, sizeof h) ||
      !write_all(out, kArtifactMagic, 8) || fsync(out) != 0) {
    if (out >= 0) close(out);
    return Status::io("writing artifact " + art_path + ": " + std::strerror(errno));
  }
  close(out);
  std::string final_path = path_for(key);
  if (rename(art_path.c_str(), final_path.c_str()) != 0)
    return Status::io("publishing artifact " + final_path + ": " + std::strerror(errno));
  int dfd = open((dir_ + "/" + key.substr(0, 2)).c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (dfd >= 0) {
    fsync(dfd);
    close(dfd);
  }
  if (progress) {
    auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() - t0).count();
    progress("compiled in " + std::to_string(ms) + " ms; artifact " + final_path);
  }
  evict(final_path);
  return final_path;
}

void ArtifactCache::evict(const std::string& keep) const {
  struct Entry {
    fs::path path;
    uint64_t size;
    fs::file_time_type mtime;
  };
  std::vector<Entry> entries;
  uint64_t total = 0;
  std::error_code ec;
  for (auto it = fs::recursive_directory_iterator(dir_, ec); !ec && it != fs::recursive_directory_iterator();
       it.increment(ec)) {
    if (!it->is_regular_file(ec) || it->path().extension() != ".so" || it->path() == keep) continue;
    uint64_t size = it->file_size(ec);
    auto mtime = it->last_write_time(ec);
    if (ec) continue;
    entries.push_back({it->path(), size, mtime});
    total += size;
  }
  uint64_t kept = 0;
  if (std::error_code e2; fs::exists(keep, e2)) kept = fs::file_size(keep, e2);
  total += kept;
  if (total <= config_.cache_size_bytes_max) return;
  std::sort(entries.begin(), entries.end(), [](const Entry& a, const Entry& b) { return a.mtime < b.mtime; });
  for (const auto& e : entries) {
    if (total <= config_.cache_size_bytes_max) break;
    fs::remove(e.path, ec);
    total -= e.size;
  }
}

}  // namespace covenant::wasm
