// cmae_op_tests: every op case on every backend under test, plus the host math (see harness.h).
#include "harness.h"

int main(int argc, char** argv) {
  using namespace cmae::op_tests;
  register_backends();
  // Built once, before the Suite: its cases hold references into the table.
  static CaseTable table;
  add_activation_cases(table);
  add_attention_cases(table);
  add_data_cases(table);
  add_linear_cases(table);
  add_loss_cases(table);
  add_norm_cases(table);
  add_optim_cases(table);
  add_patch_cases(table);
  add_pool_cases(table);
  add_row_cases(table);
  add_backend_cases(table);

  cmae::testing::Suite suite;
  add_host_cases(suite);
  add_table_to_suite(table, suite);
  return suite.run(argc, argv);
}
