import { App, Validations } from 'aws-cdk-lib';
import { Match, Template } from 'aws-cdk-lib/assertions';
import { AwsSolutionsChecks } from 'cdk-nag';
import { checkSubjectPrefix, GitHubOidcStack, GitHubOidcStackProps } from '../lib/github-oidc-stack';

function build(props: Partial<GitHubOidcStackProps> = {}): { app: App; template: Template } {
  const app = new App();
  const stack = new GitHubOidcStack(app, 'SpotSweep-GitHubOidc', { subjectPrefix: 'repo:octo-org/spot-sweep', ...props });
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

  /** The `sub` each role of a stack built with this prefix trusts. */
  const trustedSubjects = (subjectPrefix: string): string[] =>
    Object.values(build({ subjectPrefix }).template.findResources('AWS::IAM::Role')).map(
      (r) => r.Properties.AssumeRolePolicyDocument.Statement[0].Condition.StringEquals['token.actions.githubusercontent.com:sub'],
    );

  test('takes the subject prefix verbatim, in either documented spelling of immutable subject claims', () => {
    // GitHub's changelog spells the immutable ids owner-ID/repo-ID, its docs and live tokens owner@ID/repo@ID.
    expect(trustedSubjects('repo:octo-org@123456/spot-sweep@789').sort()).toEqual(['repo:octo-org@123456/spot-sweep@789:environment:deploy', 'repo:octo-org@123456/spot-sweep@789:pull_request']);
    expect(trustedSubjects('repo:octocat-123456/my-repo-456789').sort()).toEqual(['repo:octocat-123456/my-repo-456789:environment:deploy', 'repo:octocat-123456/my-repo-456789:pull_request']);
  });

  test('fails when the subject prefix is empty, has a wildcard, is a whole subject or not a repository prefix: says what to give and where to read it', () => {
    expect(checkSubjectPrefix('repo:octo-org/spot-sweep')).toBeUndefined();
    expect(checkSubjectPrefix('')).toMatch(/give the OIDC subject prefix of your repository, e\.g\. repo:octo-org\/spot-sweep; copy it from GitHub/);
    expect(checkSubjectPrefix(undefined)).toMatch(/give the OIDC subject prefix/);
    expect(checkSubjectPrefix('repo:octo-org/*')).toMatch(/no wildcards \(\* or \?\); the roles trust exactly one repository/);
    expect(checkSubjectPrefix('repo:octo-org/spot-sweep:environment:deploy')).toMatch(/give only the prefix, up to the repository \(e\.g\. repo:octo-org\/spot-sweep\); the stack adds :pull_request and :environment:deploy/);
    for (const bad of ['octo-org/spot-sweep', 'spot-sweep', 'https://github.com/octo-org/spot-sweep', 'repo:a/b/c', 'repo: octo-org/spot-sweep', 'repo:octo-org/.hidden']) {
      expect([bad, checkSubjectPrefix(bad)]).toEqual([bad, expect.stringMatching(/not a GitHub OIDC subject prefix; it looks like repo:OWNER\/REPO/)]);
    }
    expect(() => build({ subjectPrefix: 'repo:octo-org/*' })).toThrow(/-c githubSubjectPrefix=repo:octo-org\/\*/);
  });
});
