// bench_server_refs: the physical references the server benchmark is read
// against, measured in the same run on the same machine (docs/benchmarks.md
// "Server"): Ed25519 signatures per second on one core (libsodium), and
// fsyncs per second of a 4 KiB append in the directory given (the ledger's disk).
// Prints one JSON object.
#include <fcntl.h>
#include <sodium.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <string>
#include <vector>

int main(int argc, char** argv) {
  if (sodium_init() < 0) return 1;
  const std::string dir = argc > 1 ? argv[1] : ".";
  unsigned char pk[crypto_sign_PUBLICKEYBYTES], sk[crypto_sign_SECRETKEYBYTES], sig[crypto_sign_BYTES];
  crypto_sign_keypair(pk, sk);
  std::vector<unsigned char> msg(300, 7);  // about a receipt's Sig_structure
  using clock = std::chrono::steady_clock;
  auto t0 = clock::now();
  uint64_t n = 0;
  while (clock::now() - t0 < std::chrono::seconds(2)) {
    for (int i = 0; i < 100; ++i, ++n) {
      msg[0] = static_cast<unsigned char>(n);
      crypto_sign_detached(sig, nullptr, msg.data(), msg.size(), sk);
    }
  }
  const double sign_s = n / std::chrono::duration<double>(clock::now() - t0).count();

  const std::string path = dir + "/bench_refs.fsync." + std::to_string(getpid());
  int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
  if (fd < 0) {
    std::perror(path.c_str());
    return 1;
  }
  std::vector<char> page(4096, 'x');
  t0 = clock::now();
  uint64_t f = 0;
  while (clock::now() - t0 < std::chrono::seconds(2)) {
    if (::write(fd, page.data(), page.size()) != static_cast<ssize_t>(page.size()) || ::fdatasync(fd) != 0) {
      std::perror("write/fdatasync");
      return 1;
    }
    ++f;
  }
  const double fsync_s = f / std::chrono::duration<double>(clock::now() - t0).count();
  ::close(fd);
  ::unlink(path.c_str());
  std::printf("{\"ed25519_signs_per_s_one_core\":%.0f,\"fsyncs_per_s\":%.0f}\n", sign_s, fsync_s);
  return 0;
}
