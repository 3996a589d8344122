// Test guests of src/host: the example contracts' glue.
#pragma once
#include "../../../contracts/examples/budget/covenant_host.h"
