// wasm_rename_exports IN.wasm OUT.wasm MAP: renames core exports of a module.
// MAP has one "old new" pair a line (covenant bindgen writes W.exports for
// AssemblyScript, which cannot spell ':' '/' '#' '@' in export names). Every
// old name must be exported exactly once and no new name may collide; the
// rest of the module is copied byte for byte. Exit 0 ok, 1 error.
#include <cstdint>
#include <cstdio>
#include <fstream>
#include <iterator>
#include <map>
#include <set>
#include <sstream>
#include <string>
#include <vector>

namespace {

struct Reader {
  const std::vector<uint8_t>& b;
  size_t pos;
  size_t end;
  bool ok = true;
  uint32_t leb() {
    uint32_t v = 0;
    for (int shift = 0; shift < 35; shift += 7) {
      if (pos >= end) break;
      uint8_t c = b[pos++];
      v |= static_cast<uint32_t>(c & 0x7f) << shift;
      if (!(c & 0x80)) return v;
    }
    ok = false;
    return 0;
  }
};

void put_leb(std::vector<uint8_t>& out, uint32_t v) {
  do {
    uint8_t c = v & 0x7f;
    v >>= 7;
    out.push_back(c | (v ? 0x80 : 0));
  } while (v);
}

int fail(const std::string& m) {
  std::fprintf(stderr, "wasm_rename_exports: %s\n", m.c_str());
  return 1;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 4) return fail("usage: wasm_rename_exports IN.wasm OUT.wasm MAP");
  std::ifstream in(argv[1], std::ios::binary);
  if (!in) return fail(std::string("cannot open ") + argv[1]);
  std::vector<uint8_t> b((std::istreambuf_iterator<char>(in)), {});
  std::ifstream mf(argv[3]);
  if (!mf) return fail(std::string("cannot open ") + argv[3]);
  std::map<std::string, std::string> renames;
  std::string line;
  while (std::getline(mf, line)) {
    std::istringstream ls(line);
    std::string from, to;
    if (!(ls >> from)) continue;
    if (!(ls >> to)) return fail("map line without a new name: " + line);
    renames[from] = to;
  }
  static const uint8_t kHeader[8] = {0, 'a', 's', 'm', 1, 0, 0, 0};
  if (b.size() < 8 || !std::equal(kHeader, kHeader + 8, b.begin())) return fail("not a core wasm module");
  std::vector<uint8_t> out(b.begin(), b.begin() + 8);
  size_t pos = 8;
  std::set<std::string> renamed, names;
  while (pos < b.size()) {
    uint8_t id = b[pos++];
    Reader r{b, pos, b.size()};
    uint32_t size = r.leb();
    if (!r.ok || r.pos + size > b.size()) return fail("truncated section");
    size_t body = r.pos, body_end = r.pos + size;
    if (id != 7) {
      out.insert(out.end(), b.begin() + static_cast<long>(pos - 1), b.begin() + static_cast<long>(body_end));
      pos = body_end;
      continue;
    }
    Reader e{b, body, body_end};
    uint32_t count = e.leb();
    std::vector<uint8_t> sec;
    put_leb(sec, count);
    for (uint32_t i = 0; i < count && e.ok; ++i) {
      uint32_t n = e.leb();
      if (!e.ok || e.pos + n > body_end) return fail("bad export name");
      std::string name(b.begin() + static_cast<long>(e.pos), b.begin() + static_cast<long>(e.pos + n));
      e.pos += n;
      if (e.pos >= body_end) return fail("bad export entry");
      uint8_t kind = b[e.pos++];
      uint32_t index = e.leb();
      auto it = renames.find(name);
      if (it != renames.end()) {
        renamed.insert(name);
        name = it->second;
      }
      if (!names.insert(name).second) return fail("duplicate export name after renaming: " + name);
      put_leb(sec, static_cast<uint32_t>(name.size()));
      sec.insert(sec.end(), name.begin(), name.end());
      sec.push_back(kind);
      put_leb(sec, index);
    }
    if (!e.ok || e.pos != body_end) return fail("malformed export section");
    out.push_back(7);
    put_leb(out, static_cast<uint32_t>(sec.size()));
    out.insert(out.end(), sec.begin(), sec.end());
    pos = body_end;
  }
  for (const auto& [from, to] : renames)
    if (!renamed.count(from)) return fail("no export named " + from);
  std::ofstream o(argv[2], std::ios::binary | std::ios::trunc);
  o.write(reinterpret_cast<const char*>(out.data()), static_cast<std::streamsize>(out.size()));
  if (!o) return fail(std::string("cannot write ") + argv[2]);
  return 0;
}
