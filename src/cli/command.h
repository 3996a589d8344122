// CLI subcommand registry: each src/cli/*_cmd.cc registers its commands with
// COVENANT_COMMAND, so adding a command touches no shared file.
// Exit codes shared by every command: 0 ok, 1 usage/load/validation error,
// 2 guest trap or a verification that failed, 3 (run) the module is valid but
// has no such export or the arguments do not fit its signature (docs/cli.md).
#pragma once

#include <string>
#include <vector>

namespace covenant::cli {

inline constexpr int kExitOk = 0;
inline constexpr int kExitError = 1;
inline constexpr int kExitTrap = 2;
inline constexpr int kExitNoSuchCall = 3;

// argv[0] is the command name ("run"), argv[1..] its arguments.
using CommandFn = int (*)(int argc, char** argv);

struct Command {
  const char* name;
  const char* usage;
  CommandFn run;
};

bool register_command(const Command& command);
const std::vector<Command>& commands();

}  // namespace covenant::cli

#define COVENANT_CONCAT_INNER(a, b) a##b
#define COVENANT_CONCAT(a, b) COVENANT_CONCAT_INNER(a, b)
#define COVENANT_COMMAND(name, usage, fn)                                   \
  static const bool COVENANT_CONCAT(covenant_command_registered_, __LINE__) = \
      ::covenant::cli::register_command({name, usage, fn})
