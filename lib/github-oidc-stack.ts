import { CfnOutput, Duration, Stack, StackProps } from 'aws-cdk-lib';
import * as iam from 'aws-cdk-lib/aws-iam';
import { Construct } from 'constructs';
import { GITHUB_OIDC_STACK } from './contract';

/** The stack's name (lib/contract `GITHUB_OIDC_STACK`). */
export const GITHUB_OIDC_STACK_NAME = GITHUB_OIDC_STACK;

/** The GitHub environment the deploy workflow runs in; the deploy role trusts only that environment. */
export const GITHUB_DEPLOY_ENVIRONMENT = 'deploy';

/**
 * GitHub's OIDC issuer and the audience aws-actions/configure-aws-credentials asks for.
 * @see https://docs.github.com/en/actions/how-tos/secure-your-work/security-harden-deployments/oidc-in-aws
 */
const GITHUB_ISSUER = 'token.actions.githubusercontent.com';
const AUDIENCE = 'sts.amazonaws.com';

/** The qualifier `cdk bootstrap` uses unless told otherwise. */
export const DEFAULT_BOOTSTRAP_QUALIFIER = 'hnb659fds';

/**
 * The `sub` claim GitHub puts in a workflow's OIDC token starts with a prefix that names the repository. With
 * immutable subject claims (the default for repositories created, renamed or transferred on github.com after
 * the cut-over; opt-in for older ones) it carries the owner's and the repository's numeric ids, and the spelling
 * is not settled: GitHub's changelog shows `repo:octocat-123456/my-repo-456789:…`, while a pull request to
 * GitHub's docs and tokens seen in practice read `repo:octocat@123456/my-repo@456789:…`; other repositories keep
 * `repo:octocat/my-repo:…`. So the prefix is not built from names and ids here: it is taken verbatim as GitHub
 * reports it for the repository (README "CI deployments" says where), and the roles trust
 * `<prefix>:pull_request` and `<prefix>:environment:deploy` exactly (StringEquals, no wildcard).
 * @see https://github.blog/changelog/2026-04-23-immutable-subject-claims-for-github-actions-oidc-tokens
 * @see https://github.com/github/docs/pull/45221
 * @see https://docs.github.com/en/rest/actions/oidc
 */
const SUBJECT_PREFIX = /^repo:[A-Za-z0-9][A-Za-z0-9-]*(?:@\d+)?\/[A-Za-z0-9_.-]+(?:@\d+)?$/;

/** The context key of the subject prefix: `-c githubSubjectPrefix=repo:OWNER/REPO`. */
export const SUBJECT_PREFIX_CONTEXT = 'githubSubjectPrefix';

/** Checks `-c githubSubjectPrefix=...`; returns a sentence with the fix, or undefined when it is fine. */
export function checkSubjectPrefix(value: unknown): string | undefined {
  const given = `-c ${SUBJECT_PREFIX_CONTEXT}=${String(value)}`;
  const how = 'copy it from GitHub as README "CI deployments" shows (gh api repos/OWNER/REPO/actions/oidc/customization/sub, or the sub claim of a token)';
  if (typeof value !== 'string' || value.trim() === '') return `${given}: give the OIDC subject prefix of your repository, e.g. repo:octo-org/spot-sweep; ${how}.`;
  if (/[*?]/.test(value)) return `${given}: no wildcards (* or ?); the roles trust exactly one repository. Give its subject prefix, e.g. repo:octo-org/spot-sweep.`;
  if (/^repo:[^:]+:/.test(value)) {
    return `${given}: give only the prefix, up to the repository (e.g. ${value.split(':').slice(0, 2).join(':')}); the stack adds :pull_request and :environment:${GITHUB_DEPLOY_ENVIRONMENT} itself.`;
  }
  if (SUBJECT_PREFIX.test(value) && !value.split('/')[1].startsWith('.')) return undefined;
  return `${given}: not a GitHub OIDC subject prefix; it looks like repo:OWNER/REPO (repo:octo-org/spot-sweep), or with immutable ids repo:OWNER@ID/REPO@ID or repo:OWNER-ID/REPO-ID as GitHub reports it; ${how}.`;
}

export interface GitHubOidcStackProps extends StackProps {
  /**
   * The repository's OIDC subject prefix, verbatim as GitHub issues it, e.g. `repo:octo-org/spot-sweep` or
   * `repo:octo-org@123456/spot-sweep@456789` (see {@link checkSubjectPrefix}).
   */
  readonly subjectPrefix: string;
  /**
   * ARN of the account's existing GitHub OIDC provider (an account holds one per issuer URL).
   * @default - the stack creates the provider
   */
  readonly existingProviderArn?: string;
  /**
   * The qualifier the account was bootstrapped with (`cdk bootstrap --qualifier`).
   * @default DEFAULT_BOOTSTRAP_QUALIFIER
   */
  readonly bootstrapQualifier?: string;
}

/**
 * What GitHub Actions needs to run `cdk diff` and `cdk deploy` in this account without long-lived
 * keys: GitHub's OIDC provider and two roles, each assumable only by the repository's workflows
 * with a token for `sts.amazonaws.com`, and each allowed nothing but `sts:AssumeRole` on CDK
 * bootstrap roles (which hold the actual permissions):
 * - the diff role, from pull requests: the lookup role only (read-only; `cdk diff --method=template`);
 * - the deploy role, from jobs in the `deploy` environment (protect it with required reviewers):
 *   the deploy, file-publishing, image-publishing and lookup roles, as `cdk deploy` uses them.
 */
export class GitHubOidcStack extends Stack {
  public readonly diffRole: iam.Role;
  public readonly deployRole: iam.Role;

  constructor(scope: Construct, id: string, props: GitHubOidcStackProps) {
    super(scope, id, {
      description: `spot-sweep CI: GitHub OIDC provider and the roles ${props.subjectPrefix} assumes for cdk diff and cdk deploy`,
      ...props,
    });
    const problem = checkSubjectPrefix(props.subjectPrefix);
    if (problem) throw new Error(problem);

    // IAM no longer needs thumbprints for GitHub: it checks the issuer's certificate against its own
    // trusted root CAs, so the native provider is created without any (and without a custom resource).
    // @see https://docs.aws.amazon.com/IAM/latest/APIReference/API_CreateOpenIDConnectProvider.html
    const provider: iam.IOidcProvider = props.existingProviderArn
      ? iam.OidcProviderNative.fromOidcProviderArn(this, 'GitHubProvider', props.existingProviderArn)
      : new iam.OidcProviderNative(this, 'GitHubProvider', { url: `https://${GITHUB_ISSUER}`, clientIds: [AUDIENCE] });

    const qualifier = props.bootstrapQualifier ?? DEFAULT_BOOTSTRAP_QUALIFIER;
    // Names from the bootstrap template: cdk-<qualifier>-<kind>-role-<account>-<region>.
    // @see https://github.com/aws/aws-cdk-cli/blob/main/packages/aws-cdk/lib/api/bootstrap/bootstrap-template.yaml
    const bootstrapRole = (kind: string): string => `arn:${this.partition}:iam::${this.account}:role/cdk-${qualifier}-${kind}-role-${this.account}-${this.region}`;

    const trust = (subject: string): iam.IPrincipal =>
      new iam.OpenIdConnectPrincipal(provider, {
        StringEquals: { [`${GITHUB_ISSUER}:aud`]: AUDIENCE, [`${GITHUB_ISSUER}:sub`]: `${props.subjectPrefix}:${subject}` },
      });

    this.diffRole = new iam.Role(this, 'DiffRole', {
      description: `cdk diff from pull requests of ${props.subjectPrefix}: may only assume the CDK lookup role`,
      assumedBy: trust('pull_request'),
      maxSessionDuration: Duration.hours(1),
    });
    this.diffRole.addToPolicy(new iam.PolicyStatement({ actions: ['sts:AssumeRole'], resources: [bootstrapRole('lookup')] }));

    this.deployRole = new iam.Role(this, 'DeployRole', {
      description: `cdk deploy from the "${GITHUB_DEPLOY_ENVIRONMENT}" environment of ${props.subjectPrefix}: may only assume the CDK bootstrap roles`,
      assumedBy: trust(`environment:${GITHUB_DEPLOY_ENVIRONMENT}`),
      maxSessionDuration: Duration.hours(1),
    });
    this.deployRole.addToPolicy(
      new iam.PolicyStatement({
        actions: ['sts:AssumeRole'],
        resources: ['deploy', 'file-publishing', 'image-publishing', 'lookup'].map(bootstrapRole),
      }),
    );

    new CfnOutput(this, 'DiffRoleArn', { value: this.diffRole.roleArn, description: 'GitHub repository variable AWS_DIFF_ROLE_ARN' });
    new CfnOutput(this, 'DeployRoleArn', { value: this.deployRole.roleArn, description: 'GitHub repository variable AWS_DEPLOY_ROLE_ARN' });
  }
}
