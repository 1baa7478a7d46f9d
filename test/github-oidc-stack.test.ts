import { App, Validations } from 'aws-cdk-lib';
import { Match, Template } from 'aws-cdk-lib/assertions';
import { AwsSolutionsChecks } from 'cdk-nag';
import { checkRepository, GitHubOidcStack, GitHubOidcStackProps } from '../lib/github-oidc-stack';

function build(props: Partial<GitHubOidcStackProps> = {}): { app: App; template: Template } {
  const app = new App();
  const stack = new GitHubOidcStack(app, 'SpotSweep-GitHubOidc', { repository: 'octo-org/spot-sweep', ...props });
  Validations.of(app).addPlugins(new AwsSolutionsChecks(app));
  return { app, template: Template.fromStack(stack) };
}

const nag = (app: App): string[] => new AwsSolutionsChecks().validateScope(app).violations.map((v) => `${v.ruleName} at ${v.violatingResources.map((r) => r.constructPath).join(', ')}`);

/** The bootstrap role ARN the template builds, as a Fn::Join to match. */
const bootstrapRole = (kind: string) => ({
  'Fn::Join': ['', ['arn:', { Ref: 'AWS::Partition' }, ':iam::', { Ref: 'AWS::AccountId' }, `:role/cdk-hnb659fds-${kind}-role-`, { Ref: 'AWS::AccountId' }, '-', { Ref: 'AWS::Region' }]],
});

describe('GitHubOidcStack', () => {
  const { app, template } = build();

  test('creates the GitHub OIDC provider for sts.amazonaws.com, natively and without thumbprints', () => {
    template.resourceCountIs('AWS::IAM::OIDCProvider', 1);
    template.hasResourceProperties('AWS::IAM::OIDCProvider', {
      Url: 'https://token.actions.githubusercontent.com',
      ClientIdList: ['sts.amazonaws.com'],
      ThumbprintList: Match.absent(),
    });
    template.resourceCountIs('AWS::Lambda::Function', 0);
    template.resourceCountIs('AWS::IAM::User', 0);
    template.resourceCountIs('AWS::IAM::AccessKey', 0);
  });

  test('the deploy role trusts only the repository\'s "deploy" environment, with the STS audience', () => {
    template.hasResourceProperties('AWS::IAM::Role', {
      Description: Match.stringLikeRegexp('^cdk deploy'),
      AssumeRolePolicyDocument: {
        Statement: [
          {
            Action: 'sts:AssumeRoleWithWebIdentity',
            Effect: 'Allow',
            Principal: { Federated: { Ref: Match.stringLikeRegexp('GitHubProvider') } },
            Condition: {
              StringEquals: {
                'token.actions.githubusercontent.com:aud': 'sts.amazonaws.com',
                'token.actions.githubusercontent.com:sub': 'repo:octo-org/spot-sweep:environment:deploy',
              },
            },
          },
        ],
      },
    });
  });

  test('the deploy role may only assume the CDK deploy, publishing and lookup roles', () => {
    const roles = template.findResources('AWS::IAM::Role', { Properties: { Description: Match.stringLikeRegexp('^cdk deploy') } });
    const [roleId] = Object.keys(roles);
    template.hasResourceProperties('AWS::IAM::Policy', {
      Roles: [{ Ref: roleId }],
      PolicyDocument: {
        Statement: [{ Action: 'sts:AssumeRole', Effect: 'Allow', Resource: ['deploy', 'file-publishing', 'image-publishing', 'lookup'].map(bootstrapRole) }],
      },
    });
  });

  test('the diff role trusts only pull requests of the repository and may only assume the lookup role', () => {
    const roles = template.findResources('AWS::IAM::Role', { Properties: { Description: Match.stringLikeRegexp('^cdk diff') } });
    const [roleId] = Object.keys(roles);
    expect(roles[roleId].Properties.AssumeRolePolicyDocument.Statement[0].Condition.StringEquals['token.actions.githubusercontent.com:sub']).toBe('repo:octo-org/spot-sweep:pull_request');
    template.hasResourceProperties('AWS::IAM::Policy', {
      Roles: [{ Ref: roleId }],
      PolicyDocument: { Statement: [{ Action: 'sts:AssumeRole', Effect: 'Allow', Resource: bootstrapRole('lookup') }] },
    });
  });

  test('no policy grants anything but sts:AssumeRole, and no managed policy is attached', () => {
    for (const policy of Object.values(template.findResources('AWS::IAM::Policy'))) {
      for (const statement of policy.Properties.PolicyDocument.Statement) expect(statement.Action).toBe('sts:AssumeRole');
    }
    for (const role of Object.values(template.findResources('AWS::IAM::Role'))) expect(role.Properties.ManagedPolicyArns).toBeUndefined();
  });

  test('outputs the two role ARNs for the repository variables', () => {
    template.hasOutput('DeployRoleArn', {});
    template.hasOutput('DiffRoleArn', {});
  });

  test('is cdk-nag clean', () => {
    expect(nag(app)).toEqual([]);
  });

  test('reuses an existing provider when given its ARN', () => {
    const arn = 'arn:aws:iam::123456789012:oidc-provider/token.actions.githubusercontent.com';
    const { template: t } = build({ existingProviderArn: arn });
    t.resourceCountIs('AWS::IAM::OIDCProvider', 0);
    t.hasResourceProperties('AWS::IAM::Role', { AssumeRolePolicyDocument: { Statement: [Match.objectLike({ Principal: { Federated: arn } })] } });
  });

  test('accepts immutable subject claims (owner@id/repo@id) in the trust condition', () => {
    const { template: t } = build({ repository: 'octo-org@123456/spot-sweep@789' });
    t.hasResourceProperties('AWS::IAM::Role', {
      AssumeRolePolicyDocument: { Statement: [Match.objectLike({ Condition: { StringEquals: Match.objectLike({ 'token.actions.githubusercontent.com:sub': 'repo:octo-org@123456/spot-sweep@789:environment:deploy' }) } })] },
    });
  });

  test('fails when the repository is not owner/repo: says the form to use', () => {
    expect(checkRepository('octo-org/spot-sweep')).toBeUndefined();
    for (const bad of ['spot-sweep', 'octo-org/*', 'https://github.com/octo-org/spot-sweep', 'a/b/c', '']) {
      expect(checkRepository(bad)).toMatch(/give the GitHub repository as owner\/repo/);
    }
    expect(() => build({ repository: 'octo-org/*' })).toThrow(/-c github=octo-org\/\*/);
  });
});
