// covenant: the command-line entry point. Subcommands live in *_cmd.cc.

#include <pthread.h>
#include <signal.h>

#include <cstdio>
#include <cstring>

#include "cli/command.h"
#include "covenant/engine.h"

namespace covenant::cli {

static std::vector<Command>& registry() {
  static std::vector<Command> r;
  return r;
}

bool register_command(const Command& command) {
  registry().push_back(command);
  return true;
}

const std::vector<Command>& commands() { return registry(); }

static void print_usage(FILE* out) {
  std::fprintf(out, "usage: covenant <command> [args...]\n\ncommands:\n");
  for (const Command& c : commands()) std::fprintf(out, "  %s\n", c.usage);
}

}  // namespace covenant::cli

static int dispatch(int argc, char** argv) {
  using namespace covenant::cli;
  if (argc < 2 || !std::strcmp(argv[1], "--help") || !std::strcmp(argv[1], "-h")) {
    print_usage(argc < 2 ? stderr : stdout);
    return argc < 2 ? kExitError : kExitOk;
  }
  for (const Command& c : commands()) {
    if (std::strcmp(c.name, argv[1]) == 0) return c.run(argc - 1, argv + 1);
  }
  std::fprintf(stderr, "covenant: unknown command '%s' (try --help)\n", argv[1]);
  return kExitError;
}

// Every command runs on a thread with a stack big enough that the engine
// never has to hop to a helper thread.
int main(int argc, char** argv) {
  if (argc >= 2 && std::strcmp(argv[1], "serve") == 0) {
    // serve takes SIGTERM/SIGINT with sigwait: block them in every thread, this one
    // included, before any other thread exists.
    sigset_t sigs;
    sigemptyset(&sigs);
    sigaddset(&sigs, SIGTERM);
    sigaddset(&sigs, SIGINT);
    pthread_sigmask(SIG_BLOCK, &sigs, nullptr);
  }
  return covenant::run_with_big_stack([&] { return dispatch(argc, argv); });
}
