import { Duration, Stack } from 'aws-cdk-lib';
import * as logs from 'aws-cdk-lib/aws-logs';
import * as s3 from 'aws-cdk-lib/aws-s3';
import * as ssm from 'aws-cdk-lib/aws-ssm';
import { Construct } from 'constructs';
import { jobUri, storeKeys } from '../contract';
import { AGENT_CTL, AGENT_LOGS_FILE, agentLogsConfigJson } from './cloudwatch-agent-config';

/**
 * The longest an `aws:runShellScript` step may run: 172800 s (48 h). The sweep spec refuses
 * `maxRuntimeHours` above 48 for this reason.
 * @see https://docs.aws.amazon.com/systems-manager/latest/userguide/documents-command-ssm-plugin-reference.html#aws-runShellScript
 */
export const MAX_EXECUTION_TIMEOUT_SECONDS = 172_800;

/**
 * Where the document unpacks the code on the instance: one folder per code version under it
 * (`<INSTANCE_CODE_DIR>/<version>`, the version being the code bundle's file name, which holds the asset
 * hash), so a new bundle never replaces the files of a job that is still running. Logs go to INSTANCE_LOG_DIR.
 */
export const INSTANCE_CODE_DIR = '/opt/spot-sweep/code';
export const INSTANCE_LOG_DIR = '/var/log/spot-sweep';
/**
 * Held (flock) by the run of the document that owns the instance, from before it touches any code folder
 * until the job ends: its file descriptor passes through `exec` into bootstrap.sh and the job runner.
 */
export const INSTANCE_LOCK_FILE = '/opt/spot-sweep/train.lock';
/** The descriptor the lock is held on (one digit: the document's first lines run under /bin/sh). */
const LOCK_FD = 9;
/** Marks a code folder this document unpacked, so only those are ever removed. */
const CODE_MARKER = '.code-uri';

/**
 * The contract's job URI (lib/contract `jobUri`) with a name pattern (spec names: lower-case letters,
 * digits, dashes) for sweep and config, and the rest of it matched literally.
 */
const NAME = '[a-z0-9][a-z0-9-]*';
const PLACEHOLDER = '\u0000';
export const JOB_URI_PATTERN = jobUri(PLACEHOLDER, PLACEHOLDER)
  .replace(/[.*+?^${}()|[\]\\]/g, '\\$&')
  .split(PLACEHOLDER)
  .join(NAME);

/**
 * Index of the CUDA PyTorch wheels the bootstrap installs when the AMI has no CUDA torch.
 * CUDA 12.6 wheels are the newest that still carry kernels for Volta (sm_70, V100 / p3); the
 * CUDA 12.8 wheels cover Turing and newer (T4, A10G, L4, L40S, A100, H100).
 * @see https://pytorch.org/get-started/locally/
 */
export const WHEEL_INDEX = {
  volta: 'https://download.pytorch.org/whl/cu126',
  modern: 'https://download.pytorch.org/whl/cu128',
} as const;

export interface TrainDocumentProps {
  /** The artifact bucket: its wheel cache prefix (lib/contract `storeKeys.wheelCache`) is the shared CUDA wheel cache. */
  readonly bucket: s3.IBucket;
  /**
   * How long the training logs shipped to CloudWatch Logs are kept.
   * @default logs.RetentionDays.ONE_MONTH
   */
  readonly logRetention?: logs.RetentionDays;
}

/**
 * The SSM Command document "train" (schema 2.2, one `aws:runShellScript` step) that every training
 * instance runs through its sweep's State Manager association: it ships its logs to CloudWatch Logs,
 * fetches the code bundle from S3, unpacks it and hands over to `bootstrap.sh`, which prepares
 * CUDA PyTorch, runs the job and removes the instance when the job ends.
 *
 * Parameters: `JobUri` (the config's job.json: lib/contract `jobUri`, `ssm:/spot-sweep/<sweep>/<config>/job`), `CodeUri` (the zipped `training/` folder),
 * `WheelIndex` (CUDA wheel index for the instance's GPU), `ExecutionTimeout` (seconds, from
 * `maxRuntimeHours`, at most 48 h). Output goes to CloudWatch Logs (through the CloudWatch agent,
 * because State Manager associations can only send command output to S3) and to S3 (the
 * association's output location).
 */
export class TrainDocument extends Construct {
  /** Name of the document, for associations and `aws ssm send-command`. */
  public readonly documentName: string;
  /** Log group the instances ship `bootstrap.log` and `train.log` to (one stream per instance and file). */
  public readonly logGroup: logs.LogGroup;

  /** The wheel index for a GPU model, as the sweep stack passes it in `WheelIndex`. */
  public static wheelIndexFor(gpuModel: string): string {
    return gpuModel === 'V100' ? WHEEL_INDEX.volta : WHEEL_INDEX.modern;
  }

  /** `ExecutionTimeout` for a config's `maxRuntimeHours`; throws above the 48 h ceiling. */
  public static executionTimeoutSeconds(maxRuntimeHours: number): number {
    const seconds = Math.ceil(Duration.hours(maxRuntimeHours).toSeconds());
    if (!(seconds >= 1 && seconds <= MAX_EXECUTION_TIMEOUT_SECONDS)) {
      throw new Error(
        `maxRuntimeHours ${maxRuntimeHours} gives an execution timeout of ${seconds} s; SSM runShellScript allows 1 to ${MAX_EXECUTION_TIMEOUT_SECONDS} s (48 h): lower maxRuntimeHours.`,
      );
    }
    return seconds;
  }

  constructor(scope: Construct, id: string, props: TrainDocumentProps) {
    super(scope, id);

    this.logGroup = new logs.LogGroup(this, 'Logs', {
      retention: props.logRetention ?? logs.RetentionDays.ONE_MONTH,
    });

    const wheelCache = props.bucket.s3UrlForObject(storeKeys.wheelCache);
    const region = Stack.of(this).region;
    // The CloudWatch agent tails every log file of the job (the DLAMI ships the agent); the launch
    // template's user data loaded the same config at boot, under the same file name.
    const agentConfig = agentLogsConfigJson(INSTANCE_LOG_DIR, this.logGroup.logGroupName);

    // The agent runs runShellScript with /bin/sh (dash on Ubuntu), whatever the shebang says, so
    // this step only writes the real script, in bash, and execs bash on it.
    // @see https://github.com/aws/amazon-ssm-agent/issues/46
    const codeDir = '"$code_dir"';
    const bashScript = [
      'set -euo pipefail',
      `export AWS_DEFAULT_REGION='${region}'`,
      // Everything below also lands in bootstrap.log, which the agent ships to CloudWatch Logs. tee runs
      // without the lock's descriptor, so only the job's own processes keep the lock.
      `exec > >(tee -a ${INSTANCE_LOG_DIR}/bootstrap.log ${LOCK_FD}>&-) 2>&1`,
      'echo "$(date -u +%FT%TZ) train document: job {{ JobUri }}, code {{ CodeUri }}"',
      `agent=${AGENT_CTL}`,
      'if [ -x "$agent" ]; then',
      `  printf '%s\\n' '${agentConfig}' > ${AGENT_LOGS_FILE}`,
      `  "$agent" -a append-config -m ec2 -s -c file:${AGENT_LOGS_FILE} ||`,
      '    echo "warning: the CloudWatch agent did not take the log config; logs still go to S3"',
      'else',
      '  echo "warning: no CloudWatch agent on this AMI; logs go to S3 only"',
      'fi',
      // One folder per code version, named after the bundle (CDK names the asset by its hash); dots are
      // replaced, so the name can never be "." or "..".
      "code_uri='{{ CodeUri }}'",
      'version=${code_uri##*/}',
      'version=$(printf \'%s\' "${version%.zip}" | tr -c \'A-Za-z0-9_-\' \'_\')',
      `code_dir=${INSTANCE_CODE_DIR}/\${version:-bundle}`,
      // The lock is held, so no job runs from any of these folders: remove every one this document unpacked
      // (the current version too, unpacked afresh below). Folders without the marker (an older document's
      // layout) are left as they are.
      `mkdir -p ${INSTANCE_CODE_DIR}`,
      `for old in ${INSTANCE_CODE_DIR}/*/; do`,
      `  if [ -f "\${old}${CODE_MARKER}" ]; then rm -rf "$old"; fi`,
      'done',
      `mkdir -p ${codeDir} && printf '%s\\n' "$code_uri" > ${codeDir}/${CODE_MARKER}`,
      "aws s3 cp --only-show-errors '{{ CodeUri }}' /opt/spot-sweep/code.zip",
      // python3 rather than unzip: every AMI has python3, not every AMI has unzip.
      `python3 -m zipfile -e /opt/spot-sweep/code.zip ${codeDir}`,
      `exec bash ${codeDir}/bootstrap.sh --job '{{ JobUri }}' --code-dir ${codeDir}` +
        ` --wheel-index '{{ WheelIndex }}' --wheel-cache '${wheelCache}' --region '${region}' --deadline-seconds '{{ ExecutionTimeout }}'`,
    ];
    // State Manager runs the association again on every instance it targets when the association changes
    // (a new CodeUri after any edit under training/) or when the document's default version changes, while
    // the first run may still be training. The first thing every run does is take the instance's lock, before
    // it writes train.sh or touches a code folder; a run that cannot take it leaves the live job alone.
    // @see https://docs.aws.amazon.com/systems-manager/latest/APIReference/API_UpdateAssociation.html
    // @see https://docs.aws.amazon.com/systems-manager/latest/APIReference/API_UpdateDocumentDefaultVersion.html
    const script = [
      'set -eu',
      `mkdir -p ${INSTANCE_LOG_DIR} /opt/spot-sweep`,
      `exec ${LOCK_FD}>${INSTANCE_LOCK_FILE}`,
      `if ! flock -n ${LOCK_FD}; then`,
      '  echo "$(date -u +%FT%TZ) train document: a job is live on this instance; this run (code {{ CodeUri }}, job {{ JobUri }}) leaves it alone" |' +
        ` tee -a ${INSTANCE_LOG_DIR}/bootstrap.log`,
      '  exit 0',
      'fi',
      // The job runner passes the descriptor on to the trainer (spot_runner/supervisor.py), so the lock lasts as
      // long as any process of the job.
      `export SPOT_SWEEP_INSTANCE_LOCK_FD=${LOCK_FD}`,
      "cat > /opt/spot-sweep/train.sh <<'TRAIN_SCRIPT'",
      ...bashScript,
      'TRAIN_SCRIPT',
      'exec bash /opt/spot-sweep/train.sh',
    ];

    const document = new ssm.CfnDocument(this, 'Document', {
      documentType: 'Command',
      documentFormat: 'JSON',
      // A new version on every update keeps running commands on the version they started with.
      updateMethod: 'NewVersion',
      content: {
        schemaVersion: '2.2',
        description: 'spot-sweep: fetch the training code and run one config of a sweep (bootstrap.sh, then the job runner).',
        parameters: {
          JobUri: {
            type: 'String',
            description: `Where the config job.json is: ${jobUri('<sweep>', '<config>')} (what sweep stacks pass) or s3://bucket/key.json`,
            // Quoted into the shell script below: the patterns keep quotes and spaces out.
            allowedPattern: `^(${JOB_URI_PATTERN}|s3://[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]/[A-Za-z0-9._/-]+\\.json)$`,
          },
          CodeUri: {
            type: 'String',
            description: 'S3 URI of the zipped training/ folder (the sweep stack code asset)',
            allowedPattern: '^s3://[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]/[A-Za-z0-9._/-]+\\.zip$',
          },
          WheelIndex: {
            type: 'String',
            description: 'pip index of the CUDA PyTorch wheels, used when the AMI has no CUDA torch',
            default: WHEEL_INDEX.modern,
            allowedPattern: '^https://[A-Za-z0-9./_-]+$',
          },
          ExecutionTimeout: {
            type: 'String',
            description: `Seconds before the step is stopped (the config's maxRuntimeHours; at most ${MAX_EXECUTION_TIMEOUT_SECONDS})`,
            default: '14400',
            // 1 to 172800, the same range AWS-RunShellScript accepts.
            allowedPattern: '^([1-9][0-9]{0,4}|1[0-6][0-9]{4}|17[01][0-9]{3}|172[0-7][0-9]{2}|172800)$',
          },
        },
        mainSteps: [
          {
            action: 'aws:runShellScript',
            name: 'train',
            inputs: {
              timeoutSeconds: '{{ ExecutionTimeout }}',
              runCommand: script,
            },
          },
        ],
      },
    });
    this.documentName = document.ref;
  }
}
