// The OpenAPI 3.1 document of API v1 (src/server/openapi.json), embedded at
// build time and served at GET /v1/openapi.json.
#pragma once

#include <string_view>

namespace covenant::server {
std::string_view openapi_json();
}
