import { checkSpec, validateSpec } from '../../lib/spec';

/** The spec's top-level `baseline`: the config the report compares every other config with. */
const spec = (extra: Record<string, unknown> = {}) => ({
  name: 'x',
  budgetUsd: 50,
  data: 's3://my-bucket/data/',
  defaults: { instanceTypes: ['g5.xlarge'] },
  configs: [{ name: 'first' }, { name: 'second' }],
  ...extra,
});

describe('spec baseline', () => {
  test('defaults to the first config', () => {
    expect(validateSpec(spec()).baseline).toBe('first');
  });

  test('names another config', () => {
    expect(validateSpec(spec({ baseline: 'second' })).baseline).toBe('second');
  });

  test('fails when it names no config, suggesting the closest and listing the configs', () => {
    const { issues } = checkSpec(spec({ baseline: 'secnd' }));
    expect(issues).toEqual([
      {
        path: 'baseline',
        received: '"secnd"',
        message:
          'must name one of the configs, the one the report compares every other config with; did you mean "second"? Configs: "first", "second"; or leave it out to compare with the first config.',
      },
    ]);
  });

  test('fails when it is not a string', () => {
    expect(checkSpec(spec({ baseline: 3 })).issues.map((i) => i.path)).toEqual(['baseline']);
  });
});
