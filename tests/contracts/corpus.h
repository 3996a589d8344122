// The shared intent corpus (tests/contracts/intents.jsonl, made by
// gen_intents.py): one seed intent per line, snake_case keys, u64 as strings.
#pragma once

#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

namespace covenant::testing_corpus {

inline std::vector<nlohmann::json> read_corpus() {
  std::ifstream f(std::filesystem::path(COVENANT_SOURCE_DIR) / "tests/contracts/intents.jsonl");
  std::vector<nlohmann::json> rows;
  std::string line;
  while (std::getline(f, line))
    if (!line.empty()) rows.push_back(nlohmann::json::parse(line));
  return rows;
}

}  // namespace covenant::testing_corpus
