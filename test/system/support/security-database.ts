// The harness is a private workspace package the root does not depend on, so system suites import
// it by path (the `@mana-ai/test-postgres` specifier only resolves inside packages and apps).
export {
  type LogRow,
  RUNNER_PASSWORD,
  type TestDatabase,
  agentRecord,
  connectAsRunner,
  createTestDatabase,
  insertLogRows,
  missionRecord,
  runnerUrl,
} from '../../../tooling/test-postgres/src/index.js';
