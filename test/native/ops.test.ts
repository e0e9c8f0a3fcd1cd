import { nativeCases } from './native';

// The backend-parametrised op harness (test/native/ops): every op case on every backend under
// test against float64 references, one vitest case per harness case.
nativeCases('cmae_op_tests');
