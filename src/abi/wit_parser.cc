// WIT parser: text -> AST (this file, first half) -> resolved Package (second half).
// Errors are thrown internally as ParseError and turned into one Status at the
// boundary (parse_wit), so every path out of the parser is a clean Status.
#include <algorithm>
#include <cctype>
#include <functional>
#include <cstring>
#include <map>
#include <memory>
#include <new>
#include <set>
#include <stdexcept>

#include "covenant/wit.h"

namespace covenant::wit {
namespace {

struct Pos {
  uint32_t line = 1;
  uint32_t column = 1;
};

struct ParseError {
  Pos pos;
  std::string message;
  std::string hint;
};

[[noreturn]] void fail(Pos pos, std::string message, std::string hint = {}) {
  throw ParseError{pos, std::move(message), std::move(hint)};
}

// ---------------------------------------------------------------------------
// Lexer

enum class Tok : uint8_t { kEof, kIdent, kNumber, kPunct };

struct Token {
  Tok kind = Tok::kEof;
  std::string text;     // identifier (without %), number/version text, or punctuation
  bool escaped = false;  // identifier written with a leading %
  Pos pos;
  std::string docs;     // doc comments immediately before this token
};

class Lexer {
 public:
  explicit Lexer(std::string_view src) : src_(src) {}

  std::vector<Token> run() {
    std::vector<Token> out;
    for (;;) {
      std::string docs = skip_space_and_comments();
      Token t;
      t.pos = pos_;
      t.docs = std::move(docs);
      if (i_ >= src_.size()) {
        out.push_back(std::move(t));
        return out;
      }
      char c = src_[i_];
      bool lone_underscore = c == '_' && (i_ + 1 >= src_.size() || !is_ident_char(src_[i_ + 1]));
      if (!lone_underscore && (c == '%' || is_ident_start(c))) {
        if (c == '%') {
          t.escaped = true;
          advance();
          if (i_ >= src_.size() || !is_ident_start(src_[i_]))
            fail(pos_, "expected an identifier after '%'", "write %name to use a keyword as a name");
        }
        size_t b = i_;
        while (i_ < src_.size() && is_ident_char(src_[i_])) advance();
        t.kind = Tok::kIdent;
        t.text.assign(src_.substr(b, i_ - b));
      } else if (c >= '0' && c <= '9') {
        // Numbers and semantic versions: [0-9A-Za-z.+-]*, where a '.' only
        // continues the token when followed by an alphanumeric (so that
        // `@0.1.0.{a}` stops before `.{`).
        size_t b = i_;
        while (i_ < src_.size()) {
          char d = src_[i_];
          if (std::isalnum(static_cast<unsigned char>(d)) || d == '+' || d == '-') {
            advance();
          } else if (d == '.' && i_ + 1 < src_.size() &&
                     std::isalnum(static_cast<unsigned char>(src_[i_ + 1]))) {
            advance();
          } else {
            break;
          }
        }
        t.kind = Tok::kNumber;
        t.text.assign(src_.substr(b, i_ - b));
      } else if (c == '-' && i_ + 1 < src_.size() && src_[i_ + 1] == '>') {
        advance();
        advance();
        t.kind = Tok::kPunct;
        t.text = "->";
      } else if (std::strchr("{}()<>,;:=./@*_", c) != nullptr) {
        advance();
        t.kind = Tok::kPunct;
        t.text.assign(1, c);
      } else {
        std::string shown = (static_cast<unsigned char>(c) < 0x20 || static_cast<unsigned char>(c) >= 0x7f)
                                ? "byte 0x" + hex(static_cast<unsigned char>(c))
                                : std::string("'") + c + "'";
        fail(pos_, "unexpected character " + shown, "WIT uses ASCII identifiers and the punctuation {}()<>,;:=./@");
      }
      out.push_back(std::move(t));
    }
  }

 private:
  static std::string hex(unsigned v) {
    const char* d = "0123456789abcdef";
    return std::string{d[(v >> 4) & 15], d[v & 15]};
  }
  static bool is_ident_start(char c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_';
  }
  static bool is_ident_char(char c) {
    return is_ident_start(c) || (c >= '0' && c <= '9') || c == '-';
  }
  void advance() {
    if (src_[i_] == '\n') {
      ++pos_.line;
      pos_.column = 1;
    } else {
      ++pos_.column;
    }
    ++i_;
  }
  bool starts(std::string_view s) const { return src_.substr(i_, s.size()) == s; }

  std::string skip_space_and_comments() {
    std::string docs;
    for (;;) {
      while (i_ < src_.size() && (src_[i_] == ' ' || src_[i_] == '\t' || src_[i_] == '\n' || src_[i_] == '\r'))
        advance();
      if (starts("//")) {
        bool doc = starts("///") && !starts("////");
        size_t b = i_ + (doc ? 3 : 2);
        while (i_ < src_.size() && src_[i_] != '\n') advance();
        if (doc) {
          std::string_view line = src_.substr(b, i_ - b);
          if (!line.empty() && line[0] == ' ') line.remove_prefix(1);
          if (!docs.empty()) docs += '\n';
          docs += line;
        }
      } else if (starts("/*")) {
        Pos start = pos_;
        bool doc = starts("/**") && !starts("/**/");
        advance();
        advance();
        size_t b = i_ + (doc ? 1 : 0);
        int depth = 1;
        size_t end = i_;
        while (depth > 0) {
          if (i_ >= src_.size()) fail(start, "unterminated block comment", "close it with */");
          if (starts("/*")) {
            advance();
            advance();
            ++depth;
          } else if (starts("*/")) {
            end = i_;
            advance();
            advance();
            --depth;
          } else {
            advance();
          }
        }
        if (doc) {
          if (!docs.empty()) docs += '\n';
          docs += std::string(src_.substr(b, end - b));
        }
      } else {
        return docs;
      }
    }
  }

  std::string_view src_;
  size_t i_ = 0;
  Pos pos_;
};

// ---------------------------------------------------------------------------
// AST

struct TypeExpr {
  enum class K : uint8_t { kPrim, kNamed, kList, kOption, kResult, kTuple } k = K::kPrim;
  TypeKind prim = TypeKind::kBool;
  std::string name;  // kNamed
  Pos pos;
  std::vector<TypeExpr> args;  // list/option: [elem]; tuple: elems; result: see has_ok/has_err
  bool has_ok = false;
  bool has_err = false;
};

struct FieldAst {
  Name name;
  Pos pos;
  std::optional<TypeExpr> type;
  std::string docs;
};

struct TypeDeclAst {
  enum class K : uint8_t { kAlias, kRecord, kVariant, kEnum, kFlags } k = K::kAlias;
  Name name;
  Pos pos;
  std::string docs;
  std::vector<FieldAst> fields;
  std::optional<TypeExpr> alias;
};

struct UseAst {
  std::string target;  // interface name within this package, or qualified
  Pos pos;
  std::vector<std::pair<Name, Name>> names;  // (name in target, local name)
};

struct FuncAst {
  Name name;
  Pos pos;
  std::string docs;
  std::vector<FieldAst> params;
  std::vector<FieldAst> results;  // one unnamed (empty name) or named
};

struct IfaceAst {
  Name name;
  Pos pos;
  std::string docs;
  std::vector<TypeDeclAst> types;
  std::vector<UseAst> uses;
  std::vector<FuncAst> funcs;
};

struct WorldItemAst {
  bool is_export = false;
  Pos pos;
  WorldItem::Kind kind = WorldItem::Kind::kInterface;
  std::string path;                  // interface reference
  std::unique_ptr<IfaceAst> inline_iface;  // `import name: interface {..}`
  std::optional<FuncAst> func;
};

struct WorldAst {
  Name name;
  Pos pos;
  std::string docs;
  std::vector<WorldItemAst> items;
  std::vector<TypeDeclAst> types;
  std::vector<UseAst> uses;
};

struct FileAst {
  std::string ns, name, version;
  std::vector<IfaceAst> ifaces;
  std::vector<WorldAst> worlds;
};

// Kebab-case names are case-insensitive for uniqueness (`get-user` and
// `GET-USER` clash), per WIT.md.
std::string fold(std::string_view kebab) {
  std::string out(kebab);
  for (char& c : out)
    if (c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
  return out;
}

const std::set<std::string, std::less<>>& keywords() {
  static const std::set<std::string, std::less<>> k = {
      "as", "async", "bool", "borrow", "char", "constructor", "enum", "export", "f32", "f64",
      "flags", "from", "func", "future", "import", "include", "interface", "list", "option",
      "own", "package", "record", "resource", "result", "s16", "s32", "s64", "s8", "static",
      "stream", "string", "tuple", "type", "u16", "u32", "u64", "u8", "use", "variant", "with",
      "world", "map"};
  return k;
}

// ---------------------------------------------------------------------------
// Parser: tokens -> AST

class Parser {
 public:
  Parser(std::vector<Token> toks, const ParseOptions& opts, std::vector<Diagnostic>* warnings)
      : t_(std::move(toks)), opts_(opts), warnings_(warnings) {}

  FileAst parse_file() {
    FileAst f;
    skip_gates();
    if (is_kw("package")) {
      next();
      f.ns = raw_label("package namespace");
      expect(":", "a package name is written namespace:name, e.g. agent:settlement");
      f.name = raw_label("package name");
      while (peek_punct(":")) {  // nested namespaces a:b:c are folded into the name
        next();
        f.name += ":" + raw_label("package name");
      }
      if (peek_punct("@")) {
        next();
        f.version = version();
      }
      if (peek_punct("{"))
        fail(cur().pos, "nested package bodies are not supported", "declare one package per file");
      expect(";", "end the package declaration with ';'");
    }
    for (;;) {
      skip_gates();
      if (cur().kind == Tok::kEof) break;
      std::string docs = cur().docs;
      if (is_kw("interface")) {
        next();
        f.ifaces.push_back(interface_body(label("interface name"), docs));
      } else if (is_kw("world")) {
        next();
        f.worlds.push_back(world(docs));
      } else if (is_kw("use")) {
        fail(cur().pos, "top-level `use` is not supported", "use types inside an interface: `use iface.{name};`");
      } else if (is_kw("package")) {
        fail(cur().pos, "more than one package declaration", "nested `package a:b { ... }` blocks are not supported; one file holds one package");
      } else {
        fail(cur().pos, "expected `interface` or `world`, found " + describe(cur()),
             "a WIT file holds interfaces and worlds");
      }
    }
    return f;
  }

 private:
  const Token& cur() const { return t_[i_]; }
  const Token& next() {
    const Token& t = t_[i_];
    if (t.kind != Tok::kEof) ++i_;
    return t;
  }
  bool peek_punct(std::string_view p) const { return cur().kind == Tok::kPunct && cur().text == p; }
  bool is_kw(std::string_view kw) const {
    return cur().kind == Tok::kIdent && !cur().escaped && cur().text == kw;
  }
  static std::string describe(const Token& t) {
    switch (t.kind) {
      case Tok::kEof: return "end of file";
      case Tok::kIdent: return "`" + std::string(t.escaped ? "%" : "") + t.text + "`";
      case Tok::kNumber: return "number `" + t.text + "`";
      case Tok::kPunct: return "`" + t.text + "`";
    }
    return "?";
  }
  void expect(std::string_view p, std::string hint = {}) {
    if (!peek_punct(p)) fail(cur().pos, "expected `" + std::string(p) + "`, found " + describe(cur()), std::move(hint));
    next();
  }
  void expect_kw(std::string_view kw) {
    if (!is_kw(kw)) fail(cur().pos, "expected `" + std::string(kw) + "`, found " + describe(cur()));
    next();
  }

  // Gates such as @since(version = 0.2.0) or @unstable(feature = x) are skipped.
  void skip_gates() {
    while (peek_punct("@")) {
      next();
      if (cur().kind != Tok::kIdent) fail(cur().pos, "expected a gate name after '@'", "e.g. @since(version = 0.2.0)");
      next();
      if (peek_punct("(")) {
        int depth = 0;
        do {
          if (cur().kind == Tok::kEof) fail(cur().pos, "unterminated gate", "close it with ')'");
          if (peek_punct("(")) ++depth;
          if (peek_punct(")")) --depth;
          next();
        } while (depth > 0);
      }
    }
  }

  std::string version() {
    if (cur().kind != Tok::kNumber) fail(cur().pos, "expected a version after '@'", "e.g. @0.1.0");
    std::string v = next().text;
    // semver: MAJOR.MINOR.PATCH[-pre][+build]
    size_t core_end = v.find_first_of("-+");
    std::string core = v.substr(0, core_end);
    int dots = 0;
    bool ok = !core.empty();
    for (char c : core) {
      if (c == '.') ++dots;
      else if (c < '0' || c > '9') ok = false;
    }
    if (!ok || dots != 2 || core.front() == '.' || core.back() == '.' || core.find("..") != std::string::npos)
      fail(t_[i_ - 1].pos, "invalid version `" + v + "`", "versions are semantic versions such as 0.1.0");
    return v;
  }

  // An identifier without the kebab-case/keyword checks (package names).
  std::string raw_label(const char* what) {
    if (cur().kind != Tok::kIdent) fail(cur().pos, std::string("expected ") + what + ", found " + describe(cur()));
    const Token& t = next();
    check_label(t, what);
    return to_kebab(t.text);
  }

  void check_label(const Token& t, const char* what) {
    if (is_kebab_label(t.text)) return;
    std::string kebab = to_kebab(t.text);
    if (t.text.find('_') != std::string::npos && is_kebab_label(kebab)) {
      if (opts_.strict)
        fail(t.pos, std::string(what) + " `" + t.text + "` is not kebab-case",
             "WIT names are kebab-case: write `" + kebab + "`");
      warnings_->push_back(Diagnostic{opts_.file_name, t.pos.line, t.pos.column,
                                      std::string(what) + " `" + t.text + "` is not kebab-case; accepted as `" + kebab + "`",
                                      "write `" + kebab + "` to follow the WIT grammar"});
      return;
    }
    fail(t.pos, std::string(what) + " `" + t.text + "` is not a valid WIT name",
         "names are lowercase words or UPPERCASE acronyms joined by '-', each starting with a letter, e.g. agent-id");
  }

  Name label(const char* what) {
    if (cur().kind != Tok::kIdent) fail(cur().pos, std::string("expected ") + what + ", found " + describe(cur()));
    const Token& t = next();
    if (!t.escaped && keywords().count(t.text) != 0)
      fail(t.pos, std::string(what) + " `" + t.text + "` is a keyword", "escape it as `%" + t.text + "`");
    check_label(t, what);
    return Name{t.text, to_kebab(t.text)};
  }

  TypeExpr type_expr(uint32_t depth = 0) {
    if (depth > kTypeNestingMax)
      fail(cur().pos, "type nesting deeper than " + std::to_string(kTypeNestingMax), "flatten the type with named types");
    TypeExpr e;
    e.pos = cur().pos;
    if (cur().kind != Tok::kIdent) fail(cur().pos, "expected a type, found " + describe(cur()), "e.g. u64, string, list<u8>");
    if (cur().escaped) {
      e.k = TypeExpr::K::kNamed;
      e.name = next().text;
      return e;
    }
    static const std::map<std::string, TypeKind, std::less<>> prims = {
        {"bool", TypeKind::kBool}, {"s8", TypeKind::kS8},   {"u8", TypeKind::kU8},
        {"s16", TypeKind::kS16},   {"u16", TypeKind::kU16}, {"s32", TypeKind::kS32},
        {"u32", TypeKind::kU32},   {"s64", TypeKind::kS64}, {"u64", TypeKind::kU64},
        {"f32", TypeKind::kF32},   {"f64", TypeKind::kF64}, {"char", TypeKind::kChar},
        {"string", TypeKind::kString}};
    const std::string& w = cur().text;
    if (auto it = prims.find(w); it != prims.end()) {
      next();
      e.k = TypeExpr::K::kPrim;
      e.prim = it->second;
      return e;
    }
    if (w == "list" || w == "option") {
      e.k = w == "list" ? TypeExpr::K::kList : TypeExpr::K::kOption;
      next();
      expect("<", "write " + std::string(e.k == TypeExpr::K::kList ? "list<T>" : "option<T>"));
      e.args.push_back(type_expr(depth + 1));
      if (e.k == TypeExpr::K::kList && peek_punct(","))
        fail(cur().pos, "fixed-length lists are not supported", "use list<T>");
      expect(">");
      return e;
    }
    if (w == "tuple") {
      e.k = TypeExpr::K::kTuple;
      next();
      expect("<", "write tuple<A, B>");
      if (peek_punct(">")) fail(cur().pos, "a tuple needs at least one type", "write tuple<A, ...>");
      for (;;) {
        if (e.args.size() >= kFieldsMax) fail(cur().pos, "too many tuple elements");
        e.args.push_back(type_expr(depth + 1));
        if (peek_punct(",")) {
          next();
          if (peek_punct(">")) break;
          continue;
        }
        break;
      }
      expect(">");
      return e;
    }
    if (w == "result") {
      e.k = TypeExpr::K::kResult;
      next();
      if (!peek_punct("<")) return e;  // result
      next();
      if (peek_punct("_")) {
        next();
        expect(",", "write result<_, E>");
        e.has_err = true;
        e.args.push_back(type_expr(depth + 1));
      } else {
        e.has_ok = true;
        e.args.push_back(type_expr(depth + 1));
        if (peek_punct(",")) {
          next();
          e.has_err = true;
          e.args.push_back(type_expr(depth + 1));
        }
      }
      expect(">", "write result<T, E>, result<T>, result<_, E> or result");
      return e;
    }
    if (w == "own" || w == "borrow" || w == "stream" || w == "future" || w == "error-context" || w == "map")
      fail(cur().pos, "`" + w + "` types are not supported", "use plain values (records, lists, strings)");
    if (keywords().count(w) != 0) fail(cur().pos, "expected a type, found keyword `" + w + "`", "escape a type named like a keyword as %" + w);
    e.k = TypeExpr::K::kNamed;
    const Token& t = next();
    check_label(t, "type name");
    e.name = t.text;
    return e;
  }

  std::vector<FieldAst> param_list() {
    std::vector<FieldAst> out;
    expect("(", "parameters are written (name: type, ...)");
    while (!peek_punct(")")) {
      if (out.size() >= kFieldsMax) fail(cur().pos, "too many parameters");
      FieldAst p;
      p.pos = cur().pos;
      p.name = label("parameter name");
      expect(":", "write name: type");
      p.type = type_expr();
      out.push_back(std::move(p));
      if (!peek_punct(",")) break;
      next();
    }
    expect(")", "close the parameter list with ')'");
    return out;
  }

  FuncAst func(Name name, Pos pos, std::string docs) {
    FuncAst f;
    f.name = std::move(name);
    f.pos = pos;
    f.docs = std::move(docs);
    if (is_kw("async")) fail(cur().pos, "async functions are not supported", "declare a plain func");
    expect_kw("func");
    f.params = param_list();
    if (peek_punct("->")) {
      next();
      if (peek_punct("(")) {
        f.results = param_list();
        if (f.results.empty()) fail(pos, "empty result list", "omit `-> ()` for a function without results");
      } else {
        FieldAst r;
        r.pos = cur().pos;
        r.type = type_expr();
        f.results.push_back(std::move(r));
      }
    }
    expect(";", "end the function with ';'");
    return f;
  }

  std::vector<FieldAst> fields_block(TypeDeclAst::K k) {
    std::vector<FieldAst> out;
    expect("{");
    while (!peek_punct("}")) {
      skip_gates();
      if (out.size() >= kCasesMax) fail(cur().pos, "too many fields or cases");
      FieldAst fa;
      fa.docs = cur().docs;
      fa.pos = cur().pos;
      fa.name = label(k == TypeDeclAst::K::kRecord ? "field name"
                      : k == TypeDeclAst::K::kFlags ? "flag name"
                                                    : "case name");
      if (k == TypeDeclAst::K::kRecord) {
        expect(":", "write name: type");
        fa.type = type_expr();
      } else if (k == TypeDeclAst::K::kVariant && peek_punct("(")) {
        next();
        fa.type = type_expr();
        expect(")", "a case payload is one type: case(T)");
      }
      out.push_back(std::move(fa));
      if (!peek_punct(",")) break;
      next();
    }
    expect("}", "separate items with ',' and close the block with '}'");
    return out;
  }

  void use_stmt(std::vector<UseAst>& uses) {
    UseAst u;
    u.pos = cur().pos;
    expect_kw("use");
    // path: iface | ns:pkg/iface[@ver]
    std::string first = raw_label("interface name");
    u.target = first;
    if (peek_punct(":")) {
      next();
      std::string pkg = raw_label("package name");
      expect("/", "write ns:pkg/interface");
      std::string iface = raw_label("interface name");
      u.target = first + ":" + pkg + "/" + iface;
      if (peek_punct("@")) {
        next();
        u.target += "@" + version();
      }
    }
    if (!peek_punct(".")) fail(cur().pos, "expected `.{` after the interface in `use`", "write use iface.{name, other as alias};");
    next();
    expect("{");
    while (!peek_punct("}")) {
      Name n = label("type name");
      Name local = n;
      if (is_kw("as")) {
        next();
        local = label("alias name");
      }
      u.names.emplace_back(n, local);
      if (!peek_punct(",")) break;
      next();
    }
    expect("}");
    expect(";", "end `use` with ';'");
    uses.push_back(std::move(u));
  }

  bool type_decl(std::vector<TypeDeclAst>& types) {
    std::string docs = cur().docs;
    Pos pos = cur().pos;
    TypeDeclAst d;
    d.docs = docs;
    d.pos = pos;
    if (is_kw("type")) {
      next();
      d.k = TypeDeclAst::K::kAlias;
      d.name = label("type name");
      expect("=", "write type name = T;");
      d.alias = type_expr();
      expect(";");
    } else if (is_kw("record") || is_kw("variant") || is_kw("enum") || is_kw("flags")) {
      std::string kw = next().text;
      d.k = kw == "record" ? TypeDeclAst::K::kRecord
            : kw == "variant" ? TypeDeclAst::K::kVariant
            : kw == "enum" ? TypeDeclAst::K::kEnum
                             : TypeDeclAst::K::kFlags;
      d.name = label("type name");
      d.fields = fields_block(d.k);
      if (d.fields.empty())
        fail(pos, kw + " `" + d.name.written + "` is empty", "the canonical ABI needs at least one " +
                                                                 std::string(kw == "record" ? "field" : kw == "flags" ? "flag" : "case"));
      if (d.k == TypeDeclAst::K::kFlags && d.fields.size() > kFlagsMax)
        fail(pos, "flags `" + d.name.written + "` has " + std::to_string(d.fields.size()) + " flags",
             "the canonical ABI allows at most 32 flags; split them");
      std::set<std::string> seen;
      for (const FieldAst& fa : d.fields)
        if (!seen.insert(fold(fa.name.kebab)).second)
          fail(fa.pos, "duplicate name `" + fa.name.written + "` in " + kw + " `" + d.name.written + "`",
               "names are compared case-insensitively");
    } else if (is_kw("resource")) {
      fail(pos, "resources are not supported", "pass plain values; handles are outside this host's profile");
    } else {
      return false;
    }
    types.push_back(std::move(d));
    return true;
  }

  IfaceAst interface_body(Name name, std::string docs) {
    IfaceAst ia;
    ia.name = std::move(name);
    ia.docs = std::move(docs);
    ia.pos = t_[i_ - 1].pos;
    expect("{", "an interface body is { ... }");
    for (;;) {
      skip_gates();
      if (peek_punct("}")) break;
      if (cur().kind == Tok::kEof) fail(cur().pos, "unterminated interface `" + ia.name.written + "`", "close it with '}'");
      if (is_kw("use")) {
        use_stmt(ia.uses);
      } else if (type_decl(ia.types)) {
      } else if (cur().kind == Tok::kIdent) {
        std::string d = cur().docs;
        Pos p = cur().pos;
        Name fname = label("function name");
        expect(":", "a function is written name: func(...) -> T;");
        ia.funcs.push_back(func(std::move(fname), p, std::move(d)));
      } else {
        fail(cur().pos, "expected a type, `use` or function in interface `" + ia.name.written + "`, found " + describe(cur()));
      }
    }
    next();
    return ia;
  }

  WorldAst world(std::string docs) {
    WorldAst w;
    w.docs = std::move(docs);
    w.pos = cur().pos;
    w.name = label("world name");
    expect("{", "a world body is { ... }");
    for (;;) {
      skip_gates();
      if (peek_punct("}")) break;
      if (cur().kind == Tok::kEof) fail(cur().pos, "unterminated world `" + w.name.written + "`", "close it with '}'");
      if (is_kw("import") || is_kw("export")) {
        WorldItemAst item;
        item.is_export = cur().text == "export";
        item.pos = cur().pos;
        next();
        std::string d = cur().docs;
        Pos p = cur().pos;
        if (cur().kind != Tok::kIdent) fail(cur().pos, "expected an interface or function name, found " + describe(cur()));
        // name: func(..) | name: interface {..} | iface | ns:pkg/iface[@v]
        bool named_item = i_ + 1 < t_.size() && t_[i_ + 1].kind == Tok::kPunct && t_[i_ + 1].text == ":" &&
                          i_ + 2 < t_.size() && t_[i_ + 2].kind == Tok::kIdent &&
                          (t_[i_ + 2].text == "func" || t_[i_ + 2].text == "interface" || t_[i_ + 2].text == "async");
        if (named_item) {
          Name n = label("name");
          expect(":");
          if (is_kw("interface")) {
            next();
            item.kind = WorldItem::Kind::kInterface;
            item.inline_iface = std::make_unique<IfaceAst>(interface_body(n, d));
            item.path = n.kebab;
          } else {
            item.kind = WorldItem::Kind::kFunction;
            item.func = func(std::move(n), p, std::move(d));
          }
        } else {
          item.kind = WorldItem::Kind::kInterface;
          std::string first = raw_label("interface name");
          item.path = first;
          if (peek_punct(":")) {
            next();
            std::string pkg = raw_label("package name");
            expect("/", "write ns:pkg/interface");
            item.path = first + ":" + pkg + "/" + raw_label("interface name");
            if (peek_punct("@")) {
              next();
              item.path += "@" + version();
            }
          }
          expect(";", "end the " + std::string(item.is_export ? "export" : "import") + " with ';'");
        }
        w.items.push_back(std::move(item));
      } else if (is_kw("use")) {
        use_stmt(w.uses);
      } else if (is_kw("include")) {
        fail(cur().pos, "`include` is not supported", "list the imports and exports in the world");
      } else if (type_decl(w.types)) {
      } else {
        fail(cur().pos, "expected import, export, use or a type in world `" + w.name.written + "`, found " + describe(cur()));
      }
    }
    next();
    return w;
  }

  std::vector<Token> t_;
  size_t i_ = 0;
  const ParseOptions& opts_;
  std::vector<Diagnostic>* warnings_;
};

// ---------------------------------------------------------------------------
// Resolver: AST -> Package

class Resolver {
 public:
  Resolver(FileAst& f, Package& pkg) : f_(f), pkg_(pkg) {}

  void run() {
    for (int k = 0; k <= static_cast<int>(TypeKind::kString); ++k) {
      Type t;
      t.kind = static_cast<TypeKind>(k);
      pkg_.types.push_back(std::move(t));
    }
    pkg_.ns = f_.ns;
    pkg_.name = f_.name;
    pkg_.version = f_.version;
    // Scopes: one per interface (top-level, then inline ones), one per world.
    std::set<std::string> item_names;  // interfaces and worlds share the package's namespace
    for (IfaceAst& ia : f_.ifaces) {
      if (!item_names.insert(fold(ia.name.kebab)).second) fail(ia.pos, "duplicate item named `" + ia.name.written + "`");
      add_scope(ia.name.kebab, &ia.types, &ia.uses, func_names(ia));
    }
    for (WorldAst& w : f_.worlds) {
      if (!item_names.insert(fold(w.name.kebab)).second) fail(w.pos, "duplicate item named `" + w.name.written + "`");
      // A world's types share a namespace with its named imports (an export
      // may reuse an import's name).
      std::vector<std::pair<Name, Pos>> named_imports;
      for (WorldItemAst& item : w.items) {
        if (item.inline_iface) {
          add_scope("", &item.inline_iface->types, &item.inline_iface->uses, func_names(*item.inline_iface));
          if (!item.is_export) named_imports.emplace_back(item.inline_iface->name, item.pos);
        } else if (item.func && !item.is_export) {
          named_imports.emplace_back(item.func->name, item.func->pos);
        }
      }
      add_scope("", &w.types, &w.uses, named_imports);
    }
    check_use_cycles();
    // Interfaces first so that Package::interfaces[i] matches f_.ifaces[i].
    size_t s = 0;
    for (IfaceAst& ia : f_.ifaces) pkg_.interfaces.push_back(resolve_iface(ia, s++));
    for (WorldAst& w : f_.worlds) {
      World world;
      world.name = w.name;
      world.docs = w.docs;
      std::vector<size_t> inline_scopes;
      for (WorldItemAst& item : w.items)
        if (item.inline_iface) inline_scopes.push_back(s++);
      size_t world_scope = s++;
      size_t next_inline = 0;
      std::set<std::string> import_names, export_names;
      for (WorldItemAst& item : w.items) {
        WorldItem wi;
        wi.kind = item.kind;
        if (item.kind == WorldItem::Kind::kFunction) {
          wi.function = resolve_func(*item.func, world_scope);
          wi.name = wi.function.name.kebab;
        } else if (item.inline_iface) {
          pkg_.interfaces.push_back(resolve_iface(*item.inline_iface, inline_scopes[next_inline++]));
          wi.interface_index = static_cast<int>(pkg_.interfaces.size() - 1);
          wi.inline_interface = true;
          wi.name = item.path;
        } else {
          wi.name = item.path;
          wi.interface_index = local_iface(item.path);
          if (wi.interface_index < 0 && item.path.find(':') == std::string::npos)
            fail(item.pos, "unknown interface `" + item.path + "`",
                 "declare `interface " + item.path + " { ... }` in this package");
          if (wi.interface_index >= 0) wi.name = item.path.substr(item.path.find('/') == std::string::npos ? 0 : item.path.find('/') + 1);
        }
        auto& seen = item.is_export ? export_names : import_names;
        if (!seen.insert(fold(wi.name)).second)
          fail(item.pos, "duplicate " + std::string(item.is_export ? "export" : "import") + " `" + wi.name + "`",
               "names are compared case-insensitively");
        (item.is_export ? world.exports : world.imports).push_back(std::move(wi));
      }
      world.types = scope_types(world_scope);
      pkg_.worlds.push_back(std::move(world));
    }
  }

 private:
  struct Entry {
    enum class K : uint8_t { kDecl, kUse } k = K::kDecl;
    size_t index = 0;  // decl index, or use index
    size_t use_name = 0;
    TypeId resolved = kNoType;
    bool in_progress = false;
    Name name;
  };
  struct Scope {
    std::string iface;  // kebab name of a top-level interface, else empty
    std::vector<TypeDeclAst>* decls = nullptr;
    std::vector<UseAst>* uses = nullptr;
    std::map<std::string, size_t> by_name;  // written and kebab -> entries index
    std::vector<Entry> entries;
  };

  static std::vector<std::pair<Name, Pos>> func_names(const IfaceAst& ia) {
    std::vector<std::pair<Name, Pos>> out;
    for (const FuncAst& f : ia.funcs) out.emplace_back(f.name, f.pos);
    return out;
  }

  // Interface-level `use` must not form a cycle (WIT.md: an interface or world
  // may not depend on itself), even when no type is recursive.
  void check_use_cycles() {
    size_t n = f_.ifaces.size();
    std::vector<int> color(n, 0);  // 0 unvisited, 1 on the stack, 2 done
    std::function<void(size_t)> visit = [&](size_t i) {
      color[i] = 1;
      for (const UseAst& u : f_.ifaces[i].uses) {
        int t = local_iface(u.target);
        if (t < 0) continue;  // reported when the use is resolved
        if (color[static_cast<size_t>(t)] == 1)
          fail(u.pos, "interface `" + f_.ifaces[static_cast<size_t>(t)].name.written + "` depends on itself through `use`",
               "move the shared types into an interface that uses neither");
        if (color[static_cast<size_t>(t)] == 0) visit(static_cast<size_t>(t));
      }
      color[i] = 2;
    };
    for (size_t i = 0; i < n; ++i)
      if (color[i] == 0) visit(i);
  }

  void add_scope(std::string iface, std::vector<TypeDeclAst>* decls, std::vector<UseAst>* uses,
                 const std::vector<std::pair<Name, Pos>>& other_names) {
    Scope sc;
    sc.iface = std::move(iface);
    sc.decls = decls;
    sc.uses = uses;
    std::set<std::string> folded;  // types, uses, functions and world items share one namespace
    auto claim = [&](const Name& n, Pos p) {
      if (!folded.insert(fold(n.kebab)).second)
        fail(p, "name `" + n.written + "` is defined more than once", "names are compared case-insensitively");
    };
    for (const auto& [n, p] : other_names) claim(n, p);
    auto add = [&](Entry e, Pos p) {
      claim(e.name, p);
      sc.by_name[e.name.kebab] = sc.entries.size();
      sc.by_name[e.name.written] = sc.entries.size();
      sc.entries.push_back(std::move(e));
    };
    for (size_t i = 0; i < decls->size(); ++i) {
      Entry e;
      e.k = Entry::K::kDecl;
      e.index = i;
      e.name = (*decls)[i].name;
      add(std::move(e), (*decls)[i].pos);
    }
    for (size_t u = 0; u < uses->size(); ++u)
      for (size_t n = 0; n < (*uses)[u].names.size(); ++n) {
        Entry e;
        e.k = Entry::K::kUse;
        e.index = u;
        e.use_name = n;
        e.name = (*uses)[u].names[n].second;
        add(std::move(e), (*uses)[u].pos);
      }
    scopes_.push_back(std::move(sc));
  }

  int local_iface(const std::string& path) const {
    std::string name = path;
    std::string prefix = pkg_.ns + ":" + pkg_.name + "/";
    if (path.find(':') != std::string::npos) {
      if (path.rfind(prefix, 0) != 0) return -1;
      name = path.substr(prefix.size());
      size_t at = name.find('@');
      if (at != std::string::npos) {
        if (name.substr(at + 1) != pkg_.version) return -1;
        name = name.substr(0, at);
      }
    }
    for (size_t i = 0; i < f_.ifaces.size(); ++i)
      if (f_.ifaces[i].name.kebab == name) return static_cast<int>(i);
    return -1;
  }

  std::vector<std::pair<std::string, TypeId>> scope_types(size_t s) {
    std::vector<std::pair<std::string, TypeId>> out;
    for (size_t e = 0; e < scopes_[s].entries.size(); ++e)
      out.emplace_back(scopes_[s].entries[e].name.written, resolve_entry(s, e, Pos{}));
    return out;
  }

  Interface resolve_iface(IfaceAst& ia, size_t s) {
    Interface out;
    out.name = ia.name;
    out.docs = ia.docs;
    out.types = scope_types(s);
    std::set<std::string> names;
    for (FuncAst& fa : ia.funcs) {
      if (!names.insert(fold(fa.name.kebab)).second) fail(fa.pos, "duplicate function `" + fa.name.written + "`");
      out.functions.push_back(resolve_func(fa, s));
    }
    return out;
  }

  Function resolve_func(FuncAst& fa, size_t s) {
    Function f;
    f.name = fa.name;
    f.docs = fa.docs;
    std::set<std::string> names;
    for (FieldAst& p : fa.params) {
      if (!names.insert(fold(p.name.kebab)).second) fail(p.pos, "duplicate parameter `" + p.name.written + "`");
      f.params.push_back(Param{p.name, resolve_expr(*p.type, s)});
    }
    names.clear();
    for (FieldAst& r : fa.results) {
      if (!r.name.written.empty() && !names.insert(fold(r.name.kebab)).second)
        fail(r.pos, "duplicate result `" + r.name.written + "`");
      f.results.push_back(Param{r.name, resolve_expr(*r.type, s)});
    }
    return f;
  }

  // Depth of a type = 1 + the deepest child; bounded so that lifting,
  // lowering and JSON conversion (all recursive) have a bounded stack.
  uint32_t depth_of(TypeId id) const { return id < depths_.size() ? depths_[id] : 1; }

  TypeId add_type(Type t, Pos pos) {
    uint32_t d = 0;
    for (const Field& f : t.fields)
      if (f.type != kNoType) d = std::max(d, depth_of(f.type));
    for (TypeId c : {t.elem, t.ok, t.err})
      if (c != kNoType) d = std::max(d, depth_of(c));
    if (d + 1 > kTypeDepthMax)
      fail(pos, "type nests more than " + std::to_string(kTypeDepthMax) + " levels deep",
           "flatten the type: deep nesting costs stack in every lift and lower");
    if (depths_.size() < pkg_.types.size()) depths_.resize(pkg_.types.size(), 1);
    depths_.push_back(d + 1);
    pkg_.types.push_back(std::move(t));
    return static_cast<TypeId>(pkg_.types.size() - 1);
  }

  TypeId resolve_expr(const TypeExpr& e, size_t s) {
    switch (e.k) {
      case TypeExpr::K::kPrim: return static_cast<TypeId>(e.prim);
      case TypeExpr::K::kNamed: return lookup(s, e.name, e.pos);
      case TypeExpr::K::kList:
      case TypeExpr::K::kOption: {
        Type t;
        t.kind = e.k == TypeExpr::K::kList ? TypeKind::kList : TypeKind::kOption;
        t.elem = resolve_expr(e.args[0], s);
        return add_type(std::move(t), e.pos);
      }
      case TypeExpr::K::kTuple: {
        Type t;
        t.kind = TypeKind::kTuple;
        for (const TypeExpr& a : e.args) t.fields.push_back(Field{{}, resolve_expr(a, s), {}});
        return add_type(std::move(t), e.pos);
      }
      case TypeExpr::K::kResult: {
        Type t;
        t.kind = TypeKind::kResult;
        size_t a = 0;
        if (e.has_ok) t.ok = resolve_expr(e.args[a++], s);
        if (e.has_err) t.err = resolve_expr(e.args[a++], s);
        return add_type(std::move(t), e.pos);
      }
    }
    fail(e.pos, "internal: unknown type expression");
  }

  TypeId lookup(size_t s, const std::string& name, Pos pos) {
    Scope& sc = scopes_[s];
    auto it = sc.by_name.find(name);
    if (it == sc.by_name.end()) it = sc.by_name.find(to_kebab(name));
    if (it == sc.by_name.end())
      fail(pos, "unknown type `" + name + "`", "declare it in this interface or bring it in with `use other.{" + name + "};`");
    return resolve_entry(s, it->second, pos);
  }

  TypeId resolve_entry(size_t s, size_t e, Pos pos) {
    Entry& en = scopes_[s].entries[e];
    if (en.resolved != kNoType) return en.resolved;
    if (en.in_progress)
      fail(pos, "type `" + en.name.written + "` refers to itself", "WIT types cannot be recursive");
    if (++depth_ > 256) fail(pos, "type references nest too deeply");
    en.in_progress = true;
    TypeId id = kNoType;
    if (en.k == Entry::K::kUse) {
      UseAst& u = (*scopes_[s].uses)[en.index];
      int target = local_iface(u.target);
      if (target < 0)
        fail(u.pos, "cannot resolve `use " + u.target + "`",
             u.target.find(':') != std::string::npos ? "only interfaces of this package can be used"
                                                     : "declare `interface " + u.target + "` in this package");
      const Name& remote = u.names[en.use_name].first;
      id = lookup(static_cast<size_t>(target), remote.written, u.pos);
    } else {
      TypeDeclAst& d = (*scopes_[s].decls)[en.index];
      if (d.k == TypeDeclAst::K::kAlias) {
        id = resolve_expr(*d.alias, s);
      } else {
        Type t;
        t.name = d.name;
        t.interface = scopes_[s].iface;
        t.docs = d.docs;
        t.kind = d.k == TypeDeclAst::K::kRecord ? TypeKind::kRecord
                 : d.k == TypeDeclAst::K::kVariant ? TypeKind::kVariant
                 : d.k == TypeDeclAst::K::kEnum ? TypeKind::kEnum
                                                  : TypeKind::kFlags;
        for (FieldAst& fa : d.fields) {
          Field f;
          f.name = fa.name;
          f.docs = fa.docs;
          if (fa.type) f.type = resolve_expr(*fa.type, s);
          t.fields.push_back(std::move(f));
        }
        id = add_type(std::move(t), d.pos);
      }
    }
    --depth_;
    Entry& again = scopes_[s].entries[e];  // scopes_ does not grow here, but be explicit
    again.in_progress = false;
    again.resolved = id;
    return id;
  }

  FileAst& f_;
  Package& pkg_;
  std::vector<Scope> scopes_;
  std::vector<uint32_t> depths_;
  int depth_ = 0;
};

}  // namespace

// WIT.md: label ::= first-fragment ('-' fragment)*; the first fragment starts
// with a letter ([a-z][0-9a-z]* or [A-Z][0-9A-Z]*), later ones are [0-9a-z]+ or
// [0-9A-Z]+ (so `utf-8` and `a1-2-3` are labels).
bool is_kebab_label(std::string_view s) {
  if (s.empty()) return false;
  size_t i = 0;
  bool first = true;
  for (;;) {
    size_t end = s.find('-', i);
    if (end == std::string_view::npos) end = s.size();
    std::string_view frag = s.substr(i, end - i);
    if (frag.empty()) return false;
    bool has_lower = false, has_upper = false;
    for (char c : frag) {
      if (c >= 'a' && c <= 'z') has_lower = true;
      else if (c >= 'A' && c <= 'Z') has_upper = true;
      else if (c < '0' || c > '9') return false;
    }
    if (has_lower && has_upper) return false;
    if (first && !((frag[0] >= 'a' && frag[0] <= 'z') || (frag[0] >= 'A' && frag[0] <= 'Z'))) return false;
    first = false;
    if (end == s.size()) return true;
    i = end + 1;
  }
}

std::string to_kebab(std::string_view s) {
  std::string out(s);
  std::replace(out.begin(), out.end(), '_', '-');
  return out;
}

std::string to_snake(std::string_view s) {
  std::string out(s);
  std::replace(out.begin(), out.end(), '-', '_');
  return out;
}

Result<Package> parse_wit(std::string_view source, const ParseOptions& options) {
  auto err = [&](Pos pos, const std::string& message, const std::string& hint) {
    std::string m = options.file_name + ":" + std::to_string(pos.line) + ":" + std::to_string(pos.column) + ": " + message;
    if (!hint.empty()) m += "\n  hint: " + hint;
    return Status::invalid(std::move(m));
  };
  if (source.size() > kWitSourceBytesMax)
    return err(Pos{}, "WIT source is " + std::to_string(source.size()) + " bytes", "the limit is 1 MiB");
  try {
    Package pkg;
    std::vector<Token> toks = Lexer(source).run();
    Parser parser(std::move(toks), options, &pkg.warnings);
    FileAst file = parser.parse_file();
    if (file.ns.empty())
      return err(Pos{}, "missing package declaration", "start the file with `package ns:name@0.1.0;`");
    Resolver(file, pkg).run();
    return pkg;
  } catch (const ParseError& e) {
    return err(e.pos, e.message, e.hint);
  } catch (const std::bad_alloc&) {
    return Status::limit(options.file_name + ": out of memory while parsing WIT");
  }
}

}  // namespace covenant::wit
