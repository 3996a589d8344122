// bench_engine: the engine's benchmark (issue 2, item 10). Not a test: it
// prints timings and ratios, it does not pass or fail on them.
//
// For every workload in bench/workloads.json and every tier it measures load,
// compile (cold: an empty cache directory; warm: a second engine on the same
// directory), instantiate (warm median), execute (median of calls through the
// typed API; call_raw for the no-op), all with fuel metering on (it always is).
// Beside them: the same C compiled natively (gcc -O2, linked into this binary)
// and Node's V8 (bench/node/run.mjs: default tiering, Liftoff only, TurboFan
// only). Prints ratios to native, geometric means per tier and the issue's
// targets. Checksums of every runtime must agree or the run fails (exit 1).
//
//   build-bench/bench/bench_engine [--quick] [--tiers interp,baseline,optimized]
//       [--no-node] [--wasm-dir DIR] [--spec FILE] [--json-out FILE]
//
// Built without the engine (target covenant_wasm missing) it still runs the
// native and node columns (COVENANT_BENCH_NO_ENGINE).
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>
#include <optional>
#include <sstream>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "workload.h"

#ifndef COVENANT_BENCH_NO_ENGINE
#include "covenant/engine.h"
#endif

namespace {

using json = nlohmann::json;
using Clock = std::chrono::steady_clock;

double us_since(Clock::time_point t0) {
  return std::chrono::duration<double, std::micro>(Clock::now() - t0).count();
}

double median(std::vector<double> xs) {
  if (xs.empty()) return NAN;
  std::sort(xs.begin(), xs.end());
  size_t m = xs.size() / 2;
  return xs.size() % 2 ? xs[m] : (xs[m - 1] + xs[m]) / 2;
}

double geomean(const std::vector<double>& xs) {
  double s = 0;
  int n = 0;
  for (double x : xs) {
    if (std::isfinite(x) && x > 0) {
      s += std::log(x);
      n++;
    }
  }
  return n ? std::exp(s / n) : NAN;
}

struct Workload {
  std::string name, wasm, export_name;
  std::vector<int32_t> args;
  bool geomean = false;
  bool call_kind = false;  // measured as per-call overhead
  uint64_t calls = 0;
};

struct Options {
  bool quick = false;
  bool node = true;
  std::vector<std::string> tiers = {"interp", "baseline", "optimized"};
  std::string wasm_dir = std::string(COVENANT_BINARY_DIR) + "/contracts/bench";
  std::string spec = std::string(COVENANT_SOURCE_DIR) + "/bench/workloads.json";
  std::string node_script = std::string(COVENANT_SOURCE_DIR) + "/bench/node/run.mjs";
  std::string json_out;
};

// One runtime's numbers for one workload; NAN where not measured.
struct Numbers {
  double load_us = NAN, compile_cold_us = NAN, load_warm_us = NAN, compile_warm_us = NAN;
  double instantiate_us = NAN, execute_us = NAN, call_raw_ns = NAN, generic_call_ns = NAN;
  uint64_t fuel_used = 0;
  std::optional<int32_t> checksum;
  std::string error;
};

// ---- native column -------------------------------------------------------

int32_t call_native(const std::string& export_name, const std::vector<int32_t>& a) {
  // Through volatile pointers so gcc cannot fold or hoist the calls.
  static int32_t (*volatile loop)(int32_t) = bench_loop;
  static int32_t (*volatile sha)(int32_t, int32_t) = bench_sha256;
  static int32_t (*volatile policy)(int32_t) = bench_policy;
  static int32_t (*volatile fib)(int32_t) = bench_fib;
  static int32_t (*volatile noop)(int32_t) = bench_noop;
  static int32_t (*volatile data)(int32_t) = bench_data_sum;
  if (export_name == "bench_loop") return loop(a.at(0));
  if (export_name == "bench_sha256") return sha(a.at(0), a.at(1));
  if (export_name == "bench_policy") return policy(a.at(0));
  if (export_name == "bench_fib") return fib(a.at(0));
  if (export_name == "bench_noop") return noop(a.at(0));
  if (export_name == "bench_data_sum") return data(a.at(0));
  fprintf(stderr, "bench_engine: no native function for %s\n", export_name.c_str());
  exit(1);
}

Numbers run_native(const Workload& w, const Options& o) {
  Numbers n;
  n.checksum = call_native(w.export_name, w.args);
  if (w.call_kind) {
    static int32_t (*volatile noop)(int32_t) = bench_noop;
    std::vector<double> per;
    for (int k = 0; k < 7; k++) {
      auto t0 = Clock::now();
      int32_t acc = 0;
      for (uint64_t i = 0; i < w.calls; i++) acc += noop(w.args[0]);
      per.push_back(us_since(t0) * 1000.0 / double(w.calls));
      if (acc == 0x7fffffff) fputc(' ', stderr);
    }
    n.execute_us = median(per) / 1000.0;
    n.call_raw_ns = median(per);
  } else {
    std::vector<double> ex;
    int reps = o.quick ? 3 : 9;
    for (int i = 0; i < reps; i++) {
      auto t0 = Clock::now();
      int32_t c = call_native(w.export_name, w.args);
      ex.push_back(us_since(t0));
      if (c != *n.checksum) n.error = "native checksum not stable";
    }
    n.execute_us = median(ex);
  }
  return n;
}

// ---- node columns --------------------------------------------------------

struct NodeRun {
  std::string label, flags;
  std::map<std::string, Numbers> numbers;
  std::string error;
};

NodeRun run_node(const std::string& label, const std::string& flags, const Options& o) {
  NodeRun r{label, flags, {}, {}};
  std::string cmd = "node " + flags + " '" + o.node_script + "' --wasm-dir '" + o.wasm_dir +
                    "' --spec '" + o.spec + "'" + (o.quick ? " --quick" : "");
  FILE* p = popen(cmd.c_str(), "r");
  if (p == nullptr) {
    r.error = "cannot run node";
    return r;
  }
  std::string out;
  char buf[4096];
  size_t k;
  while ((k = fread(buf, 1, sizeof buf, p)) > 0) out.append(buf, k);
  int rc = pclose(p);
  if (rc != 0) {
    r.error = "node exited with " + std::to_string(rc);
    return r;
  }
  json j = json::parse(out, nullptr, false);
  if (j.is_discarded()) {
    r.error = "node printed no JSON";
    return r;
  }
  for (auto& [name, v] : j["workloads"].items()) {
    Numbers n;
    n.compile_cold_us = v.value("compile_us", NAN);
    n.instantiate_us = v.value("instantiate_us", NAN);
    n.execute_us = v.value("execute_us", NAN);
    if (v.contains("call_ns")) n.call_raw_ns = v["call_ns"].get<double>();
    n.checksum = v["checksum"].get<int32_t>();
    r.numbers[name] = n;
  }
  for (auto& c : j["self_checks"]) {
    if (!c.value("ok", false)) r.error = "self check failed: " + c.dump();
  }
  return r;
}

// ---- engine columns ------------------------------------------------------

#ifndef COVENANT_BENCH_NO_ENGINE

std::vector<uint8_t> read_bytes(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  return std::vector<uint8_t>(std::istreambuf_iterator<char>(f), {});
}

std::string make_temp_dir() {
  std::string tmpl = (std::filesystem::temp_directory_path() / "covenant-bench-XXXXXX").string();
  if (mkdtemp(tmpl.data()) == nullptr) {
    perror("mkdtemp");
    exit(1);
  }
  return tmpl;
}

constexpr uint64_t kBenchFuel = 1ull << 60;  // metering on, never the limit here

Numbers run_engine(const Workload& w, covenant::Tier tier, const Options& o, bool metering = true) {
  Numbers n;
  std::vector<uint8_t> bytes = read_bytes(o.wasm_dir + "/" + w.wasm);
  if (bytes.empty()) {
    n.error = "cannot read " + w.wasm;
    return n;
  }
  std::string cache = make_temp_dir();
  covenant::EngineConfig cfg;
  cfg.cache_dir = cache;
  cfg.metering = metering;
  covenant::LoadOptions lo;
  lo.tier = tier;
  lo.name = w.name;

  // Cold: empty cache.
  std::shared_ptr<covenant::Module> module;
  {
    auto engine = covenant::Engine::create(cfg);
    if (!engine) {
      n.error = engine.status().to_string();
      return n;
    }
    auto t0 = Clock::now();
    auto m = engine.value()->load(bytes, lo);
    double wall = us_since(t0);
    if (!m) {
      n.error = m.status().to_string();
      std::filesystem::remove_all(cache);
      return n;
    }
    auto lt = m.value()->load_timings();
    n.load_us = double(lt.load_us);
    n.compile_cold_us = lt.compile_us ? double(lt.compile_us) : wall - double(lt.load_us);
  }
  // Warm: a new engine on the same cache directory (no in-process reuse).
  {
    auto engine = covenant::Engine::create(cfg).value();
    auto t0 = Clock::now();
    auto m = engine->load(bytes, lo);
    double wall = us_since(t0);
    if (!m) {
      n.error = "warm load: " + m.status().to_string();
      std::filesystem::remove_all(cache);
      return n;
    }
    n.load_warm_us = wall;
    n.compile_warm_us = double(m.value()->load_timings().compile_us);
    module = m.value();
  }

  covenant::Linker linker;
  // Instantiate: warm median (after a few to fill any pool).
  {
    int count = o.quick ? 20 : (bytes.size() > 100'000 ? 500 : 5'000);
    std::vector<double> xs;
    xs.reserve(count);
    for (int i = 0; i < count + 5; i++) {
      auto t0 = Clock::now();
      auto inst = module->instantiate(linker);
      double us = us_since(t0);
      if (!inst) {
        n.error = "instantiate: " + inst.status().to_string();
        std::filesystem::remove_all(cache);
        return n;
      }
      if (i >= 5) xs.push_back(us);
    }
    n.instantiate_us = median(xs);
  }

  auto inst_r = module->instantiate(linker);
  if (!inst_r) {
    n.error = "instantiate: " + inst_r.status().to_string();
    std::filesystem::remove_all(cache);
    return n;
  }
  std::unique_ptr<covenant::Instance> inst = std::move(inst_r).value();
  auto idx = module->export_index(w.export_name);
  if (!idx) {
    n.error = "no export " + w.export_name;
    std::filesystem::remove_all(cache);
    return n;
  }
  std::vector<covenant::Value> args;
  for (int32_t a : w.args) args.push_back(covenant::Value::i32(a));
  covenant::CallOptions co;
  co.fuel = kBenchFuel;

  auto call_once = [&](double* us) -> bool {
    auto t0 = Clock::now();
    auto out = inst->call(*idx, args, co);
    if (us) *us = us_since(t0);
    if (!out) {
      n.error = "call: " + out.status().to_string();
      return false;
    }
    if (!out.value().ok()) {
      n.error = std::string("trap: ") + covenant::trap_kind_name(out.value().trap.kind) + " " +
                out.value().trap.message;
      return false;
    }
    if (out.value().results.size() != 1) {
      n.error = "expected one result";
      return false;
    }
    int32_t c = out.value().results[0].as_i32();
    if (n.checksum && *n.checksum != c) {
      n.error = "checksum changed between calls";
      return false;
    }
    n.checksum = c;
    n.fuel_used = out.value().fuel_used;
    return true;
  };

  if (w.call_kind) {
    if (!call_once(nullptr)) return n;
    uint64_t calls = tier == covenant::Tier::kInterp ? std::max<uint64_t>(w.calls / 20, 100) : w.calls;
    std::vector<double> typed, raw, generic;
    auto typed_fn = covenant::TypedFunc<int32_t(int32_t)>::bind(*inst, w.export_name);
    if (!typed_fn) {
      n.error = "TypedFunc: " + typed_fn.status().to_string();
      return n;
    }
    for (int k = 0; k < 5; k++) {
      auto t0 = Clock::now();
      for (uint64_t i = 0; i < calls; i++) (void)inst->call(*idx, args, co);
      generic.push_back(us_since(t0) * 1000.0 / double(calls));
      int32_t r = 0;
      uint64_t used = 0;
      t0 = Clock::now();
      for (uint64_t i = 0; i < calls; i++) (void)typed_fn->call(&r, kBenchFuel, &used, int32_t(w.args[0]));
      typed.push_back(us_since(t0) * 1000.0 / double(calls));
      if (r != *n.checksum) n.error = "TypedFunc result differs";
      uint64_t slots[2];
      uint64_t fuel_used = 0;
      t0 = Clock::now();
      for (uint64_t i = 0; i < calls; i++) {
        slots[0] = uint32_t(w.args[0]);
        (void)inst->call_raw(*idx, slots, kBenchFuel, &fuel_used);
      }
      raw.push_back(us_since(t0) * 1000.0 / double(calls));
      if (int32_t(slots[0]) != *n.checksum) n.error = "call_raw result differs";
    }
    n.execute_us = median(typed) / 1000.0;
    n.call_raw_ns = median(raw);
    n.generic_call_ns = median(generic);
  } else {
    int reps = tier == covenant::Tier::kInterp ? (o.quick ? 1 : 3) : (o.quick ? 3 : 9);
    if (tier != covenant::Tier::kInterp && !call_once(nullptr)) return n;  // warm-up
    std::vector<double> ex;
    for (int i = 0; i < reps; i++) {
      double us = 0;
      if (!call_once(&us)) return n;
      ex.push_back(us);
    }
    n.execute_us = median(ex);
  }
  inst.reset();
  module.reset();
  std::filesystem::remove_all(cache);
  return n;
}

#endif  // COVENANT_BENCH_NO_ENGINE

// ---- report --------------------------------------------------------------

std::string fmt(double v, const char* f = "%.2f") {
  if (!std::isfinite(v)) return "-";
  char b[64];
  snprintf(b, sizeof b, f, v);
  return b;
}

std::string fmt_us(double us) {
  if (!std::isfinite(us)) return "-";
  if (us < 1) return fmt(us * 1000, "%.1f ns");
  if (us < 1000) return fmt(us, "%.1f us");
  if (us < 1e6) return fmt(us / 1000, "%.2f ms");
  return fmt(us / 1e6, "%.2f s");
}

std::vector<std::string> split(const std::string& s, char c) {
  std::vector<std::string> out;
  std::stringstream ss(s);
  std::string item;
  while (std::getline(ss, item, c)) {
    if (!item.empty()) out.push_back(item);
  }
  return out;
}

void print_row(const std::vector<std::string>& cells) {
  printf("|");
  for (auto& c : cells) printf(" %s |", c.c_str());
  printf("\n");
}

void print_header(const std::vector<std::string>& cells) {
  print_row(cells);
  printf("|");
  for (size_t i = 0; i < cells.size(); i++) printf("---|");
  printf("\n");
}

}  // namespace

static int bench_main(int argc, char** argv) {
  Options o;
  for (int i = 1; i < argc; i++) {
    std::string a = argv[i];
    auto next = [&]() -> std::string {
      if (i + 1 >= argc) {
        fprintf(stderr, "bench_engine: %s needs a value\n", a.c_str());
        exit(1);
      }
      return argv[++i];
    };
    if (a == "--quick") o.quick = true;
    else if (a == "--no-node") o.node = false;
    else if (a == "--tiers") o.tiers = split(next(), ',');
    else if (a == "--wasm-dir") o.wasm_dir = next();
    else if (a == "--spec") o.spec = next();
    else if (a == "--json-out") o.json_out = next();
    else {
      fprintf(stderr,
              "usage: bench_engine [--quick] [--tiers interp,baseline,optimized] [--no-node]\n"
              "                    [--wasm-dir DIR] [--spec FILE] [--json-out FILE]\n");
      return 1;
    }
  }

  std::ifstream sf(o.spec);
  json spec = json::parse(sf, nullptr, false);
  if (spec.is_discarded()) {
    fprintf(stderr, "bench_engine: cannot read %s\n", o.spec.c_str());
    return 1;
  }
  std::vector<Workload> workloads;
  for (auto& j : spec["workloads"]) {
    Workload w;
    w.name = j["name"];
    w.wasm = j["wasm"];
    w.export_name = j["export"];
    w.args = j[o.quick ? "quick_args" : "args"].get<std::vector<int32_t>>();
    w.geomean = j.value("geomean", false);
    w.call_kind = j.value("kind", "") == "call";
    w.calls = j.value(o.quick ? "quick_calls" : "calls", 0);
    workloads.push_back(w);
  }
  std::map<std::string, uint64_t> wasm_size;
  for (auto& w : workloads) {
    std::error_code ec;
    wasm_size[w.name] = std::filesystem::file_size(o.wasm_dir + "/" + w.wasm, ec);
    if (ec) {
      fprintf(stderr, "bench_engine: missing %s/%s (build target contracts_bench)\n",
              o.wasm_dir.c_str(), w.wasm.c_str());
      return 1;
    }
  }

  // Columns: native, engine tiers, node variants.
  std::vector<std::string> columns = {"native"};
  std::map<std::string, std::map<std::string, Numbers>> res;  // column -> workload -> numbers
  fprintf(stderr, "bench_engine: native...\n");
  for (auto& w : workloads) res["native"][w.name] = run_native(w, o);

#ifndef COVENANT_BENCH_NO_ENGINE
  for (auto& t : o.tiers) {
    auto tier = covenant::parse_tier(t);
    if (!tier || *tier == covenant::Tier::kAuto) {
      fprintf(stderr, "bench_engine: unknown tier %s\n", t.c_str());
      return 1;
    }
    columns.push_back(t);
    for (auto& w : workloads) {
      fprintf(stderr, "bench_engine: %s %s...\n", t.c_str(), w.name.c_str());
      res[t][w.name] = run_engine(w, *tier, o);
    }
    if (*tier == covenant::Tier::kOptimized) {
      // Same tier with metering compiled out: isolates the metering overhead.
      columns.push_back("optimized-unmetered");
      for (auto& w : workloads) {
        fprintf(stderr, "bench_engine: optimized-unmetered %s...\n", w.name.c_str());
        res["optimized-unmetered"][w.name] = run_engine(w, *tier, o, false);
      }
    }
  }
#else
  fprintf(stderr, "bench_engine: built without the engine (covenant_wasm): native and node only\n");
#endif

  if (o.node) {
    const std::pair<const char*, const char*> variants[] = {
        {"v8", ""}, {"liftoff", "--liftoff-only"}, {"turbofan", "--no-liftoff"}};
    for (auto& [label, flags] : variants) {
      fprintf(stderr, "bench_engine: node %s...\n", label);
      NodeRun r = run_node(label, flags, o);
      if (!r.error.empty()) {
        fprintf(stderr, "bench_engine: node %s: %s\n", label, r.error.c_str());
        continue;
      }
      columns.push_back(label);
      res[label] = r.numbers;
    }
  }

  // Checksums must agree everywhere.
  int failures = 0;
  for (auto& w : workloads) {
    auto expect = res["native"][w.name].checksum;
    for (auto& c : columns) {
      Numbers& n = res[c][w.name];
      if (!n.error.empty()) {
        fprintf(stderr, "bench_engine: %s/%s: %s\n", c.c_str(), w.name.c_str(), n.error.c_str());
        failures++;
      } else if (n.checksum != expect) {
        fprintf(stderr, "bench_engine: %s/%s: checksum %d != native %d\n", c.c_str(),
                w.name.c_str(), n.checksum.value_or(0), expect.value_or(0));
        failures++;
      }
    }
  }

  printf("# bench_engine%s: execute time and ratio to native (gcc -O2), fuel metering on\n\n",
         o.quick ? " --quick" : "");
  {
    std::vector<std::string> h = {"workload", "args", "native"};
    for (size_t i = 1; i < columns.size(); i++) h.push_back(columns[i]);
    print_header(h);
    for (auto& w : workloads) {
      std::string args;
      for (auto a : w.args) args += (args.empty() ? "" : ",") + std::to_string(a);
      double nat = res["native"][w.name].execute_us;
      std::vector<std::string> row = {w.name + (w.call_kind ? " (per call)" : ""), args, fmt_us(nat)};
      for (size_t i = 1; i < columns.size(); i++) {
        double e = res[columns[i]][w.name].execute_us;
        row.push_back(fmt_us(e) + " (" + fmt(e / nat) + "x)");
      }
      print_row(row);
    }
    std::vector<std::string> g = {"**geomean**", "", ""};
    for (size_t i = 1; i < columns.size(); i++) {
      std::vector<double> r;
      for (auto& w : workloads) {
        if (w.geomean) r.push_back(res[columns[i]][w.name].execute_us / res["native"][w.name].execute_us);
      }
      g.push_back("**" + fmt(geomean(r)) + "x**");
    }
    print_row(g);
  }

  printf("\n# load, compile, instantiate per tier (cold = empty cache dir; warm = second engine, same dir)\n\n");
  print_header({"workload", "wasm bytes", "runtime", "load (parse+validate+meter)", "compile cold",
                "load+compile warm", "instantiate (warm median)", "fuel used"});
  for (auto& w : workloads) {
    for (size_t i = 1; i < columns.size(); i++) {
      Numbers& n = res[columns[i]][w.name];
      print_row({w.name, std::to_string(wasm_size[w.name]), columns[i], fmt_us(n.load_us),
                 fmt_us(n.compile_cold_us), fmt_us(n.load_warm_us), fmt_us(n.instantiate_us),
                 n.fuel_used ? std::to_string(n.fuel_used) : "-"});
    }
  }

  // Targets (issue 2 item 10).
  printf("\n# targets\n\n");
  print_header({"target", "measured", "goal", "met"});
  auto target = [&](const std::string& name, double v, double goal, const char* unit) {
    bool ok = std::isfinite(v) && v <= goal;
    print_row({name, fmt(v, "%.3f") + unit, "<= " + fmt(goal, "%.3f") + unit,
               std::isfinite(v) ? (ok ? "yes" : "**no**") : "-"});
  };
  auto tier_geomean = [&](const std::string& t) {
    std::vector<double> r;
    if (!res.count(t)) return double(NAN);
    for (auto& w : workloads) {
      if (w.geomean) r.push_back(res[t][w.name].execute_us / res["native"][w.name].execute_us);
    }
    return geomean(r);
  };
  target("optimized execute / native (geomean)", tier_geomean("optimized"), 1.10, "x");
  target("baseline execute / native (geomean)", tier_geomean("baseline"), 3.0, "x");
  if (res.count("baseline")) {
    // Per 100 KiB of wasm, over the code-bearing workloads (the 1 MiB data
    // module is data, not code; small modules overstate it by a fixed cost).
    double us = 0, bytes = 0;
    for (auto& w : workloads) {
      if (w.name == "data_1mib") continue;
      us += res["baseline"][w.name].compile_cold_us;
      bytes += double(wasm_size[w.name]);
    }
    target("baseline compile ms per 100 KiB (sum over code modules)", us / 1000.0 / (bytes / 102400.0),
           20.0, " ms");
  }
  for (auto& t : std::vector<std::string>{"baseline", "optimized"}) {
    if (!res.count(t)) continue;
    std::vector<double> xs;
    for (auto& w : workloads) {
      if (w.name != "data_1mib") xs.push_back(res[t][w.name].instantiate_us);
    }
    target(t + " warm instantiate (median over modules)", median(xs), 3.0, " us");
    target(t + " warm instantiate, 1 MiB data module", res[t]["data_1mib"].instantiate_us, 20.0, " us");
    target(t + " no-op call, typed API", res[t]["noop"].execute_us * 1000.0, 20.0, " ns");
    print_row({t + " no-op call, call_raw", fmt(res[t]["noop"].call_raw_ns, "%.3f") + " ns", "(info)", ""});
    print_row({t + " no-op call, Instance::call (Value spans, allocates results)", fmt(res[t]["noop"].generic_call_ns, "%.3f") + " ns", "(info)", ""});
  }
  if (res.count("optimized")) {
    std::vector<double> xs;
    for (auto& w : workloads) xs.push_back(res["optimized"][w.name].load_warm_us);
    target("optimized cached artifact load (median over modules)", median(xs) / 1000.0, 1.0, " ms");
  }
  if (res.count("optimized-unmetered")) {
    double logsum = 0;
    int n = 0;
    for (auto& w : workloads) {
      if (!w.geomean) continue;
      double a = res["optimized"][w.name].execute_us, b = res["optimized-unmetered"][w.name].execute_us;
      if (a > 0 && b > 0) {
        logsum += std::log(a / b);
        ++n;
      }
    }
    double overhead = n ? std::exp(logsum / n) - 1.0 : NAN;
    target("metering overhead (optimized, geomean metered/unmetered - 1)", overhead * 100.0, 10.0, " %");
  }

  if (!o.json_out.empty()) {
    json out;
    out["quick"] = o.quick;
    for (auto& c : columns) {
      for (auto& w : workloads) {
        Numbers& n = res[c][w.name];
        auto num = [](double v) { return std::isfinite(v) ? json(v) : json(nullptr); };
        out["results"][c][w.name] = {
            {"load_us", num(n.load_us)},          {"compile_cold_us", num(n.compile_cold_us)},
            {"load_warm_us", num(n.load_warm_us)}, {"instantiate_us", num(n.instantiate_us)},
            {"execute_us", num(n.execute_us)},    {"call_raw_ns", num(n.call_raw_ns)},
            {"fuel_used", n.fuel_used},           {"checksum", n.checksum.value_or(0)},
            {"error", n.error}};
      }
    }
    std::ofstream(o.json_out) << out.dump(2) << "\n";
  }
  if (failures) fprintf(stderr, "bench_engine: %d failure(s)\n", failures);
  return failures ? 1 : 0;
}

// Guest calls may recurse call_depth_max frames on the native stack; on a
// thread with less stack than that needs, the engine hops to a helper thread
// per call (tens of microseconds). Embedders run calls on big-stack threads,
// and so does the benchmark.
#include <pthread.h>
int main(int argc, char** argv) {
  struct Args { int argc; char** argv; int rc; } a{argc, argv, 1};
  pthread_attr_t attr;
  pthread_attr_init(&attr);
  pthread_attr_setstacksize(&attr, size_t(512) << 20);
  pthread_t th;
  if (pthread_create(&th, &attr, [](void* p) -> void* {
        auto* x = static_cast<Args*>(p);
        x->rc = bench_main(x->argc, x->argv);
        return nullptr;
      }, &a) != 0)
    return bench_main(argc, argv);
  pthread_join(th, nullptr);
  return a.rc;
}
