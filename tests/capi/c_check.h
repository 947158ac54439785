/* CHECK for the C11 tests: reports a failed condition with its place and counts it, so that
 * one run lists every failure; main returns c_check_failures != 0. */
#ifndef MIDATLAS_TESTS_CAPI_C_CHECK_H_
#define MIDATLAS_TESTS_CAPI_C_CHECK_H_

#include <stdio.h>

static int c_check_failures = 0;

#define CHECK(condition)                                                            \
  do {                                                                              \
    if (!(condition)) {                                                             \
      fprintf(stderr, "%s:%d: check failed: %s\n", __FILE__, __LINE__, #condition); \
      ++c_check_failures;                                                           \
    }                                                                               \
  } while (0)

#endif /* MIDATLAS_TESTS_CAPI_C_CHECK_H_ */
