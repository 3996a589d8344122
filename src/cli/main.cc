// covenant: the command-line entry point. Subcommands live in *_cmd.cc.

#include <pthread.h>
#include <signal.h>

#include <cstdio>
#include <cstring>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

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

#if defined(__clang__)
#define COVENANT_COMPILER "clang " __VERSION__
#elif defined(__GNUC__)
#define COVENANT_COMPILER "gcc " __VERSION__
#else
#define COVENANT_COMPILER __VERSION__
#endif

#ifndef COVENANT_VERSION
#define COVENANT_VERSION "unknown"
#endif

static void print_usage(FILE* out) {
  std::fprintf(out,
               "usage: covenant <command> [args...]\n"
               "       covenant help [COMMAND] | covenant COMMAND --help | covenant --version\n\ncommands:\n");
  for (const Command& c : commands()) std::fprintf(out, "  %s\n", c.usage);
  std::fprintf(out,
               "\nexit codes: 0 ok, 1 usage/load/validation error, 2 guest trap or a verification that failed, "
               "3 run: no such export or arguments that do not fit it (docs/cli.md)\n");
}

static int print_version(bool as_json) {
  std::vector<std::string> tiers;
  for (Tier t : {Tier::kInterp, Tier::kBaseline, Tier::kOptimized, Tier::kAuto}) tiers.push_back(tier_name(t));
  if (as_json) {
    nlohmann::json j = {{"ok", true}, {"version", COVENANT_VERSION}, {"tiers", tiers}, {"compiler", COVENANT_COMPILER}};
    std::printf("%s\n", j.dump().c_str());
  } else {
    std::printf("covenant %s\nengine tiers: interp, baseline, optimized, auto (baseline, then optimized when ready)\n"
                "compiler: %s\n",
                COVENANT_VERSION, COVENANT_COMPILER);
  }
  return kExitOk;
}

static const Command* find_command(const char* name) {
  for (const Command& c : commands())
    if (std::strcmp(c.name, name) == 0) return &c;
  return nullptr;
}

}  // namespace covenant::cli

static int dispatch(int argc, char** argv) {
  using namespace covenant::cli;
  if (argc < 2) {
    print_usage(stderr);
    return kExitError;
  }
  const std::string first = argv[1];
  if (first == "--help" || first == "-h") {
    print_usage(stdout);
    return kExitOk;
  }
  if (first == "--version" || first == "version") {
    for (int i = 2; i < argc; ++i) {
      if (std::strcmp(argv[i], "--json") != 0) {
        std::fprintf(stderr, "covenant: --version takes only --json, not '%s'\n", argv[i]);
        return kExitError;
      }
    }
    return print_version(argc > 2);
  }
  if (first == "help") {
    if (argc == 2) {
      print_usage(stdout);
      return kExitOk;
    }
    if (argc > 3) {
      std::fprintf(stderr, "covenant: usage: covenant help [COMMAND]\n");
      return kExitError;
    }
    const Command* c = find_command(argv[2]);
    if (!c) {
      std::fprintf(stderr, "covenant: unknown command '%s' (covenant help lists them)\n", argv[2]);
      return kExitError;
    }
    char help_flag[] = "--help";
    char* sub_argv[] = {argv[2], help_flag, nullptr};
    return c->run(2, sub_argv);
  }
  if (const Command* c = find_command(argv[1])) return c->run(argc - 1, argv + 1);
  if (first.rfind("-", 0) == 0)
    std::fprintf(stderr, "covenant: unknown option '%s' (try covenant --help)\n", argv[1]);
  else
    std::fprintf(stderr, "covenant: unknown command '%s' (try covenant --help)\n", argv[1]);
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
