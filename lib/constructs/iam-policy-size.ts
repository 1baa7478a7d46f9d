import { Stack } from 'aws-cdk-lib';
import * as iam from 'aws-cdk-lib/aws-iam';

/**
 * IAM's size quota of a customer managed policy, in characters without white space ("IAM does not count
 * white space when calculating the size of a policy against this quota"): 6,144. (A role's inline policies
 * together hold at most 10,240, which is why each sweep brings a managed policy of its own.)
 * @see https://docs.aws.amazon.com/IAM/latest/UserGuide/reference_iam-quotas.html
 */
export const MANAGED_POLICY_MAX_CHARS = 6144;

/**
 * A long value for each pseudo parameter, so a size is checked for the worst account and region the template may
 * deploy to: 10 characters for the partition (aws-us-gov is the longest of aws, aws-cn, aws-us-gov), 16 for the
 * region (today's longest codes, such as ap-southeast-5, have 14), 12 for the account id.
 * @see https://docs.aws.amazon.com/AWSCloudFormation/latest/UserGuide/pseudo-parameter-reference.html
 */
const PSEUDO: Readonly<Record<string, string>> = {
  'AWS::Partition': 'x'.repeat(10),
  'AWS::Region': 'x'.repeat(16),
  'AWS::AccountId': '0'.repeat(12),
  'AWS::URLSuffix': 'x'.repeat(16),
};
/** Anything else a template resolves at deploy (a bucket or role name from another stack): the longest such name, 64. */
const UNKNOWN = 'x'.repeat(64);

function worstCase(node: unknown): unknown {
  if (Array.isArray(node)) return node.map(worstCase);
  if (node === null || typeof node !== 'object') return node;
  const o = node as Record<string, unknown>;
  const keys = Object.keys(o);
  if (keys.length === 1 && keys[0] === 'Ref') return PSEUDO[o.Ref as string] ?? UNKNOWN;
  if (keys.length === 1 && keys[0] === 'Fn::Join') {
    const [delimiter, parts] = o['Fn::Join'] as [string, unknown[]];
    return parts.map((p) => String(worstCase(p))).join(delimiter);
  }
  if (keys.length === 1 && keys[0] === 'Fn::Sub' && typeof o['Fn::Sub'] === 'string') {
    return (o['Fn::Sub'] as string).replace(/\$\{([^}]+)\}/g, (_all, name: string) => PSEUDO[name] ?? UNKNOWN);
  }
  if (keys.length === 1 && keys[0].startsWith('Fn::')) return UNKNOWN;
  return Object.fromEntries(keys.map((k) => [k, worstCase(o[k])]));
}

/**
 * The length IAM will count for a policy document of `stack` once deployed, at worst: every intrinsic replaced
 * by the longest value it can have, serialized without white space (as IAM counts it).
 */
export function worstCasePolicyLength(stack: Stack, document: iam.PolicyDocument): number {
  return JSON.stringify(worstCase(stack.resolve(document))).length;
}
