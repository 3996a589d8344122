// covenant: the command-line entry point. Subcommands live in *_cmd.cc.
#include <pthread.h>

#include <cstdio>
#include <cstring>

#include "cli/command.h"

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

// Guest calls recurse on the native stack (up to call_depth_max frames); run
// every command on a thread with a stack big enough that the engine never has
// to hop to a helper thread.
int main(int argc, char** argv) {
  struct Args {
    int argc;
    char** argv;
    int rc;
  } a{argc, argv, 1};
  pthread_attr_t attr;
  pthread_attr_init(&attr);
  pthread_attr_setstacksize(&attr, size_t(256) << 20);
  pthread_t th;
  auto body = [](void* p) -> void* {
    auto* x = static_cast<Args*>(p);
    x->rc = dispatch(x->argc, x->argv);
    return nullptr;
  };
  if (pthread_create(&th, &attr, body, &a) != 0) return dispatch(argc, argv);
  pthread_join(th, nullptr);
  return a.rc;
}
