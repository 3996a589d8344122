# Writes OUT, a C++ file defining covenant::server::openapi_json() as the text of IN.
file(READ ${IN} doc)
set(delim "covenant_openapi")
file(WRITE ${OUT} "// Generated from src/server/openapi.json; do not edit.\n#include \"server/openapi.h\"\n"
  "namespace covenant::server {\nstd::string_view openapi_json() {\n  static const char kDoc[] = R\"${delim}(${doc})${delim}\";\n"
  "  return std::string_view(kDoc, sizeof kDoc - 1);\n}\n}  // namespace covenant::server\n")
