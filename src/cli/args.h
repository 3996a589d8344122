// The one argument parser every command uses (CLI11, header-only): strict
// (an unknown flag is a usage error, exit 1), `--flag value` and
// `--flag=value`, `--help`/-h on every command and subcommand (exit 0, usage
// with every flag and its default), typed values whose range errors say "out
// of range", and file arguments checked up front with a one-line error naming
// the argument. With --json every failure is one JSON object on stdout:
// {"ok":false,"error":{"code":"<snake_case>","message":"..."}} (docs/cli.md).
#pragma once

#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cinttypes>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include <CLI/CLI.hpp>
#include <nlohmann/json.hpp>

#include "cli/command.h"
#include "covenant/engine.h"
#include "covenant/storage.h"

namespace covenant::cli {

// Where a command reports: "covenant settle: msg" on stderr, and with --json also
// the error object on stdout (the one JSON object of the run). Returns the exit
// code it was given.
struct Reporter {
  std::string who;  // "settle", "ledger", ...
  bool json = false;

  void print_json(const std::string& code, const std::string& message) const {
    if (!json) return;
    nlohmann::json j = {{"ok", false}, {"error", {{"code", code}, {"message", message}}}};
    std::printf("%s\n", j.dump().c_str());
    std::fflush(stdout);
  }
  int fail(int exit_code, const std::string& code, const std::string& message) const {
    print_json(code, message);
    std::fprintf(stderr, "covenant %s: %s\n", who.c_str(), message.c_str());
    return exit_code;
  }
  int usage(const std::string& message, const std::string& usage_line = "") const {
    print_json("usage", message);
    std::fprintf(stderr, "covenant %s: %s\n", who.c_str(), message.c_str());
    if (!usage_line.empty()) std::fprintf(stderr, "usage: covenant %s\n", usage_line.c_str());
    std::fprintf(stderr, "(covenant %s --help lists every flag)\n", who.c_str());
    return kExitError;
  }
};

// A CLI11 app configured the way every command wants it.
inline void configure(CLI::App& app) {
  app.allow_extras(false);
  app.allow_windows_style_options(false);
  app.option_defaults()->always_capture_default();
  app.set_help_flag("-h,--help", "print this help and exit 0");
  app.get_formatter()->column_width(30);
}

// A positional argument (shown without a type or default).
template <typename T>
CLI::Option* add_pos(CLI::App& app, const std::string& name, T& out, const std::string& desc) {
  return app.add_option(name, out, desc)->type_name("")->default_str("");
}

inline CLI::Option* add_json(CLI::App& app, bool& out) {
  return app.add_flag("--json", out, "print exactly one JSON object on stdout, success or failure");
}

// A non-negative integer (decimal, or 0x hex when hex is true) no larger than max:
// "" and the value, or the error ("... is out of range (0..max)").
inline std::string parse_u64_arg(const std::string& flag, const std::string& v, uint64_t max, bool hex, uint64_t* out) {
  bool digits = !v.empty();
  size_t start = 0;
  if (hex && v.size() > 2 && v[0] == '0' && (v[1] == 'x' || v[1] == 'X')) start = 2;
  for (size_t i = start; i < v.size() && digits; ++i)
    digits = start ? std::isxdigit(static_cast<unsigned char>(v[i])) != 0 : (v[i] >= '0' && v[i] <= '9');
  if (!digits || start == v.size()) return flag + " '" + v + "' is not a non-negative integer";
  errno = 0;
  unsigned long long x = std::strtoull(v.c_str() + start, nullptr, start ? 16 : 10);
  if (errno == ERANGE || x > max) return flag + " '" + v + "' is out of range (0.." + std::to_string(max) + ")";
  *out = x;
  return "";
}

// Non-negative integer option (see parse_u64_arg). The option keeps its current
// value as the displayed default; *given is set when it appears.
inline CLI::Option* add_u64(CLI::App& app, const std::string& name, uint64_t& out, const std::string& desc,
                            uint64_t max = UINT64_MAX, bool hex = false, bool* given = nullptr) {
  const std::string flag = name.substr(0, name.find(','));
  auto* o = app.add_option_function<std::string>(
      name,
      [&out, flag, max, hex, given](const std::string& v) {
        if (std::string e = parse_u64_arg(flag, v, max, hex, &out); !e.empty()) throw CLI::ValidationError(e);
        if (given) *given = true;
      },
      desc);
  o->default_str(std::to_string(out));
  o->type_name("N");
  return o;
}

// --tier: interp|baseline|optimized|auto (auto only when allowed).
inline CLI::Option* add_tier(CLI::App& app, Tier& out, bool allow_auto = true) {
  auto* o = app.add_option_function<std::string>(
      "--tier",
      [&out, allow_auto](const std::string& v) {
        auto t = parse_tier(v);
        if (!t || (!allow_auto && *t == Tier::kAuto))
          throw CLI::ValidationError(allow_auto ? "unknown tier \"" + v + "\" (interp, baseline, optimized, auto)"
                                                : "--tier must be interp, baseline or optimized (got \"" + v + "\")");
        out = *t;
      },
      allow_auto ? "execution tier: interp, baseline, optimized or auto" : "tier to compile: interp, baseline or optimized");
  o->default_str(tier_name(out));
  o->type_name(allow_auto ? "interp|baseline|optimized|auto" : "interp|baseline|optimized");
  return o;
}

// Parses argv (argv[0] is the command name). Returns nullopt to go on, or the exit
// code to return: 0 after --help (printed on stdout), 1 after a usage error.
inline std::optional<int> parse(CLI::App& app, const std::vector<std::string>& argv, const Reporter& r,
                                const std::string& usage_line) {
  std::vector<const char*> p;
  for (const std::string& s : argv) p.push_back(s.c_str());
  try {
    app.parse(static_cast<int>(p.size()), p.data());
  } catch (const CLI::CallForHelp&) {
    std::fputs(app.help().c_str(), stdout);
    return kExitOk;
  } catch (const CLI::CallForAllHelp&) {
    std::fputs(app.help("", CLI::AppFormatMode::All).c_str(), stdout);
    return kExitOk;
  } catch (const CLI::ParseError& e) {
    std::string msg = e.what();
    // CLI11's wording for the two commonest mistakes, made plainer.
    for (const std::string pre : {"The following arguments were not expected: ", "The following argument was not expected: "}) {
      if (msg.rfind(pre, 0) != 0) continue;
      std::string rest = msg.substr(pre.size()), first_flag, first_other;
      for (size_t at = 0; at <= rest.size();) {
        size_t sp = rest.find(' ', at);
        if (sp == std::string::npos) sp = rest.size();
        std::string tok = rest.substr(at, sp - at);
        if (!tok.empty() && tok[0] == '-' && first_flag.empty()) first_flag = tok.substr(0, tok.find('='));
        if (!tok.empty() && tok[0] != '-' && first_other.empty()) first_other = tok;
        at = sp + 1;
      }
      msg = !first_flag.empty() ? "unknown option " + first_flag : "unexpected argument " + first_other;
      break;
    }
    return r.usage(msg, usage_line);
  }
  return std::nullopt;
}

inline bool has_subcommand(CLI::App& app, const std::string& name) {
  return !app.get_subcommands([&](CLI::App* s) { return s->check_name(name); }).empty();
}

inline std::vector<std::string> to_vector(int argc, char** argv) { return std::vector<std::string>(argv, argv + argc); }

inline bool has_json_flag(const std::vector<std::string>& args) {
  for (const std::string& s : args) {
    if (s == "--") break;
    if (s == "--json") return true;
  }
  return false;
}

// For commands with subcommands: flags may come before the subcommand name
// (`settle --ledger L release H`); move the first positional token (and, for
// `ledger account create`, its own subcommand) right after the command name so
// CLI11 gives every flag to the subcommand. Every flag of these commands but
// --json and --help takes a value.
inline std::vector<std::string> subcommand_first(std::vector<std::string> args, size_t depth = 1) {
  for (size_t d = 0; d < depth; ++d) {
    for (size_t i = 1 + d; i < args.size(); ++i) {
      const std::string& s = args[i];
      if (s == "--") break;
      if (s == "--json" || s == "--help" || s == "-h") continue;
      if (s.rfind("-", 0) == 0 && s.size() > 1) {
        if (s.find('=') == std::string::npos) ++i;  // its value
        continue;
      }
      std::string sub = s;
      args.erase(args.begin() + static_cast<long>(i));
      args.insert(args.begin() + static_cast<long>(1 + d), sub);
      break;
    }
  }
  return args;
}

// ---- file arguments, checked before anything runs ----

// An input file: exists, not a directory, a regular file (or a pipe or device,
// for `<(...)` and /dev/stdin), readable. "-" (stdin) when allowed. Returns "" or
// a one-line error naming the argument: "--intent: cannot open DIR: is a directory".
inline std::string check_input_file(const std::string& arg, const std::string& path, bool allow_stdin = false) {
  if (allow_stdin && path == "-") return "";
  if (path.empty()) return arg + ": needs a file name";
  struct stat st;
  if (::stat(path.c_str(), &st) != 0) return arg + ": cannot open " + path + ": " + std::strerror(errno);
  if (S_ISDIR(st.st_mode)) return arg + ": cannot open " + path + ": is a directory, not a file";
  if (!S_ISREG(st.st_mode) && !S_ISFIFO(st.st_mode) && !S_ISCHR(st.st_mode))
    return arg + ": cannot open " + path + ": not a regular file";
  if (::access(path.c_str(), R_OK) != 0) return arg + ": cannot open " + path + ": " + std::strerror(errno);
  return "";
}

inline std::string parent_of(const std::string& path) {
  std::filesystem::path p(path);
  std::string parent = p.parent_path().string();
  return parent.empty() ? "." : parent;
}

// A file to be created or overwritten: not a directory; if it exists, writable;
// if not, its folder exists and is writable.
inline std::string check_output_file(const std::string& arg, const std::string& path) {
  if (path.empty()) return arg + ": needs a file name";
  struct stat st;
  if (::stat(path.c_str(), &st) == 0) {
    if (S_ISDIR(st.st_mode)) return arg + ": cannot write " + path + ": is a directory, not a file";
    if (::access(path.c_str(), W_OK) != 0) return arg + ": cannot write " + path + ": " + std::strerror(errno);
    return "";
  }
  if (errno != ENOENT) return arg + ": cannot write " + path + ": " + std::strerror(errno);
  const std::string dir = parent_of(path);
  if (::stat(dir.c_str(), &st) != 0) return arg + ": cannot write " + path + ": folder " + dir + ": " + std::strerror(errno);
  if (!S_ISDIR(st.st_mode)) return arg + ": cannot write " + path + ": " + dir + " is not a directory";
  if (::access(dir.c_str(), W_OK | X_OK) != 0)
    return arg + ": cannot write " + path + ": folder " + dir + ": " + std::strerror(errno);
  return "";
}

// A directory that is read, or created if missing (create): if it exists it is a
// directory (and writable when it will be written); if it is missing and will be
// created, the nearest existing ancestor is a writable directory.
inline std::string check_dir(const std::string& arg, const std::string& path, bool write) {
  if (path.empty()) return arg + ": needs a directory name";
  struct stat st;
  if (::stat(path.c_str(), &st) == 0) {
    if (!S_ISDIR(st.st_mode)) return arg + ": " + path + " is not a directory";
    if (write && ::access(path.c_str(), W_OK | X_OK) != 0) return arg + ": cannot write in " + path + ": " + std::strerror(errno);
    return "";
  }
  if (errno != ENOENT) return arg + ": " + path + ": " + std::strerror(errno);
  if (!write) return "";  // the command reports a missing directory in its own words
  std::filesystem::path p = std::filesystem::path(path).lexically_normal();
  while (!p.empty() && p.has_parent_path() && p.parent_path() != p) {
    p = p.parent_path();
    if (::stat(p.string().c_str(), &st) == 0) break;
  }
  std::string anc = p.empty() || p.string().empty() ? "." : p.string();
  if (::stat(anc.c_str(), &st) != 0) anc = ".";
  if (::stat(anc.c_str(), &st) != 0 || !S_ISDIR(st.st_mode))
    return arg + ": cannot create " + path + ": " + anc + " is not a directory";
  if (::access(anc.c_str(), W_OK | X_OK) != 0) return arg + ": cannot create " + path + ": " + anc + ": " + std::strerror(errno);
  return "";
}

// A SQLite ledger path (postgresql:// URLs are not files): a file, created if missing.
inline std::string check_ledger(const std::string& arg, const std::string& location) {
  if (location.rfind("postgresql://", 0) == 0 || location.rfind("postgres://", 0) == 0) return "";
  return check_output_file(arg, location);
}

// A ledger that must already exist (settle ..., ledger ... except init): a
// SQLite path that does not exist is refused rather than created empty.
inline std::string check_existing_ledger(const std::string& arg, const std::string& location) {
  if (location == "memory:" || is_postgres_location(location)) return "";
  if (std::string e = check_ledger(arg, location); !e.empty()) return e;
  std::error_code ec;
  if (!std::filesystem::exists(location, ec))
    return arg + " " + location + ": no ledger there (create one with `covenant ledger init --ledger " + location +
           "`, or `covenant approve --ledger` / `covenant serve`)";
  return "";
}

// Runs checks in order; the first error wins. Each check returns "" or a message.
inline std::string first_error(std::initializer_list<std::function<std::string()>> checks) {
  for (const auto& c : checks)
    if (std::string e = c(); !e.empty()) return e;
  return "";
}

}  // namespace covenant::cli
