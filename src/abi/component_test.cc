#include "covenant/component.h"

#include <gtest/gtest.h>

TEST(Component, Placeholder) { EXPECT_FALSE(covenant::component::is_component({})); }
