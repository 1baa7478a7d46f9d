/**
 * Jest runs the TypeScript tests through SWC (type-stripping only, no type check: `npm run typecheck`
 * does that), which keeps a run fast on a small shared machine.
 * @type {import('jest').Config}
 */
module.exports = {
  testEnvironment: 'node',
  roots: ['<rootDir>/test'],
  testMatch: ['**/*.test.ts'],
  transform: {
    '^.+\\.tsx?$': ['@swc/jest'],
  },
  setupFilesAfterEnv: ['aws-cdk-lib/testhelpers/jest-autoclean'],
  // Two workers: the machines that run this have few cores; CDK synth is CPU-bound.
  maxWorkers: 2,
};
