/**
 * Conformance of the bucket's checkpoint expiry with what the real job runner uploads: the Python uploader
 * (training/spot_runner: S3Store, CheckpointSync, upload_log) writes a config's checkpoint, its digest, the log
 * and the results into moto_server's S3; the tags S3 keeps on each object are then matched against the
 * lifecycle rule the FoundationStack synthesizes, with S3's own filter semantics: the prefix AND every tag,
 * "each tag must match both key and value exactly".
 * @see https://docs.aws.amazon.com/AmazonS3/latest/userguide/intro-lifecycle-filters.html
 */
import { CreateBucketCommand, GetObjectTaggingCommand, S3Client, Tag } from '@aws-sdk/client-s3';
import { App } from 'aws-cdk-lib';
import { Template } from 'aws-cdk-lib/assertions';
import { CHECKPOINT_TAG, NAMES, storeKeys } from '../../lib/contract';
import { FoundationStack } from '../../lib/foundation-stack';
import { clientConfig, Moto, MOTO_START_TIMEOUT_MS, startMoto } from '../lambda/moto';
import { python } from './python';

jest.setTimeout(120_000);

const BUCKET = 'artifacts';
const SWEEP = 'lifecycle';
const CONFIG = 'c';
let moto: Moto;
let s3: S3Client;

beforeAll(async () => {
  moto = await startMoto();
  s3 = new S3Client({ ...clientConfig(moto.endpoint), forcePathStyle: true });
  await s3.send(new CreateBucketCommand({ Bucket: BUCKET }));
}, MOTO_START_TIMEOUT_MS);
afterAll(async () => {
  s3?.destroy();
  await moto?.stop();
}, MOTO_START_TIMEOUT_MS);

/** The runner's own upload paths, into the config's store prefix; prints every key it wrote. */
const UPLOAD = `
import json, os, sys, tempfile
from pathlib import Path

endpoint, bucket, prefix, digest_suffix = sys.argv[1:5]
os.environ.update(AWS_ACCESS_KEY_ID="testing", AWS_SECRET_ACCESS_KEY="testing", AWS_DEFAULT_REGION="us-east-1")
from contract import CONFIG_FILES
from spot_runner.storage import S3Store
from spot_runner.sync import CheckpointSync, upload_log

work = Path(tempfile.mkdtemp())
checkpoints = work / "checkpoints"
checkpoints.mkdir()
# Above boto3's 8 MiB multipart threshold, so the tags must come with a multipart upload too.
(checkpoints / "ckpt-00000001.pt").write_bytes(os.urandom(9 * 1024 * 1024))
(checkpoints / ("ckpt-00000001.pt" + digest_suffix)).write_text("0" * 64 + "\\n")
(work / "train.log").write_text("=== attempt 1 on local (local) ===\\n")
(work / "folds.json").write_text("{}")
(work / "model.pt").write_bytes(b"model")

store = S3Store(bucket, prefix, endpoint_url=endpoint)
CheckpointSync(store, checkpoints).sync()
upload_log(store, work / "train.log")
store.put_bytes(CONFIG_FILES["results"], b"{}")
store.upload(work / "folds.json", CONFIG_FILES["folds"])
store.upload(work / "model.pt", CONFIG_FILES["model"] + "model.pt")
print(json.dumps(sorted(prefix + o.key for o in store.list())))
`;

/** The bucket's checkpoint expiry rule as CloudFormation gets it. */
function checkpointRule(): { Prefix?: string; TagFilters?: Tag[]; ExpirationInDays?: number } {
  const app = new App();
  const template = Template.fromStack(new FoundationStack(app, 'SpotSweep-Foundation'));
  const [bucket] = Object.values(template.findResources('AWS::S3::Bucket'));
  const rule = bucket.Properties.LifecycleConfiguration.Rules.find((r: { Id: string }) => r.Id === 'expire-checkpoints');
  expect(rule).toBeDefined();
  return rule;
}

/** Whether S3 applies the rule to an object: its key starts with the prefix, and it has every tag of the rule. */
const matches = (rule: ReturnType<typeof checkpointRule>, key: string, tags: readonly Tag[]): boolean =>
  key.startsWith(rule.Prefix ?? '') && (rule.TagFilters ?? []).every((f) => tags.some((t) => t.Key === f.Key && t.Value === f.Value));

test("the lifecycle rule expires exactly the runner's checkpoints and their digests, nothing else it uploads", async () => {
  const prefix = storeKeys.config(SWEEP, CONFIG);
  const keys = python<string[]>(UPLOAD, [moto.endpoint, BUCKET, prefix, NAMES.trainerOut.checkpointDigestSuffix], 90_000);
  const checkpoints = prefix + NAMES.store.configFiles.checkpoints;
  expect(keys).toEqual(
    [
      `${checkpoints}ckpt-00000001.pt`,
      `${checkpoints}ckpt-00000001.pt${NAMES.trainerOut.checkpointDigestSuffix}`,
      storeKeys.configFile(SWEEP, CONFIG, 'log'),
      storeKeys.configFile(SWEEP, CONFIG, 'results'),
      storeKeys.configFile(SWEEP, CONFIG, 'folds'),
      `${storeKeys.configFile(SWEEP, CONFIG, 'model')}model.pt`,
    ].sort(),
  );

  const rule = checkpointRule();
  // The rule is the contract's tag within the store's prefix, not literals of its own.
  expect(rule.TagFilters).toEqual([{ Key: CHECKPOINT_TAG.key, Value: CHECKPOINT_TAG.value }]);
  expect(rule.Prefix).toBe(storeKeys.sweepsRoot);
  expect(prefix.startsWith(rule.Prefix!)).toBe(true);

  const expired: string[] = [];
  for (const key of keys) {
    const tags = (await s3.send(new GetObjectTaggingCommand({ Bucket: BUCKET, Key: key }))).TagSet ?? [];
    if (matches(rule, key, tags)) expired.push(key);
  }
  expect(expired).toEqual(keys.filter((k) => k.startsWith(checkpoints)));
  expect(expired).toHaveLength(2);
});

test('a tagged checkpoint copied out of sweeps/ (to keep it) is not expired', () => {
  const rule = checkpointRule();
  const tags = [{ Key: CHECKPOINT_TAG.key, Value: CHECKPOINT_TAG.value }];
  expect(matches(rule, `${storeKeys.configFile(SWEEP, CONFIG, 'checkpoints')}ckpt-00000001.pt`, tags)).toBe(true);
  expect(matches(rule, 'kept/ckpt-00000001.pt', tags)).toBe(false);
  expect(matches(rule, `${storeKeys.datasets(SWEEP)}ckpt-00000001.pt`, tags)).toBe(false);
});
